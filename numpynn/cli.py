"""The `numpynn` command. Only this module (and the data layer) knows about folders, flags and exit codes.

Every command turns bad input into one line on stderr, `numpynn: error: <what is wrong and how to fix it>`,
and a non-zero exit: 2 for a bad flag or value, 1 for bad or missing data, 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings

from . import __version__
from .atomic import write_json_atomically as _write_json
from .checks import OptionError
from .data import DATASETS, DataError, load_mnist
from .report import ReportConfig
from .seed import SeedConfig, run_seed
from .config import PRESETS, TrainConfig, applies, kind_of


class UsageError(Exception):
    """A flag's value is out of range. Reported like argparse's own errors, with exit code 2."""


class CommandError(Exception):
    """The command cannot do its job with what it was given (a bad model file, a blank picture, a diverged
    run). One line, exit code 1."""


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
    ensemble.add_argument("models", metavar="MODEL", nargs="+", help="two or more model files written by numpynn train")
    ensemble.add_argument("--out", metavar="FILE", required=True, help="the ensemble file to write (.npz)")
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


def _single_threaded_blas(limit: bool):
    """BLAS limited to one thread while `limit`: for work that runs its own threads (seed_fast's trick 5)."""
    if not limit:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def cmd_seed(args) -> int:
    started = time.perf_counter()
    config = _config(SeedConfig, args)
    if args.plot:
        _output_folder(args.plot, "--plot")  # now, not after a minute of training
        if config.print_every == 0:
            raise UsageError("--plot draws the loss recorded every --print-every iterations; use --print-every 1 "
                             "or more")
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=config.dev_size, seed=config.seed, progress=not args.quiet)
    except OptionError as error:  # a dev set as large as the training set
        raise _flag_error(error) from None
    with _single_threaded_blas(config.threads > 1 and not args.plain):  # the fast path's threads, one per core
        result = run_seed(splits, config, log=None if args.quiet else print, plain=args.plain)
    print(f"Train Accuracy: {100 * result['train_accuracy']:.2f}%")
    print(f"Dev Accuracy: {100 * result['dev_accuracy']:.2f}%")
    print(f"Test Accuracy: {100 * result['test_accuracy']:.2f}%")
    if args.plot:
        from .report import save_figure, seed_loss

        title = (f"The seed: 784-{config.hidden}-10, full batch, alpha = {config.alpha:g}; test accuracy "
                 f"{100 * result['test_accuracy']:.2f}%")
        print(f"Plot: {save_figure(seed_loss(result['losses'], title), _make_folder(args.plot) / 'seed_loss.png')}")
    if args.json:
        summary = {key: result[key] for key in ("train_accuracy", "dev_accuracy", "test_accuracy")}
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["train_seconds"] = round(result["seconds"], 3)
        summary["config"] = dataclasses.asdict(config)
        summary["plain"] = args.plain
        print(json.dumps(summary))
    return 0


def _config(config_cls, args):
    """A config dataclass from the flags _add_config_options made; its range errors name the flag."""
    try:
        return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})
    except OptionError as error:  # the config's own range checks
        raise _flag_error(error) from None


def _flag_error(error: OptionError) -> UsageError:
    """An option's error in the command line's words: the flag, not the field (--dev-size, not dev_size)."""
    return UsageError(str(error.renamed("--" + error.name.replace("_", "-"))))


def _output_folder(folder, flag: str, may_create: bool = True, value=None):
    """The folder a flag names, checked before any work starts: a read-only or missing folder is one line
    now, not a traceback after the run has trained. With may_create it may be missing if its parent is
    writable; _make_folder makes it when the first file is written. value: what the user typed, when it is
    a file in that folder (--out model.npz)."""
    from .atomic import OutputError, check_folder

    try:
        return check_folder(folder, f"{flag} {folder if value is None else value}", may_create=may_create)
    except OutputError as error:
        raise UsageError(str(error)) from None


def _make_folder(path):
    import pathlib

    folder = pathlib.Path(path)
    folder.mkdir(exist_ok=True)  # _output_folder saw that the parent exists
    return folder


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"numpynn: warning: {message}", file=sys.stderr)  # the user's problem, not numpynn's file and line


def _train_config(args):
    """Defaults < preset < --config FILE < typed flags."""
    from .config import NotAnOption, make_config

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    values = {**(_read_toml(args.config) if args.config else {}),
              **{name: getattr(args, name) for name in names if hasattr(args, name)}}
    try:
        return make_config(values.pop("preset", "mlp"), **values)
    except NotAnOption as error:  # a name in the --config file: it has no flag to name
        raise UsageError(f"--config {args.config}: {error}") from None
    except OptionError as error:
        raise _flag_error(error) from None


def _read_toml(path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    import os

    if os.path.exists(path) and not os.path.isfile(path):  # a folder, or a pipe that would be read forever
        raise UsageError(f"--config {path}: not a regular file; name a TOML file")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"--config {path}: not a valid TOML file ({error})") from None
    return data.get("train", data)


