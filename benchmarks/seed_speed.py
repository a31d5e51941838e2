"""How fast does `numpynn seed` train, how much memory does it take, and how close is it to the machine's limit?

What it measures
    `numpynn seed --json --quiet` (2000 full-batch iterations of 784-10-10 on 50,000 MNIST images, alpha 0.01)
    runs as a subprocess, exactly as a user runs it: the fast path, numpynn/seed_fast.py. Beside it, in the
    same run, `numpynn seed --plain --json --quiet`, the textbook loop of numpynn/seed.py, for as many
    iterations (--plain-iterations to run fewer and extrapolate). Its last output line is JSON; from it come the accuracies,
    `train_seconds` (the training loop alone) and `seconds` (the whole command: imports, loading, training,
    scoring). The child's peak resident memory comes from os.wait4, which returns that one child's usage.

What it derives
    GFLOP/s: the floating-point work of the matrix products, counted analytically (`flop_per_iteration`),
    divided by the training loop's time. X bandwidth: the bytes of X (m x D) divided by the time per iteration,
    the memory speed the run would need if it read X exactly once per iteration. Reading X once per iteration
    is the floor for this network: its products do about 10 FLOP per byte of X, too few to keep the CPU's
    arithmetic busy, so memory speed sets the pace. Both are "effective" rates: a seed that skips work (say,
    pixels that are 0) is credited with the full count, which is the point: they compare ways to do one job.

What each trick buys (--tricks)
    One more subprocess times the full-batch gradient over --tricks-iterations iterations, six ways, each
    adding one of seed_fast's tricks to the one before: seed.py's plain forward and backward on all of X;
    the same with the products written transposed (trick 4); that on blocks of 512 images in the data's
    order, all pixels (trick 3, cache); on blocks sorted by their ink's bounding box, all pixels; and with
    each block's zero pixels dropped (trick 2); and those blocks summed on SeedConfig.threads threads with BLAS
    limited to one thread (trick 5), which is what `numpynn seed` runs.

Baselines (--baseline), measured in the same run so that ratios compare like with like
    plain:    the straightforward full-batch loop in float32 NumPy, written out below (W1 @ X on all m images).
    float64:  the same loop in float64, which the seed's original code ran by accident (a pandas round trip).
    Both start from the seed's initial weights and use its alpha and data split. They run for
    --baseline-iterations (default 200) and are extrapolated linearly to --iterations; the table says so.

BLAS
    The library, version, kernel and thread count are read with threadpoolctl in a fresh process with the
    same interpreter and environment as the measured runs, so it loads the same library the same way.
    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are reported as found; this script never sets them.

Usage:  .venv/bin/python benchmarks/seed_speed.py --baseline all [--repeat 3] [--json results.json]
Timings depend on everything else the machine is doing: run it on an otherwise idle machine.
"""
from __future__ import annotations

# The measuring process imports only the standard library. On Linux a child's peak RSS starts at its
# parent's RSS when it was spawned (the high-water mark survives exec), so a parent holding NumPy and a copy
# of MNIST would inflate every child's number. NumPy and numpynn are imported only in the worker processes.
import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import REPO, check_json_path, code_hash, cpu_busy_before, cpu_name, table, write_json

PROG = "seed_speed"
SEED_CODE = [REPO / "numpynn" / "seed.py", REPO / "numpynn" / "seed_fast.py"]  # the code under measurement
BASELINES = {
    "plain": "plain float32 NumPy",
    "float64": "plain float64 NumPy",
}
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
RUN_NAMES = {"seed": "numpynn seed", "plain_seed": "numpynn seed --plain"}


def flop_per_iteration(m: int, D: int, H: int, K: int) -> int:
    """Floating-point operations of one full-batch iteration, matrix products only.

    A product of (a, b) by (b, c) is a*b*c multiply-adds, 2*a*b*c FLOP. Per iteration, over m images:
        forward     Z1 = W1 X          2 m D H
                    Z2 = W2 A1         2 m H K
        backward    dW2 = dZ2 A1^T     2 m H K
                    W2^T dZ2           2 m K H
                    dW1 = dZ1 X^T      2 m D H
    Element-wise work (bias adds, ReLU, softmax, the loss the seed logs every few iterations, the weight
    update) is left out: it is O(m (H + K)), under 1% of the products for D = 784, and its FLOP are not
    comparable to multiply-adds anyway. With D = 784, H = K = 10, m = 50,000: 1.598 GFLOP per iteration."""
    return 2 * m * (D * H + H * K) + 2 * m * H * K + 2 * m * K * H + 2 * m * D * H


