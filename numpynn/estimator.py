"""numpynn as a scikit-learn estimator: MLPClassifier with fit, predict_proba, predict and score.

It keeps scikit-learn's conventions, so sklearn's tools (clone, Pipeline, cross_val_score, GridSearchCV) can
drive it and `sklearn.utils.estimator_checks.check_estimator` passes: the constructor only stores its
arguments, fit validates them and returns self, learned state ends in `_`, get_params/set_params read the
constructor's signature. It does not import scikit-learn: the conventions are written out here, and the few
places that must hand sklearn its own types (its tags, NotFittedError, DataConversionWarning) do so only when
sklearn is already loaded.

Training is train.fit, unchanged, and every default is `numpynn train`'s: TrainConfig's with the mlp preset's
changes (config.preset_values). Two parameters take sklearn's names:
hidden_layer_sizes is TrainConfig.hidden and random_state is TrainConfig.seed; the rest keep numpynn's names.

Left out: a dev set and early stopping (TrainConfig's patience and dev_size), presets, partial_fit,
sample_weight, sparse input, multi-output targets and decision_function.
"""
from __future__ import annotations

import functools
import inspect
import sys
import types
import warnings

import numpy as np

from .calibrate import calibrate
from .checks import OptionError, require
from .config import TrainConfig, make_config, preset_values
from .train import Run, fit

# MLPClassifier's parameters that TrainConfig spells differently; every other parameter is a field's own name.
TO_CONFIG = {"hidden_layer_sizes": "hidden", "random_state": "seed"}
FROM_CONFIG = {field: param for param, field in TO_CONFIG.items()}
# Every default is `numpynn train`'s: TrainConfig's, with the mlp preset's changes (lr 0.1, label smoothing 0.1).
MLP = preset_values("mlp")


class NotFittedError(ValueError, AttributeError):
    """predict, predict_proba or score before fit. A ValueError and an AttributeError, like sklearn's own."""


class DataConversionWarning(UserWarning):
    """y arrived as a column (N, 1) and was flattened; named like sklearn's warning for the same thing."""


