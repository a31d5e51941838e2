"""How fast does numpynn train its CNN, next to the same network in PyTorch, measured in the same run?

What it measures
    One epoch over the 50,000 training images of the CNN from issue 4, as the `cnn` preset builds it:
        conv 5x5, 32 channels -> max-pool 2x2 -> ReLU -> conv 5x5, 64 channels -> max-pool 2x2 -> ReLU
        -> dense 256 -> ReLU -> dense 10,   softmax cross-entropy, Adam (lr 1e-3), batches of 128, float32.
    (Pooling before the ReLU computes exactly what ReLU-then-pool does; PyTorch runs the same order.)
    --padding valid (the preset's, and the default here) gives 28 -> 24 -> 12 -> 8 -> 4 pixels; --padding same
    keeps 28 -> 28 -> 14 -> 14 -> 7 and costs about 2.5 times the arithmetic.
    Three ways, each in its own subprocess:

    engine    numpynn itself: Run.start(make_config("cnn", epochs=1, schedule="constant", dropout=0,
              label_smoothing=0, threads=T)) and fit(), with no progress bar, log, checkpoint or dev set: the
              clock covers fit()'s one epoch, all of it (the permutation, the batch gathers, forward, loss,
              backward, Adam). T is the number of threads NumPy's BLAS uses (the cores), as for PyTorch: each
              batch runs as T slices at once, one thread each (numpynn/parallel.py; the cnn preset's 2).
    engine1   the same with threads=1: one slice, BLAS on every core, NumPy's other work on one.
    torch     PyTorch on the CPU: nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear, F.cross_entropy,
              torch.optim.Adam, with torch.set_num_threads(T).

    All start from the same initial weights (numpynn's, for seed 0) and visit the images in the same order,
    so they compute the same thing: their mean training loss over the epoch is printed as the check (it
    differs in the fourth digit: float32 rounds differently in each). The ratio compares engine with torch.
    Dropout and label smoothing are off in both for that reason (the preset's dropout acts on the 128 dense
    units only, a negligible cost). `--repeat N` runs each N times, round-robin; the table shows the best and
    the median. Compare numbers only within one run of this script.

Where the time goes (--breakdown, on by default)
    One more subprocess times each layer's forward and backward on one slice of a batch (batch / T images, what
    each thread runs), on one thread with single-threaded BLAS, then the loss and the optimizer's step, and each
    convolution's matrix products alone on arrays of the same shapes. It prints how much of a batch is those
    products, and how little time everything else would need to match PyTorch's epoch.

Where each runs
    engine runs with the interpreter running this script (numpynn's venv); torch with --bench-python (default:
    .venv-bench/bin/python), a separate venv that has torch: numpynn never depends on it.

Usage:  .venv/bin/python benchmarks/cnn_speed.py [--repeat 3] [--padding valid|same] [--json results.json]
"""
from __future__ import annotations

# The measuring process imports only the standard library (see _common.py: a heavy parent inflates the
# children's peak RSS).
import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import REPO, check_json_path, code_hash, cpu_busy_before, cpu_name, run_json_child, table, write_json

PROG = "cnn_speed"
ENGINE_CODE = [REPO / "numpynn" / name for name in ("train.py", "model.py", "layers.py", "conv.py", "losses.py",
                                                     "optim.py", "parallel.py")]
KINDS = {"engine": "numpynn engine (fit)", "engine1": "numpynn, --threads 1", "torch": "PyTorch (CPU)"}
ENV_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS")
TARGET = 1.0  # numpynn's epoch takes at most this many times PyTorch's: its speed or better


# ---------------------------------------------------------------------------------------------------------
# Worker processes: each prints one JSON line.