# ---------------------------------------------------------------------------------------------------------
# Worker processes: each prints one JSON line. They run in their own process so that their memory and
# their BLAS state are their own, like the `numpynn seed` child's.

def _import_numpynn():
    # Run as `python benchmarks/seed_speed.py`, Python puts benchmarks/ on the path, not the repository.
    sys.path.insert(0, str(REPO))
    import numpynn.data
    import numpynn.seed

    return numpynn.data, numpynn.seed


def probe(data_dir: str | None) -> dict:
    """The BLAS NumPy loads here, the sizes of the training set, and the versions that ran."""
    import numpy as np

    data, seed = _import_numpynn()
    config = seed.SeedConfig()
    splits = data.load_mnist("mnist", data_dir, dev_size=config.dev_size, seed=config.seed, progress=False)
    m, D = splits.X_train.shape
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return {
        "m": m,
        "D": D,
        "K": seed.K,
        "x_itemsize": splits.X_train.dtype.itemsize,
        "blas": _common.blas_libraries(keys),
        "numpy": np.__version__,
    }


def plain_gradient_descent(X, Y, params, iterations: int, alpha: float):
    """The straightforward full-batch loop, the seed's equations as written: every product on all m images.
    X (D, m), Y (K, m) one-hot, in the dtype the loop runs in. No blocking and no reordered products, so
    this is what plain NumPy gives; numpynn/seed.py holds the same math and whatever speed-ups it has.
    It does not compute the loss (the seed logs it every 10 iterations): that is element-wise, under 1%."""
    import numpy as np

    W1, b1, W2, b2 = params
    m = X.shape[1]
    for _ in range(iterations):
        Z1 = W1 @ X + b1  # (H, m)
        A1 = np.maximum(Z1, 0)  # (H, m)
        Z2 = W2 @ A1 + b2  # (K, m)
        E = np.exp(Z2 - Z2.max(axis=0, keepdims=True))  # (K, m)
        A2 = E / E.sum(axis=0, keepdims=True)  # (K, m)
        dZ2 = A2 - Y  # (K, m)  softmax + cross-entropy
        dW2 = dZ2 @ A1.T / m  # (K, H)
        db2 = dZ2.sum(axis=1, keepdims=True) / m  # (K, 1)
        dZ1 = (W2.T @ dZ2) * (Z1 > 0)  # (H, m)
        dW1 = dZ1 @ X.T / m  # (H, D)
        db1 = dZ1.sum(axis=1, keepdims=True) / m  # (H, 1)
        W1, b1, W2, b2 = W1 - alpha * dW1, b1 - alpha * db1, W2 - alpha * dW2, b2 - alpha * db2
    return W1, b1, W2, b2


def baseline(name: str, iterations: int, data_dir: str | None) -> dict:
    """Train with plain_gradient_descent in float32 ("plain") or float64 ("float64"), timed like the seed's
    train_seconds: from the initial weights to the last update. Same data split, init and alpha as the seed."""
    import numpy as np

    data, seed = _import_numpynn()
    config = seed.SeedConfig()
    dtype = np.float64 if name == "float64" else np.float32
    splits = data.load_mnist("mnist", data_dir, dev_size=config.dev_size, seed=config.seed, progress=False)
    # The seed's X was the transpose of a row-per-image array: (D, m), each image's column contiguous in memory.
    # .T gives the same layout. The float64 copy is made before the clock starts, as the seed made its float64
    # array while loading.
    X = splits.X_train.astype(dtype).T  # (D, m)
    m = X.shape[1]
    Y = np.zeros((seed.K, m), dtype)  # (K, m) one-hot
    Y[splits.y_train, np.arange(m)] = 1
    start = time.perf_counter()
    params = seed.init_params(np.random.default_rng(config.seed), config.hidden, dtype)  # the seed's init
    W1, b1, W2, b2 = plain_gradient_descent(X, Y, params, iterations, config.alpha)
    train_seconds = time.perf_counter() - start
    # Dev accuracy, to show the baseline learns what the seed learns (equal after equal iterations).
    # The largest logit is the largest probability, so softmax is not needed to predict.
    Z2 = W2 @ np.maximum(W1 @ splits.X_dev.T + b1, 0) + b2  # (K, m_dev)
    return {
        "train_seconds": train_seconds,
        "dev_accuracy": float(np.mean(Z2.argmax(axis=0) == splits.y_dev)),
        "x_itemsize": X.itemsize,
    }