def cmd_train(args) -> int:
    import pathlib

    from tqdm import tqdm

    from . import serialize
    from .atomic import OutputError
    from .train import Run, TrainingDiverged, train_and_save

    started = time.perf_counter()
    out = pathlib.Path(args.out)
    checkpoint = pathlib.Path(args.checkpoint) if args.checkpoint else out.with_name(out.stem + ".ckpt.npz")
    for path, flag in ((out, "--out"), (checkpoint, "--checkpoint")):
        if path.suffix != ".npz":
            raise UsageError(f"{flag} {path}: model and checkpoint files end in .npz")
        _output_folder(path.parent, flag, may_create=False, value=path)
    if args.resume:
        typed = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
        if set(typed) - {"epochs"} or args.config:
            raise UsageError("with --resume the checkpoint's options are used; only --epochs may change")
        try:  # every check of the file is in the loader; a bad checkpoint is one line, exit 1
            arrays, header = serialize.load_checkpoint(args.resume)
            run = Run.resume(arrays, header, epochs=getattr(args, "epochs", None), source=args.resume)
        except serialize.ModelFileError as error:
            raise CommandError(str(error)) from None
    else:
        try:
            run = Run.start(_train_config(args))
        except OptionError as error:  # options that are fine alone but not together, e.g. a cnn with init seed
            raise _flag_error(error) from None
    config = run.config
    if args.init_from:
        _init_from(run, args)
    if args.plot:
        _output_folder(args.plot, "--plot")
    if args.extra_repeat is not None and not args.extra_data:
        raise UsageError("--extra-repeat goes with --extra-data DIR (the examples to repeat)")
    extra = _extra_data(args, config.seed) if args.extra_data else None  # before MNIST: a typo fails fast
    loading = time.perf_counter()
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=config.dev_size, seed=config.seed, progress=not args.quiet)
    except OptionError as error:  # a dev set as large as the training set
        raise _flag_error(error) from None
    load_seconds = time.perf_counter() - loading
    if extra is not None:
        from .extra_data import REPEAT

        repeat = REPEAT if args.extra_repeat is None else args.extra_repeat
        extra_scores = {**extra.summary(), "repeat": repeat, "held_out_accuracy_before":  # a fresh run's "before"
                        extra.held_out_accuracy(run.model) if (args.init_from or args.resume) else None}  # is chance
        splits = extra.added_to(splits, repeat)
    plot = _make_folder(args.plot) / "learning_curves.png" if args.plot else None

    def redraw(run, row=None):  # fit's on_epoch hook: the History so far, so a run can be watched as it goes
        from .report import diagnostics_of, learning_curves, save_figure, training_diagnostics

        history = dataclasses.asdict(run.history)
        written = [save_figure(learning_curves(history, config.label_smoothing), plot)]
        series, _ = diagnostics_of(history)  # none in the rows of a run resumed from an old checkpoint
        if series is not None:
            written.append(save_figure(training_diagnostics(series), plot.with_name("diagnostics.png")))
        return written

    bar = _ProgressBar(tqdm, config.epochs)
    try:
        history, metrics = train_and_save(
            run, splits, out, args.dataset, started=started, checkpoint=checkpoint,
            progress=None if args.quiet else bar.start, on_batch=None if args.quiet else bar.on_batch,
            log=None if args.quiet else print, on_epoch=redraw if plot else None)
        if extra is not None:
            metrics["your_examples"] = {**extra_scores, "held_out_accuracy_after": extra.held_out_accuracy(run.model)}
        _write_json(out.with_name(out.stem + ".metrics.json"), {**metrics, "history": dataclasses.asdict(history)})
    except TrainingDiverged as error:
        bar.close()
        raise CommandError(str(error)) from None
    except OutputError as error:  # a checkpoint, the plot or the model could not be written: a full disk, say
        bar.close()
        raise CommandError(f"{error}; {_last_good(checkpoint)}") from None
    dev_accuracy, test_accuracy, seconds = metrics["dev_accuracy"], metrics["test_accuracy"], metrics["seconds"]
    if history.stopped == "interrupted":
        print(f"Interrupted after {run.epoch} full epochs; the model trained so far is saved.")
    print(f"Dev Accuracy: {100 * dev_accuracy:.2f}%")
    print(f"Test Accuracy: {100 * test_accuracy:.2f}%")
    if "temperature" in metrics:
        print(f"Calibrated: temperature {metrics['temperature']:.3f} fitted on the dev set; test expected calibration "
              f"error {100 * metrics['test_ece_uncalibrated']:.2f}% -> {100 * metrics['test_ece']:.2f}%")
    if extra is not None:
        print(_held_out_line(metrics["your_examples"]))
    print(f"Model: {out}  (metrics: {out.with_name(out.stem + '.metrics.json')}, checkpoint: {checkpoint})")
    if plot:
        written = redraw(run)  # once more: the History now says how the run ended
        print(f"Plot: {', '.join(map(str, written))}")
    if args.json:
        train_seconds = sum(row["seconds"] for row in history.epochs)
        print(json.dumps({"dev_accuracy": dev_accuracy, "test_accuracy": test_accuracy, "seconds": round(seconds, 3),
                          "train_seconds": round(train_seconds, 3), "load_seconds": round(load_seconds, 3),
                          "model": str(out), "epochs": run.epoch,
                          "stopped": history.stopped, "temperature": metrics.get("temperature", 1.0),
                          "test_ece": metrics["test_ece"]}))
    return 130 if history.stopped == "interrupted" else 0


