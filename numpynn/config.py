"""The training configuration: what a run is made of, as one checked TrainConfig, its presets and builders.

One frozen dataclass holds every training option with its default and help text; `numpynn train` makes one flag
per field from it, the estimator one parameter per field. A preset names only the fields it changes. From a
config come the model (build_model), the optimizer (build_optimizer) and the augmentation (augmenter).

What it leaves out: the loop, checkpoints and Ctrl-C (train.py), flags and printing (cli.py, commands/), the math.
"""
from __future__ import annotations

import functools
import inspect
import math
import sys
from dataclasses import dataclass, field, fields

import numpy as np

from .augment import affine, check_affine, check_elastic, elastic
from .checks import OptionError, require, shown
from .conv import Conv2D, Flatten, MaxPool2D, Unflatten
from .data import DEV_SIZE
from .layers import INITS, Dropout
from .model import ACTIVATIONS, Sequential, mlp
from .optim import SCHEDULES, SGD, Adam, AdamW, make_schedule
from .widthnorm import WidthNorm

from .shapes import D, K  # MNIST's inputs and classes: the defaults; fit() works for any D and K

# The names each choice stands for. The lists of choices below are these, and model.py's ACTIVATIONS,
# layers.py's INITS and optim.py's SCHEDULES, so a new optimizer or activation is added in one place.
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
AUGMENTATIONS = ("affine", "elastic")  # augment.py's two transforms (augmenter below)
ARCHITECTURES = ("mlp", "cnn")  # build_model's two shapes of network

# Adam's own defaults, read from its signature: the config repeats no number that optim.py already chose.
_ADAM = inspect.signature(Adam).parameters
BETA1, BETA2 = _ADAM["betas"].default
EPS = _ADAM["eps"].default

# Each preset names only what it changes from TrainConfig's defaults (below).
PRESETS: dict[str, dict] = {
    # 784-800-10, Simard et al.'s MLP: SGD with momentum, a cosine schedule and label smoothing 0.1.
    # 98.5 % test in about 35 s here (benchmarks/README.md).
    "mlp": {"lr": 0.1, "label_smoothing": 0.1},
    # The CNN: conv5x5-32, max-pool, ReLU, conv5x5-64, max-pool, ReLU (valid padding: 28 -> 24 -> 12 -> 8
    # -> 4), dense 256 with dropout 0.5, dense 10; Adam on a cosine schedule, label smoothing 0.1, 20 epochs.
    # Two threads (parallel.py): about a fifth faster on 2 cores, the same results up to float32 rounding.
    "cnn": {"architecture": "cnn", "hidden": (256,), "dropout": 0.5, "label_smoothing": 0.1, "optimizer": "adam",
            "lr": 1e-3, "epochs": 20, "threads": 2},
    # The cnn preset made small and short, for 99 % in about half a minute here: conv5x5-16 and conv5x5-32
    # (a quarter of the cnn preset's arithmetic in the second convolution), dense 128, no dropout (5 epochs
    # are too few to overfit), Adam at 2e-3 on a cosine schedule. 99.12 to 99.30 % test for seeds 0 to 4 in
    # 25 to 29 s of training (benchmarks/README.md, fast99.py).
    "cnn-fast": {"architecture": "cnn", "channels": (16, 32), "hidden": (128,), "label_smoothing": 0.1,
                 "optimizer": "adam", "lr": 2e-3, "epochs": 5, "threads": 2},
    # The seed's 784-10-10 network and initialisation, trained the modern way: Adam on mini-batches. The
    # one-epoch warm-up keeps early large steps from killing hidden units: with only 10 of them, each dead
    # one costs about a point of accuracy. About 94 % test, against 80.34 % for the full-batch seed.
    "seed": {"hidden": (10,), "init": "seed", "optimizer": "adam", "lr": 3e-3, "batch_size": 64, "epochs": 30,
             "warmup_epochs": 1.0},
}


