"""The training loop: `fit`, with the run state it carries, its checkpoints and Ctrl-C, and train_and_save.

The loop is the whole story of training in one function, `fit`: shuffle with a seeded generator, cut into
mini-batches, augment them if asked, forward, loss, backward, optimizer step; evaluate the dev set after every
epoch; keep the best weights for early stopping; stop with a clear message if the loss or a weight stops being
finite; write a checkpoint after every epoch, from which `fit` can resume bit for bit. Ctrl-C stops it after the
current batch. `train_and_save` is the workflow `numpynn train` and the web page's Learn tab share: fit, score
the test set, write the model file.

What it leaves out: the options and what they build (config.py), parsing flags and printing progress (cli.py, commands/train.py),
the file format (serialize.py), the math (layers, losses, optim, model). Paths arrive as arguments.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import abstain, analysis, diagnostics, serialize
from .calibrate import calibrate
from .checks import require
from .losses import softmax_cross_entropy
from .model import Sequential, check_generator_state
from .parallel import DataParallel
from .optim import clip_grad_norm, make_schedule
# The configuration's names, also importable from here, as they were before config.py held them.
from .config import (D, K, PRESETS, TrainConfig, applies, augmenter, build_model, build_optimizer,  # noqa: F401
                     config_from_json, make_config)

@dataclass
class History:
    """One row per finished epoch: train loss and accuracy (means over the epoch's batches, as augmented if
    augmenting), dev loss and accuracy (after the epoch), the learning rate at its end, the seconds it took,
    and (unless fit(diagnose=False)) "diagnostics": per layer, gradient norms, update ratios and dead or
    saturated units (diagnostics.Tracker.epoch_row). Rows of older files have no "diagnostics"."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights the model holds at the end (0: none yet)
    stopped: str = ""  # "completed", "early stopping", "interrupted"

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.epochs]


class TrainingDiverged(RuntimeError):
    """The loss or a weight became NaN or infinite."""


def evaluate(model: Sequential, X, y, batch_size: int = 256, Z=None) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in inference mode, in batches to bound memory. The loss is that of
    the probabilities the model states, softmax(Z / T) with its temperature T (1 unless calibrated). Z: the
    model's logits for X when the caller has them already (not computed again)."""
    Z = model.forward_in_batches(X, batch_size) if Z is None else Z  # (N, K) logits; K the model's class count
    loss, _ = softmax_cross_entropy(Z / model.temperature, y, Z.shape[1])
    return loss, float((Z.argmax(axis=1) == y).mean())