def _init_from(run, args) -> None:
    """--init-from MODEL: the run starts from the model's weights (train.start_from)."""
    from .train import start_from

    if args.resume:
        raise UsageError("--init-from and --resume both say where the weights come from; give one")
    model, header = _load_model(args.init_from)
    if header.get("kind") != "model":
        raise CommandError(f"--init-from {args.init_from}: a checkpoint, not a model file (continue a checkpoint "
                           f"with --resume)")
    try:
        start_from(run, model, f"--init-from {args.init_from}")
    except ValueError as error:
        raise CommandError(str(error)) from None


def _extra_data(args, seed: int):
    """--extra-data DIR: your examples (extra_data.read), split by the run's seed into training and held out."""
    from . import extra_data

    if args.extra_repeat is not None and not 1 <= args.extra_repeat <= extra_data.MAX_REPEAT:
        raise UsageError(f"--extra-repeat {args.extra_repeat}: use 1 to {extra_data.MAX_REPEAT}")
    return extra_data.Extra.of(*extra_data.read(args.extra_data), seed)  # DataError: one line, exit 1


def _held_out_line(scores: dict) -> str:
    """One line on your held-out examples: how many, and the accuracy before (if the run started from a model)
    and after."""
    n, before, after = scores["held_out"], scores["held_out_accuracy_before"], scores["held_out_accuracy_after"]
    times = "once" if scores["repeat"] == 1 else f"{scores['repeat']} times"
    if not n:
        return (f"Your examples: {scores['train']} trained on (each {times}), none held out (store "
                f"at least 2 to measure the accuracy on your handwriting)")
    shown = (f"{100 * before:.1f}% -> " if before is not None else "") + f"{100 * after:.1f}%"
    return (f"Your examples: {scores['train']} trained on (each {times}), {n} held out; accuracy "
            f"on the held-out ones "
            f"{shown}{' (before -> after)' if before is not None else ''}")


class _ProgressBar:
    """fit's progress and on_batch hooks for `numpynn train`: a tqdm bar per epoch, showing the epoch's mean loss
    and accuracy so far and the images per second."""

    EVERY = 25  # batches between refreshes of the numbers: formatting them every batch costs more than the batch

    def __init__(self, tqdm, epochs: int):
        self.tqdm, self.epochs, self.bar = tqdm, epochs, None

    def start(self, epoch: int, n_batches: int):
        self.loss_sum = self.accuracy_sum = 0.0
        self.batches, self.started = 0, time.perf_counter()
        self.bar = self.tqdm(total=n_batches, desc=f"epoch {epoch}/{self.epochs}", unit="batch", leave=False)
        return self.bar

    def close(self) -> None:
        """Take the bar off the screen (it is not left behind), so that an error line starts a line of its own."""
        if self.bar is not None:
            self.bar.close()

    def on_batch(self, run, loss: float, accuracy: float) -> None:
        self.loss_sum += loss
        self.accuracy_sum += accuracy
        self.batches += 1
        if run.step % self.EVERY == 0:
            n = self.batches  # every batch but an epoch's last has batch_size images, so these are the means
            rate = n * run.config.batch_size / max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix(loss=f"{self.loss_sum / n:.4f}", acc=f"{self.accuracy_sum / n:.4f}",
                                 img_s=f"{rate:,.0f}", refresh=False)


def _last_good(checkpoint) -> str:
    """What a failed save leaves the user: the last checkpoint that was written whole, if any."""
    if checkpoint.is_file():
        return (f"the last good checkpoint is {checkpoint}: free some space or fix the folder, then continue "
                f"with --resume {checkpoint}")
    return "no checkpoint was written yet: free some space or choose another folder, then train again"


def _load_model(path):
    """(model, header) of the file at `path`; None: the built-in model, saying so on stderr."""
    from .serialize import ModelFileError, load_model

    builtin = path is None
    try:
        model, header = load_model(_builtin() if builtin else path)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    if builtin:
        from .models import builtin_label

        print(f"model: {builtin_label(header)}", file=sys.stderr)
    return model, header


def _builtin():
    from .models import builtin_path

    path = builtin_path()
    if not path.is_file():
        raise CommandError(f"this numpynn has no built-in model ({path} is missing): give a model file written "
                           "by numpynn train, or reinstall numpynn")
    return path


