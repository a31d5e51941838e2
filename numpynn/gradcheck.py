"""Check a hand-written backward pass against finite differences: the test every layer here has passed.

The trick (llm.c, CS231n): a layer maps X to Y, and backward takes dY = dL/dY for some loss L. Any dY will do,
so draw one at random and take L = sum(Y * dY): then dL/dY is exactly that dY, and the gradients backward
returns should be the derivatives of the scalar function

    f(X) = sum(layer.forward(X) * dY)

which central differences estimate one entry at a time: df/dx ~ (f(x + eps) - f(x - eps)) / (2 eps).
The estimate's error is of order eps**2 plus rounding of order 1e-16 / eps, so with eps = 1e-6 in float64 a
correct backward agrees to about 1e-9 and a wrong one is off by far more. Use float64: in float32 rounding
alone is 1e-7 / eps, and no eps gives a clean check.

Try it:

>>> import numpy as np
>>> from numpynn.layers import Dense
>>> from numpynn.gradcheck import check_layer
>>> rng = np.random.default_rng(0)
>>> layer = Dense(5, 3, rng=rng, dtype=np.float64)
>>> errors = check_layer(layer, rng.standard_normal((4, 5)))
>>> sorted(errors), max(errors.values()) < 1e-7
(['W', 'X', 'b'], True)

Left out on purpose: checking whole models (check each layer and the loss; the chain rule in
Sequential.backward is two lines) and float32 checks.
"""
from __future__ import annotations

import numpy as np

from .losses import softmax_cross_entropy


def relative_error(a, b) -> float:
    """max |a - b| over all entries, divided by the largest |a| or |b|: scale-free, and unlike an entry-by-entry
    ratio it does not blow up on entries that are 0 or nearly."""
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-300))


def numerical_gradient(f, x, eps: float = 1e-6):
    """df/dx by central differences: x is nudged in place, one entry at a time, and restored."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        f_plus = f()
        x[index] = saved - eps
        f_minus = f()
        x[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad


def check_layer(layer, X, *, eps: float = 1e-6, rng: np.random.Generator | None = None) -> dict[str, float]:
    """The relative error of backward's dX ("X") and of every entry of layer.grads, against central differences
    of f(X) = sum(layer.forward(X, train=True) * dY) for a random dY drawn from rng. Build the layer in float64.

    A layer that draws random numbers (Dropout, with its own generator layer.rng) is made deterministic by
    rewinding that generator before every forward, so each one draws the same mask. The layer's buffers
    (BatchNorm's running statistics, which every training forward moves) and generator are restored at the end."""
    X = np.array(X, dtype=np.float64)  # a copy: its entries get nudged
    if any(theta.dtype != np.float64 for theta in layer.params.values()):
        raise ValueError("gradient checks need float64: build the layer with dtype=np.float64")
    rng = rng if rng is not None else np.random.default_rng(0)
    buffers = {name: value.copy() for name, value in layer.buffers.items()}
    rng_state = layer.rng.bit_generator.state if hasattr(layer, "rng") else None

    def forward():
        if rng_state is not None:
            layer.rng.bit_generator.state = rng_state  # the same random draws, hence the same mask, every time
        return layer.forward(X, train=True)

    dY = rng.standard_normal(forward().shape)  # (N, D_out)
    forward()
    dX = layer.backward(dY)
    grads = {name: value.copy() for name, value in layer.grads.items()}

    def f():
        return float((forward() * dY).sum())

    errors = {"X": relative_error(dX, numerical_gradient(f, X, eps))}
    for name, theta in layer.params.items():  # nudging theta in place is what a forward sees
        errors[name] = relative_error(grads[name], numerical_gradient(f, theta, eps))
    layer.buffers.update(buffers)
    if rng_state is not None:
        layer.rng.bit_generator.state = rng_state
    return errors


def check_loss(Z, y, *, K: int = 10, label_smoothing: float = 0.0, eps: float = 1e-6) -> dict[str, float]:
    """The relative error of softmax_cross_entropy's dZ ("Z") against central differences of its loss."""
    Z = np.array(Z, dtype=np.float64)  # a copy: its entries get nudged
    _, dZ = softmax_cross_entropy(Z, y, K, label_smoothing)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(Z, y, K, label_smoothing)[0], Z, eps)
    return {"Z": relative_error(dZ, numeric)}
