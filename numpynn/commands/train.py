"""numpynn train: options (defaults < preset < --config < flags), the run (numpynn/train.py), its progress bar,
and what is saved and printed at the end."""
from __future__ import annotations

import dataclasses
import json
import time

from ..atomic import write_json_atomically
from ..checks import OptionError
from ..config import TrainConfig
from ..data import load_mnist
from .common import CommandError, UsageError, flag_error, load_model_file, make_folder, output_folder


def train_config(args):
    """Defaults < preset < --config FILE < typed flags."""
    from ..config import NotAnOption, make_config

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    typed = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values = {**(_read_toml(args.config) if args.config else {}), **typed}
    try:
        return make_config(values.pop("preset", "mlp"), **values)
    except NotAnOption as error:  # a name in the --config file: it has no flag to name
        raise UsageError(f"--config {args.config}: {error}") from None
    except OptionError as error:  # named as the user gave it: a flag typed, or a line of the --config file
        if args.config and error.name not in typed:
            raise UsageError(f"--config {args.config}: {error}") from None
        raise flag_error(error) from None


def _read_toml(path) -> dict:
    """The options of a --config file: its [train] table, or the whole file."""
    from ..config import TomlFileError, read_toml

    try:
        data = read_toml(path)
    except TomlFileError as error:
        raise UsageError(f"--config {path}: {error}") from None
    options = data.get("train", data)
    if not isinstance(options, dict):
        raise UsageError(f"--config {path}: train must be a section, [train], not a value")
    return options


def cmd_train(args) -> int:
    import pathlib

    from tqdm import tqdm

    from .. import serialize
    from ..atomic import OutputError
    from ..train import Run, TrainingDiverged, train_and_save

    started = time.perf_counter()
    out = _npz_file(args.out, "--out")  # first: the default checkpoint is named after it
    checkpoint = _npz_file(args.checkpoint, "--checkpoint") if args.checkpoint else \
        out.with_name(out.stem + ".ckpt.npz")
    output_folder(checkpoint.parent, "--checkpoint", may_create=False, value=checkpoint)
    if args.resume:
        typed = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
        if set(typed) - {"epochs"} or args.config:
            raise UsageError("with --resume the checkpoint's options are used; only --epochs may change")
        try:  # every check of the file is in the loader; a bad checkpoint is one line, exit 1
            arrays, header = serialize.load_checkpoint(args.resume)
            run = Run.resume(arrays, header, source=args.resume)
        except serialize.ModelFileError as error:
            raise CommandError(str(error)) from None
        if hasattr(args, "epochs"):  # checked as the flag it is: a wrong --epochs is not the checkpoint's fault
            try:
                run.config = dataclasses.replace(run.config, epochs=args.epochs)
            except OptionError as error:
                raise UsageError(f"--epochs {args.epochs}: {error}") from None
    else:
        try:
            run = Run.start(train_config(args))
        except OptionError as error:  # options that are fine alone but not together, e.g. a cnn with init seed
            raise flag_error(error) from None
    config = run.config
    if args.init_from:
        _init_from(run, args)
    if args.plot:
        output_folder(args.plot, "--plot")
    if args.extra_repeat is not None and not args.extra_data:
        raise UsageError("--extra-repeat goes with --extra-data DIR (the examples to repeat)")
    extra = _extra_data(args, config.seed) if args.extra_data else None  # before MNIST: a typo fails fast
    loading = time.perf_counter()
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=config.dev_size, seed=config.seed, progress=not args.quiet)
    except OptionError as error:  # a dev set as large as the training set
        raise flag_error(error) from None
    load_seconds = time.perf_counter() - loading
    if extra is not None:
        from ..extra_data import REPEAT

        repeat = REPEAT if args.extra_repeat is None else args.extra_repeat
        extra_scores = {**extra.summary(), "repeat": repeat, "held_out_accuracy_before":  # a fresh run's "before"
                        extra.held_out_accuracy(run.model) if (args.init_from or args.resume) else None}  # is chance
        splits = extra.added_to(splits, repeat)
    plot = make_folder(args.plot) / "learning_curves.png" if args.plot else None

    def redraw(run, row=None):  # fit's on_epoch hook: the History so far, so a run can be watched as it goes
        from ..report import diagnostics_of, learning_curves, save_figure, training_diagnostics

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
        write_json_atomically(out.with_name(out.stem + ".metrics.json"), {**metrics, "history": dataclasses.asdict(history)})
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


def _npz_file(path, flag: str):
    """The path of a file that --out or --checkpoint names, checked before any work: it ends in .npz, its
    folder exists and is writable, and it is not itself a folder."""
    import pathlib

    given, path = path, pathlib.Path(path)
    if path.suffix != ".npz":
        raise UsageError(f"{flag} {given or repr(given)}: model and checkpoint files end in .npz")
    output_folder(path.parent, flag, may_create=False, value=path)
    return path


def _init_from(run, args) -> None:
    """--init-from MODEL: the run starts from the model's weights (train.start_from)."""
    from ..train import start_from

    if args.resume:
        raise UsageError("--init-from and --resume both say where the weights come from; give one")
    model, header = load_model_file(args.init_from)
    if header.get("kind") != "model":
        raise CommandError(f"--init-from {args.init_from}: a checkpoint, not a model file (continue a checkpoint "
                           f"with --resume)")
    try:
        start_from(run, model, f"--init-from {args.init_from}")
    except ValueError as error:
        raise CommandError(str(error)) from None


def _extra_data(args, seed: int):
    """--extra-data DIR: your examples (extra_data.read), split by the run's seed into training and held out."""
    from .. import extra_data

    if args.extra_repeat is not None and not 1 <= args.extra_repeat <= extra_data.MAX_REPEAT:
        raise UsageError(f"--extra-repeat {args.extra_repeat}: use 1 to {extra_data.MAX_REPEAT}")
    extra = extra_data.Extra.of(*extra_data.read(args.extra_data), seed)  # DataError: one line, exit 1
    repeat = extra_data.REPEAT if args.extra_repeat is None else args.extra_repeat
    try:  # the copies are made after MNIST loads: their size is checked now
        extra.check_repeat(repeat)
    except OptionError as error:
        raise UsageError(f"--extra-repeat {repeat}: {error.fix}") from None
    return extra


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
