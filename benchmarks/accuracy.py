"""Does `numpynn train` reach its accuracy targets, how long does it take, and how much memory does it use?

What it runs
    The real command, `python -m numpynn train --json --quiet --out TMP/NAME.npz FLAGS...`, once per run below,
    each in its own subprocess from the repository root (so it trains with the working tree's numpynn and its
    presets as they are today). Every run's model, metrics and checkpoint files go to a temporary folder that
    is removed at the end.

What it reads
    test and dev accuracy   the command's last output line (JSON)
    train seconds           the sum of the per-epoch seconds in the metrics file the command writes beside the
                            model (NAME.metrics.json): each epoch's training plus its dev-set evaluation (10,000
                            images, a few hundredths of a second); loading the data, the final test evaluation,
                            the checkpoint and the model file are outside it
    command seconds         the command's own `seconds`: all of the above, from parsing the flags to saving
    peak RSS                the child's ru_maxrss from os.wait4: the whole process (interpreter, NumPy, the
                            three splits as float32, about 220 MB, the model and the optimizer's buffers)
    settings                the effective config, read back with `numpynn info --json` from the model file

The runs and their targets (from the issue)
    seed      the `seed` preset (784-10-10, Adam on mini-batches)       test >= 93.5 %
    mlp       the default preset `mlp` (784-800-10, SGD momentum)       test >= 98.0 % within about a minute
                                                                        (train <= 60 s); peak RSS <= 600 MB
    mlp-60s   784-800-10 with settings chosen for accuracy              test >= 98.4 % in train <= 60 s
    mlp-15s   784-800-10 with settings chosen for speed                 test >= 98.0 % in train <= 15 s
    cnn       the `cnn` preset (two conv5x5 + max-pool blocks, Adam)    test >= 99.4 %
    cnn-affine  the `cnn` preset with --augment affine                   test >= 99.5 %
    mlp-elastic the `mlp` preset with --augment elastic, 50 epochs       test >= 99.0 %
The runs other than the presets name their flags in RUNS below; benchmarks/README.md says how they were found.
The default runs the four quick ones (about 75 s on a quiet machine); the last three take several minutes
each: `--only cnn,cnn-affine,mlp-elastic`.

Usage:  .venv/bin/python benchmarks/accuracy.py [--only mlp,seed] [--json results.json]
Training times depend on everything else the machine is doing: run it on an otherwise idle machine. Each
run's "others" column says how busy the CPUs were with other processes while it ran.
"""
from __future__ import annotations

# Standard library only, as in seed_speed.py: on Linux a child's peak RSS starts at its parent's RSS when it was
# spawned, so this process stays small and the children's numbers are their own.
import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import check_json_path, cpu_name, table, write_json

PROG = "accuracy"
MB = 1_000_000  # the "600 MB" read as decimal megabytes (572 MiB), the stricter reading


@dataclass(frozen=True)
class Target:
    test_accuracy: float  # at least this, as a fraction
    train_seconds: float | None = None  # at most this many seconds of training (None: no limit)
    peak_rss_mb: float | None = None  # at most this many MB of peak resident memory (None: no limit)

    def describe(self) -> str:
        parts = [f"test >= {100 * self.test_accuracy:.1f}%"]
        if self.train_seconds is not None:
            parts.append(f"train <= {self.train_seconds:g} s")
        if self.peak_rss_mb is not None:
            parts.append(f"RSS <= {self.peak_rss_mb:g} MB")
        return ", ".join(parts)

    def misses(self, result: dict) -> list[str]:
        """What this run missed, in words; empty if it met every part of the target."""
        missed = []
        if result["test_accuracy"] < self.test_accuracy:
            missed.append("test accuracy")
        if self.train_seconds is not None and result["train_seconds"] > self.train_seconds:
            missed.append("train time")
        if self.peak_rss_mb is not None and result["peak_rss_kib"] * 1024 / MB > self.peak_rss_mb:
            missed.append("peak RSS")
        return missed


# name: (flags after `numpynn train`, target). The flags are the whole recipe: anything not named comes from
# the preset, so a change to PRESETS in numpynn/train.py changes what `seed` and `mlp` measure.
RUNS: dict[str, tuple[list[str], Target]] = {
    "seed": (["--preset", "seed"], Target(0.935)),
    "mlp": (["--preset", "mlp"], Target(0.980, train_seconds=60, peak_rss_mb=600)),
    "mlp-60s": (["--preset", "mlp", "--epochs", "20", "--lr", "0.1", "--batch-size", "128", "--schedule", "cosine",
                 "--label-smoothing", "0.1"], Target(0.984, train_seconds=60)),
    "mlp-15s": (["--preset", "mlp", "--epochs", "8", "--lr", "0.2", "--batch-size", "256", "--schedule", "cosine",
                 "--label-smoothing", "0.1"], Target(0.980, train_seconds=15)),
    "cnn": (["--preset", "cnn"], Target(0.994)),
    "cnn-affine": (["--preset", "cnn", "--augment", "affine"], Target(0.995)),
    "mlp-elastic": (["--preset", "mlp", "--augment", "elastic", "--epochs", "50"], Target(0.990)),
}
DEFAULT = ("seed", "mlp", "mlp-60s", "mlp-15s")  # what runs without --only: the quick ones
SHOWN = ("architecture", "hidden", "augment", "init", "optimizer", "lr", "schedule", "warmup_epochs", "batch_size", "epochs", "label_smoothing",
         "dropout", "threads", "seed")  # the config fields printed under the table (the JSON file has them all)


