"""How fast does numpynn's engine train 784-800-10, next to the same network in plain NumPy, PyTorch and sklearn?

What it measures
    One epoch over the 50,000 training images: 784-800-10 with ReLU, softmax cross-entropy, mini-batches of
    128 in a shuffled order, SGD with momentum 0.9 at a constant learning rate, float32. Four ways:

    engine    numpynn itself: Run.start(make_config("mlp", epochs=1, schedule="constant", label_smoothing=0)) and fit(), with no
              progress bar, no log, no checkpoint and no dev set, so the clock covers exactly fit()'s one epoch:
              the permutation, the batch gathers, forward, loss, backward, optimizer step, and the per-batch
              bookkeeping fit() does (the loss sum, the accuracy count, the finiteness checks).
    hand      the same math written inline in this file, the shortest loop we know how to write in NumPy:
              X @ W1 + b1, ReLU, @ W2 + b2, softmax cross-entropy (loss included), backward without the
              input's gradient, momentum SGD with the velocities updated in place.
    torch     PyTorch on the CPU: nn.Linear, nn.ReLU, F.cross_entropy, torch.optim.SGD(momentum=0.9), with
              torch.set_num_threads set to the number of threads NumPy's BLAS uses.
    sklearn   scikit-learn's MLPClassifier(hidden_layer_sizes=(800,), solver="sgd", momentum=0.9,
              nesterovs_momentum=False, alpha=0, batch_size=128): one partial_fit call, one epoch. The clock
              covers the whole call: besides the epoch, sklearn's input checks (a scan of X for NaN and
              infinity), one-hot labels and its initial weights, about 25 ms together (measured by hand).
              Its epoch does more per batch than the others: it also sums the squared weights for the L2 term
              of the loss and adds alpha * W to the gradient (with alpha = 0 all the same), and its SGD step
              builds new arrays for every update.

    engine, hand and torch start from the same initial weights (numpynn's He init for seed 0) and visit the
    images in the same order, so they compute the same thing; their mean training loss over the epoch is
    printed as the check (equal up to float32 rounding). sklearn draws its own weights and order.

    Each run is its own subprocess, so its memory, its threads and its BLAS state are its own; `--repeat N`
    runs every kind N times, round-robin, and the table shows the best and the median. Compare numbers only
    within one run of this script: the machine, its load and the BLAS kernel all move them.

Where each runs
    engine and hand run with the interpreter running this script (numpynn's own venv). torch and sklearn run
    with --bench-python (default: .venv-bench/bin/python in the repository), a separate venv that has them:
    numpynn never depends on either. If it is missing, those rows are skipped with a note.

Usage:  .venv/bin/python benchmarks/mlp_speed.py [--repeat 3] [--json results.json]
Timings depend on everything else the machine is doing: run it on an otherwise idle machine. Each run's
"others" column says how busy the CPUs were with other processes while it ran.
"""
from __future__ import annotations

# The measuring process imports only the standard library, for the same reason as seed_speed.py: a child's
# peak RSS on Linux starts at its parent's RSS when it was spawned, so a heavy parent inflates every child.
import argparse
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import REPO, check_json_path, code_hash, cpu_busy_before, cpu_name, run_json_child, table, write_json

PROG = "mlp_speed"
ENGINE_CODE = [REPO / "numpynn" / name for name in ("train.py", "model.py", "layers.py", "losses.py", "optim.py")]
KINDS = {
    "engine": "numpynn engine (fit)",
    "hand": "hand-written NumPy loop",
    "torch": "PyTorch (CPU)",
    "sklearn": "scikit-learn MLPClassifier",
}
BENCH_KINDS = ("torch", "sklearn")  # run with --bench-python
ENV_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS")
TARGETS = {"hand": 0.9, "torch": 1.5}  # the targets: engine samples/s >= this x the other's


# ---------------------------------------------------------------------------------------------------------
# Worker processes: each prints one JSON line.

def _setup(args):
    """Data and starting point shared by the workers: the training split, the engine's config and its initial
    weights, and the order the engine's first epoch visits the images in."""
    sys.path.insert(0, str(REPO))  # the working tree's numpynn, whichever venv runs this
    import dataclasses

    import numpy as np

    from numpynn.data import load_mnist
    from numpynn.train import Run, make_config

    # label_smoothing=0: the preset smooths labels, the hand loop and PyTorch do not; the same math everywhere.
    config = make_config("mlp", epochs=1, schedule="constant", lr=args.lr, batch_size=args.batch_size,
                         label_smoothing=0.0)
    splits = load_mnist("mnist", args.data, dev_size=config.dev_size, seed=config.seed, progress=False)
    splits = dataclasses.replace(splits, X_dev=None, y_dev=None)  # no dev set: fit() then times training only
    run = Run.start(config)
    return config, splits, run, np