def _opt(default, help_text, **extra):
    return field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Every training default, in one place. `numpynn train` builds one flag per field from this class, and
    the presets above only name the fields they change."""

    preset: str = _opt("mlp", "starting point for every other option", choices=tuple(PRESETS))
    architecture: str = _opt("mlp", "mlp: dense layers only; cnn: first a block per --channels width of a 5x5 "
                             "convolution, a 2x2 max-pool and the activation (images must be square)",
                             choices=ARCHITECTURES)
    channels: tuple[int, ...] = _opt((32, 64), "cnn: channels of each convolution block, comma-separated")
    padding: str = _opt("valid", "cnn: valid: no padding, each 5x5 convolution trims 2 pixels per side; "
                        "same: 2 rows of zeros around the image, so it keeps its size", choices=("valid", "same"))
    hidden: tuple[int, ...] = _opt((800,), "hidden (dense) layer widths, comma-separated, e.g. 256,128")
    width_norm: int = _opt(0, "first re-scale each digit's ink sideways to this many pixels (a WidthNorm first "
                           "layer, widthnorm.py; Ciresan et al. 2012 used 10 to 20), in the model, so it is "
                           "applied wherever the model runs (0: off)")
    activation: str = _opt("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    init: str = _opt("he", "weight initialisation", choices=INITS)
    dropout: float = _opt(0.0, "dropout probability after each hidden activation (0: none)")
    batchnorm: bool = _opt(False, "batch normalisation before each hidden activation")
    optimizer: str = _opt("sgd", "optimizer", choices=tuple(OPTIMIZERS))
    lr: float = _opt(0.05, "learning rate at the top of the schedule")
    momentum: float = _opt(0.9, "SGD momentum (0: plain SGD)")
    nesterov: bool = _opt(False, "Nesterov momentum (SGD)")
    # None until resolved in __post_init__: a decay nobody chose is the optimizer's own default, so that
    # --optimizer adamw alone decays as AdamW does (0.01, as in PyTorch), and SGD and Adam do not (0).
    weight_decay: float | None = _opt(None, "weight decay (L2 for SGD and Adam, decoupled for AdamW); if not "
                                      "given, the optimizer's own: 0 for sgd and adam, 0.01 for adamw", type=float)
    beta1: float = _opt(BETA1, "Adam/AdamW: decay of the running mean of the gradient")
    beta2: float = _opt(BETA2, "Adam/AdamW: decay of the running mean of the squared gradient")
    eps: float = _opt(EPS, "Adam/AdamW: added to the root of that mean, so no step divides by 0")
    schedule: str = _opt("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float = _opt(0.0, "linear warm-up over this many epochs: of W warm-up steps, step t runs at "
                                "lr * (t + 1) / W, so the first at lr / W and the last at the full lr")
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
    dev_size: int = _opt(DEV_SIZE, "training images held out as the dev set")
    calibrate: bool = _opt(True, "after training, fit the softmax's temperature on the dev set so the stated "
                           "probabilities match how often the model is right (calibrate.py); never changes "
                           "the predicted digit")
    # Augmentation (augment.py): each training batch is transformed afresh; the dev and test sets never are.
    augment: str = _opt("none", "transform each training batch on the fly: affine (shift, rotation, scale, "
                        "shear) or elastic (Simard et al. 2003); images must be square",
                        choices=("none", *AUGMENTATIONS))
    augment_shift: float = _opt(2.0, "affine: largest shift, pixels, drawn uniformly in [-X, X] on each axis")
    augment_rotation: float = _opt(12.0, "affine: largest rotation, degrees, drawn uniformly in [-X, X]")
    augment_scale: float = _opt(0.1, "affine: largest change of size, a fraction: 0.1 draws sizes 0.9 to 1.1 times")
    augment_shear: float = _opt(10.0, "affine: largest shear (slant), degrees, drawn uniformly in [-X, X]")
    augment_alpha: float = _opt(34.0, "elastic: strength of the displacement field (Simard's alpha; 34 "
                                "moves a typical pixel about 1.4 pixels)")
    augment_sigma: float = _opt(4.0, "elastic: std, pixels, of the Gaussian that smooths the field (Simard's "
                                "sigma; smaller is rougher)")

    def __post_init__(self):
        """Each range is checked once. Those of what the config itself uses (sizes, counts, the loop's options)
        are checked here; those of an optimizer, the dropout layer, a schedule and an augmentation by that code
        itself, asked here by building it (which costs nothing), so that a bad value is refused now, before
        the data loads, in the config's own names. The dev set's size is checked by data.load_mnist."""
        if self.weight_decay is None:  # frozen: the one field __post_init__ fills in
            decay = inspect.signature(OPTIMIZERS.get(self.optimizer, SGD)).parameters["weight_decay"].default
            object.__setattr__(self, "weight_decay", decay)
        for f in fields(self):
            choices = f.metadata.get("choices")
            require(choices is None or getattr(self, f.name) in choices, f.name, getattr(self, f.name),
                    f"use one of {', '.join(choices or ())}")
        rules = [  # (field, is it in range, how to fix it)
            ("hidden", len(self.hidden) >= 1 and all(1 <= h <= 100_000 for h in self.hidden),
             "give one or more widths between 1 and 100000, e.g. 800 or 256,128"),
            ("channels", len(self.channels) >= 1 and all(1 <= c <= 4096 for c in self.channels),
             "give one or more channel counts between 1 and 4096, e.g. 32,64"),
            # The optimizer checks the sign of these two; it lets infinity through.
            ("weight_decay", math.isfinite(self.weight_decay), "use a finite number, 0 or more"),
            ("eps", math.isfinite(self.eps), "use a small positive number, e.g. 1e-8"),
            ("warmup_epochs", math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0, "use 0 or more"),
            ("clip_norm", math.isfinite(self.clip_norm) and self.clip_norm >= 0, "use 0 (off) or more"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "use a value in [0, 1)"),
            ("batch_size", self.batch_size >= 1, "use 1 or more"),
            ("threads", 1 <= self.threads <= 256, "use 1 (no slices) or more, e.g. the number of cores"),
            ("epochs", self.epochs >= 1, "use 1 or more"),
            ("patience", self.patience >= 0, "use 0 (off) or more"),
            ("seed", self.seed >= 0, "use 0 or more"),
        ]
        for name, ok, fix in rules:
            require(ok, name, getattr(self, name), fix)
        require(self.warmup_epochs < self.epochs, "warmup_epochs", self.warmup_epochs,
                f"use less than epochs ({self.epochs}), or set --warmup-epochs 0")
        require(self.threads == 1 or not self.batchnorm, "threads", self.threads,
                "threads > 1 does not work with batchnorm: each slice would normalise by its own statistics; "
                "use --threads 1")
        require(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0), "nesterov", self.nesterov,
                "Nesterov momentum needs --optimizer sgd with --momentum above 0")
        self._check_parts()

    def _check_parts(self) -> None:
        """Build what checks its own ranges, with throwaway values where a part needs more than the config
        has; an OptionError it raises is renamed to the field that was given."""
        fields_of = {"p": "dropout", "step_size": "step_epochs", "shift": "augment_shift",
                     "rotation": "augment_rotation", "scale": "augment_scale", "shear": "augment_shear",
                     "alpha": "augment_alpha", "sigma": "augment_sigma", "width": "width_norm",
                     "betas": "beta1" if not 0 <= self.beta1 < 1 else "beta2"}
        try:
            Dropout(self.dropout)
            SGD(self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
            Adam(self.lr, betas=(self.beta1, self.beta2), eps=self.eps)
            make_schedule("step", self.lr, total_steps=1, step_size=self.step_epochs, gamma=self.gamma)
            check_affine(self.augment_shift, self.augment_rotation, self.augment_scale, self.augment_shear)
            check_elastic(self.augment_alpha, self.augment_sigma)
            if self.width_norm != 0:  # 0: off
                WidthNorm(self.width_norm, math.isqrt(D))
        except OptionError as error:
            name = fields_of.get(error.name, error.name)
            fix = {"betas": "use a number in [0, 1), e.g. 0.9 or 0.999",
                   "width": f"use 0 (off) or a width of 1 to {math.isqrt(D)} pixels, e.g. 16"}.get(error.name, error.fix)
            raise OptionError(name, getattr(self, name), fix) from None


class NotAnOption(OptionError):
    """A name that is no field of TrainConfig (a typo in a config file, say)."""

    def __str__(self):
        return f"{self.name} is not a training option ({self.fix})"

    def renamed(self, name: str) -> "NotAnOption":
        return NotAnOption(name, self.value, self.fix)


class WrongType(OptionError):
    """A value of the wrong type for its field: a string for a number, True for a rate."""

    def __str__(self):
        return f"{self.name} = {shown(self.value)} has the wrong type: {self.fix}"

    def renamed(self, name: str) -> "WrongType":
        return WrongType(name, self.value, self.fix)


def kind_of(f) -> type:
    """The type of a TrainConfig field's values (weight_decay's default is None, so it says so in its metadata)."""
    return f.metadata.get("type", type(f.default))


def preset_values(preset: str) -> dict:
    """TrainConfig's defaults with `preset`'s changes, by field name, as given (weight_decay still None, for the
    optimizer to choose): the defaults of an interface that starts from a preset, such as MLPClassifier."""
    return {**{f.name: f.default for f in fields(TrainConfig)}, **PRESETS[preset], "preset": preset}


# A config or space file is a few dozen lines; a file far larger is not one, and is not read into memory.
MAX_TOML_BYTES = 1_000_000


class TomlFileError(ValueError):
    """A TOML file the user named cannot be read as one. str(error) says what is wrong and how to fix it; the
    caller puts the file's name in front as its interface names it (--config FILE, the space file)."""


