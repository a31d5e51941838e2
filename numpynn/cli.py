"""The `numpynn` command. Only this module (and the data layer) knows about folders, flags and exit codes.

Every command turns bad input into one line on stderr, `numpynn: error: <what is wrong and how to fix it>`,
and a non-zero exit: 2 for a bad flag or value, 1 for bad or missing data, 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings

from . import __version__
from .data import DATASETS, DataError, load_mnist
from .seed import SeedConfig, run_seed


class UsageError(Exception):
    """A flag's value is out of range. Reported like argparse's own errors, with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors use the same one-line format as every other numpynn error."""

    def error(self, message):
        self.exit(2, f"numpynn: error: {message} (see `{self.prog} --help`)\n")


def _add_config_options(parser: argparse.ArgumentParser, config_cls) -> None:
    """One --flag per field of a config dataclass, typed and documented by the field itself."""
    for f in dataclasses.fields(config_cls):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            metavar={int: "N", float: "X"}.get(type(f.default), "VALUE"),
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
        )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the four MNIST files (.gz or raw) or mnist.npz; "
        "otherwise $NUMPYNN_DATA, then the user cache, then a download",
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="which dataset (default: mnist)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="numpynn", description="A neural network from scratch in NumPy that reads handwritten digits.")
    parser.add_argument("--version", action="version", version=f"numpynn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    seed = commands.add_parser(
        "seed",
        help="run the seed's program: train 784-10-10 by full-batch gradient descent, print the accuracies",
        description="The seed's whole program: load MNIST, hold out a dev set, train 784-H-10 full-batch, "
        "then print the train, dev and test accuracy.",
    )
    _add_config_options(seed, SeedConfig)
    _add_data_options(seed)
    seed.add_argument("--quiet", action="store_true", help="don't print the loss every few iterations")
    seed.add_argument(
        "--json",
        action="store_true",
        help="end with one JSON line: train/dev/test accuracy (0-1), seconds",
    )
    seed.set_defaults(run=cmd_seed)
    return parser


def cmd_seed(args) -> int:
    started = time.perf_counter()
    names = [f.name for f in dataclasses.fields(SeedConfig)]
    try:
        config = SeedConfig(**{name: getattr(args, name) for name in names})
    except ValueError as error:  # the config's own range checks
        name, rest = str(error).split(" ", 1)  # "dev_size = 0 is out of range: ..."
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from None
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=config.dev_size, seed=config.seed, progress=not args.quiet)
    except ValueError as error:  # a dev set as large as the training set
        raise UsageError(f"--dev-size: {error}") from None
    result = run_seed(splits, config, log=None if args.quiet else print)
    print(f"Train Accuracy: {100 * result['train_accuracy']:.2f}%")
    print(f"Dev Accuracy: {100 * result['dev_accuracy']:.2f}%")
    print(f"Test Accuracy: {100 * result['test_accuracy']:.2f}%")
    if args.json:
        summary = {key: result[key] for key in ("train_accuracy", "dev_accuracy", "test_accuracy")}
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["train_seconds"] = round(result["seconds"], 3)
        summary["config"] = dataclasses.asdict(config)
        print(json.dumps(summary))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"numpynn: warning: {message}", file=sys.stderr)  # the user's problem, not numpynn's file and line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the usual warning display when main() returns
            warnings.showwarning = _show_warning
            return args.run(args)
    except UsageError as error:
        print(f"numpynn: error: {error}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"numpynn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("numpynn: interrupted", file=sys.stderr)
        return 130
