"""Training from the page: one run at a time, in a background thread, told to the page as a list of events.

A run is `train.train_and_save`, the workflow `numpynn train` uses, driven through fit's hooks: on_batch and
on_epoch append events (the page draws its curves from them), should_stop ends the run when the page presses
Stop or the time limit passes. When the run ends, finished or stopped, its model is scored on the test set and
saved into the models folder, where the Draw tab finds it.

Page runs are bounded (LIMITS): a client cannot ask for a network or a run so large that it takes the machine
for hours. A run also stops by itself after MAX_SECONDS, keeping what it learned.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
import threading
import time
import traceback

from .. import serialize
from ..atomic import OutputError, check_folder
from ..checks import OptionError
from ..data import DEV_SIZE, DataError, load_mnist
from ..config import OPTIMIZERS, PRESETS, TrainConfig, make_config
from ..examples_db import Examples, ExamplesError
from ..extra_data import REPEAT, Extra
from ..train import Run, TrainingDiverged, start_from, train_and_save

MAX_SECONDS = 15 * 60  # a page run stops by itself after this long; the model trained so far is saved
# When the server stops, how long it waits for a stopped run to be scored and saved. A run stops after its
# current batch (a fraction of a second, even for the cnn preset); scoring the test set and writing the file take
# a few seconds more on a busy 2-core machine.
SAVE_WAIT = 60.0
MAX_POINTS = 500  # batch points per run: the curves stay light however many batches there are
# What a page run may ask for, the one list of it (app.py's TrainOptions is made from it): each option's JSON
# type, and (low, high) for numbers or the choices for names. Every option left out keeps the preset's value
# (epochs: DEFAULT_EPOCHS, as some presets' own are above the page's limit).
OPTIONS = {
    "preset": (str, tuple(PRESETS)),
    "optimizer": (str, tuple(OPTIMIZERS)),
    "hidden": (list[int], (1, 1024)),  # each width; at most MAX_LAYERS of them
    "channels": (list[int], (1, 64)),  # each cnn block's channels; at most 2 blocks
    "lr": (float, (1e-6, 1.0)),
    "epochs": (int, (1, 20)),
    "batch_size": (int, (16, 1024)),
    "train_images": (int, (100, 60_000)),  # the first n of the shuffled training split (fewer: a quicker run)
    "dev_size": (int, (10, DEV_SIZE)),
    "seed": (int, (0, 2**31 - 1)),
    # Your handwriting: train on the examples stored from the Draw tab too (a share held out and scored), and
    # start from a listed model's weights (fine-tuning; its network must be the one the options build).
    "include_examples": (bool, (False, True)),
    "init_from": (str, ()),  # a name from GET /api/models
    "examples_repeat": (int, (1, 100)),  # times each of your examples is added (default: extra_data.REPEAT)
}
# What a run does rather than a TrainConfig value: Trainer.start reads these, parse_request the others.
RUN_OPTIONS = ("include_examples", "init_from", "examples_repeat")
LIMITS = {name: allowed for name, (_, allowed) in OPTIONS.items()}
MAX_LAYERS = 3
DEFAULT_EPOCHS = 5
# What the page's form starts from for each preset (TrainConfig's defaults with the preset's changes).
PRESET_VALUES = {name: {key: getattr(make_config(name), key) for key in
                        ("architecture", "hidden", "channels", "optimizer", "lr", "batch_size")}
                 for name in PRESETS}


class Busy(Exception):
    """A run is going already: the page gets a 409 with this message."""


class NotWritable(Exception):
    """The models folder cannot take a run's model: the run is refused before it starts (409, this message)."""