def cmd_evaluate(args) -> int:
    from . import analysis
    from .data import load_raw
    from .metrics import report

    model, header = _load_model(args.model)
    _, _, x_test, y_test = load_raw(args.dataset, args.data, progress=False)
    X = x_test.reshape(len(x_test), -1).astype("float32") / 255  # (N, 784), as the model was trained
    y = y_test.astype("int64")
    P = model.predict_proba(X)  # (N, 10) softmax(logits / T)
    result = report(y, P.argmax(axis=1))
    result["temperature"] = model.temperature
    result["ece"] = analysis.expected_calibration_error(P.max(axis=1), P.argmax(axis=1) == y)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Accuracy: {100 * result['accuracy']:.2f}%  ({result['n']} test images, model {args.model or 'built-in'})")
    calibrated = (f"temperature {model.temperature:.3f}" if model.temperature != 1 else
                  "not calibrated: `numpynn calibrate MODEL` fits a temperature")
    print(f"Expected calibration error: {100 * result['ece']:.2f}%  ({calibrated})")
    print("\nclass  precision  recall     f1  support")
    for row in result["per_class"]:
        print(f"{row['class']:>5}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}")
    print(f"macro F1 {result['macro_f1']:.4f}")
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{k:>6}" for k in range(10)))
    for k, row in enumerate(result["confusion"]):
        print(f"{k:>5}" + "".join(f"{n:>6}" for n in row))
    return 0


def cmd_calibrate(args) -> int:
    import pathlib

    from .data import load_mnist
    from .serialize import ModelFileError, save_model
    from .train import calibrate_and_choose_rule, evaluate

    out = pathlib.Path(args.out or args.model)
    if out.suffix != ".npz":
        raise UsageError(f"--out {out}: model files end in .npz; choose a name like model.npz")
    _output_folder(out.parent, "--out", may_create=False, value=out)
    model, header = _load_model(args.model)
    split = header.get("dataset", {})
    dev_size, seed = split.get("dev_size"), split.get("split_seed")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (dev_size, seed)) or not dev_size:
        raise CommandError(f"{args.model}: its header does not say which dev set it was trained beside "
                           f"(dataset.dev_size and split_seed); only files written by `numpynn train` can be calibrated")
    splits = load_mnist(args.dataset, args.data, dev_size=dev_size, seed=seed, progress=False)
    fitted, rule = calibrate_and_choose_rule(model, splits.X_dev, splits.y_dev, splits.X_test, splits.y_test)
    test_loss, test_accuracy = evaluate(model, splits.X_test, splits.y_test)
    metrics = {**header.get("metrics", {}), **fitted, "test_loss": test_loss, "test_accuracy": test_accuracy}
    kept = {key: value for key, value in header.items()
            if key not in ("kind", "architecture", "format_version", "temperature", "metrics")}  # same weights
    try:
        save_model(out, model, {**kept, "metrics": metrics, "not_sure": rule})
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    print(f"Temperature {fitted['temperature']:.3f} fitted on {len(splits.y_dev):,} dev images; test expected "
          f"calibration error {100 * fitted['test_ece_uncalibrated']:.2f}% -> {100 * fitted['test_ece']:.2f}%; "
          f"test accuracy {100 * test_accuracy:.2f}% (unchanged)")
    print(f"Model: {out}")
    return 0


def cmd_predict(args) -> int:
    import pathlib

    import numpy as np

    from .abstain import apply_rule
    from .explain import saliency
    from .images import ImageError, explanation_picture, prepare, to_png

    folder = _output_folder(args.show_input, "--show-input", may_create=False) if args.show_input else None
    explained = _output_folder(args.explain, "--explain", may_create=False) if args.explain else None
    if args.paths[0].endswith(".npz"):  # the first argument ending in .npz is the model
        if len(args.paths) == 1:
            raise UsageError(f"{args.paths[0]}: give the pictures to read after the model file")
        args.model, args.images = args.paths[0], args.paths[1:]
    else:
        args.model, args.images = None, args.paths
    model, header = _load_model(args.model)
    try:
        digits = [prepare(path) for path in args.images]  # each (28, 28) in [0, 1]
    except ImageError as error:
        raise CommandError(str(error)) from None
    X = np.stack(digits).reshape(len(digits), -1)  # (n, 784)
    P = model.predict_proba(X)  # (n, 10)
    unsure = apply_rule(header.get("not_sure"), P, X)  # (n,) the model file's rule; none: always an answer
    results = []
    for path, digit, p, u in zip(args.images, digits, P, unsure):
        result = {"file": path, "digit": int(p.argmax()), "not_sure": bool(u),
                  "probabilities": [round(float(q), 6) for q in p]}
        try:
            if args.show_input:
                seen = folder / (pathlib.Path(path).stem + ".input.png")
                to_png(digit, seen, scale=8)
                result["input"] = str(seen)
            if args.explain:
                why = explained / (pathlib.Path(path).stem + ".explain.png")
                S = saliency(model, digit.reshape(1, -1), result["digit"])[0]  # (784,) gradient x input
                to_png(explanation_picture(digit, S), why, scale=8)
                result["explanation"] = str(why)
        except OSError as error:  # numpynn.atomic.OutputError: one line naming the file
            raise CommandError(str(error)) from None
        results.append(result)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        top = sorted(range(10), key=lambda k: -r["probabilities"][k])[:3]
        others = ", ".join(f"{k}: {100 * r['probabilities'][k]:.1f}%" for k in top[1:])
        answer = f"not sure  (maybe {r['digit']}: " if r["not_sure"] else f"{r['digit']}  ("
        print(f"{r['file']}: {answer}{100 * r['probabilities'][r['digit']]:.1f}%; then {others})")
        if "input" in r:
            print(f"  the network saw: {r['input']}")
        if "explanation" in r:
            print(f"  why (red: raised the score of {r['digit']}, blue: lowered it): {r['explanation']}")
    return 0