def _setup(args, threads: int = 1):
    """What both workers share: the training split (no dev set), the config, the engine's initial weights
    and the order of the epoch."""
    sys.path.insert(0, str(REPO))  # the working tree's numpynn, whichever venv runs this
    import dataclasses

    import numpy as np

    from numpynn.data import load_mnist
    from numpynn.train import Run, make_config

    config = make_config("cnn", epochs=1, schedule="constant", warmup_epochs=0.0, dropout=0.0,
                         label_smoothing=0.0, padding=args.padding, batch_size=args.batch_size, threads=threads)
    splits = load_mnist("mnist", args.data, dev_size=config.dev_size, seed=config.seed, progress=False)
    splits = dataclasses.replace(splits, X_dev=None, y_dev=None)  # no dev set: fit() then times training only
    run = Run.start(config)
    return config, splits, run, np


def work_probe(args) -> dict:
    import numpy as np

    config, splits, run, _ = _setup(args)
    blas = _common.blas_libraries(("user_api", "internal_api", "version", "architecture", "num_threads",
                                   "filepath"))
    return {"N": len(splits.y_train), "network": describe_network(run.model),
            "numpy": np.__version__, "python": platform.python_version(), "blas": blas}


def describe_network(model) -> str:
    """The layers in words, e.g. "conv5x5 1->32, maxpool2, ReLU, ..., dense 1024->256, ReLU, dense 256->10"."""
    words = []
    for layer in model.layers:
        spec = layer.spec()
        kind = spec["type"]
        if kind == "Conv2D":
            k = spec["kernel"]
            words.append(f"conv{k}x{k} {spec['C_in']}->{spec['C_out']} (padding {spec['padding']})")
        elif kind == "MaxPool2D":
            words.append(f"maxpool{spec['size']}")
        elif kind == "Dense":
            words.append(f"dense {spec['D_in']}->{spec['D_out']}")
        elif kind not in ("Unflatten", "Flatten"):
            words.append(kind)
    return ", ".join(words)


def work_engine(args, threads=None) -> dict:
    from numpynn.train import fit

    config, splits, run, np = _setup(args, args.threads if threads is None else threads)
    start = time.perf_counter()
    history = fit(run, splits)  # one epoch; no progress, log, checkpoint or dev set
    seconds = time.perf_counter() - start
    row = history.epochs[-1]
    return {"train_seconds": seconds, "samples": len(splits.y_train), "train_loss": row["train_loss"]}


def torch_net(model, torch):
    """The numpynn model's layers as a torch.nn.Sequential with the same weights."""
    nn, layers = torch.nn, []
    for layer in model.layers:
        spec = layer.spec()
        kind = spec["type"]
        if kind == "Unflatten":
            layers.append(nn.Unflatten(1, tuple(spec["shape"])))
        elif kind == "Conv2D":
            conv = nn.Conv2d(spec["C_in"], spec["C_out"], spec["kernel"], stride=spec["stride"],
                             padding=spec["padding"])
            with torch.no_grad():  # the same (C_out, C_in, k, k) layout as numpynn's
                conv.weight.copy_(torch.from_numpy(layer.params["W"]))
                conv.bias.copy_(torch.from_numpy(layer.params["b"]))
            layers.append(conv)
        elif kind == "MaxPool2D":
            layers.append(nn.MaxPool2d(spec["size"], spec["stride"]))
        elif kind == "Flatten":
            layers.append(nn.Flatten())
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "Dense":
            linear = nn.Linear(spec["D_in"], spec["D_out"])
            with torch.no_grad():  # nn.Linear keeps W as (D_out, D_in): the transpose of numpynn's
                linear.weight.copy_(torch.from_numpy(layer.params["W"].T))
                linear.bias.copy_(torch.from_numpy(layer.params["b"]))
            layers.append(linear)
        else:
            raise ValueError(f"no PyTorch twin for layer {kind}")
    return nn.Sequential(*layers)