TRICKS = {  # name -> what it adds, in the order they are added
    "plain": "seed.py: W1 @ X and dZ1 @ X.T on all of X",
    "transposed": "+ products written transposed (trick 4)",
    "blocks": "+ blocks of 512 images, data order, all pixels (trick 3)",
    "sorted": "+ blocks sorted by the ink's bounding box",
    "dropped": "+ zero pixels dropped per block (trick 2)",
    "threads": "+ one thread per core, BLAS single-threaded (trick 5) = seed_fast",
}


def tricks(iterations: int, data_dir: str | None) -> dict:
    """Seconds per full-batch gradient (forward and backward, no update) for each row of TRICKS, the best of
    `iterations` gradients each, in one process on the same data and weights. The weights are the seed's
    initial ones; the work of a gradient does not depend on their values."""
    import numpy as np

    data, seed = _import_numpynn()
    from numpynn import seed_fast

    config = seed.SeedConfig()
    splits = data.load_mnist("mnist", data_dir, dev_size=config.dev_size, seed=config.seed, progress=False)
    X, y = splits.X_train.T, splits.y_train  # (D, m) image by image, as run_seed passes it
    m = y.size
    params = seed.init_params(np.random.default_rng(config.seed), config.hidden)
    everything = np.arange(X.shape[0])

    def plain():
        Z1, A1, Z2, A2 = seed.forward_propagation(X, *params)
        return seed.backward_propagation(X, y, Z1, A1, params.W2, A2)

    def one_block():  # the whole of X as a single block: trick 4 alone
        return seed_fast.gradients([seed_fast.Block(everything, X, y)], params, m)

    in_order = [seed_fast.Block(everything, np.asfortranarray(X[:, s : s + config.block]), y[s : s + config.block])
                for s in range(0, m, config.block)]
    packed = seed_fast.pack_blocks(X, y, config.block)
    order = seed_fast.ink_order(X)  # (m,)  the order pack_blocks cuts into blocks
    sorted_all = [seed_fast.Block(everything, np.asfortranarray(X[:, images]), y[images])
                  for images in (order[s : s + config.block] for s in range(0, m, config.block))]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    pool = ThreadPoolExecutor(config.threads)

    def threaded():  # as `numpynn seed` runs it: its threads, each on single-threaded BLAS
        with threadpool_limits(1, user_api="blas"):
            return seed_fast.gradients(packed, params, m, threads=config.threads, pool=pool)

    runs = {
        "plain": plain,
        "transposed": one_block,
        "blocks": lambda: seed_fast.gradients(in_order, params, m),
        "sorted": lambda: seed_fast.gradients(sorted_all, params, m),
        "dropped": lambda: seed_fast.gradients(packed, params, m),
        "threads": threaded,
    }
    for gradient in runs.values():
        gradient()  # once untimed: first-touch of memory and BLAS start-up
    times = {name: [] for name in runs}
    # Round-robin, so a slow spell of the machine touches every variant alike; but not the threaded row: right
    # after a call on multi-threaded BLAS, OpenBLAS's own threads keep spinning for a while and take the cores
    # its threads need (measured: 32.8 ms a gradient interleaved, against 17.6 ms in `numpynn seed` itself).
    # It runs afterwards, on its own, as `numpynn seed` runs it.
    shared = {name: gradient for name, gradient in runs.items() if name != "threads"}
    for _ in range(iterations):
        for name, gradient in shared.items():
            start = time.perf_counter()
            gradient()
            times[name].append(time.perf_counter() - start)
    with threadpool_limits(1, user_api="blas"):
        time.sleep(1)  # OpenBLAS's threads go back to sleep
        for _ in range(iterations):
            start = time.perf_counter()
            seed_fast.gradients(packed, params, m, threads=config.threads, pool=pool)
            times["threads"].append(time.perf_counter() - start)
        limits = {name: [] for name in LIMITS}
        for _ in range(iterations):  # what the fast path cannot go below, on the same threads and blocks
            for name, work in (("read", _read_x), ("products", _products_only)):
                start = time.perf_counter()
                list(pool.map(lambda t: work(packed[t :: config.threads], params.W1), range(config.threads)))
                limits[name].append(time.perf_counter() - start)
    pool.shutdown()
    seconds = {name: min(t) for name, t in times.items()}  # the best: the least disturbed by other work
    kept = sum(block.pixels.size * block.y.size for block in packed) / m
    return {"seconds_per_gradient": seconds, "pixels_kept_per_image": kept, "iterations": iterations,
            "limits_seconds": {name: min(t) for name, t in limits.items()}}