def cmd_info(args) -> int:
    model, header = _load_model(args.model)
    if args.json:
        print(json.dumps(header, indent=1))
        return 0
    print(f"{args.model or _builtin()}: numpynn {header.get('kind', 'model')} file, format "
          f"{header['format_version']}, written by numpynn {header.get('numpynn_version', '?')}")
    for key in ("name", "weights_sha256"):  # the built-in model's
        if key in header:
            print(f"{key}: {header[key]}")
    for n, member in enumerate(header.get("members", [header]), start=1):  # an ensemble: one line per member
        which = f"member {n} of {len(header['members'])}: " if "members" in header else ""
        print(f"{which}architecture: {' -> '.join(_describe(layer) for layer in member['architecture'])}")
    print(f"parameters: {model.n_params():,}")
    print(f"probabilities: softmax(logits / {model.temperature:.3g})" + (
        ", the temperature fitted on the dev set (calibrated)" if model.temperature != 1 else ", not calibrated"))
    rule = header.get("not_sure")
    if rule:
        print(f"not sure: when the top probability is below {rule['threshold']:.4g} or the ink covers more than "
              f"{100 * rule['ink_limit']:.1f}% of the 28x28 (chosen on the dev set)")
    for key in ("dataset", "preprocessing", "metrics", "config"):
        if key in header:
            items = header[key].items()
            if key == "config":  # only what applies: no channels for an MLP, no betas for SGD (--json has all)
                items = [(k, v) for k, v in items if applies(k, header[key])]
            print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in items))
    return 0


AUGMENT_PARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name.startswith("augment_"))
SCALE = 3  # augment-preview: each pixel a 3 x 3 square


def cmd_augment_preview(args) -> int:
    """A grid of --n random training digits: the top row as they are, each of the --rows rows below a fresh draw
    of the augmentation that `numpynn train` would apply with the same preset and flags."""
    import pathlib

    import numpy as np

    from .data import load_raw
    from .images import digit_grid, to_png
    from .config import augmenter, make_config

    out = pathlib.Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the picture is a PNG; give a name ending in .png")
    _output_folder(out.parent, "--out", may_create=False, value=out)
    for flag, value, most in (("--n", args.n, 100), ("--rows", args.rows, 20)):
        if not 1 <= value <= most:
            raise UsageError(f"{flag} = {value} is out of range: use 1 to {most}")
    if args.seed < 0:
        raise UsageError(f"--seed = {args.seed} is out of range: use 0 or more")
    given = {name: getattr(args, name) for name in AUGMENT_PARAMETERS if hasattr(args, name)}
    try:
        config = make_config(getattr(args, "preset", "mlp"), **given)
    except OptionError as error:
        raise _flag_error(error) from None
    kind = args.augment or (config.augment if config.augment != "none" else "affine")
    config = dataclasses.replace(config, augment=kind)

    x_train = load_raw(args.dataset, args.data, progress=False)[0]      # (60000, 28, 28) uint8
    rng = np.random.default_rng([args.seed, 3])
    pick = rng.choice(len(x_train), size=min(args.n, len(x_train)), replace=False)
    X = x_train[pick].reshape(len(pick), -1).astype(np.float32) / 255   # (n, 784), as training sees them
    transform = augmenter(config)
    rows = [X] + [transform(X, rng) for _ in range(args.rows)]          # each (n, 784)
    try:
        to_png(digit_grid(rows), out, scale=SCALE)
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write it ({error.strerror or error})") from None
    names = [name for name in AUGMENT_PARAMETERS if applies(name, {"augment": kind})]
    settings = ", ".join(f"{name.removeprefix('augment_')} {getattr(config, name):g}" for name in names)
    print(f"{out}: {len(pick)} training digits (top row) and {args.rows} rows of {kind} augmentations of them "
          f"({settings})")
    return 0


def _describe(layer: dict) -> str:
    sizes = [f"{k}={v}" for k, v in layer.items() if k != "type"]
    return f"{layer['type']}({', '.join(sizes)})" if sizes else layer["type"]