def read_toml(path) -> dict:
    """The tables of the TOML file at `path`, or TomlFileError: no such file, not a regular file (a folder, or
    a pipe or device that would be read forever), too large, not UTF-8, not TOML, nested too deeply."""
    import os

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    if not os.path.exists(path):
        raise TomlFileError("no such file; give the path of a TOML file")
    if not os.path.isfile(path):
        raise TomlFileError("not a regular file; name a TOML file")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOML_BYTES + 1)
    except OSError as error:
        raise TomlFileError(f"cannot be read ({error.strerror or error}); check its permissions") from None
    if len(data) > MAX_TOML_BYTES:
        raise TomlFileError(f"larger than {MAX_TOML_BYTES:,} bytes; a config is a few lines of TOML")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise TomlFileError(f"not UTF-8 text (byte {error.start}); save it as UTF-8 TOML") from None
    except ValueError as error:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise TomlFileError(f"not a valid TOML file ({' '.join(str(error).split())})") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise TomlFileError("nested too deeply to be a config; options are numbers, names and short "
                            "lists") from None


MAX_INT = 2**63 - 1  # the largest whole number an option may be: NumPy's int64, and far above any sensible count


def make_config(preset: str = "mlp", **overrides) -> TrainConfig:
    """Defaults, then the preset's changes, then `overrides` (a config file's or the command line's).
    Values are checked by name and type here, and by range in TrainConfig itself; every error is an
    OptionError (checks.py) naming the field."""
    require(isinstance(preset, str) and preset in PRESETS, "preset", preset, f"choose one of {', '.join(PRESETS)}")
    kinds = {f.name: kind_of(f) for f in fields(TrainConfig)}
    optional = {f.name for f in fields(TrainConfig) if f.default is None}
    values = {"preset": preset, **PRESETS[preset]}
    for name, value in overrides.items():
        if name not in kinds:
            raise NotAnOption(name, value, "see `numpynn train --help`")
        kind = kinds[name]
        if value is None and name in optional:  # weight_decay: None leaves it to the optimizer
            ok = True
        elif kind is tuple and isinstance(value, (list, tuple, int)) and not isinstance(value, bool):
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            if ok:  # a config file or a JSON body can hold any whole number
                require(all(abs(v) <= MAX_INT for v in value), name, value, "use whole numbers below 2**63")
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            require(abs(value) <= sys.float_info.max, name, value, "use a number a float can hold, below 1e308")
            value, ok = float(value), True
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            require(abs(value) <= MAX_INT, name, value, "use a whole number below 2**63")
            ok = True
        else:
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            raise WrongType(name, value, f"expected {kind.__name__}")
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
    """The config's network with its initial weights drawn by rng; with --width-norm, WidthNorm comes first."""
    model = _network(config, rng, D, K)
    if config.width_norm:
        side = math.isqrt(D)
        require(side * side == D, "width_norm", config.width_norm,
                f"width normalisation needs square images; {D} inputs are not (use --width-norm 0)")
        model.layers.insert(0, WidthNorm(config.width_norm, side))
    return model


def _network(config: TrainConfig, rng: np.random.Generator, D: int, K: int) -> Sequential:
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
    require(side * side == D and min(sides) >= 1, "architecture", "cnn",
            f"a cnn needs square images that survive {len(config.channels)} blocks of a 5x5 convolution "
            f"({config.padding}) and a 2x2 pool; {D} inputs are not (use fewer --channels, --padding same, or "
            f"--architecture mlp)")
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
    return OPTIMIZERS[config.optimizer](config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                                        weight_decay=config.weight_decay)


def augmenter(config: TrainConfig):
    """The config's augmentation as a function (X, rng) -> X' (see augment.py), or None when it has none."""
    if config.augment == "affine":
        return functools.partial(affine, shift=config.augment_shift, rotation=config.augment_rotation,
                                 scale=config.augment_scale, shear=config.augment_shear)
    if config.augment == "elastic":
        return functools.partial(elastic, alpha=config.augment_alpha, sigma=config.augment_sigma)
    return None