LIMITS = {  # name -> what it times: parts of seed_fast's gradient alone, on its threads, blocks and BLAS
    "read": "reading every block's X once (a sum), nothing else",
    "products": "the two products with X per block, W1_b X_b and dZ1 X_b^T, nothing else",
}


def _read_x(blocks, W1) -> None:
    for block in blocks:
        block.X.sum()


def _products_only(blocks, W1) -> None:
    """seed_fast's two products with X per block, on a stand-in dZ1 (the forward's Z1), and nothing else."""
    for pixels, X_b, _ in blocks:
        Z1 = (X_b.T @ W1[:, pixels].T).T  # (H, n)
        (X_b @ Z1.T).T  # (H, D_b)


# ---------------------------------------------------------------------------------------------------------
# The measuring process

def run_child(command: list[str], what: str) -> dict:
    """Run one command from the repository root; return its last JSON line, wall and CPU seconds and peak RSS.
    Exits with one line naming `what` and the child's last stderr line if it fails."""
    result = _common.run_json_child(command, what, PROG)
    del result["others_busy"]  # this report has no column for it
    return result


def worker_command(args, worker: str, iterations: int) -> list[str]:
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", worker]
    command += ["--iterations", str(iterations)]
    return command + (["--data", args.data] if args.data else [])


def seed_command(args, plain: bool = False) -> list[str]:
    iterations = args.plain_iterations if plain else args.iterations
    command = [sys.executable, "-m", "numpynn", "seed", "--json", "--quiet", "--iterations", str(iterations)]
    return command + (["--plain"] if plain else []) + (["--data", args.data] if args.data else [])


def summarize(runs: list[dict], iterations: int, measured_iterations: int, work: int, x_bytes: int) -> dict:
    """Best and median of the runs, scaled from measured_iterations to iterations; rates from the best run."""
    times = [run["train_seconds"] for run in runs]
    scale = iterations / measured_iterations
    best = min(times)
    per_iteration = best / measured_iterations
    return {
        "iterations_measured": measured_iterations,
        "extrapolated": measured_iterations != iterations,
        "train_seconds_best": best * scale,
        "train_seconds_median": statistics.median(times) * scale,
        "seconds_per_iteration": per_iteration,
        "gflop_per_second": work / per_iteration / 1e9,
        "x_gb_per_second": x_bytes / per_iteration / 1e9,
        "peak_rss_kib": max(run["peak_rss_kib"] for run in runs),
        "runs": runs,
    }


def describe_blas(info: dict) -> list[str]:
    lines = []
    for lib in info["blas"]:
        lines.append(f"BLAS      {_common.describe_library(lib)} ({lib['user_api']}, {_common.library_file(lib)})")
    return lines or ["BLAS      none found by threadpoolctl"]


