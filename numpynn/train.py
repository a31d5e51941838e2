"""Training: one config dataclass with every default, the mini-batch loop, and its History.

The loop is the whole story of training in one function, `fit`: shuffle with a seeded generator, cut into
mini-batches, augment them if asked, forward, loss, backward, optimizer step; evaluate the dev set after every
epoch; keep the best weights for early stopping; stop with a clear message if the loss or a weight stops being
finite; write a checkpoint after every epoch, from which `fit` can resume bit for bit.

What it leaves out: parsing flags and printing (cli.py), the file format (serialize.py), the math (layers,
losses, optim, model). Paths arrive as arguments.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from . import diagnostics, serialize
from .augment import affine, elastic
from .losses import softmax_cross_entropy
from .conv import Conv2D, Flatten, MaxPool2D, Unflatten
from .model import ACTIVATIONS, Sequential, mlp
from .parallel import DataParallel
from .optim import SGD, Adam, AdamW, clip_grad_norm, make_schedule

D, K = 784, 10  # MNIST's inputs and classes: the defaults; fit() works for any D and K


def _opt(default, help_text, **extra):
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Every training default, in one place. `numpynn train` builds one flag per field from this class, and
    the presets below only name the fields they change."""

    preset: str = _opt("mlp", "starting point for every other option", choices=("mlp", "seed", "cnn"))
    architecture: str = _opt("mlp", "mlp: dense layers only; cnn: first a block per --channels width of a 5x5 "
                             "convolution, a 2x2 max-pool and the activation (images must be square)",
                             choices=("mlp", "cnn"))
    channels: tuple[int, ...] = _opt((32, 64), "cnn: channels of each convolution block, comma-separated")
    padding: str = _opt("valid", "cnn: valid: no padding, each 5x5 convolution trims 2 pixels per side; "
                        "same: 2 rows of zeros around the image, so it keeps its size", choices=("valid", "same"))
    hidden: tuple[int, ...] = _opt((800,), "hidden (dense) layer widths, comma-separated, e.g. 256,128")
    activation: str = _opt("relu", "hidden activation", choices=("relu", "leaky_relu", "sigmoid", "tanh"))
    init: str = _opt("he", "weight initialisation", choices=("he", "glorot", "seed"))
    dropout: float = _opt(0.0, "dropout probability after each hidden activation (0: none)")
    batchnorm: bool = _opt(False, "batch normalisation before each hidden activation")
    optimizer: str = _opt("sgd", "optimizer", choices=("sgd", "adam", "adamw"))
    lr: float = _opt(0.05, "learning rate at the top of the schedule")
    momentum: float = _opt(0.9, "SGD momentum (0: plain SGD)")
    nesterov: bool = _opt(False, "Nesterov momentum (SGD)")
    weight_decay: float = _opt(0.0, "weight decay (L2 for SGD and Adam, decoupled for AdamW)")
    beta1: float = _opt(0.9, "Adam/AdamW: decay of the running mean of the gradient")
    beta2: float = _opt(0.999, "Adam/AdamW: decay of the running mean of the squared gradient")
    eps: float = _opt(1e-8, "Adam/AdamW: added to the root of that mean, so no step divides by 0")
    schedule: str = _opt("cosine", "learning-rate schedule", choices=("constant", "step", "cosine"))
    warmup_epochs: float = _opt(0.0, "linear warm-up from 0 over this many epochs")
    step_epochs: int = _opt(10, "step schedule: multiply the rate by --gamma every this many epochs")
    gamma: float = _opt(0.1, "step schedule: the factor")
    clip_norm: float = _opt(0.0, "clip the gradient's global L2 norm to this (0: no clipping)")
    label_smoothing: float = _opt(0.0, "label smoothing epsilon (0: none)")
    batch_size: int = _opt(128, "images per mini-batch")
    threads: int = _opt(1, "data-parallel: run each batch as this many slices at once, one thread each "
                        "(parallel.py); give the number of cores. Results depend on it only by float32 rounding")
    epochs: int = _opt(20, "passes over the training set")
    patience: int = _opt(0, "early stopping: stop after this many epochs without a better dev accuracy (0: off)")
    seed: int = _opt(0, "seeds the split, the initial weights, the shuffling, dropout and augmentation")
    dev_size: int = _opt(10_000, "training images held out as the dev set")
    # Augmentation (augment.py): each training batch is transformed afresh; the dev and test sets never are.
    augment: str = _opt("none", "transform each training batch on the fly: affine (shift, rotation, scale, "
                        "shear) or elastic (Simard et al. 2003); images must be square",
                        choices=("none", "affine", "elastic"))
    augment_shift: float = _opt(2.0, "affine: largest shift, pixels, drawn uniformly in [-X, X] on each axis")
    augment_rotation: float = _opt(12.0, "affine: largest rotation, degrees, drawn uniformly in [-X, X]")
    augment_scale: float = _opt(0.1, "affine: largest change of size, a fraction: 0.1 draws sizes 0.9 to 1.1 times")
    augment_shear: float = _opt(10.0, "affine: largest shear (slant), degrees, drawn uniformly in [-X, X]")
    augment_alpha: float = _opt(34.0, "elastic: strength of the displacement field (Simard's alpha; 34 "
                                "moves a typical pixel about 1.4 pixels)")
    augment_sigma: float = _opt(4.0, "elastic: std, pixels, of the Gaussian that smooths the field (Simard's "
                                "sigma; smaller is rougher)")

    def __post_init__(self):
        rules = [  # (field, is it in range, how to fix it)
            ("hidden", len(self.hidden) >= 1 and all(1 <= h <= 100_000 for h in self.hidden),
             "give one or more widths between 1 and 100000, e.g. 800 or 256,128"),
            ("channels", len(self.channels) >= 1 and all(1 <= c <= 4096 for c in self.channels),
             "give one or more channel counts between 1 and 4096, e.g. 32,64"),
            ("dropout", 0.0 <= self.dropout < 1.0, "use a probability in [0, 1)"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "use a finite number above 0, e.g. 0.05"),
            ("momentum", 0.0 <= self.momentum < 1.0, "use a value in [0, 1), e.g. 0.9"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "use 0 or more"),
            ("beta1", 0.0 <= self.beta1 < 1.0, "use a value in [0, 1), e.g. 0.9"),
            ("beta2", 0.0 <= self.beta2 < 1.0, "use a value in [0, 1), e.g. 0.999"),
            ("eps", math.isfinite(self.eps) and self.eps > 0, "use a small positive number, e.g. 1e-8"),
            ("warmup_epochs", math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0, "use 0 or more"),
            ("step_epochs", self.step_epochs >= 1, "use 1 or more"),
            ("gamma", 0 < self.gamma <= 1, "use a factor in (0, 1]"),
            ("clip_norm", math.isfinite(self.clip_norm) and self.clip_norm >= 0, "use 0 (off) or more"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "use a value in [0, 1)"),
            ("batch_size", self.batch_size >= 1, "use 1 or more"),
            ("threads", 1 <= self.threads <= 256, "use 1 (no slices) or more, e.g. the number of cores"),
            ("epochs", self.epochs >= 1, "use 1 or more"),
            ("patience", self.patience >= 0, "use 0 (off) or more"),
            ("seed", self.seed >= 0, "use 0 or more"),
            ("dev_size", self.dev_size >= 1, "use 1 or more (and fewer than the training images)"),
            ("augment", self.augment in ("none", "affine", "elastic"), "use none, affine or elastic"),
            ("augment_shift", math.isfinite(self.augment_shift) and self.augment_shift >= 0,
             "use 0 (none) or more pixels, e.g. 2"),
            ("augment_rotation", 0 <= self.augment_rotation <= 180, "use 0 to 180 degrees, e.g. 12"),
            ("augment_scale", 0 <= self.augment_scale < 1, "use a fraction in [0, 1), e.g. 0.1"),
            ("augment_shear", 0 <= self.augment_shear <= 60, "use 0 to 60 degrees, e.g. 10"),
            ("augment_alpha", math.isfinite(self.augment_alpha) and self.augment_alpha >= 0,
             "use 0 (none) or more, e.g. 34"),
            ("augment_sigma", math.isfinite(self.augment_sigma) and self.augment_sigma > 0,
             "use a standard deviation above 0 pixels, e.g. 4"),
        ]
        for name, ok, fix in rules:
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r} is out of range: {fix}")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs = {self.warmup_epochs!r} is out of range: use less than epochs "
                             f"({self.epochs}), or set --warmup-epochs 0")
        if self.threads > 1 and self.batchnorm:
            raise ValueError("threads > 1 does not work with batchnorm: each slice would normalise by its own "
                             "statistics; use --threads 1")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov = True needs --optimizer sgd with --momentum above 0")


