"""99 % in 30 s: does the cnn-fast preset reach 99.0 % MNIST test accuracy within 30 s of training, next to
PyTorch training the same recipe on the same CPU, in the same run?

What it measures
    For each seed (default 0 to 4), two subprocesses, one after the other:

    numpynn   the real command, `python -m numpynn train --preset cnn-fast --seed S --json --quiet --out TMP`,
              from the repository root (so the working tree's preset). Its JSON line gives
              train_seconds: the sum of the per-epoch seconds fit() records, each epoch's training and its
                         dev-set evaluation (10,000 images), what "within 30 s of training" counts;
              load_seconds: reading MNIST and splitting it, reported apart;
              seconds:   the whole command after start-up: loading, training, calibrating the temperature,
                         scoring the test set, writing the model.
    torch     the same recipe in PyTorch on the CPU, in a worker of this script run by --bench-python: the same
              split (numpynn's load_mnist with the same seed, timed apart as load_seconds), the same network
              with the same initial weights (cnn_speed.torch_net copies numpynn's), Adam with the same betas
              and eps, the same learning rate at every step (numpynn's own cosine schedule function, set on the
              optimizer before each step), label smoothing 0.1 (F.cross_entropy's), batches of 128 in a fresh
              permutation each epoch from the same generator as numpynn's, 5 epochs, the dev set scored after
              each epoch as numpynn does. torch.set_num_threads is NumPy's BLAS thread count. Its clock covers
              the same span as numpynn's train_seconds; its test accuracy is scored after.

    The preset's 99.0 % target is met by a seed when its test accuracy is at least 99.0 % and its training took
    at most 30 s. The table shows each seed's numbers, how many seeds met it, and numpynn's training time over
    PyTorch's. Run it on an otherwise idle machine: the `others` column says how much of the CPUs other
    processes took during each run.

Usage:  .venv/bin/python benchmarks/fast99.py [--seeds 0,1,2,3,4] [--json results.json]
"""
from __future__ import annotations

# The measuring process imports only the standard library (see _common.py: a heavy parent inflates the
# children's peak RSS).
import argparse
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import REPO, check_json_path, code_hash, cpu_busy_before, cpu_name, run_json_child, table, write_json

PROG = "fast99"
PRESET = "cnn-fast"
TARGET_ACCURACY, TARGET_SECONDS = 0.99, 30.0
ENGINE_CODE = [REPO / "numpynn" / name for name in ("config.py", "train.py", "model.py", "layers.py", "conv.py",
                                                     "losses.py", "optim.py", "parallel.py")]
ENV_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS")


# ---------------------------------------------------------------------------------------------------------
# Worker processes: each prints one JSON line.

def work_probe(args) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from numpynn.config import PRESETS

    blas = _common.blas_libraries(("user_api", "internal_api", "version", "architecture", "num_threads",
                                   "filepath"))
    preset = {name: list(value) if isinstance(value, tuple) else value for name, value in PRESETS[PRESET].items()}
    return {"numpy": np.__version__, "python": platform.python_version(), "blas": blas, "preset": preset}