def print_report(report: dict) -> None:
    info, seed = report["probe"], report["results"]["seed"]
    n = report["iterations"]
    env = _common.describe_environment(report["env"])
    print(
        f"numpynn seed speed: {n} full-batch iterations of 784-{seed['runs'][0]['config']['hidden']}-10 on "
        f"m = {info['m']:,} images, {report['repeat']} run(s) each"
    )
    print("\n".join(describe_blas(info)))
    print(f"env       {env}")
    print(
        f"machine   {report['machine']['cpus']} CPUs, {report['machine']['cpu']}, "
        f"Python {report['machine']['python']}, NumPy {info['numpy']}"
    )
    busy = report["machine"]["cpu_busy_before"]
    if busy is not None:
        warning = "  (other work was running: timings may be slower than they could be)" if busy > 0.1 else ""
        print(f"load      CPUs {100 * busy:.0f}% busy in the second before the runs{warning}")
    print(
        f"work      {report['flop_per_iteration'] / 1e9:.3f} GFLOP per iteration (matrix products only); "
        f"X is {report['x_bytes'] / 1e6:.1f} MB as numpynn loads it ({8 * info['x_itemsize']}-bit floats)"
    )
    code = report["seed_py_sha256"]
    changed = "" if code["before"] == code["after"] else f", CHANGED during the runs to {code['after']}"
    print(f"code      numpynn/seed.py + seed_fast.py sha256 {code['before']}{changed}")
    print()
    header = ("run", "iterations", "train s best", "median", "ms/iter", "GFLOP/s", "X GB/s", "peak RSS", "vs seed")
    rows = [header]
    for name, result in report["results"].items():
        measured = result["iterations_measured"]
        rows.append((
            RUN_NAMES.get(name) or BASELINES[name],
            f"{measured} -> {n} *" if result["extrapolated"] else str(n),
            f"{result['train_seconds_best']:.2f}",
            f"{result['train_seconds_median']:.2f}",
            f"{1000 * result['seconds_per_iteration']:.2f}",
            f"{result['gflop_per_second']:.1f}",
            f"{result['x_gb_per_second']:.1f}",
            f"{result['peak_rss_kib'] / 1024:.0f} MiB",
            f"{result['ratio_to_seed']:.2f}x",
        ))
    print("\n".join(table(rows)))
    print()
    print("train s: the training loop only, best and median of the runs. vs seed: train s best / the seed's.")
    print("X GB/s:  bytes of X (in the run's dtype) / time per iteration: the bandwidth if X were read once.")
    if any(result["extrapolated"] for result in report["results"].values()):
        print(f"*       measured over fewer iterations and extrapolated linearly to {n}.")
    best = min(seed["runs"], key=lambda run: run["train_seconds"])
    print(
        f"\nnumpynn seed, fastest run: whole command {best['seconds']:.2f} s (wall {best['wall_seconds']:.2f} s), "
        f"accuracy train {best['train_accuracy']:.4f}  dev {best['dev_accuracy']:.4f}  "
        f"test {best['test_accuracy']:.4f}"
    )
    plain = report["results"].get("plain_seed")
    if plain is not None:
        best = min(plain["runs"], key=lambda run: run["train_seconds"])
        print(
            f"numpynn seed --plain, fastest run: accuracy train {best['train_accuracy']:.4f}  "
            f"dev {best['dev_accuracy']:.4f}  test {best['test_accuracy']:.4f} after {plain['iterations_measured']} "
            "iterations"
        )
    for name, result in report["results"].items():
        if name in BASELINES:
            accuracy = statistics.median(run["dev_accuracy"] for run in result["runs"])
            print(f"{BASELINES[name]}: dev accuracy {accuracy:.4f} after {result['iterations_measured']} iterations")