def _blas() -> list[dict]:
    """Every BLAS and OpenMP library loaded in this process, as threadpoolctl sees it."""
    return _common.blas_libraries(("user_api", "internal_api", "version", "architecture", "num_threads", "filepath"))


def work_probe(args) -> dict:
    import numpy as np

    sys.path.insert(0, str(REPO))
    from numpynn.data import load_mnist

    splits = load_mnist("mnist", args.data, progress=False)
    return {"N": len(splits.y_train), "D": splits.X_train.shape[1], "numpy": np.__version__,
            "python": platform.python_version(), "executable": sys.executable, "blas": _blas()}


def work_engine(args) -> dict:
    from numpynn.train import fit

    config, splits, run, np = _setup(args)
    start = time.perf_counter()
    history = fit(run, splits)  # one epoch; no progress, log, checkpoint or dev set
    seconds = time.perf_counter() - start
    row = history.epochs[-1]
    return {"train_seconds": seconds, "samples": len(splits.y_train), "train_loss": row["train_loss"],
            "train_accuracy": row["train_accuracy"]}


def hand_epoch(X, y, params, order, lr: float, momentum: float, batch_size: int):
    """One epoch of 784-H-10 by momentum SGD, all the math inline. Returns the mean training loss.
    X (N, D) float32, y (N,) int64; params = [W1 (D, H), b1 (H,), W2 (H, K), b2 (K,)], updated in place."""
    import numpy as np

    W1, b1, W2, b2 = params
    velocities = [np.zeros_like(theta) for theta in params]
    lr, momentum = np.float32(lr), np.float32(momentum)
    loss_sum = 0.0
    for start in range(0, len(y), batch_size):
        batch = order[start : start + batch_size]
        X_batch, y_batch, n = X[batch], y[batch], len(batch)  # (n, D), (n,)
        Z1 = X_batch @ W1 + b1  # (n, H)
        A1 = np.maximum(Z1, 0)  # (n, H)
        Z2 = A1 @ W2 + b2  # (n, K)
        Z2 -= Z2.max(axis=1, keepdims=True)  # stable softmax: the row max becomes 0
        E = np.exp(Z2)  # (n, K)
        S = E.sum(axis=1)  # (n,)
        loss_sum += float(np.log(S).sum() - Z2[np.arange(n), y_batch].sum())  # sum of -log P[i, y_i]
        dZ2 = E / S[:, None]  # (n, K)  P
        dZ2[np.arange(n), y_batch] -= 1  # P - Y
        dZ2 /= n  # the loss is a mean over the batch
        dW2, db2 = A1.T @ dZ2, dZ2.sum(axis=0)  # (H, K), (K,)
        dZ1 = dZ2 @ W2.T  # (n, H)
        dZ1 *= Z1 > 0  # through the ReLU
        dW1, db1 = X_batch.T @ dZ1, dZ1.sum(axis=0)  # (D, H), (H,); no dX: nothing uses it
        for theta, v, g in zip(params, velocities, (dW1, db1, dW2, db2)):
            v *= momentum
            v += g
            theta -= lr * v
    return loss_sum / len(y)


def work_hand(args) -> dict:
    config, splits, run, np = _setup(args)
    params = [theta.copy() for theta in run.model.params()]  # the engine's initial W1, b1, W2, b2
    start = time.perf_counter()
    order = np.random.default_rng([config.seed, 2]).permutation(len(splits.y_train))  # the engine's order
    loss = hand_epoch(splits.X_train, splits.y_train, params, order, config.lr, config.momentum, config.batch_size)
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "samples": len(splits.y_train), "train_loss": loss}


