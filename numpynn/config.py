"""Training configuration: TrainConfig (every default, every range check), the presets, and what a config builds.

One frozen dataclass holds every training option with its default and help text; `numpynn train` makes one flag
per field from it, the estimator one parameter per field. A preset names only the fields it changes. From a
config come the model (build_model), the optimizer (build_optimizer) and the augmentation (augmenter).

What it leaves out: the loop, checkpoints and Ctrl-C (train.py), flags and printing (cli.py), the math.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields

import numpy as np

from .augment import affine, elastic
from .conv import Conv2D, Flatten, MaxPool2D, Unflatten
from .model import ACTIVATIONS, Sequential, mlp
from .optim import SGD, Adam, AdamW

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


def augmenter(config: TrainConfig):
    """The config's augmentation as a function (X, rng) -> X' (see augment.py), or None when it has none."""
    if config.augment == "affine":
        return functools.partial(affine, shift=config.augment_shift, rotation=config.augment_rotation,
                                 scale=config.augment_scale, shear=config.augment_shear)
    if config.augment == "elastic":
        return functools.partial(elastic, alpha=config.augment_alpha, sigma=config.augment_sigma)
    return None