def cmd_report(args) -> int:
    import pathlib

    from .data import load_raw
    from .report import write_report

    config = _config(ReportConfig, args)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.model).with_name(pathlib.Path(args.model).stem + "-report")
    model, header = _load_model(args.model)
    _output_folder(out, "--out")
    _, _, x_test, y_test = load_raw(args.dataset, args.data, progress=False)
    X = x_test.reshape(len(x_test), -1).astype("float32") / 255  # (N, 784), as the model was trained
    y = y_test.astype("int64")
    try:
        K = model.predict_proba(X[:1]).shape[1]
    except ValueError as error:  # a model made for other inputs than these images
        raise CommandError(f"{args.model} does not take {args.dataset}'s {X.shape[1]}-pixel images ({error})") from None
    if K <= y.max():
        raise CommandError(f"{args.model} tells {K} classes apart; {args.dataset} has {y.max() + 1}")
    try:
        report = write_report(model, header, X, y, _make_folder(out), config, title=pathlib.Path(args.model).name,
                              log=print)
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write the report ({error.strerror or error})") from None
    for heading, why in report.missing:
        print(f"not drawn: {heading}: {why}")
    print(f"Report: {out / 'index.html'}  (test accuracy {100 * report.test_accuracy:.2f}%, "
          f"expected calibration error {100 * report.ece:.2f}%)")
    return 0


MIN_TOKEN = 16  # characters of a token set by $NUMPYNN_TOKEN: a short one could be guessed


def cmd_serve(args) -> int:
    import ipaddress
    import os
    import pathlib
    import socket

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is out of range: use 1 to 65535 (or 0 for any free port)")
    if args.models is not None and not pathlib.Path(args.models).is_dir():
        raise UsageError(f"--models {args.models}: no such folder; create it first or leave --models out")
    for name in args.allow_host:
        if not name or any(c in name for c in "/:@ []"):
            raise UsageError(f"--allow-host {name!r}: give a host name, such as mybox.lan (no port, no scheme)")
    token = os.environ.get("NUMPYNN_TOKEN") or None  # from the environment, not a flag: ps shows flags to all
    if token is not None and (len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable()):
        raise UsageError(f"$NUMPYNN_TOKEN: use at least {MIN_TOKEN} printable ASCII characters, e.g. the output "
                         f"of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or unset it")
    if args.model is not None:
        _, header = _load_model(args.model)  # a bad file fails here, in one line, not in the page
        if header.get("kind") != "model":
            raise CommandError(f"{args.model}: a checkpoint, not a model file (use the model .npz it belongs to)")
    builtin = _builtin_for_serve(args.model)  # (path, header), or None
    # The web code needs FastAPI: imported here so every other command (and `import numpynn`) stays light.
    from .atomic import OutputError, check_folder
    from .web.app import create_app
    from .web.blas import one_blas_thread
    from .web.guard import host_names
    from .web.registry import default_models_dir
    from .web.server import listen, make_server

    try:
        sock = listen(args.host, args.port)  # now, so a busy port is one clear line, before anything starts
    except socket.gaierror as error:
        raise UsageError(f"--host {args.host}: not an address of this machine ({error.strerror})") from None
    except OSError as error:
        raise CommandError(f"cannot listen on {args.host}:{args.port} ({error.strerror}); choose another "
                           f"--port") from None
    folder = pathlib.Path(args.models) if args.models else default_models_dir()
    app = create_app(folder, args.model, data_dir=args.data, dataset=args.dataset, token=token,
                     hosts=host_names(args.host, args.allow_host), builtin=builtin and builtin[0])
    one_blas_thread(app)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    n = len(app.state.models.names())
    print(f"numpynn: serving {n} model{'s' * (n != 1)} (folder {folder}) on http://{shown}:{port}/ "
          f"(Ctrl-C to stop)", flush=True)
    print(f"numpynn: scripts that start or stop training send the header X-Numpynn-Token: {app.state.token}",
          flush=True)
    try:
        if not args.models and not folder.exists():  # the default folder, on first use: made, as apps make theirs
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"the models folder {folder} could not be made ({error.strerror}); give "
                                  f"another with --models") from None
        check_folder(folder, f"--models {folder}", may_create=True)
    except OutputError as error:  # the page still reads digits; only the Learn tab needs to write
        print(f"numpynn: warning: {error}; until then the Learn tab cannot save its runs", file=sys.stderr)
    if builtin is not None:
        from .models import builtin_label

        first = "model:" if args.model is None else f"models: {args.model} first, then the"
        print(f"{first} {builtin_label(builtin[1])}", file=sys.stderr, flush=True)
    if not ipaddress.ip_address(host).is_loopback:
        print(f"numpynn: warning: listening on {host}: other machines can open the page and start training "
              f"runs; use --host 127.0.0.1 to keep it to this machine", file=sys.stderr)
    make_server(app, say=lambda line: print(line, file=sys.stderr, flush=True)).run(sockets=[sock])
    return 0


def _builtin_for_serve(model):
    """(path, header) of the built-in model for `numpynn serve`, loaded now so that a damaged one fails in one
    line before anything starts; None if it is missing or damaged and MODEL was given (MODEL is enough)."""
    from .serialize import ModelFileError, load_model

    try:
        path = _builtin()
        return path, load_model(path)[1]
    except (CommandError, ModelFileError) as error:
        if model is None:
            raise CommandError(str(error)) from None
        return None