def work_torch(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    config, splits, run, np = _setup(args)
    W1, b1, W2, b2 = (torch.from_numpy(theta.copy()) for theta in run.model.params())
    net = torch.nn.Sequential(torch.nn.Linear(784, W1.shape[1]), torch.nn.ReLU(), torch.nn.Linear(W1.shape[1], 10))
    with torch.no_grad():  # nn.Linear keeps W as (D_out, D_in): the transpose of numpynn's
        net[0].weight.copy_(W1.T), net[0].bias.copy_(b1), net[2].weight.copy_(W2.T), net[2].bias.copy_(b2)
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    X, y = torch.from_numpy(splits.X_train), torch.from_numpy(splits.y_train)  # shared with NumPy, no copy
    start = time.perf_counter()
    order = torch.from_numpy(np.random.default_rng([config.seed, 2]).permutation(len(y)))
    loss = _common.torch_epoch(torch, net, optimizer, X, y, order, config.batch_size)
    seconds = time.perf_counter() - start
    config_lines = torch.__config__.show().splitlines()
    return {"train_seconds": seconds, "samples": len(y), "train_loss": loss,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "torch_blas": next(iter(re.findall(r"BLAS_INFO=(\w+)", torch.__config__.show())), "?"),
            "cpu_capability": next((line.split(":")[1].strip() for line in config_lines
                                    if "CPU capability" in line), "?")}


def work_sklearn(args) -> dict:
    import warnings

    import sklearn
    from sklearn.neural_network import MLPClassifier

    config, splits, run, np = _setup(args)
    model = MLPClassifier(hidden_layer_sizes=(800,), solver="sgd", learning_rate="constant",
                          learning_rate_init=config.lr, momentum=config.momentum, nesterovs_momentum=False,
                          alpha=0.0, batch_size=config.batch_size, max_iter=1, shuffle=True, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(splits.X_train, splits.y_train, classes=np.arange(10))  # one epoch
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "samples": len(splits.y_train), "train_loss": float(model.loss_),
            "sklearn": sklearn.__version__, "dtype": str(model.coefs_[0].dtype), "blas": _blas()}


WORKERS = {"probe": work_probe, "engine": work_engine, "hand": work_hand, "torch": work_torch,
           "sklearn": work_sklearn}


# ---------------------------------------------------------------------------------------------------------
# The measuring process

def worker_command(python: str, kind: str, args, threads: int = 1) -> list[str]:
    command = [python, str(pathlib.Path(__file__).resolve()), "--worker", kind, "--lr", str(args.lr),
               "--batch-size", str(args.batch_size), "--threads", str(threads)]
    return command + (["--data", args.data] if args.data else [])


def summarize(runs: list[dict]) -> dict:
    rates = [run["samples"] / run["train_seconds"] for run in runs]
    return {"samples_per_second_best": max(rates), "samples_per_second_median": statistics.median(rates),
            "train_seconds_best": min(run["train_seconds"] for run in runs),
            "peak_rss_kib": max(run["peak_rss_kib"] for run in runs),
            "others_busy_max": max((run["others_busy"] or 0.0) for run in runs), "runs": runs}


def describe_blas(libs: list[dict]) -> str:
    found = [f"{_common.describe_library(lib)} ({_common.library_file(lib)})"
             for lib in libs if lib["user_api"] == "blas"]
    return "; ".join(found) or "none found by threadpoolctl"


def print_report(report: dict) -> None:
    info, results = report["probe"], report["results"]
    print(f"numpynn MLP speed: one epoch of 784-800-10, batch {report['batch_size']}, SGD momentum 0.9, "
          f"lr {report['lr']:g} constant, float32, N = {info['N']:,} images; {report['repeat']} run(s) of each")
    print(f"BLAS      NumPy {info['numpy']}: {describe_blas(info['blas'])}")
    if "torch" in results:
        t = results["torch"]["runs"][0]
        print(f"          PyTorch {t['torch']}: BLAS {t['torch_blas']}, CPU capability {t['cpu_capability']}, "
              f"{t['threads']} threads (set_num_threads), {t['interop_threads']} interop threads")
    if "sklearn" in results:
        s = results["sklearn"]["runs"][0]
        print(f"          scikit-learn {s['sklearn']} ({s['dtype']} weights): NumPy's BLAS above")
    env = _common.describe_environment(report["env"])
    print(f"env       {env}")
    machine = report["machine"]
    print(f"machine   {machine['cpus']} CPUs, {machine['cpu']}, Python {info['python']}")
    code = report["engine_sha256"]
    changed = "" if code["before"] == code["after"] else f", CHANGED during the runs to {code['after']}"
    print(f"code      numpynn engine (train, model, layers, losses, optim) sha256 {code['before']}{changed}")
    for kind, note in report["skipped"].items():
        print(f"skipped   {kind}: {note}")
    print()
    header = ("run", "samples/s best", "median", "epoch s", "engine is", "loss", "peak RSS", "others")
    rows = [header]
    engine_best = results["engine"]["samples_per_second_best"] if "engine" in results else None
    for kind, result in results.items():
        best_run = max(result["runs"], key=lambda run: run["samples"] / run["train_seconds"])
        relative = f"{engine_best / result['samples_per_second_best']:.2f}x" if engine_best else "-"
        rows.append((KINDS[kind], f"{result['samples_per_second_best']:,.0f}",
                     f"{result['samples_per_second_median']:,.0f}", f"{result['train_seconds_best']:.2f}",
                     relative, f"{best_run['train_loss']:.4f}", f"{result['peak_rss_kib'] / 1024:.0f} MiB",
                     f"{100 * result['others_busy_max']:.0f}%"))
    print("\n".join(table(rows)))
    print()
    width = max(len(row[0]) for row in rows)
    for kind, result in results.items():  # every run, in the order they ran: the spread behind best and median
        rates = "  ".join(f"{run['samples'] / run['train_seconds']:,.0f}" for run in result["runs"])
        print(f"{KINDS[kind]:<{width}}  every run: {rates}")
    print()
    print("samples/s: training images per second over one epoch, best and median of the runs; epoch s: best.")
    print("engine is: the engine's best samples/s / this row's best (above 1: the engine is faster).")
    print("loss:      mean training loss over the epoch (engine, hand and torch start from the same weights and")
    print("           visit the same order, so theirs agree; sklearn has its own weights and order).")
    print("others:    the largest share of all CPUs that other processes used during one of this row's runs;")
    print("           above a few percent, that row's timings are suspect.")
    if report["ratios"]:
        print()
    for kind, ratio in report["ratios"].items():
        target = TARGETS.get(kind)
        verdict = f"  target >= {target}x: {'met' if ratio['best'] >= target else 'NOT met'}" if target else ""
        print(f"engine / {kind:<8} {ratio['best']:.2f}x (best runs), {ratio['median']:.2f}x (medians){verdict}")
    busy = report["machine"]["cpu_busy_before"]
    if busy is not None and busy > 0.1:
        print(f"\nwarning: the CPUs were {100 * busy:.0f}% busy in the second before the runs")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs of each; best and median (default: 3)")
    parser.add_argument("--runs", default=",".join(KINDS), metavar="LIST",
                        help=f"which to run, comma-separated, from {','.join(KINDS)} (default: all)")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: numpynn's search)")
    parser.add_argument("--bench-python", metavar="PATH", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="interpreter with torch and scikit-learn (default: .venv-bench/bin/python)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate, for every run (default: 0.05)")
    parser.add_argument("--batch-size", type=int, default=128, metavar="N", help="images per batch (default: 128)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file (atomically)")
    parser.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)  # internal: one child
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)  # internal: torch's threads
    args = parser.parse_args(argv)
    args.runs = _common.check_runs(parser, args.runs, KINDS)
    if args.repeat < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("--repeat and --batch-size must be 1 or more, --lr above 0")
    check_json_path(parser, args.json)
    return args