# Each preset names only what it changes from the defaults above.
PRESETS: dict[str, dict] = {
    # 784-800-10, Simard et al.'s MLP: SGD with momentum, a cosine schedule and label smoothing 0.1.
    # 98.5 % test in about 35 s here (benchmarks/README.md).
    "mlp": {"lr": 0.1, "label_smoothing": 0.1},
    # The CNN: conv5x5-32, max-pool, ReLU, conv5x5-64, max-pool, ReLU (valid padding: 28 -> 24 -> 12 -> 8
    # -> 4), dense 256 with dropout 0.5, dense 10; Adam on a cosine schedule, label smoothing 0.1, 20 epochs.
    # Two threads (parallel.py): about a fifth faster on 2 cores, the same results up to float32 rounding.
    "cnn": {"architecture": "cnn", "hidden": (256,), "dropout": 0.5, "label_smoothing": 0.1, "optimizer": "adam",
            "lr": 1e-3, "epochs": 20, "threads": 2},
    # The seed's 784-10-10 network and initialisation, trained the modern way: Adam on mini-batches. The
    # one-epoch warm-up keeps early large steps from killing hidden units: with only 10 of them, each dead
    # one costs about a point of accuracy. About 94 % test, against 80.34 % for the full-batch seed.
    "seed": {"hidden": (10,), "init": "seed", "optimizer": "adam", "lr": 3e-3, "batch_size": 64, "epochs": 30,
             "warmup_epochs": 1.0},
}


