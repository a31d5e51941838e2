"""Training diagnostics: how healthy each layer is, epoch by epoch, measured from outside the math.

Three numbers, the ones Karpathy watches in his makemore lectures:

    grad_norm     ||dW||, the gradient of the loss with respect to a layer's weights (before any clipping)
    update_ratio  log10(||W_after - W_before|| / ||W_before||) over one optimizer step: what the optimizer
                  actually changed, so it is right for SGD, momentum and Adam alike. Around -3 (each step
                  moves the weights by a thousandth of their size) is the usual rule of thumb; near -1 the
                  weights are thrashed, below -4 they barely learn.
    dead          for a ReLU-like layer, the share of units above 0 on no image of a fixed sample: they pass
    saturated     no gradient and never learn again. For tanh and sigmoid, the share of units stuck in a
                  flat tail on every sampled image (|tanh| > 0.97, sigmoid outside [0.015, 0.985], where the
                  derivative is under 6 % of its peak).

The weights of a layer are its "W" (Dense, Conv2D) or, for BatchNorm, its "gamma"; biases are left out
because they start at 0, where a ratio to their norm means nothing.

The tracker only reads: the gradients the backward pass produced and the weights before and after the
optimizer's step. Measuring the update needs a copy of each W before the step, so it samples one step in
`every` (always the first of an epoch), and a row reports the mean over the epoch's sampled steps: a single
mini-batch's gradient is noisy, the mean of a few dozen shows the trend. NumPy only, no files.
"""
from __future__ import annotations

import math

import numpy as np

from .layers import LeakyReLU, ReLU, Sigmoid, Tanh

EVERY = 10  # sample one optimizer step in this many: about 1 % of an mlp epoch (docs/training.md)
PROBE = 1000  # images on which dead and saturated units are counted, the first of the dev set
FLAT = 0.97  # |tanh| above this is in the flat tail: derivative 1 - 0.97**2 < 0.06
RELU_LIKE = (ReLU, LeakyReLU)
SATURATING = (Tanh, Sigmoid)


def weight_name(layer) -> str | None:
    """The parameter whose health a row reports: W, or gamma for BatchNorm; None for a layer without."""
    return "W" if "W" in layer.params else ("gamma" if "gamma" in layer.params else None)


def stuck_units(layer, A) -> tuple[str, np.ndarray] | None:
    """For an activation layer's outputs A, (N, H) or (N, C, H, W) with a channel as a unit: ("dead", per unit
    whether it is above 0 on no image) for ReLU-like layers, ("saturated", per unit whether it is in a flat
    tail on every image) for tanh and sigmoid; None for any other layer.  (units,) bool"""
    axes = (0, 2, 3) if A.ndim == 4 else (0,)
    if isinstance(layer, RELU_LIKE):
        return "dead", ~(A > 0).any(axis=axes)
    if isinstance(layer, Tanh):
        return "saturated", (np.abs(A) > FLAT).all(axis=axes)
    if isinstance(layer, Sigmoid):  # sigmoid(z) = (1 + tanh(z / 2)) / 2: the same tails
        return "saturated", (np.abs(2 * A - 1) > FLAT).all(axis=axes)
    return None


def unit_shares(model, X, batch_size: int = 250) -> list[dict]:
    """Per activation layer, the share of its units that are dead or saturated on every image of X, in
    inference mode and batch by batch (a CNN's columns for 1000 images would take hundreds of MB):
    [{"layer": i, "type": "ReLU", "measure": "dead", "share": 0.0125, "units": 800}, ...]"""
    stuck = {}  # layer index -> (measure, (units,) bool), AND-ed over the batches
    for start in range(0, len(X), batch_size):
        for i, (layer, A) in enumerate(zip(model.layers, model.activations(X[start : start + batch_size]))):
            found = stuck_units(layer, A)
            if found is not None:
                stuck[i] = (found[0], found[1] & stuck[i][1]) if i in stuck else found
    return [{"layer": i, "type": type(model.layers[i]).__name__, "measure": measure, "share": float(flags.mean()),
             "units": int(flags.size)} for i, (measure, flags) in sorted(stuck.items())]


class Tracker:
    """Collects the diagnostics of one epoch while fit() runs, and turns them into the History row's entry.

        tracker = Tracker(model)
        if tracker.samples(batch_index):
            tracker.before_step(grads)        # ||dW||, and a copy of each W
        optimizer.step(params, grads, lr)
        if ...: tracker.after_step()          # ||W - W_before|| / ||W_before||
        row["diagnostics"] = tracker.epoch_row(model, X_probe)   # and starts the next epoch afresh
    """

    def __init__(self, model, every: int = EVERY):
        self.every = every
        names = model.param_names()  # '<layer>.<name>', in the order of params() and grads()
        self.watched = []  # (layer index, parameter name, position in params())
        for i, layer in enumerate(model.layers):
            name = weight_name(layer)
            if name is not None:
                self.watched.append((i, name, names.index(f"{i}.{name}")))
        self.params = model.params()
        self.before = None
        self._reset()

    def _reset(self):
        self.steps = 0
        self.grad_norms = np.zeros(len(self.watched))  # sums over the sampled steps
        self.ratios = np.zeros(len(self.watched))

    def samples(self, batch_index: int) -> bool:
        return batch_index % self.every == 0

    def before_step(self, grads) -> None:
        if self.before is None:  # one buffer per watched W, reused every sampled step: no allocation after
            self.before = [np.empty_like(self.params[p]) for _, _, p in self.watched]
        for k, (_, _, p) in enumerate(self.watched):
            self.grad_norms[k] += _norm(grads[p])
            np.copyto(self.before[k], self.params[p])

    def after_step(self) -> None:
        for k, ((_, _, p), W_before) in enumerate(zip(self.watched, self.before)):
            W_norm = _norm(W_before)
            step = np.subtract(self.params[p], W_before, out=W_before)  # W_after - W_before, in the buffer
            self.ratios[k] += _norm(step) / W_norm if W_norm > 0 else math.nan
        self.steps += 1

    def epoch_row(self, model, X_probe) -> dict:
        """The epoch's diagnostics as plain JSON data (see docs/training.md), and a fresh start for the next."""
        n = max(self.steps, 1)
        params = []
        for k, (i, name, _) in enumerate(self.watched):
            ratio = self.ratios[k] / n
            params.append({"layer": i, "type": type(model.layers[i]).__name__, "param": name,
                           "grad_norm": _finite(self.grad_norms[k] / n),
                           "update_ratio": _finite(math.log10(ratio)) if ratio > 0 else None})
        units = unit_shares(model, X_probe) if X_probe is not None else []
        row = {"steps": self.steps, "every": self.every, "images": 0 if X_probe is None else len(X_probe),
               "params": params, "units": units}
        self._reset()
        return row


def _norm(A) -> float:
    """||A||, the square root of the sum of squares, as one BLAS dot product: no temporary array (a float64
    copy of a 784 x 800 W would cost more than the rest of the bookkeeping). In float32 the sum rounds at about
    1e-6 of it, plenty for a diagnostic; past about 1e19 it overflows to inf, recorded as null."""
    v = A.reshape(-1)
    return math.sqrt(float(v @ v))


def _finite(x: float) -> float | None:
    """JSON has no NaN or infinity: an undefined number is null."""
    return float(x) if math.isfinite(x) else None