@contextmanager
def _deferred_interrupt():
    """Ctrl-C sets a flag instead of raising, so it never lands between two weight updates of one step; the
    loop stops cleanly after the current batch. A second Ctrl-C interrupts at once. (Only the main thread may
    install signal handlers.)"""
    state = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state["stop"]:  # a second Ctrl-C: the user really means it
            raise KeyboardInterrupt
        state["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class Run:
    """Everything that changes while training: with it, training continues exactly where it stopped."""

    model: Sequential
    optimizer: object
    config: TrainConfig
    rng: np.random.Generator  # shuffles the training set, one permutation per epoch
    augment_rng: np.random.Generator  # draws every batch's augmentation (config.augment)
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    history: History = field(default_factory=History)
    best_state: dict | None = None  # the best epoch's model.state_dict(), for early stopping
    best_accuracy: float = -1.0

    @classmethod
    def start(cls, config: TrainConfig, D: int = D, K: int = K) -> "Run":
        # One seed, separate streams: the split uses default_rng(seed) itself (data.load_mnist), the weights,
        # the shuffling and the augmentation each get their own, so none of them echoes another.
        require(config.augment == "none" or math.isqrt(D) ** 2 == D, "augment", config.augment,
                f"augmentation needs square images; {D} inputs are not (use --augment none)")
        model = build_model(config, np.random.default_rng([config.seed, 1]), D, K)
        rng = np.random.default_rng([config.seed, 2])
        return cls(model, build_optimizer(config), config, rng, np.random.default_rng([config.seed, 3]))

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        arrays = serialize.join("model", self.model.state_dict())
        arrays |= serialize.join("optimizer", self.optimizer.state_dict())
        if self.best_state is not None:
            arrays |= serialize.join("best", self.best_state)
        return arrays

    def checkpoint_header(self) -> dict:
        return {
            "kind": "checkpoint",
            "architecture": self.model.spec(),
            "config": _jsonable(self.config),
            "trainer": {
                "epoch": self.epoch,
                "step": self.step,
                "rng": self.rng.bit_generator.state,
                "augment_rng": self.augment_rng.bit_generator.state,
                "history": asdict(self.history),
                "best_accuracy": self.best_accuracy,
            },
        }

    @classmethod
    def resume(cls, arrays: dict, header: dict, epochs: int | None = None, source: str = "checkpoint") -> "Run":
        """Rebuild a Run from a checkpoint's arrays and header (serialize.load_checkpoint checks the file and
        its arrays); `epochs` may extend the run. A config or trainer state that does not fit raises
        serialize.ModelFileError naming `source` and the part that does not fit."""
        part = "config"
        try:
            config = config_from_json(header["config"])
            if epochs is not None:
                config = replace(config, epochs=epochs)
            model = Sequential.from_spec(header["architecture"],  # the checkpoint's own shapes, any D and K
                                         state=serialize.split(arrays, "model"))
            optimizer = build_optimizer(config)
            optimizer.load_state_dict(serialize.split(arrays, "optimizer"))
            part = "training state"
            trainer = header["trainer"]
            rng, augment_rng = np.random.default_rng(), np.random.default_rng([config.seed, 3])
            check_generator_state("its rng", trainer["rng"])
            rng.bit_generator.state = trainer["rng"]
            if "augment_rng" in trainer:  # checkpoints from before augmentation have none, and did not augment
                check_generator_state("its augment_rng", trainer["augment_rng"])
                augment_rng.bit_generator.state = trainer["augment_rng"]
            history = History(**trainer["history"])
            counts = (trainer["epoch"], trainer["step"])
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
                raise ValueError(f"epoch and step must be counts, not {counts}")
            if not (isinstance(history.epochs, list) and all(isinstance(row, dict) for row in history.epochs)
                    and isinstance(history.best_epoch, int) and isinstance(history.stopped, str)):
                raise ValueError("the history is not a list of epochs, a best epoch and how it stopped")
            best_accuracy = trainer["best_accuracy"]
            if not (isinstance(best_accuracy, (int, float)) and not isinstance(best_accuracy, bool)
                    and -1 <= best_accuracy <= 1):  # -1 before the first dev score; NaN fails too
                raise ValueError(f"best_accuracy must be a number from -1 to 1, not {best_accuracy!r:.40}")
        # What a lying header makes these raise; OverflowError: an integer too large for a float or a C field
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            raise serialize.ModelFileError(f"{source}: the {part} in the header does not fit "
                                           f"({type(error).__name__}: {serialize.printable(error)[:200]}); "
                                           "the checkpoint is damaged: start the run afresh") from None
        return cls(model, optimizer, config, rng, augment_rng, epoch=trainer["epoch"], step=trainer["step"],
                   history=history, best_state=serialize.split(arrays, "best") or None,
                   best_accuracy=float(best_accuracy))


def start_from(run: Run, model: Sequential, source: str) -> None:
    """Fine-tuning: give `run` (a fresh Run) the weights of `model`, e.g. a model file's. Weights only: the
    optimizer, the schedule and the temperature start afresh. The two networks must have the same layers and
    shapes; otherwise ValueError, one line naming `source` and both architectures. An ensemble has no one
    network to start from: ValueError too."""
    if not isinstance(model, Sequential):
        members = len(getattr(model, "members", []))
        models = "1 model (with test-time shifts)" if members == 1 else f"{members} models"
        raise ValueError(f"{source}: an ensemble of {models}, which cannot be a starting point; "
                         "start from one of its members' model files, or another model file")

    def shape(m):
        return [layer.get("type") for layer in m.spec()], m.state_shapes()

    if shape(model) != shape(run.model):
        def said(m):
            shapes = m.state_shapes()
            return "weights " + ", ".join("x".join(map(str, v)) for k, v in shapes.items() if k.endswith(".W"))

        raise ValueError(f"{source}: its network ({said(model)}) is not this run's ({said(run.model)}); choose the "
                         f"same preset and widths as the model was trained with")
    run.model.load_state_dict(model.state_dict())


def fit(run: Run, splits, *, checkpoint=None, progress=None, log=None, on_batch=None, on_epoch=None,
        should_stop=None, diagnose: bool = True) -> History:
    """Train `run` for its remaining epochs on `splits`: X_train (N, D) float32, y_train (N,) int64 in [0, K),
    and X_dev, y_dev alike (or None: then there is no dev score, and no early stopping). With config.augment,
    each training batch is transformed afresh (augment.py, drawing from run.augment_rng) before the forward
    pass; the dev set is scored as it is.

    checkpoint: a path; after every epoch the whole Run is written there (atomically).
    progress:   a factory `progress(epoch, n_batches)` giving a bar with update(n) and close() (tqdm's
                interface), updated once per batch; None shows nothing. Numbers on the bar are the caller's:
                on_batch gives them.
    log:        a function taking one line of text per epoch, or None.
    on_batch:   called as on_batch(run, loss, accuracy) after every optimizer step (the batch's own numbers).
    on_epoch:   called as on_epoch(run, row) after every epoch, once its History row exists (plots, live pages).
    should_stop: a function of no arguments, asked after every batch; True stops the run as Ctrl-C does
                (how another thread, such as a web server's, stops a run it started).
    diagnose:   record each epoch's diagnostics (diagnostics.py) in its History row under "diagnostics":
                gradient norms and update ratios from every diagnostics.EVERY-th step, and dead or saturated
                units on the first diagnostics.PROBE dev images (training images without a dev set)."""
    config, model, optimizer = run.config, run.model, run.optimizer
    X, y = splits.X_train, splits.y_train
    K = model.layers[-1].D_out
    has_dev = splits.X_dev is not None and len(splits.X_dev) > 0
    N = len(y)
    batches_per_epoch = math.ceil(N / config.batch_size)
    schedule = make_schedule(
        config.schedule,
        config.lr,
        total_steps=config.epochs * batches_per_epoch,
        warmup_steps=round(config.warmup_epochs * batches_per_epoch),
        step_size=config.step_epochs * batches_per_epoch,
        gamma=config.gamma,
    )
    params = model.params()
    transform = augmenter(config)
    tracker = diagnostics.Tracker(model) if diagnose else None  # reads grads and weights; changes nothing
    X_probe = (splits.X_dev if has_dev else X)[: diagnostics.PROBE]  # a fixed sample: no generator is drawn from
    # threads > 1: each batch runs as that many slices at once, each through a replica of the model (parallel.py)
    parallel = DataParallel(model, config.threads, X.shape[1]) if config.threads > 1 else contextlib.nullcontext()
    # A diverging run overflows somewhere before the checks below catch it; they report it in one clear
    # line, so NumPy's overflow warnings would only be noise in front of it.
    with _deferred_interrupt() as interrupt, np.errstate(over="ignore", invalid="ignore"), parallel as step:
        while run.epoch < config.epochs and not interrupt["stop"]:
            started = time.perf_counter()
            order = run.rng.permutation(N)  # (N,)
            bar = progress(run.epoch + 1, batches_per_epoch) if progress else None
            loss_sum = correct = seen = 0
            blas = step.blas_per_thread() if step else contextlib.nullcontext()  # one BLAS thread per slice
            with blas:  # left before the dev set is scored, which gets every BLAS thread
                for start in range(0, N, config.batch_size):
                    batch = order[start : start + config.batch_size]
                    X_batch = X[batch] if transform is None else transform(X[batch], run.augment_rng)  # (B, D)
                    if step is None:
                        Z = model.forward(X_batch, train=True)  # (B, K)
                        loss, dZ = softmax_cross_entropy(Z, y[batch], K, config.label_smoothing)
                        model.backward(dZ, need_dX=False)
                        grads = model.grads()
                    else:  # the same forward, loss and backward, on config.threads slices at once
                        loss, Z, grads = step(X_batch, y[batch], K, config.label_smoothing)
                    if not math.isfinite(loss):  # before the step: the weights stay those of the last good one
                        raise TrainingDiverged(_diverged("the loss", loss, run, config))
                    measured = tracker is not None and tracker.samples(start // config.batch_size)
                    if measured:
                        tracker.before_step(grads)  # the loss's gradient, before any clipping
                    if config.clip_norm > 0:
                        grads, _ = clip_grad_norm(grads, config.clip_norm)
                    optimizer.lr = schedule(run.step)  # the schedule sets the rate; the step uses the optimizer's
                    optimizer.step(params, grads)
                    if measured:
                        tracker.after_step()  # what the step changed
                    run.step += 1
                    loss_sum += loss * len(batch)
                    hits = int((Z.argmax(axis=1) == y[batch]).sum())
                    correct += hits
                    seen += len(batch)
                    if bar:
                        bar.update(1)
                    if on_batch:
                        on_batch(run, loss, hits / len(batch))
                    if should_stop is not None and should_stop():
                        interrupt["stop"] = True
                    if interrupt["stop"]:
                        break
            if bar:
                bar.close()
            if interrupt["stop"]:
                run.history.stopped = "interrupted"
                break
            if not all(np.isfinite(p).all() for p in params):
                raise TrainingDiverged(_diverged("a weight", float("nan"), run, config))
            run.epoch += 1
            dev_loss, dev_accuracy = evaluate(model, splits.X_dev, splits.y_dev) if has_dev else (None, None)
            diagnosed = tracker.epoch_row(model, X_probe) if tracker is not None else None
            row = {
                "epoch": run.epoch,
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "dev_loss": dev_loss,
                "dev_accuracy": dev_accuracy,
                "lr": optimizer.lr,
                "seconds": time.perf_counter() - started,
            }
            if diagnosed is not None:
                row["diagnostics"] = diagnosed
            run.history.epochs.append(row)
            if has_dev and dev_accuracy > run.best_accuracy:
                run.best_accuracy, run.history.best_epoch = dev_accuracy, run.epoch
                run.best_state = copy.deepcopy(model.state_dict()) if config.patience else None
            if log:
                log(_epoch_line(row, config.epochs))
            if on_epoch:
                on_epoch(run, row)
            stop_early = has_dev and config.patience and run.epoch - run.history.best_epoch >= config.patience
            if stop_early or run.epoch == config.epochs:
                run.history.stopped = "early stopping" if stop_early else "completed"
            if checkpoint is not None:
                serialize.save(checkpoint, run.checkpoint_arrays(), run.checkpoint_header())
            if stop_early:
                break
    if config.patience and run.best_state is not None:
        model.load_state_dict(run.best_state)  # early stopping keeps the best epoch's weights
    elif run.history.stopped != "interrupted":
        run.history.best_epoch = run.epoch
    return run.history


def train_and_save(run: Run, splits, path, dataset: str, *, started: float | None = None, on_saving=None,
                   metrics: dict | None = None, header: dict | None = None, **hooks) -> tuple[History, dict]:
    """Train `run` with fit, score it on the test set (and the dev set, if any), and write it as a model file
    at `path` (serialize.save_model, atomically). Returns (history, metrics). What `numpynn train` and the
    web page's Learn tab both do; an interrupted run is saved too, with the weights it reached.

    started:   a time.perf_counter() value that metrics["seconds"] counts from (default: now).
    on_saving: called with no arguments once training has ended, before scoring and saving (the page's state).
    metrics:   more entries for the metrics (e.g. train_images); header: more entries for the file's header.
    **hooks:   fit's keyword arguments: checkpoint, progress, log, on_batch, on_epoch, should_stop, diagnose.
    Raises TrainingDiverged (nothing is saved), and atomic.OutputError if a checkpoint or the file cannot be
    written."""
    started = time.perf_counter() if started is None else started
    history = fit(run, splits, **hooks)
    if on_saving is not None:
        on_saving()
    has_dev = splits.X_dev is not None and len(splits.X_dev) > 0
    model, scores, header = run.model, {}, dict(header or {})
    if run.config.calibrate and has_dev:  # the dev set fits T and the rule; the test set only judges them
        scores, header["not_sure"] = calibrate_and_choose_rule(model, splits.X_dev, splits.y_dev, splits.X_test,
                                                               splits.y_test)
    elif has_dev:  # when to answer "not sure", with the probabilities as they are
        header["not_sure"] = abstain.choose_rule(model.predict_proba(splits.X_dev), splits.X_dev)
    else:
        scores["test_ece"] = calibration_error(model, splits.X_test, splits.y_test)
    test_loss, test_accuracy = evaluate(model, splits.X_test, splits.y_test)
    dev_loss, dev_accuracy = evaluate(model, splits.X_dev, splits.y_dev) if has_dev else (None, None)
    scores.setdefault("test_ece", calibration_error(model, splits.X_test, splits.y_test))
    scores = {
        "dev_accuracy": dev_accuracy, "dev_loss": dev_loss, "test_accuracy": test_accuracy, "test_loss": test_loss,
        **scores,
        "epochs": run.epoch, "best_epoch": history.best_epoch, "stopped": history.stopped,
        "seconds": time.perf_counter() - started, **(metrics or {}),
    }
    serialize.save_model(path, run.model, model_header(run.config, history, scores, dataset, **header))
    return history, scores


def calibrate_and_choose_rule(model, X_dev, y_dev, X_test, y_test, Z_test=None) -> tuple[dict, dict]:
    """What follows training: fit the model's temperature on held-out images (calibrate.py), choose the "not
    sure" rule on them with the probabilities as now stated (abstain.py), and measure the test set's expected
    calibration error before and after. Used by numpynn train, numpynn calibrate and numpynn ensemble.
    Z_test: the model's logits for X_test, if the caller has them. Returns ({temperature,
    test_ece_uncalibrated, test_ece}, the rule)."""
    model.temperature = 1.0  # fitted afresh, not on top of an earlier T
    before = calibration_error(model, X_test, y_test, Z=Z_test)
    T = calibrate(model, X_dev, y_dev)
    rule = abstain.choose_rule(model.predict_proba(X_dev), X_dev)
    return {"temperature": T, "test_ece_uncalibrated": before,
            "test_ece": calibration_error(model, X_test, y_test, Z=Z_test)}, rule


def calibration_error(model, X, y, n_bins: int = 10, Z=None) -> float:
    """The expected calibration error of the model's probabilities on (X, y), in n_bins bins, as the report
    draws it (analysis.expected_calibration_error). Z: the model's logits for X, if the caller has them."""
    P = model.predict_proba(X) if Z is None else model.probabilities(Z)  # (N, K)
    return analysis.expected_calibration_error(P.max(axis=1), P.argmax(axis=1) == y, n_bins)


def model_header(config: TrainConfig, history: History, metrics: dict, dataset: str, **extra) -> dict:
    """The header of a model file written after training (serialize.save_model adds the architecture and the
    format): which numpynn, data, split and preprocessing, the config, the final metrics and the history."""
    from . import __version__

    return {
        "numpynn_version": __version__,
        "dataset": {"name": dataset, "dev_size": config.dev_size, "split_seed": config.seed},
        "preprocessing": {"input": "28x28 greyscale, white ink on black", "flatten": 784, "scale": "pixel / 255"},
        "config": asdict(config),
        "metrics": metrics,
        "history": asdict(history),
        **extra,
    }


def _epoch_line(row: dict, epochs: int) -> str:
    dev = f" | dev loss {row['dev_loss']:.4f} acc {row['dev_accuracy']:.4f}" if row["dev_loss"] is not None else ""
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"{dev} | {row['seconds']:.1f} s")


def _diverged(what: str, value: float, run: Run, config: TrainConfig) -> str:
    return (f"{what} became {value} at epoch {run.epoch + 1}, step {run.step + 1}; training stopped (the last "
            f"checkpoint, if any, is intact). Try a lower learning rate, e.g. lr = {config.lr / 10:g} (--lr)")


def _jsonable(config: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))