EXPORT_TOLERANCE = 1e-4  # the most onnxruntime may differ from numpynn on the check batch: float32 rounding is ~1e-6


def cmd_export(args) -> int:
    """The model as ONNX (numpynn/export.py), checked in onnxruntime when it is installed, then written whole."""
    import pathlib

    from .export import OPSET, ExportError, check_batch, compare_with_onnxruntime, require_onnx, save_onnx, to_onnx

    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.model).with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise UsageError(f"--out {out}: ONNX files end in .onnx; choose a name like model.onnx")
    _output_folder(out.parent, "--out", may_create=False, value=out)
    try:
        require_onnx()  # before the model is read: without onnx there is nothing to do
    except ExportError as error:
        raise CommandError(str(error)) from None
    model, header = _load_model(args.model)
    try:
        proto = to_onnx(model, header)
    except ExportError as error:
        raise CommandError(f"{args.model}: {error}") from None
    X = check_batch()
    difference = compare_with_onnxruntime(proto, model, X)
    if difference is not None and max(difference["logits"], difference["probabilities"]) > EXPORT_TOLERANCE:
        raise CommandError(f"onnxruntime {difference['onnxruntime']} disagrees with numpynn by up to "
                           f"{difference['logits']:.2g} in the logits; nothing was written (a bug in numpynn's "
                           f"exporter: please report it)")
    save_onnx(proto, out)
    print(f"Wrote {out}  (ONNX opset {OPSET}, {out.stat().st_size:,} bytes): input pixels (N, {X.shape[1]}) "
          f"float32, outputs logits and probabilities")
    if difference is None:
        print("Not checked: onnxruntime is not installed (pip install onnxruntime to compare it with numpynn)")
    else:
        print(f"Checked with onnxruntime {difference['onnxruntime']} on {len(X)} check images (black, white, random "
              f"pixels): max |difference| from numpynn {difference['logits']:.1e} in the logits, "
              f"{difference['probabilities']:.1e} in the probabilities")
    return 0


def cmd_examples(args) -> int:
    """numpynn examples list | delete ID | delete --all | export DIR: the digits stored from the page."""
    import pathlib

    import numpy as np

    from . import extra_data
    from .examples_db import Examples, ExamplesError
    from .web.registry import default_models_dir

    if args.models is not None and not pathlib.Path(args.models).is_dir():
        raise UsageError(f"--models {args.models}: no such folder; give the folder `numpynn serve` uses")
    store = Examples(pathlib.Path(args.models) if args.models else default_models_dir())
    if args.all and args.action != "delete":
        raise UsageError("--all goes with delete: numpynn examples delete --all")
    try:
        if args.action == "list":
            if args.target is not None:
                raise UsageError(f"list takes no argument, not {args.target!r}")
            rows, counts = store.rows(), store.counts()
            if args.json:
                print(json.dumps({"database": str(store.path), "counts": counts, "examples": rows}))
                return 0
            for row in rows:
                guess = "-" if row["predicted"] is None else row["predicted"]
                print(f"{row['id']:>6}  label {row['label']}  model said {guess}  {row['created']}  {row['model']}")
            print(f"{sum(counts)} example{'s' * (sum(counts) != 1)} in {store.path}; per label 0-9: "
                  f"{' '.join(map(str, counts))}")
        elif args.action == "delete":
            if args.all == (args.target is not None):
                raise UsageError("give one example's ID (from `numpynn examples list`) or --all")
            if args.all:
                print(f"Deleted {store.delete_all()} examples from {store.path}")
            else:
                if not args.target.isdigit():
                    raise UsageError(f"ID {args.target!r}: give a number from `numpynn examples list`")
                if not store.delete(int(args.target)):
                    raise CommandError(f"no example {args.target} in {store.path} (see `numpynn examples list`)")
                print(f"Deleted example {args.target}")
        else:
            if args.target is None:
                raise UsageError("export needs a folder: numpynn examples export DIR")
            folder = _output_folder(args.target, "export", may_create=True)
            images, labels = store.arrays()
            if not len(labels):
                raise CommandError(f"no examples in {store.path}; confirm or correct some answers on the page's "
                                   f"Draw tab first")
            _make_folder(folder)
            paths = extra_data.export(folder, images, labels)
            print(f"Wrote {len(labels)} examples to {paths[0]} and {paths[1]} (per label 0-9: "
                  f"{' '.join(map(str, np.bincount(labels, minlength=10)))}); train with "
                  f"`numpynn train --extra-data {folder}`")
    except ExamplesError as error:
        raise CommandError(str(error)) from None
    return 0


MIN_CALIBRATION = 100  # images no member trained on, the fewest numpynn ensemble fits a temperature on