def make_config(preset: str = "mlp", **overrides) -> TrainConfig:
    """Defaults, then the preset's changes, then `overrides` (a config file's or the command line's).
    Values are checked by name and type here, and by range in TrainConfig itself."""
    if preset not in PRESETS:
        raise ValueError(f"preset = {preset!r} is unknown: choose one of {', '.join(PRESETS)}")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    values = {"preset": preset, **PRESETS[preset]}
    for name, value in overrides.items():
        if name not in defaults:
            raise ValueError(f"{name} is not a training option (see `numpynn train --help`)")
        kind = type(defaults[name])
        if kind is tuple and isinstance(value, (list, tuple, int)) and not isinstance(value, bool):
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{name} = {value!r} has the wrong type: expected {kind.__name__}")
        values[name] = value
    return TrainConfig(**values)


def applies(name: str, config: dict) -> bool:
    """Whether option `name` means anything under the other options of `config` (a TrainConfig as a dict, e.g.
    a model header's): the channels of a cnn, an Adam beta, the step schedule's gamma, the parameters of the
    augmentation in use. What `numpynn info` prints; a field it does not know applies."""
    get = config.get
    if name in ("channels", "padding"):
        return get("architecture") == "cnn"
    if name in ("beta1", "beta2", "eps"):
        return get("optimizer") in ("adam", "adamw")
    if name in ("momentum", "nesterov"):
        return get("optimizer", "sgd") == "sgd" and (name == "momentum" or bool(get("momentum")))
    if name in ("step_epochs", "gamma"):
        return get("schedule") == "step"
    if name in ("augment_alpha", "augment_sigma"):
        return get("augment") == "elastic"
    if name.startswith("augment_"):
        return get("augment") == "affine"
    return True


def config_from_json(data: dict) -> TrainConfig:
    """A TrainConfig from a model header's or a checkpoint's dict (JSON has lists where we have tuples)."""
    values = dict(data)
    values.setdefault("threads", 1)  # written before --threads existed: every run then had one thread
    return make_config(values.pop("preset", "mlp"), **values)