def work_torch(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    config, splits, run, np = _setup(args)
    net = torch_net(run.model, torch)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    X, y = torch.from_numpy(splits.X_train), torch.from_numpy(splits.y_train)  # shared with NumPy, no copy
    start = time.perf_counter()
    order = torch.from_numpy(run.rng.permutation(len(y)))  # the engine's order: its first permutation
    loss = _common.torch_epoch(torch, net, optimizer, X, y, order, config.batch_size)
    seconds = time.perf_counter() - start
    shown = torch.__config__.show()
    return {"train_seconds": seconds, "samples": len(y), "train_loss": loss,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "cpu_capability": next((line.split(":")[1].strip() for line in shown.splitlines()
                                    if "CPU capability" in line), "?")}


def work_breakdown(args) -> dict:
    """Where one slice's step goes: each layer's forward and backward on one slice of a batch (batch / T images,
    what each of the T threads runs), on one thread with single-threaded BLAS, as in training; then the loss and
    the optimizer's step (once per batch, on one thread, after the slices). Medians of 30 steps. For a Conv2D,
    also its matrix products alone (W_mat @ cols, and in backward dW's and, if needed, dcols'), on arrays of the
    same shapes: what the layer would cost if im2col, col2im and the rest were free."""
    from threadpoolctl import threadpool_limits

    from numpynn.losses import softmax_cross_entropy

    config, splits, run, np = _setup(args, args.threads)
    model, n = run.model, -(-config.batch_size // args.threads)
    X, y = splits.X_train[:n], splits.y_train[:n]
    steps, first = 30, next(i for i, layer in enumerate(model.layers) if layer.params)
    forward, backward = ([[] for _ in model.layers] for _ in range(2))
    loss_s, step_s = [], []
    with threadpool_limits(1, user_api="blas"):
        for _ in range(steps + 1):  # the first is untimed: first touch of memory
            A = X
            for i, layer in enumerate(model.layers):
                start = time.perf_counter()
                A = layer.forward(A, train=True)
                forward[i].append(time.perf_counter() - start)
            start = time.perf_counter()
            _, dA = softmax_cross_entropy(A, y, 10, 0.0)
            loss_s.append(time.perf_counter() - start)
            for i in reversed(range(first, len(model.layers))):
                layer = model.layers[i]
                layer.need_dX = i > first  # as Sequential.backward(need_dX=False) sets it in training
                start = time.perf_counter()
                dA = layer.backward(dA)
                backward[i].append(time.perf_counter() - start)
            start = time.perf_counter()
            run.optimizer.step(model.params(), model.grads())
            step_s.append(time.perf_counter() - start)
        rows = []
        for i, layer in enumerate(model.layers):
            spec, products = layer.spec(), None
            if spec["type"] == "Conv2D":
                products = _conv_products(layer, np, steps, need_dX=i > first)
            rows.append({"layer": spec["type"], "forward": float(np.median(forward[i][1:])),
                         "backward": float(np.median(backward[i][1:])) if backward[i] else 0.0,
                         "products": products})
    return {"slice": n, "rows": rows, "loss": float(np.median(loss_s[1:])), "step": float(np.median(step_s[1:]))}


def _conv_products(layer, np, steps: int, need_dX: bool) -> float:
    """Median seconds of a Conv2D's matrix products alone, on random arrays shaped as in its last step."""
    cols = np.random.default_rng(0).random(layer.cols.shape, dtype=np.float32)  # (C_in*k*k, H_out*W_out*N)
    W_mat = layer.params["W"].reshape(layer.C_out, -1)  # (C_out, C_in*k*k)
    dZ = np.random.default_rng(1).random((layer.C_out, cols.shape[1]), dtype=np.float32)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        W_mat @ cols
        (cols @ dZ.T).T
        if need_dX:
            W_mat.T @ dZ
        times.append(time.perf_counter() - start)
    return float(np.median(times))


WORKERS = {"probe": work_probe, "breakdown": work_breakdown, "engine": work_engine, "engine1": lambda args: work_engine(args, threads=1),
           "torch": work_torch}


# ---------------------------------------------------------------------------------------------------------
# The measuring process

def worker_command(python: str, kind: str, args, threads: int = 1) -> list[str]:
    command = [python, str(pathlib.Path(__file__).resolve()), "--worker", kind, "--padding", args.padding,
               "--batch-size", str(args.batch_size), "--threads", str(threads)]
    return command + (["--data", args.data] if args.data else [])


def summarize(runs: list[dict]) -> dict:
    seconds = [run["train_seconds"] for run in runs]
    return {"seconds_best": min(seconds), "seconds_median": statistics.median(seconds),
            "peak_rss_kib": max(run["peak_rss_kib"] for run in runs),
            "others_busy_max": max((run["others_busy"] or 0.0) for run in runs), "runs": runs}


def print_report(report: dict) -> None:
    info, results = report["probe"], report["results"]
    print(f"numpynn CNN speed: one epoch ({info['N']:,} images), batch {report['batch_size']}, Adam, float32; "
          f"{report['repeat']} run(s) of each")
    print(f"network   {info['network']}")
    blas = "; ".join(f"{_common.describe_library(lib)} ({_common.library_file(lib)})"
                     for lib in info["blas"] if lib["user_api"] == "blas") or "none found by threadpoolctl"
    print(f"BLAS      NumPy {info['numpy']}: {blas}")
    if "torch" in results:
        t = results["torch"]["runs"][0]
        print(f"          PyTorch {t['torch']}: CPU capability {t['cpu_capability']}, oneDNN (mkldnn) "
              f"{'available' if t['mkldnn'] else 'absent'}, {t['threads']} threads (set_num_threads)")
    print(f"env       {_common.describe_environment(report['env'])}")
    machine = report["machine"]
    print(f"machine   {machine['cpus']} CPUs, {machine['cpu']}, Python {info['python']}")
    code = report["engine_sha256"]
    changed = "" if code["before"] == code["after"] else f", CHANGED during the runs to {code['after']}"
    print(f"code      numpynn (train, model, layers, conv, losses, optim, parallel) sha256 {code['before']}{changed}")
    if report["skipped"]:
        print(f"skipped   torch: {report['skipped']}")
    print()
    rows = [("run", "epoch s best", "median", "img/s best", "loss", "peak RSS", "others")]
    for kind, result in results.items():
        best = min(result["runs"], key=lambda run: run["train_seconds"])
        rows.append((KINDS[kind], f"{result['seconds_best']:.2f}", f"{result['seconds_median']:.2f}",
                     f"{best['samples'] / best['train_seconds']:,.0f}", f"{best['train_loss']:.4f}",
                     f"{result['peak_rss_kib'] / 1024:.0f} MiB", f"{100 * result['others_busy_max']:.0f}%"))
    print("\n".join(table(rows)))
    print()
    for kind, result in results.items():
        every = "  ".join(f"{run['train_seconds']:.2f}" for run in result["runs"])
        print(f"{KINDS[kind]:<22}  every run (s): {every}")
    print()
    print("loss:   mean training loss over the epoch: all start from the same weights and visit the same order.")
    print("others: the largest share of all CPUs that other processes used during one of the row's runs.")
    if report["ratio"]:
        r = report["ratio"]
        print(f"\nnumpynn epoch / PyTorch epoch: {r['best']:.2f}x (best runs), {r['median']:.2f}x (medians)  "
              f"target <= {TARGET}x: {'met' if r['best'] <= TARGET else 'NOT met'}")
    if report["breakdown"]:
        print_breakdown(report["breakdown"], report)
    busy = report["machine"]["cpu_busy_before"]
    if busy is not None and busy > 0.1:
        print(f"\nwarning: the CPUs were {100 * busy:.0f}% busy in the second before the runs")


def print_breakdown(breakdown: dict, report: dict) -> None:
    """Where one slice's step goes, and what that says about the epoch against PyTorch's."""
    rows = [("layer", "forward ms", "backward ms", "of which products ms")]
    total = products = 0.0
    for row in breakdown["rows"]:
        total += row["forward"] + row["backward"]
        products += row["products"] or 0.0
        rows.append((row["layer"], f"{1000 * row['forward']:.2f}", f"{1000 * row['backward']:.2f}",
                     "" if row["products"] is None else f"{1000 * row['products']:.2f}"))
    rows.append(("loss (softmax cross-entropy)", f"{1000 * breakdown['loss']:.2f}", "", ""))
    rows.append(("optimizer step (once per batch)", f"{1000 * breakdown['step']:.2f}", "", ""))
    print(f"\nWhere a step goes: one slice of {breakdown['slice']} images (what each thread runs), one thread, "
          f"single-threaded BLAS, medians of 30 steps")
    print("\n".join(table(rows)))
    batches = -(-report["probe"]["N"] // report["batch_size"])
    per_batch = total + breakdown["loss"] + breakdown["step"]
    print(f"one slice's forward + backward {1000 * total:.1f} ms, of which the convolutions' products "
          f"{1000 * products:.1f} ms; with the optimizer step {1000 * per_batch:.1f} ms a batch if the slices run "
          f"side by side at this speed: {per_batch * batches:.1f} s an epoch ({batches} batches)")
    if "torch" in report["results"]:
        torch_batch = report["results"]["torch"]["seconds_best"] / batches
        print(f"PyTorch's best epoch is {1000 * torch_batch:.1f} ms a batch: to match it, everything but the "
              f"convolutions' products would have to fit in {1000 * (torch_batch - products):.1f} ms a batch "
              f"(now {1000 * (per_batch - products):.1f} ms)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="runs of each; best and median (default: 3)")
    parser.add_argument("--runs", default=",".join(KINDS), metavar="LIST",
                        help=f"which to run, comma-separated, from {','.join(KINDS)} (default: all)")
    parser.add_argument("--padding", choices=("valid", "same"), default="valid",
                        help="the convolutions' padding (default: valid, the cnn preset's)")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: numpynn's search)")
    parser.add_argument("--bench-python", metavar="PATH", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="interpreter with torch (default: .venv-bench/bin/python)")
    parser.add_argument("--batch-size", type=int, default=128, metavar="N", help="images per batch (default: 128)")
    parser.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                        help="also time each layer of one slice's step, and its products alone (default: on)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file (atomically)")
    parser.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)  # internal: one child
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)  # internal: torch's threads
    args = parser.parse_args(argv)
    args.runs = _common.check_runs(parser, args.runs, KINDS)
    if args.repeat < 1 or args.batch_size < 1:
        parser.error("--repeat and --batch-size must be 1 or more")
    check_json_path(parser, args.json)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _common.run_worker(WORKERS, args)

    cpu_busy = cpu_busy_before()
    code_before = code_hash(ENGINE_CODE)
    info = run_json_child(worker_command(sys.executable, "probe", args), "reading the BLAS and the data", PROG)
    threads = _common.blas_threads(info["blas"])
    kinds = list(args.runs)
    skipped = _common.why_no_torch(args.bench_python) if "torch" in kinds else ""
    if skipped:
        kinds.remove("torch")
    runs = {kind: [] for kind in kinds}
    for _ in range(args.repeat):  # round-robin, so a slow spell of the machine touches both alike
        for kind in kinds:
            python = args.bench_python if kind == "torch" else sys.executable
            runs[kind].append(run_json_child(worker_command(python, kind, args, threads), f"the {kind} run", PROG))
    results = {kind: summarize(kind_runs) for kind, kind_runs in runs.items()}
    breakdown = None
    if args.breakdown:
        breakdown = run_json_child(worker_command(sys.executable, "breakdown", args, threads),
                                   "timing each layer", PROG)
    ratio = None
    if "engine" in results and "torch" in results:
        ratio = {"best": results["engine"]["seconds_best"] / results["torch"]["seconds_best"],
                 "median": results["engine"]["seconds_median"] / results["torch"]["seconds_median"]}
    report = {
        "padding": args.padding, "batch_size": args.batch_size, "repeat": args.repeat, "probe": info,
        "env": _common.environment(ENV_VARIABLES),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "cpu_busy_before": cpu_busy},
        "engine_sha256": {"before": code_before, "after": code_hash(ENGINE_CODE)},
        "skipped": skipped, "results": results, "ratio": ratio, "target": TARGET, "breakdown": breakdown,
    }
    print_report(report)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