BLAS_PROBE = f"""
import json
import sys
import numpy
sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parent)!r})
from _common import blas_libraries
try:
    libs = blas_libraries(("internal_api", "version", "architecture", "num_threads"), "blas")
except ImportError:  # no threadpoolctl
    libs = None
print(json.dumps({{"numpy": numpy.__version__, "blas": libs}}))
"""  # run with the same interpreter and environment as the training runs, so it loads the same BLAS the same way


def train(name: str, flags: list[str], folder: pathlib.Path, args) -> dict:
    """One `numpynn train` run: its accuracies, times, memory and effective config."""
    model = folder / f"{name}.npz"
    command = [sys.executable, "-m", "numpynn", "train", "--json", "--quiet", "--out", str(model), *flags]
    command += ["--seed", str(args.seed)] if args.seed is not None else []
    command += ["--data", args.data] if args.data else []
    stdout, usage = _common.run_child(command, f"the {name} run", PROG)
    summary = _common.last_json(stdout, f"the {name} run", PROG)
    metrics = json.loads((folder / f"{name}.metrics.json").read_text())
    epochs = metrics["history"]["epochs"]
    info_command = [sys.executable, "-m", "numpynn", "info", "--json", str(model)]
    info, _ = _common.run_child(info_command, f"reading {model.name}", PROG)
    header = json.loads(info)  # the model file's header, as one (indented) JSON document
    return {
        "command": command[1:],
        "test_accuracy": summary["test_accuracy"],
        "dev_accuracy": summary["dev_accuracy"],
        "train_seconds": sum(row["seconds"] for row in epochs),
        "command_seconds": summary["seconds"],
        "epochs": summary["epochs"],
        "stopped": summary["stopped"],
        "fastest_epoch_seconds": min(row["seconds"] for row in epochs),
        "config": header.get("config", {}),
        "history": epochs,
        **usage,
    }


def settings(config: dict) -> str:
    """The run's effective settings, in short: preset, then the fields that matter here."""
    shown = [config.get("preset", "?")]
    for name in SHOWN:
        if name in config:
            value = config[name]
            value = ",".join(map(str, value)) if isinstance(value, list) else value
            shown.append(f"{name}={value}")
    return " ".join(shown)


def print_report(report: dict) -> None:
    machine = report["machine"]
    print(f"numpynn train accuracy: {len(report['results'])} run(s) of `python -m numpynn train --json --quiet`")
    print(f"machine   {machine['cpus']} CPUs, {machine['cpu']}, Python {machine['python']}")
    print(f"env       {_common.describe_environment(report['env'])}")
    probe = report["probe"]
    blas = "; ".join(_common.describe_library(lib) for lib in probe["blas"] or [])
    blas = blas or "unknown (threadpoolctl is missing: pip install -e '.[bench]')"
    print(f"BLAS      NumPy {probe['numpy']}: {blas}")
    print(f"date      {report['date']}")
    print()
    header = ("run", "test acc", "dev acc", "train s", "command s", "peak RSS", "others", "target", "met")
    rows = [header]
    for name, result in report["results"].items():
        missed = result["missed"]
        rows.append((name, f"{100 * result['test_accuracy']:.2f}%", f"{100 * result['dev_accuracy']:.2f}%",
                     f"{result['train_seconds']:.1f}", f"{result['command_seconds']:.1f}",
                     f"{result['peak_rss_kib'] * 1024 / MB:.0f} MB", f"{100 * (result['others_busy'] or 0):.0f}%",
                     result["target"], "yes" if not missed else "NO: " + ", ".join(missed)))
    print("\n".join(table(rows, left=(0, 7, 8))))
    print()
    for name, result in report["results"].items():
        print(f"{name:<11}  {settings(result['config'])}")
        print(f"{'':<11}  flags: {' '.join(RUNS[name][0])}")
    print()
    print("train s:   the epochs' seconds from the run's metrics file: training plus the per-epoch dev evaluation.")
    print("command s: the command's own seconds: loading, training, test evaluation, checkpoints, the model file.")
    print("peak RSS:  the whole process, from os.wait4 (MB = 10^6 bytes). others: the share of all CPUs that")
    print("           other processes used during the run; above a few percent, its times are suspect.")
    missed = [name for name, result in report["results"].items() if result["missed"]]
    print("\n" + (f"targets missed by: {', '.join(missed)}" if missed else "every target met"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", metavar="NAME",
                        help=f"run these, comma-separated, from {','.join(RUNS)} (default: {','.join(DEFAULT)})")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder, passed on as --data (default: numpynn's search)")
    parser.add_argument("--seed", type=int, metavar="N", help="pass --seed N to every run (default: the presets' own)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file (atomically)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in (args.only or ",".join(DEFAULT)).split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNS]
    if unknown or not names:
        parser.error(f"--only: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(RUNS)}")
    args.names = names
    check_json_path(parser, args.json)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stdout, _ = _common.run_child([sys.executable, "-c", BLAS_PROBE], "reading the BLAS", PROG)
    probe = json.loads(stdout)
    results = {}
    with tempfile.TemporaryDirectory(prefix="numpynn-accuracy-") as folder:
        for name in args.names:
            flags, target = RUNS[name]
            result = train(name, flags, pathlib.Path(folder), args)
            result["target"] = target.describe()
            result["missed"] = target.misses(result)
            results[name] = result
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "python": platform.python_version()},
        "env": _common.environment(("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "NUMPYNN_DATA")),
        "probe": probe,
        "results": results,
    }
    print_report(report)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