def work_torch(args) -> dict:
    """The preset's recipe in PyTorch; see the module's docstring."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import torch
    import torch.nn.functional as F

    from cnn_speed import torch_net
    from numpynn.config import make_config
    from numpynn.data import load_mnist
    from numpynn.optim import make_schedule
    from numpynn.train import Run

    torch.set_num_threads(args.threads)
    config = make_config(PRESET, seed=args.seed)
    loading = time.perf_counter()
    splits = load_mnist("mnist", args.data, dev_size=config.dev_size, seed=config.seed, progress=False)
    load_seconds = time.perf_counter() - loading
    run = Run.start(config)  # numpynn's initial weights and shuffling generator for this seed
    net = torch_net(run.model, torch)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    X, y = torch.from_numpy(splits.X_train), torch.from_numpy(splits.y_train)
    N, B = len(y), config.batch_size
    steps_per_epoch = -(-N // B)
    schedule = make_schedule(config.schedule, config.lr, steps_per_epoch * config.epochs,
                             round(config.warmup_epochs * steps_per_epoch))

    def accuracy(X_eval, y_eval) -> float:
        net.eval()
        with torch.no_grad():
            hits = sum(int((net(torch.from_numpy(X_eval[i:i + 1000])).argmax(1).numpy() == y_eval[i:i + 1000]).sum())
                       for i in range(0, len(y_eval), 1000))
        net.train()
        return hits / len(y_eval)

    step, dev = 0, []
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.from_numpy(run.rng.permutation(N))
        for first in range(0, N, B):
            batch = order[first : first + B]
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(X[batch]), y[batch], label_smoothing=config.label_smoothing)
            loss.backward()
            optimizer.step()
            step += 1
        dev.append(accuracy(splits.X_dev, splits.y_dev))
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "load_seconds": load_seconds, "test_accuracy": accuracy(splits.X_test, splits.y_test),
            "dev_accuracy": dev[-1], "torch": torch.__version__, "threads": torch.get_num_threads()}


WORKERS = {"probe": work_probe, "torch": work_torch}


# ---------------------------------------------------------------------------------------------------------
# The measuring process

def numpynn_command(python: str, seed: int, out: pathlib.Path, args) -> list[str]:
    command = [python, "-m", "numpynn", "train", "--preset", PRESET, "--seed", str(seed), "--json", "--quiet",
               "--out", str(out)]
    return command + (["--data", args.data] if args.data else [])


def worker_command(python: str, kind: str, args, seed: int = 0, threads: int = 1) -> list[str]:
    command = [python, str(pathlib.Path(__file__).resolve()), "--worker", kind, "--seed", str(seed),
               "--threads", str(threads)]
    return command + (["--data", args.data] if args.data else [])


def met(run: dict) -> bool:
    return run["test_accuracy"] >= TARGET_ACCURACY and run["train_seconds"] <= TARGET_SECONDS


def print_report(report: dict) -> None:
    info = report["probe"]
    print(f"99 % in 30 s: `numpynn train --preset {PRESET}` for seeds {', '.join(map(str, report['seeds']))}, "
          f"next to the same recipe in PyTorch")
    print(f"preset    {', '.join(f'{k}={v}' for k, v in info['preset'].items())}")
    blas = "; ".join(f"{_common.describe_library(lib)} ({_common.library_file(lib)})"
                     for lib in info["blas"] if lib["user_api"] == "blas") or "none found by threadpoolctl"
    print(f"BLAS      NumPy {info['numpy']}: {blas}")
    torch_runs = [row["torch"] for row in report["rows"] if row.get("torch")]
    if torch_runs:
        print(f"          PyTorch {torch_runs[0]['torch']}: {torch_runs[0]['threads']} threads (set_num_threads)")
    print(f"env       {_common.describe_environment(report['env'])}")
    machine = report["machine"]
    print(f"machine   {machine['cpus']} CPUs, {machine['cpu']}, Python {info['python']}")
    code = report["engine_sha256"]
    changed = "" if code["before"] == code["after"] else f", CHANGED during the runs to {code['after']}"
    print(f"code      numpynn (config, train, model, layers, conv, losses, optim, parallel) sha256 {code['before']}{changed}")
    if report["skipped"]:
        print(f"skipped   torch: {report['skipped']}")
    print()
    rows = [("seed", "numpynn test", "train s", "load s", "command s", "peak RSS", "others", "met",
             "torch test", "train s", "load s", "peak RSS", "others", "met", "numpynn/torch")]
    for row in report["rows"]:
        n, t = row["numpynn"], row.get("torch")
        cells = [str(row["seed"]), f"{100 * n['test_accuracy']:.2f}%", f"{n['train_seconds']:.1f}",
                 f"{n['load_seconds']:.1f}", f"{n['seconds']:.1f}", f"{n['peak_rss_kib'] / 1024:.0f} MiB",
                 f"{100 * (n['others_busy'] or 0):.0f}%", "yes" if met(n) else "NO"]
        if t:
            cells += [f"{100 * t['test_accuracy']:.2f}%", f"{t['train_seconds']:.1f}", f"{t['load_seconds']:.1f}",
                      f"{t['peak_rss_kib'] / 1024:.0f} MiB", f"{100 * (t['others_busy'] or 0):.0f}%",
                      "yes" if met(t) else "NO", f"{n['train_seconds'] / t['train_seconds']:.2f}x"]
        else:
            cells += ["-"] * 7
        rows.append(tuple(cells))
    print("\n".join(table(rows)))
    print()
    s = report["summary"]
    print(f"numpynn: {s['numpynn_met']} of {len(report['rows'])} seeds reached >= {100 * TARGET_ACCURACY:.1f}% "
          f"within {TARGET_SECONDS:.0f} s of training; median train {s['numpynn_median_seconds']:.1f} s, "
          f"test {100 * s['numpynn_min_accuracy']:.2f} to {100 * s['numpynn_max_accuracy']:.2f}%")
    if s.get("torch_median_seconds") is not None:
        print(f"PyTorch: {s['torch_met']} of {len(report['rows'])} seeds; median train {s['torch_median_seconds']:.1f} s, "
              f"test {100 * s['torch_min_accuracy']:.2f} to {100 * s['torch_max_accuracy']:.2f}%")
        print(f"numpynn / PyTorch training time: {s['ratio_median']:.2f}x (medians)")
    print()
    print("train s: the epochs' training and their dev-set scoring; load s: reading and splitting MNIST, apart.")
    print("command s: numpynn's whole command after start-up (also calibration, the test score, the model file).")
    print("others:  the largest share of all CPUs that other processes used during the run.")
    busy = machine["cpu_busy_before"]
    if busy is not None and busy > 0.1:
        print(f"\nwarning: the CPUs were {100 * busy:.0f}% busy in the second before the runs")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", metavar="LIST",
                        help="the seeds, comma-separated (default: 0,1,2,3,4)")
    parser.add_argument("--runs", default="numpynn,torch", metavar="LIST",
                        help="which to run, comma-separated, from numpynn,torch (default: both)")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: numpynn's search)")
    parser.add_argument("--bench-python", metavar="PATH", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="interpreter with torch (default: .venv-bench/bin/python)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file (atomically)")
    parser.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)  # internal: one child
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)  # internal: the worker's seed
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)  # internal: torch's threads
    args = parser.parse_args(argv)
    if args.worker:
        return args
    try:
        args.seeds = [int(text) for text in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: give whole numbers, comma-separated, e.g. 0,1,2")
    if not args.seeds or any(seed < 0 for seed in args.seeds):
        parser.error("--seeds: give one or more seeds, 0 or more")
    args.runs = _common.check_runs(parser, args.runs, ("numpynn", "torch"))
    if "numpynn" not in args.runs:
        parser.error("--runs must include numpynn (the table is numpynn's, with PyTorch beside it)")
    check_json_path(parser, args.json)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _common.run_worker(WORKERS, args)

    cpu_busy = cpu_busy_before()
    code_before = code_hash(ENGINE_CODE)
    info = run_json_child(worker_command(sys.executable, "probe", args), "reading the BLAS and the preset", PROG)
    threads = _common.blas_threads(info["blas"])
    skipped = _common.why_no_torch(args.bench_python) if "torch" in args.runs else ""
    run_torch = "torch" in args.runs and not skipped
    rows = []
    folder = pathlib.Path(tempfile.mkdtemp(prefix="numpynn-fast99-"))
    try:
        for seed in args.seeds:
            row = {"seed": seed, "numpynn": None, "torch": None}
            command = numpynn_command(sys.executable, seed, folder / f"seed{seed}.npz", args)
            row["numpynn"] = run_json_child(command, f"numpynn train --preset {PRESET} --seed {seed}", PROG)
            if run_torch:
                row["torch"] = run_json_child(worker_command(args.bench_python, "torch", args, seed, threads),
                                              f"the PyTorch run for seed {seed}", PROG)
            rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {}
    for kind in ("numpynn", "torch"):
        runs = [row[kind] for row in rows if row[kind]]
        if runs:
            summary.update({f"{kind}_met": sum(map(met, runs)),
                            f"{kind}_median_seconds": statistics.median(run["train_seconds"] for run in runs),
                            f"{kind}_min_accuracy": min(run["test_accuracy"] for run in runs),
                            f"{kind}_max_accuracy": max(run["test_accuracy"] for run in runs)})
    if "numpynn_median_seconds" in summary and "torch_median_seconds" in summary:
        summary["ratio_median"] = summary["numpynn_median_seconds"] / summary["torch_median_seconds"]
    report = {
        "preset": PRESET, "seeds": args.seeds, "probe": info, "env": _common.environment(ENV_VARIABLES),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "cpu_busy_before": cpu_busy},
        "engine_sha256": {"before": code_before, "after": code_hash(ENGINE_CODE)},
        "skipped": skipped, "rows": rows, "summary": summary,
        "target": {"test_accuracy": TARGET_ACCURACY, "train_seconds": TARGET_SECONDS},
    }
    print_report(report)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