def bench_python_problem(python: str, kind: str) -> str | None:
    """Why `python` cannot run the `kind` row, or None if it can."""
    if not pathlib.Path(python).exists():
        return f"{python} not found (see benchmarks/README.md for the benchmark venv)"
    module = "torch" if kind == "torch" else "sklearn"
    check = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return None if check.returncode == 0 else f"{python} cannot import {module}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _common.run_worker(WORKERS, args)

    cpu_busy = cpu_busy_before()
    code_before = code_hash(ENGINE_CODE)
    info = run_json_child(worker_command(sys.executable, "probe", args), "reading the BLAS and the data", PROG)
    threads = _common.blas_threads(info["blas"])
    skipped = {}
    kinds = []
    for kind in args.runs:
        problem = bench_python_problem(args.bench_python, kind) if kind in BENCH_KINDS else None
        if problem:
            skipped[kind] = problem
        else:
            kinds.append(kind)

    runs = {kind: [] for kind in kinds}
    for _ in range(args.repeat):  # round-robin, so a slow spell of the machine touches every kind alike
        for kind in kinds:
            python = args.bench_python if kind in BENCH_KINDS else sys.executable
            runs[kind].append(run_json_child(worker_command(python, kind, args, threads), f"the {kind} run", PROG))
    results = {kind: summarize(kind_runs) for kind, kind_runs in runs.items()}
    ratios = {}
    if "engine" in results:
        engine = results["engine"]
        for kind in (k for k in results if k != "engine"):
            ratios[kind] = {
                "best": engine["samples_per_second_best"] / results[kind]["samples_per_second_best"],
                "median": engine["samples_per_second_median"] / results[kind]["samples_per_second_median"],
            }
    report = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "repeat": args.repeat,
        "probe": info,
        "env": _common.environment(ENV_VARIABLES),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "cpu_busy_before": cpu_busy},
        "engine_sha256": {"before": code_before, "after": code_hash(ENGINE_CODE)},
        "skipped": skipped,
        "results": results,
        "ratios": ratios,
        "targets": TARGETS,
    }
    print_report(report)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