def print_tricks(tricks: dict) -> None:
    seconds = tricks["seconds_per_gradient"]
    print(f"\nWhat each trick of seed_fast buys: one full-batch gradient (forward + backward), "
          f"best of {tricks['iterations']}, each row adding one trick to the row above")
    rows = [("gradient computed as", "ms", "speed-up over plain")]
    for name, what in TRICKS.items():
        rows.append((what, f"{1000 * seconds[name]:.1f}", f"{seconds['plain'] / seconds[name]:.2f}x"))
    print("\n".join(table(rows)))
    print(f"Blocks of 512 with zero pixels dropped keep {tricks['pixels_kept_per_image']:.0f} of 784 pixels "
          "per image on average.")
    limits = tricks.get("limits_seconds")
    if limits:
        print("\nParts of that gradient alone, on the same threads and blocks (best of as many):")
        print("\n".join(table([("part", "ms", "x 2000 iterations")] + [
            (what, f"{1000 * limits[name]:.1f}", f"{2000 * limits[name]:.1f} s") for name, what in LIMITS.items()])))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=2000, help="iterations of numpynn seed (default: 2000)")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder, passed on as --data (default: numpynn's search)")
    parser.add_argument(
        "--baseline",
        choices=("none", *BASELINES, "all"),
        default="none",
        help="also time the plain float32 loop, the float64 loop, or both (default: none)",
    )
    parser.add_argument(
        "--baseline-iterations",
        type=int,
        default=200,
        metavar="N",
        help="iterations the baselines really run, extrapolated to --iterations (default: 200)",
    )
    parser.add_argument(
        "--plain-iterations",
        type=int,
        metavar="N",
        help="iterations `numpynn seed --plain` really runs, extrapolated to --iterations (default: --iterations)",
    )
    parser.add_argument(
        "--tricks",
        type=int,
        default=20,
        metavar="N",
        dest="tricks_iterations",
        help="time N gradients for each trick of seed_fast, added one by one (0: skip; default: 20)",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="runs of each; best and median (default: 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--worker", choices=("probe", "tricks", *BASELINES), help=argparse.SUPPRESS)  # one child
    args = parser.parse_args(argv)
    if args.plain_iterations is None:
        args.plain_iterations = args.iterations
    if min(args.iterations, args.baseline_iterations, args.plain_iterations, args.repeat) < 1:
        parser.error("--iterations, --plain-iterations, --baseline-iterations and --repeat must be 1 or more")
    if args.tricks_iterations < 0:
        parser.error("--tricks must be 0 or more")
    args.plain_iterations = min(args.plain_iterations, args.iterations)
    check_json_path(parser, args.json)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        data, _ = _import_numpynn()
        try:
            if args.worker == "probe":
                result = probe(args.data)
            elif args.worker == "tricks":
                result = tricks(args.iterations, args.data)
            else:
                result = baseline(args.worker, args.iterations, args.data)
        except data.DataError as error:
            sys.exit(f"numpynn: error: {error}")  # the CLI's own one-line format, which run_child picks out
        print(json.dumps(result))
        return 0

    busy_before = cpu_busy_before()
    # Others may edit numpynn/seed.py while this runs; a report that mixed two versions should say so.
    code_before = code_hash(SEED_CODE)
    info = run_child(worker_command(args, "probe", 1), "reading the BLAS and the data")
    baselines = list(BASELINES) if args.baseline == "all" else [] if args.baseline == "none" else [args.baseline]
    baseline_iterations = min(args.baseline_iterations, args.iterations)

    # Round-robin over the runs, so that a slow spell of the machine touches every kind of run alike.
    runs = {name: [] for name in ("seed", "plain_seed", *baselines)}
    for _ in range(args.repeat):
        runs["seed"].append(run_child(seed_command(args), "numpynn seed"))
        runs["plain_seed"].append(run_child(seed_command(args, plain=True), "numpynn seed --plain"))
        for name in baselines:
            runs[name].append(run_child(worker_command(args, name, baseline_iterations), f"the {name} baseline"))

    # The baselines use SeedConfig's defaults, as does the child: the same H, so the same work.
    work = flop_per_iteration(info["m"], info["D"], runs["seed"][0]["config"]["hidden"], info["K"])
    x_bytes = info["m"] * info["D"] * info["x_itemsize"]  # X as numpynn seed gets it from the data layer
    results = {"seed": summarize(runs["seed"], args.iterations, args.iterations, work, x_bytes)}
    results["plain_seed"] = summarize(runs["plain_seed"], args.iterations, args.plain_iterations, work, x_bytes)
    for name in baselines:
        x_bytes_here = info["m"] * info["D"] * runs[name][0]["x_itemsize"]  # the float64 X has twice the bytes
        results[name] = summarize(runs[name], args.iterations, baseline_iterations, work, x_bytes_here)
    seed_best = results["seed"]["train_seconds_best"]
    for result in results.values():
        result["ratio_to_seed"] = result["train_seconds_best"] / seed_best

    report = {
        "iterations": args.iterations,
        "repeat": args.repeat,
        "flop_per_iteration": work,
        "x_bytes": x_bytes,
        "probe": info,
        "env": _common.environment(OPENBLAS_VARIABLES),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "cpu_busy_before": busy_before,
        },
        "command": seed_command(args)[1:],
        "seed_py_sha256": {"before": code_before, "after": None},  # "after" once every run is done
        "results": results,
        "tricks": None,
    }
    if args.tricks_iterations:
        report["tricks"] = run_child(worker_command(args, "tricks", args.tricks_iterations), "timing the tricks")
    report["seed_py_sha256"]["after"] = code_hash(SEED_CODE)
    print_report(report)
    if report["tricks"]:
        print_tricks(report["tricks"])
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