class MLPClassifier:
    """A multilayer perceptron classifier trained by numpynn.train.fit: D inputs, hidden layers of the widths
    in hidden_layer_sizes, then one output per class; softmax cross-entropy on labels of any type.

    The defaults are those of `numpynn train` (its mlp preset): one hidden layer of 800 ReLUs, SGD with momentum
    0.9 at lr 0.1 on a cosine schedule, label smoothing 0.1, batches of 128, 20 epochs. The one difference is
    the data: fit trains on all of X, with no dev set held out and no early stopping. weight_decay=None is
    the optimizer's own default: 0 for sgd and adam, 0.01 for adamw.

    calibration_fraction: the share of X (drawn by random_state) held out of training to fit the softmax's
    temperature afterwards (numpynn.calibrate), as `numpynn train` does on its dev set; 0 (the default)
    trains on all of X and leaves predict_proba uncalibrated. Calibration never changes predict."""

    def __init__(self, hidden_layer_sizes=MLP["hidden"], activation=MLP["activation"], init=MLP["init"],
                 dropout=MLP["dropout"], batchnorm=MLP["batchnorm"], optimizer=MLP["optimizer"], lr=MLP["lr"],
                 momentum=MLP["momentum"], nesterov=MLP["nesterov"], weight_decay=MLP["weight_decay"],
                 beta1=MLP["beta1"], beta2=MLP["beta2"], eps=MLP["eps"], schedule=MLP["schedule"],
                 warmup_epochs=MLP["warmup_epochs"], step_epochs=MLP["step_epochs"], gamma=MLP["gamma"],
                 clip_norm=MLP["clip_norm"], label_smoothing=MLP["label_smoothing"], batch_size=MLP["batch_size"],
                 epochs=MLP["epochs"], random_state=MLP["seed"], calibration_fraction=0.0, verbose=False):
        # sklearn's rule: store the arguments untouched. clone() and set_params rely on it; fit checks them.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.step_epochs = step_epochs
        self.gamma = gamma
        self.clip_norm = clip_norm
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.calibration_fraction = calibration_fraction
        self.verbose = verbose

    def fit(self, X, y):
        """Train a fresh network on X (N, D) and labels y (N,); returns self. random_state=None draws a new
        seed on every fit; an int makes the fit, and so every prediction, repeatable."""
        config = self._config()
        X = _as_features(X, self)
        y = _as_labels(y, len(X))
        try:
            classes, y_index = np.unique(y, return_inverse=True)  # classes sorted; y_index in 0..K-1
        except TypeError:  # labels that do not compare with each other, e.g. strings mixed with numbers
            raise ValueError("Unknown label type: mixed. Use labels of one type: all numbers or all strings") from None
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; y has 1 class: {classes}")
        f = self.calibration_fraction
        require(isinstance(f, (int, float, np.floating)) and not isinstance(f, bool) and 0 <= f < 1,
                "calibration_fraction", f, "use a fraction in [0, 1), e.g. 0.1; 0 does not calibrate")
        y_index = y_index.astype(np.int64)
        held = np.zeros(len(X), bool)  # (N,) the rows kept out of training to fit the temperature
        if f > 0:
            held[np.random.default_rng(config.seed).permutation(len(X))[: max(1, round(f * len(X)))]] = True
            require(not held.all(), "calibration_fraction", f, "leave some rows to train on: use a smaller fraction")
        run = Run.start(config, D=X.shape[1], K=len(classes))
        splits = types.SimpleNamespace(X_train=X[~held], y_train=y_index[~held], X_dev=None, y_dev=None)
        history = fit(run, splits, log=print if self.verbose else None)  # raises TrainingDiverged on NaN or inf
        if held.any():
            calibrate(run.model, X[held], y_index[held])
        if history.stopped == "interrupted":
            warnings.warn(f"training was interrupted (Ctrl-C) after {run.epoch} of {config.epochs} epochs; "
                          "the model keeps the weights it had reached", RuntimeWarning, stacklevel=2)
        # Learned state is set only now, so a fit that fails above leaves the estimator as it was.
        self.classes_, self.n_features_in_, self.model_, self.history_ = classes, X.shape[1], run.model, history
        return self

    def predict_proba(self, X):
        """P[i, k]: the probability that row i of X belongs to classes_[k]. Rows sum to 1.  (N, K) float32"""
        if not hasattr(self, "model_"):
            message = f"This {type(self).__name__} instance is not fitted yet: call fit(X, y) first"
            raise _sklearn_compatible(NotFittedError)(message)
        return self.model_.predict_proba(_as_features(X, self, self.n_features_in_))

    def predict(self, X):
        """The most probable class of each row of X, as one of classes_.  (N,)"""
        P = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is missed
        return self.classes_[P.argmax(axis=1)]

    def score(self, X, y):
        """Mean accuracy: the fraction of rows of X whose predicted class is y's."""
        y_pred, y = self.predict(X), np.asarray(y)
        if y.shape != y_pred.shape:  # a column (N, 1) would broadcast against (N,) into an (N, N) comparison
            raise ValueError(f"y has shape {y.shape}; score needs one label per row of X, shape {y_pred.shape}")
        return float(np.mean(y_pred == y))

    # --- what sklearn's tools expect of every estimator -------------------------------------------------

    def get_params(self, deep=True):
        """The constructor's arguments by name. (No parameter is itself an estimator, so `deep` changes nothing.)"""
        return {name: getattr(self, name) for name in _param_names(type(self))}

    def set_params(self, **params):
        """Set constructor arguments by name and return self; they are checked at the next fit, as sklearn does."""
        names = _param_names(type(self))
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {names}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if repr(value) != repr(defaults[name].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so it is loaded by then: the import adds no dependency to numpynn.
        from sklearn.utils import ClassifierTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def _config(self) -> TrainConfig:
        """The TrainConfig of these parameters; make_config checks each one's type and range."""
        options = {}
        for name, value in self.get_params().items():
            if name in ("verbose", "calibration_fraction"):
                continue  # what fit prints, and what it does after training: not TrainConfig's
            if name == "random_state" and value is None:
                value = int(np.random.SeedSequence().entropy)  # sklearn's None: fresh randomness on every fit
            if isinstance(value, np.generic):
                value = value.item()  # numpy numbers, e.g. from a GridSearchCV grid, are plain ones to make_config
            options[TO_CONFIG.get(name, name)] = value
        try:
            return make_config(**options)
        except OptionError as error:  # say it in this class's names: hidden_layer_sizes, not hidden
            raise error.renamed(FROM_CONFIG.get(error.name, error.name)) from None


@functools.cache
def _param_names(cls) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def _as_features(X, estimator, n_features: int | None = None) -> np.ndarray:
    """X as a float32 (N, D) array, refused as sklearn's check_array refuses it; n_features: what fit saw."""
    name = type(estimator).__name__
    if hasattr(X, "toarray"):  # a scipy.sparse matrix or array, recognised without importing scipy
        raise TypeError(f"{name} does not support sparse input: pass a dense array, e.g. X.toarray()")
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError(f"Complex data not supported: {name} takes real numbers")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array X (N, D), got shape {X.shape}. Reshape your data with "
                         "X.reshape(-1, 1) if it has a single feature, or X.reshape(1, -1) if it is a single sample")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
                         f"(shape={X.shape}) while a minimum of 1 is required.")
    # The network's dtype. No copy when X is float32 already (MNIST's 157 MB): nothing below writes into X.
    # An object array holding, say, a dict fails here with a TypeError, as it does in sklearn.
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():  # after the cast: values beyond float32's 3.4e38 have become inf
        raise ValueError("Input X contains NaN or inf (or values too large for float32)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {n_features} features as input")
    return X  # (N, D)


def _as_labels(y, n_samples: int) -> np.ndarray:
    """y as a 1-D array of class labels, one per sample, refused as sklearn refuses it."""
    if y is None:
        raise ValueError("MLPClassifier requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; it was flattened with ravel()",
                      _sklearn_compatible(DataConversionWarning), stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array of labels, got shape {y.shape} (multi-output is not supported)")
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(y)} labels; give one label per sample")
    if y.dtype.kind == "c":
        raise ValueError("Complex data not supported: labels must be numbers or strings")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or inf")
    if y.dtype.kind == "f" and (y != np.round(y)).any():  # sklearn's rule: fractions mean a regression target
        raise ValueError("Unknown label type: continuous. y holds non-integer numbers; a classifier needs labels")
    return y  # (N,)


def _sklearn_compatible(ours: type) -> type:
    """`ours`, or once sklearn is loaded, a class that is both `ours` and sklearn.exceptions' class of the same
    name: sklearn's checks, and code written for sklearn, catch or filter by that class. Nothing is imported."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), ours.__name__, None)
    return ours if theirs is None else _both(ours, theirs)


@functools.cache
def _both(ours: type, theirs: type) -> type:
    return type(ours.__name__, (ours, theirs), {"__module__": __name__})
