"""The `numpynn` command: its flags and how it ends. Only this module, its commands (numpynn/commands/) and the
data layer know about folders, flags and exit codes.

Every command turns bad input into one line on stderr, `numpynn: error: <what is wrong and how to fix it>`,
and a non-zero exit: 2 for a bad flag or value, 1 for bad or missing data, 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings

from . import __version__
from .commands.common import CommandError, UsageError
from .commands.models import (AUGMENT_PARAMETERS, cmd_augment_preview, cmd_calibrate, cmd_evaluate, cmd_export,
                              cmd_info, cmd_predict, cmd_report)
from .commands.scale import cmd_ensemble, cmd_sweep
from .commands.seed import cmd_seed
from .commands.serve import cmd_examples, cmd_serve
from .commands.train import cmd_train
from .config import PRESETS, TrainConfig, kind_of
from .data import DATASETS, DataError
from .report import ReportConfig
from .seed import SeedConfig


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors use the same one-line format as every other numpynn error."""

    def error(self, message):
        self.exit(2, f"numpynn: error: {message} (see `{self.prog} --help`)\n")


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 256,128") from None


def _add_config_options(parser: argparse.ArgumentParser, config_cls, *, only_if_given: bool = False,
                        names=None, presets=None) -> None:
    """One --flag per field of a config dataclass, typed and documented by the field itself.

    With only_if_given, a flag the user did not type leaves no attribute at all, so a preset or a config
    file can fill it in. names: only these fields (default: all). presets: {name: {field: value}}; the help
    then shows each flag's value under the preset that runs without --preset (the class's `preset` default),
    and the other presets that change it, e.g. "(default: 1; --preset cnn: 2)"."""
    presets = presets or {}
    first = presets.get(getattr(config_cls, "preset", None), {})
    for f in dataclasses.fields(config_cls):
        if names is not None and f.name not in names:
            continue
        kind = kind_of(f)
        default = first.get(f.name, f.default)
        others = "".join(f"; --preset {name}: {_show(changes[f.name])}" for name, changes in presets.items()
                         if f.name in changes and changes[f.name] != default)
        options = {"help": f"{f.metadata.get('help', '')} (default: {_show(default)}{others})"}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif kind is tuple:
            options |= {"type": _parse_widths, "metavar": "N,N"}
        else:
            options |= {"type": kind, "metavar": {int: "N", float: "X"}.get(kind, "NAME")}
        if "choices" in f.metadata:
            options |= {"choices": f.metadata["choices"], "metavar": "{" + ",".join(f.metadata["choices"]) + "}"}
        options["default"] = argparse.SUPPRESS if only_if_given else f.default
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def _show(value) -> str:
    if value is None:  # weight_decay: left to the optimizer, as the field's help says
        return "unset"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


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
    seed.add_argument("--plain", action="store_true",
                      help="train with the textbook loop of numpynn/seed.py (forward, backward, update on all "
                      "images) instead of the faster numpynn/seed_fast.py; same algorithm, same printed lines")
    seed.add_argument("--quiet", action="store_true", help="don't print the loss every few iterations")
    seed.add_argument(
        "--json",
        action="store_true",
        help="end with one JSON line: train/dev/test accuracy (0-1), seconds",
    )
    seed.add_argument("--plot", metavar="DIR",
                      help="draw the loss, as recorded every --print-every iterations, into DIR/seed_loss.png")
    seed.set_defaults(run=cmd_seed)

    train = commands.add_parser(
        "train",
        help="train a network on mini-batches, write a model file, print dev and test accuracy",
        description="Train a network on MNIST. Options come from the defaults, then --preset, then --config "
        "FILE, then the flags you type, each overriding the one before.",
    )
    _add_config_options(train, TrainConfig, only_if_given=True, presets=PRESETS)
    train.add_argument("--config", metavar="FILE", help="a TOML file of options, e.g. lr = 0.1 (same names, with _)")
    train.add_argument("--out", metavar="PATH", default="model.npz", help="model file to write (default: model.npz)")
    train.add_argument(
        "--checkpoint", metavar="PATH", help="checkpoint written after every epoch (default: OUT with .ckpt.npz)"
    )
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint; only --epochs may change")
    _add_data_options(train)
    train.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    train.add_argument("--json", action="store_true", help="end with one JSON line: dev/test accuracy, seconds")
    train.add_argument("--plot", metavar="DIR",
                       help="redraw the learning curves and the training diagnostics into DIR/learning_curves.png "
                       "and DIR/diagnostics.png after every epoch")
    train.add_argument("--init-from", metavar="MODEL",
                       help="start from this model file's weights (fine-tuning); the network must be the same")
    train.add_argument("--extra-data", metavar="DIR",
                       help="also train on your own digits, as `numpynn examples export DIR` wrote them; a share "
                       "is held out and the accuracy on it printed before and after")
    train.add_argument("--extra-repeat", metavar="N", type=int,
                       help="with --extra-data: add each of your training examples N times (default: 20)")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a model file on the test set: accuracy, per-class scores, confusion matrix"
    )
    evaluate.add_argument("model", metavar="MODEL", nargs="?",
                          help="a model file written by numpynn train (default: the built-in model)")
    _add_data_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    evaluate.set_defaults(run=cmd_evaluate)

    calibrate = commands.add_parser(
        "calibrate", help="fit a model file's softmax temperature on its dev set, so its probabilities are honest",
        description="Fit the temperature T of softmax(logits / T) on the dev set the model was trained beside "
        "(the split its header names), as `numpynn train` does unless --no-calibrate, and write the model with "
        "it. The predicted digits do not change; the test set's expected calibration error is printed before "
        "and after.",
    )
    calibrate.add_argument("model", metavar="MODEL", help="a model file written by numpynn train")
    calibrate.add_argument("--out", metavar="FILE", help="where to write the calibrated model (default: MODEL itself)")
    _add_data_options(calibrate)
    calibrate.set_defaults(run=cmd_calibrate)

    predict = commands.add_parser("predict", help="read the digit in each picture (PNG, JPEG, BMP, ...)",
                                  usage="numpynn predict [-h] [--json] [--show-input DIR] [--explain DIR] [MODEL.npz] IMAGE "
                                  "[IMAGE ...]")
    # One list, split in cmd_predict: argparse cannot tell an optional MODEL from the first IMAGE.
    predict.add_argument("paths", metavar="[MODEL.npz] IMAGE", nargs="+", help="pictures of one digit each, after "
                         "a model file written by numpynn train if the first ends in .npz (default: the built-in "
                         "model)")
    predict.add_argument("--json", action="store_true", help="print a JSON list: file, digit, not_sure, probabilities")
    predict.add_argument(
        "--show-input", metavar="DIR", help="save the 28x28 each picture became (what the network saw) in DIR"
    )
    predict.add_argument(
        "--explain", metavar="DIR", help="save in DIR, for each picture, what the network saw and beside it which "
        "pixels raised (red) or lowered (blue) the answer's score: gradient x input (docs/explain.md)"
    )
    predict.set_defaults(run=cmd_predict)

    info = commands.add_parser("info", help="print a model file's header: architecture, config, metrics")
    info.add_argument("model", metavar="MODEL", nargs="?", help="a model file (default: the built-in model)")
    info.add_argument("--json", action="store_true", help="print the header as JSON")
    info.set_defaults(run=cmd_info)

    preview = commands.add_parser(
        "augment-preview",
        help="write a PNG grid of training digits and augmented versions of them: what training sees",
        description="Write a PNG grid: the top row holds training digits as they are, each row below a fresh "
        "random augmentation of them, drawn as `numpynn train --augment` draws it for every batch.",
    )
    preview.add_argument("--augment", choices=("affine", "elastic"),
                         help="which augmentation (default: the preset's, or affine if it has none)")
    _add_config_options(preview, TrainConfig, only_if_given=True, names=("preset", *AUGMENT_PARAMETERS))
    preview.add_argument("--n", type=int, default=8, metavar="N", help="digits, one per column (default: 8)")
    preview.add_argument("--rows", type=int, default=5, metavar="N", help="rows of augmented versions (default: 5)")
    preview.add_argument("--seed", type=int, default=0, metavar="N",
                         help="picks the digits and draws the augmentations (default: 0)")
    preview.add_argument("--out", metavar="FILE.png", default="augment.png", help="the picture to write "
                         "(default: augment.png)")
    _add_data_options(preview)
    preview.set_defaults(run=cmd_augment_preview)

    report = commands.add_parser(
        "report", help="draw what a model learned: figures and an index.html showing them",
        description="Draw a model's learning curves, confusion matrix, most confident mistakes, first-layer "
        "weights, activation statistics, PCA maps and calibration on the test set, as PNGs with an index.html.",
    )
    report.add_argument("model", metavar="MODEL", help="a model file written by numpynn train")
    report.add_argument("--out", metavar="DIR", help="folder for the report, made if missing "
                        "(default: MODEL's name with -report, beside it)")
    _add_config_options(report, ReportConfig)
    _add_data_options(report)
    report.set_defaults(run=cmd_report)

    serve = commands.add_parser(
        "serve", help="open the web page: draw a digit and watch the network read it, or train one live",
        description="Serve numpynn's web page: draw a digit and watch the network read it (and what its hidden "
        "layers do), or train a network and watch it learn. The page lists MODEL, if given, and every model "
        "file in the models folder, where the Learn tab saves its runs, with the built-in model after MODEL.",
    )
    serve.add_argument("model", metavar="MODEL", nargs="?", help="a model file to offer first, before the "
                       "built-in model (optional)")
    serve.add_argument("--models", metavar="DIR", help="the models folder (default: $NUMPYNN_MODELS, else "
                       "~/.local/share/numpynn/models, made when serve starts)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this "
                       "machine only; 0.0.0.0 opens the page, and its training runs, to your network)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    serve.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                       help="also answer requests made to this host name (repeatable); IP addresses, localhost "
                       "and --host are always answered, other names are refused (they could be DNS rebinding)")
    _add_data_options(serve)
    serve.set_defaults(run=cmd_serve)

    examples = commands.add_parser(
        "examples", help="your handwriting: list, delete or export the digits stored from the page",
        description="The digits you confirmed or corrected on the page's Draw tab, stored in examples.sqlite in "
        "the models folder.")
    examples.add_argument("action", choices=("list", "delete", "export"), help="list them; delete ID (or --all); "
                          "export DIR as IDX files for `numpynn train --extra-data DIR`")
    examples.add_argument("target", metavar="ID|DIR", nargs="?", help="the example to delete, or the folder to "
                          "export into")
    examples.add_argument("--all", action="store_true", help="with delete: delete every example")
    examples.add_argument("--models", metavar="DIR", help="the models folder (default: as for serve)")
    examples.add_argument("--json", action="store_true", help="with list: print JSON")
    examples.set_defaults(run=cmd_examples)

    export = commands.add_parser(
        "export", help="write a model file as an ONNX file, to run with onnxruntime (Python, C++, a browser)",
        description="Write MODEL as an ONNX graph (docs/export.md): input pixels (N, 784) float32, outputs logits "
        "and probabilities (N, 10). If onnxruntime is installed, the file is run on a check batch first and "
        "must agree with numpynn.",
    )
    export.add_argument("model", metavar="MODEL", help="a model file written by numpynn train")
    export.add_argument("--out", metavar="FILE.onnx", help="the ONNX file to write (default: MODEL's name with "
                        ".onnx, beside it)")
    export.set_defaults(run=cmd_export)

    ensemble = commands.add_parser(
        "ensemble", help="combine model files into one that averages their probabilities",
        description="Write one model file whose probabilities are the mean of its members' (each softmaxed at "
        "its own temperature), scored on the test set. evaluate, predict, serve, report, info and export take it "
        "like any model file.",
    )
    ensemble.add_argument("models", metavar="MODEL", nargs="+", help="two or more model files written by numpynn "
                          "train (or one, with --shift)")
    ensemble.add_argument("--out", metavar="FILE", required=True, help="the ensemble file to write (.npz)")
    ensemble.add_argument("--shift", metavar="S", type=int, default=0, help="test-time shifts: every member also "
                          "reads each image moved S pixels up, down, left and right, and the mean runs over the 5 "
                          "views too (5 times the inference; 0: none, the default)")
    _add_data_options(ensemble)
    ensemble.set_defaults(run=cmd_ensemble)

    sweep = commands.add_parser(
        "sweep", help="search training options with Ray Tune (pip install 'numpynn[sweep]')",
        description="Train many networks over a search space of TrainConfig fields (a TOML file, see "
        "docs/scale.md) with Ray Tune: ASHA stops weak trials early on the dev accuracy, each trial checkpoints "
        "every epoch. Writes DIR/results.csv, DIR/results.json, DIR/trials.png and DIR/best.npz.",
    )
    sweep.add_argument("space", metavar="SPACE.toml", help="the search space: fixed values, grid, choice, "
                       "uniform, loguniform, and whole recipes (docs/scale.md)")
    sweep.add_argument("--out", metavar="DIR", required=True, help="folder for the results, made if missing")
    sweep.add_argument("--address", metavar="ADDR", help="an existing Ray cluster: auto, or ray://host:port "
                       "(default: start Ray on this machine)")
    sweep.add_argument("--workers", type=int, metavar="N", help="trials at once on this machine (default: the "
                       "number of cores); ignored with --address")
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in DIR (stopped by Ctrl-C or a "
                       "crash): finished trials are kept, the others go on from their last checkpoint")
    _add_data_options(sweep)
    sweep.set_defaults(run=cmd_sweep)
    return parser


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
    except (DataError, CommandError) as error:
        print(f"numpynn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("numpynn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`numpynn evaluate m.npz | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by a closed pipe
    except OSError as error:  # numpynn.atomic.OutputError (a full disk, a read-only folder) and its kin
        print(f"numpynn: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("numpynn: error: out of memory; try a smaller --batch-size or model, or close other programs",
              file=sys.stderr)
        return 1
    except Exception as error:  # a bug in numpynn: still one line, with the way to see where it happened
        if os.environ.get("NUMPYNN_DEBUG"):
            raise
        print(f"numpynn: error: unexpected {type(error).__name__}: {_one_line(error)} (a bug in numpynn: please "
              f"report it with the command you ran; NUMPYNN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:500] + "..."