def cmd_ensemble(args) -> int:
    """Load each member (each must be a model file of the same dataset), average them, score the test set, save."""
    import pathlib

    from .data import load_raw
    from .ensemble import Ensemble
    from .serialize import ModelFileError, save_ensemble
    from .train import calibrate_and_choose_rule, calibration_error, evaluate

    out = pathlib.Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out {out}: model files end in .npz; choose a name like ensemble.npz")
    if len(args.models) < 2:
        raise UsageError(f"an ensemble needs two or more model files; {len(args.models)} given")
    _output_folder(out.parent, "--out", may_create=False, value=out)
    members, about, datasets, headers = [], [], set(), []
    for path in args.models:
        model, header = _load_model(path)
        if header.get("kind") != "model":
            raise CommandError(f"{path}: a checkpoint, not a model file (use the model .npz it belongs to)")
        if "members" in header:
            raise CommandError(f"{path}: already an ensemble; list its member files instead")
        datasets.add(header.get("dataset", {}).get("name", args.dataset))
        members.append(model)
        headers.append(header)
        about.append({"file": pathlib.Path(path).name,
                      "metrics": {k: v for k, v in header.get("metrics", {}).items() if k.startswith("test_")}})
    if len(datasets) > 1:
        raise CommandError(f"the members were trained on different datasets ({', '.join(sorted(datasets))}); "
                           "an ensemble's members must read the same kind of images")
    try:
        ensemble = Ensemble(members)
    except OptionError as error:
        raise CommandError(str(error)) from None
    dataset = datasets.pop()
    x_train, y_train, x_test, y_test = load_raw(dataset, args.data, progress=False)
    X, y = x_test.reshape(len(x_test), -1).astype("float32") / 255, y_test.astype("int64")  # (N, 784), (N,)
    extra, fitted = {}, {}
    unseen = _unseen_by_all(headers, len(x_train))  # training images that are in every member's dev set
    note = (f"not calibrated as a whole: {len(unseen)} images are in every member's dev set, fewer than the "
            f"{MIN_CALIBRATION} needed")
    if len(unseen) >= MIN_CALIBRATION:
        X_unseen = x_train[unseen].reshape(len(unseen), -1).astype("float32") / 255  # (n, 784)
        fitted, extra["not_sure"] = calibrate_and_choose_rule(ensemble, X_unseen, y_train[unseen].astype("int64"),
                                                              X, y)
        note = (f"temperature {ensemble.temperature:.3f}, fitted on the {len(unseen):,} training images no member "
                f"trained on (test ECE {100 * fitted['test_ece_uncalibrated']:.2f}% at temperature 1)")
    test_loss, test_accuracy = evaluate(ensemble, X, y)
    test_ece = fitted["test_ece"] if fitted else calibration_error(ensemble, X, y)
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss, "test_ece": test_ece,
               "members": len(members), "calibration_images": len(unseen)}
    from . import __version__

    header = {"numpynn_version": __version__, "dataset": {"name": dataset}, "metrics": metrics, **extra,
              "preprocessing": {"input": "28x28 greyscale, white ink on black", "flatten": 784, "scale": "pixel / 255"}}
    try:
        save_ensemble(out, ensemble, about, header)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    for path, model in zip(args.models, members):
        print(f"  {path}: test accuracy {100 * float((model.predict(X) == y).mean()):.2f}%")
    print(f"Ensemble of {len(members)}: test accuracy {100 * test_accuracy:.2f}% ({len(y):,} test images); "
          f"test ECE {100 * metrics['test_ece']:.2f}%, {note}")
    print(f"Model: {out}")
    return 0


def _unseen_by_all(headers: list[dict], n_train: int):
    """Indices of the training images in every member's dev set, from each header's dev_size and split_seed
    (data.in_every_dev_set): images no member trained on. Empty if a header does not say its split."""
    import numpy as np

    from .data import in_every_dev_set

    splits = []
    for header in headers:
        split = header.get("dataset", {})
        size, seed = split.get("dev_size"), split.get("split_seed")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (size, seed)):
            return np.zeros(0, np.int64)
        splits.append((size, seed))
    return in_every_dev_set(splits, n_train)


def cmd_sweep(args) -> int:
    """numpynn sweep: the search itself is numpynn/sweep.py; this reads the flags and prints the outcome."""
    import pathlib

    from .sweep import SweepError, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: use 1 or more")
    out = pathlib.Path(args.out)
    _output_folder(out, "--out")
    try:
        result = run_sweep(args.space, out, address=args.address, workers=args.workers, data=args.data,
                           dataset=args.dataset, resume=args.resume)
    except SweepError as error:
        raise CommandError(str(error)) from None
    except OptionError as error:
        raise CommandError(f"{args.space}: {error}") from None
    best = result["best"]
    print(f"{len(result['trials'])} trials in {result['seconds']:.0f} s; best dev accuracy "
          f"{100 * best['best_dev_accuracy']:.2f}% (trial {best['trial']}, {best['epochs']} epochs)")
    print(f"Results: {out / 'results.csv'}, {out / 'results.json'}, {out / 'trials.png'}; best model: "
          f"{out / 'best.npz'} (test accuracy {100 * result['best_test_accuracy']:.2f}%)")
    return 0


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