def parse_request(options: dict) -> tuple[TrainConfig, int | None]:
    """A page's training options -> (TrainConfig, train_images or None). ValueError with one line naming the
    option, the problem and the allowed range."""
    if not isinstance(options, dict):
        raise ValueError("send the training options as a JSON object, e.g. {\"preset\": \"mlp\", \"epochs\": 3}")
    unknown = sorted(set(options) - set(LIMITS))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a training option of the page: use {', '.join(LIMITS)}")
    values = {}
    for name, value in options.items():
        allowed = LIMITS[name]
        if name in ("preset", "optimizer"):
            if value not in allowed:
                raise ValueError(f"{name} = {value!r}: choose one of {', '.join(allowed)}")
        elif name in ("hidden", "channels"):
            most = MAX_LAYERS if name == "hidden" else 2
            value = [value] if _is_int(value) else value
            if (not isinstance(value, list) or not 1 <= len(value) <= most
                    or not all(_is_int(v) and allowed[0] <= v <= allowed[1] for v in value)):
                raise ValueError(f"{name} = {value!r}: give 1 to {most} widths, each from {allowed[0]} to "
                                 f"{allowed[1]}, e.g. [128]")
            value = tuple(value)
        else:
            number = _is_int(value) or (name == "lr" and isinstance(value, float) and math.isfinite(value))
            if not number or not allowed[0] <= value <= allowed[1]:
                kind = "a number" if name == "lr" else "a whole number"
                raise ValueError(f"{name} = {value!r}: use {kind} from {allowed[0]:g} to {allowed[1]:g}")
            value = float(value) if name == "lr" else value
        values[name] = value
    train_images = values.pop("train_images", None)
    values.setdefault("epochs", DEFAULT_EPOCHS)
    preset = values.pop("preset", "mlp")
    warmup = PRESETS[preset].get("warmup_epochs", 0.0)
    if warmup >= values["epochs"]:  # the page has no warm-up field: a run too short for the preset's gets half
        values["warmup_epochs"] = values["epochs"] / 2
    return make_config(preset, **values), train_images


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Trainer:
    """The one training run the server allows at a time, and the events of the latest run."""

    def __init__(self, models, data_dir=None, dataset: str = "mnist", max_seconds: float = MAX_SECONDS):
        self.models, self.data_dir, self.dataset, self.max_seconds = models, data_dir, dataset, max_seconds
        self.state = "idle"  # idle, loading, training, saving, done, stopped, failed
        self.events: list[dict] = []  # the latest run's, each with an "id" that grows across runs
        self._next_id = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._splits = None  # (key, Splits): the data stays loaded between runs
        # Called on start (in the caller's thread, before the run's thread starts) and at the run's end (in the
        # run's thread): how app.one_blas_thread gives a run every BLAS thread and takes them back.
        self.on_start = self.on_end = None
        self.options: dict = {}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, options: dict) -> dict:
        options = options if isinstance(options, dict) else {}
        config, train_images = parse_request({k: v for k, v in options.items() if k not in RUN_OPTIONS})  # 422s
        yours = self._yours(options, config)  # ValueError: the page's 422 too
        self._check_folder()
        with self._lock:
            if self.running:
                raise Busy(f"a training run is going already ({self.state}); stop it or wait until it ends, "
                           f"then start another")
            self.events, self.state, self.options = [], "loading", dict(options)
            self._stop.clear()
            self._emit({"type": "start", "config": dataclasses.asdict(config), "train_images": train_images})
            if self.on_start:
                self.on_start()
            self._thread = threading.Thread(target=self._run, args=(config, train_images, yours), daemon=True,
                                            name="numpynn-learn")
            self._thread.start()
        return self.status()

    def stop(self) -> dict:
        if not self.running:
            raise Busy("no training run is going; start one first")
        self._stop.set()
        return self.status()

    def stop_for_shutdown(self) -> None:
        """Stop a run, if one is going (the server is shutting down); its model is saved as for stop()."""
        self._stop.set()

    def close(self, timeout: float = SAVE_WAIT) -> None:
        """Stop a run (the server is shutting down) and wait, up to `timeout` seconds, for it to save."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def outcome(self) -> str:
        """One line on how the latest run ended, for the server's console."""
        with self._lock:
            last = self.events[-1] if self.events else {}
        if self.running:
            return f"the training run did not finish saving within {SAVE_WAIT:g} s; its model is lost"
        if last.get("state") in ("stopped", "done"):
            return f"the training run's model is saved as {self.models.folder / last['model']}.npz"
        return f"the training run ended without a model: {last.get('message', last.get('state', 'no run'))}"

    def _yours(self, options: dict, config: TrainConfig) -> dict:
        """The run options about your handwriting, checked now so a mistake is the start's 422: {"run": a Run
        holding the chosen model's weights, or None; "examples": Extra (your examples, split), or None}."""
        include, name = options.get("include_examples", False), options.get("init_from")
        repeat = options.get("examples_repeat", REPEAT)
        if not isinstance(include, bool):
            raise ValueError(f"include_examples = {include!r}: use true or false")
        low, high = LIMITS["examples_repeat"]
        if not (_is_int(repeat) and low <= repeat <= high):
            raise ValueError(f"examples_repeat = {repeat!r}: use a whole number from {low} to {high}")
        run = extra = None
        if name is not None:
            if not isinstance(name, str) or not name or len(name) > 200:
                raise ValueError("init_from must be a model's name from GET /api/models")
            try:
                entry = self.models.get(name)
            except KeyError as error:
                raise ValueError(f"init_from: {error.args[0]}") from None
            run = Run.start(config)
            start_from(run, entry.model, f"init_from {entry.name}")  # ValueError when the networks differ
        if include:
            try:
                images, labels = Examples(self.models.folder).arrays()
            except ExamplesError as error:
                print(f"numpynn: {error}", file=sys.stderr)
                raise ValueError(f"your examples cannot be read ({str(error).split(': ', 1)[-1]})") from None
            if len(labels) < 2:
                raise ValueError(f"include_examples: {len(labels)} example{'s' * (len(labels) != 1)} stored; "
                                 f"confirm or correct at least 2 answers in the Draw tab first")
            extra = Extra.of(images, labels, config.seed)
            try:  # now, as the start's 422, not from the training thread once MNIST has loaded
                extra.check_repeat(repeat)
            except OptionError as error:
                raise ValueError(str(error.renamed("examples_repeat"))) from None
        return {"run": run, "examples": extra, "repeat": repeat}

    def _check_folder(self) -> None:
        """Refuse a run before it starts if its model could not be saved at its end."""
        folder = self.models.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)  # as `serve --help` says: created for the first run
        except OSError:
            pass  # check_folder says what is wrong
        try:
            check_folder(folder, "the models folder")
        except OutputError as error:
            print(f"numpynn: {error}", file=sys.stderr)  # the path for the server's user, not for the page
            raise NotWritable("the server's models folder is not writable, so the run's model could not be saved; "
                       "restart numpynn serve with --models DIR (a folder it may write into)") from None

    def status(self) -> dict:
        with self._lock:
            last = self.events[-1]["id"] if self.events else None
            return {"state": self.state, "running": self.running, "options": self.options, "last_event": last,
                    "limits": LIMITS, "max_layers": MAX_LAYERS, "default_epochs": DEFAULT_EPOCHS,
                    "max_seconds": self.max_seconds, "presets": PRESET_VALUES}

    def events_after(self, last_id: int) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["id"] > last_id]

    def _emit(self, event: dict) -> None:
        """Append an event with the next id. Callers hold self._lock."""
        event["id"] = self._next_id
        self._next_id += 1
        self.events.append(event)

    def _set(self, state: str, **extra) -> None:
        with self._lock:
            self.state = state
            self._emit({"type": "state", "state": state, **extra})

    # ---------------------------------------------------------------------------------------------------
    # The run, in its own thread

    def _run(self, config: TrainConfig, train_images: int | None, yours: dict | None = None) -> None:
        try:
            self._load_and_train(config, train_images, yours or {})
        except DataError as error:  # its message names the server's folders: those stay in the server's log
            print(f"numpynn: the Learn tab's run: {error}", file=sys.stderr)
            self._set("failed", message="the server did not find the MNIST files; restart numpynn serve with "
                                        "--data DIR (its log says where it looked)")
        except OutputError as error:
            print(f"numpynn: the Learn tab's run: {error}", file=sys.stderr)
            self._set("failed", message="the run ended but its model could not be saved into the models folder "
                                        "(the server's log says why); restart numpynn serve with --models DIR")
        except (TrainingDiverged, ValueError, serialize.ModelFileError) as error:
            self._set("failed", message=str(error))
        except Exception as error:  # the page gets one line; the server's log gets the whole story
            traceback.print_exc(file=sys.stderr)
            self._set("failed", message=f"the run failed inside the server ({type(error).__name__}); "
                                        f"see the server's log")
        finally:
            if self.on_end:
                self.on_end()

    def _load_and_train(self, config: TrainConfig, train_images: int | None, yours: dict) -> None:
        splits = self._data(config)
        if train_images is not None and train_images < len(splits.y_train):
            splits = dataclasses.replace(splits, X_train=splits.X_train[:train_images],
                                         y_train=splits.y_train[:train_images])
        self._train(config, splits, yours.get("run"), yours.get("examples"), yours.get("repeat", REPEAT))

    def _data(self, config: TrainConfig):
        key = (self.dataset, config.dev_size, config.seed)
        if self._splits is None or self._splits[0] != key:
            self._splits = None  # free the old arrays before loading new ones
            self._splits = (key, load_mnist(self.dataset, self.data_dir, dev_size=config.dev_size,
                                            seed=config.seed, progress=False))
        return self._splits[1]

    def _train(self, config: TrainConfig, splits, run: Run | None = None, extra: Extra | None = None,
               repeat: int = REPEAT) -> None:
        started_from = run is not None
        run = run if started_from else Run.start(config)
        if extra is not None:  # "before" only for a model that already learned something: a fresh one guesses
            scores = {**extra.summary(), "repeat": repeat, "held_out_accuracy_before":
                      extra.held_out_accuracy(run.model) if started_from else None}
            splits = extra.added_to(splits, repeat)
        batches = math.ceil(len(splits.y_train) / config.batch_size)
        every = max(1, config.epochs * batches // MAX_POINTS)  # batches averaged into one curve point
        window = {"loss": 0.0, "accuracy": 0.0, "n": 0}
        started = time.perf_counter()
        self._set("training", batches_per_epoch=batches, every=every)

        def on_batch(run, loss, accuracy):
            window["loss"] += loss
            window["accuracy"] += accuracy
            window["n"] += 1
            if window["n"] == every:
                with self._lock:
                    self._emit({"type": "batch", "step": run.step, "epoch": run.step / batches,  # in epochs
                                "loss": window["loss"] / every, "accuracy": window["accuracy"] / every})
                window.update(loss=0.0, accuracy=0.0, n=0)

        def on_epoch(run, row):
            with self._lock:
                self._emit({"type": "epoch", **row})

        def should_stop():
            return self._stop.is_set() or time.perf_counter() - started > self.max_seconds

        path = self._new_path(config.preset)
        history, metrics = train_and_save(
            run, splits, path, self.dataset, started=started, on_saving=lambda: self._set("saving"),
            metrics={"train_images": len(splits.y_train)}, header={"trained_by": "numpynn serve (the Learn tab)"},
            on_batch=on_batch, on_epoch=on_epoch, should_stop=should_stop)
        test_accuracy = metrics["test_accuracy"]
        yours = {}
        if extra is not None:
            yours["your_examples"] = {**scores, "held_out_accuracy_after": extra.held_out_accuracy(run.model)}
        self.models.refresh()
        reason = history.stopped
        if reason == "interrupted":
            reason = "stopped from the page" if self._stop.is_set() else f"time limit ({self.max_seconds:g} s)"
        self._set("stopped" if history.stopped == "interrupted" else "done", model=path.stem,
                  test_accuracy=test_accuracy, epochs=run.epoch, reason=reason, **yours)

    def _new_path(self, preset: str) -> pathlib.Path:
        folder = self.models.folder
        stem = f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, n = folder / f"{stem}.npz", 1
        while path.exists():
            n += 1
            path = folder / f"{stem}-{n}.npz"
        return path