def build_model(config: TrainConfig, rng: np.random.Generator, D: int = D, K: int = K) -> Sequential:
    if config.architecture == "mlp":
        return mlp([D, *config.hidden, K], activation=config.activation, init=config.init,
                   dropout=config.dropout, batchnorm=config.batchnorm, rng=rng)
    # cnn: rows of D pixels become (1, side, side) images; each block is a 5x5 convolution (which keeps the
    # size with padding 2, or trims 4 pixels without), a 2x2 max-pool that halves the size, and the activation.
    side = math.isqrt(D)
    padding = 2 if config.padding == "same" else 0
    sides = [side]
    for _ in config.channels:
        sides.append((sides[-1] + 2 * padding - 4) // 2)
    if side * side != D or min(sides) < 1:
        raise ValueError(f"architecture = 'cnn' needs square images that survive {len(config.channels)} blocks of "
                         f"a 5x5 convolution ({config.padding}) and a 2x2 pool; {D} inputs are not (use fewer "
                         f"--channels, --padding same, or --architecture mlp)")
    layers, C = [Unflatten((1, side, side))], 1
    for C_out in config.channels:
        # The pool comes before the activation: every activation here is non-decreasing, so it commutes with
        # max (the network computes exactly the same function), and it then runs on a quarter of the values.
        layers += [Conv2D(C, C_out, 5, padding=padding, init=config.init, rng=rng), MaxPool2D(2),
                   ACTIVATIONS[config.activation]()]
        C = C_out
    side = sides[-1]
    head = mlp([C * side * side, *config.hidden, K], activation=config.activation, init=config.init,
               dropout=config.dropout, batchnorm=config.batchnorm, rng=rng)
    return Sequential(layers + [Flatten()] + head.layers)


def build_optimizer(config: TrainConfig):
    if config.optimizer == "sgd":
        return SGD(config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
    adam = {"betas": (config.beta1, config.beta2), "eps": config.eps, "weight_decay": config.weight_decay}
    return (Adam if config.optimizer == "adam" else AdamW)(config.lr, **adam)


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


def evaluate(model: Sequential, X, y, batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in inference mode, in batches to bound memory."""
    K = model.layers[-1].D_out
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        Z = model.forward(X[start : start + batch_size], train=False)  # (n, K)
        loss, _ = softmax_cross_entropy(Z, y[start : start + batch_size], K)
        loss_sum += loss * len(Z)
        correct += int((Z.argmax(axis=1) == y[start : start + batch_size]).sum())
    return loss_sum / len(y), correct / len(y)


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
        if config.augment != "none" and math.isqrt(D) ** 2 != D:
            raise ValueError(f"augment = {config.augment!r} needs square images; {D} inputs are not "
                             "(use --augment none)")
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
        serialize.ModelFileError naming `source`."""
        try:
            config = config_from_json(header["config"])
            if epochs is not None:
                config = replace(config, epochs=epochs)
            model = Sequential.from_spec(header["architecture"],  # the checkpoint's own shapes, any D and K
                                         state=serialize.split(arrays, "model"))
            optimizer = build_optimizer(config)
            optimizer.load_state_dict(serialize.split(arrays, "optimizer"))
            trainer = header["trainer"]
            rng, augment_rng = np.random.default_rng(), np.random.default_rng([config.seed, 3])
            rng.bit_generator.state = trainer["rng"]
            if "augment_rng" in trainer:  # checkpoints from before augmentation have none, and did not augment
                augment_rng.bit_generator.state = trainer["augment_rng"]
            history = History(**trainer["history"])
            counts = (trainer["epoch"], trainer["step"])
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
                raise ValueError(f"epoch and step must be counts, not {counts}")
            if not (isinstance(history.epochs, list) and all(isinstance(row, dict) for row in history.epochs)
                    and isinstance(history.best_epoch, int) and isinstance(history.stopped, str)):
                raise ValueError("the history is not a list of epochs, a best epoch and how it stopped")
            best_accuracy = float(trainer["best_accuracy"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # what a lying header makes these raise
            raise serialize.ModelFileError(f"{source}: the training state in the header does not fit "
                                           f"({type(error).__name__}: {str(error)[:200]})") from None
        return cls(model, optimizer, config, rng, augment_rng, epoch=trainer["epoch"], step=trainer["step"],
                   history=history, best_state=serialize.split(arrays, "best") or None, best_accuracy=best_accuracy)


def augmenter(config: TrainConfig):
    """The config's augmentation as a function (X, rng) -> X' (see augment.py), or None when it has none."""
    if config.augment == "affine":
        return functools.partial(affine, shift=config.augment_shift, rotation=config.augment_rotation,
                                 scale=config.augment_scale, shear=config.augment_shear)
    if config.augment == "elastic":
        return functools.partial(elastic, alpha=config.augment_alpha, sigma=config.augment_sigma)
    return None


def fit(run: Run, splits, *, checkpoint=None, progress=None, log=None, on_batch=None, on_epoch=None,
        should_stop=None, diagnose: bool = True) -> History:
    """Train `run` for its remaining epochs on `splits`: X_train (N, D) float32, y_train (N,) int64 in [0, K),
    and X_dev, y_dev alike (or None: then there is no dev score, and no early stopping). With config.augment,
    each training batch is transformed afresh (augment.py, drawing from run.augment_rng) before the forward
    pass; the dev set is scored as it is.

    checkpoint: a path; after every epoch the whole Run is written there (atomically).
    progress:   a factory `progress(epoch, n_batches)` giving a bar with update(n), set_postfix(dict), close()
                (tqdm's interface); None shows nothing.
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
                    lr = schedule(run.step)
                    optimizer.step(params, grads, lr)
                    if measured:
                        tracker.after_step()  # what the step changed
                    run.step += 1
                    loss_sum += loss * len(batch)
                    hits = int((Z.argmax(axis=1) == y[batch]).sum())
                    correct += hits
                    seen += len(batch)
                    if bar:
                        bar.update(1)
                        if run.step % 25 == 0:  # formatting the numbers every batch would cost more than the batch
                            rate = seen / max(time.perf_counter() - started, 1e-9)
                            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                            img_s=f"{rate:,.0f}", refresh=False)
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
                "lr": lr,
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
