"""The seed's network, function by function: 784-10-10, ReLU, softmax, cross-entropy, full-batch gradient descent.

This module is the program numpynn grew from, written to be read top to bottom; docs/math.md derives every
line of it. It keeps the seed's names and its column layout: one column per image, so

    X  (D, m)   D = 784 pixels, m images       W1 (H, D)   b1 (H, 1)   H = 10 hidden units
    y  (m,)     integer labels; Y = one_hot(y) is (K, m), K = 10 classes
                                                W2 (K, H)   b2 (K, 1)

The rest of numpynn is batch-first, X (N, D); only this module is features x samples, as the seed wrote it.

Where the seed was wrong or loose, this module is correct and says so next to the line (docs/math.md, section 10,
lists every departure). Nothing else is changed: the loop is the seed's loop, forward -> backward -> update
on the whole (784, m) matrix. `numpynn seed` runs a faster loop by default, numpynn/seed_fast.py, which
computes the same gradient with tricks this file leaves out (docs/seed-fast.md); `numpynn seed --plain` runs
this one.

What it leaves out on purpose: layers, optimizers and mini-batches live in the engine (later modules).
The math imports NumPy only; loading data and printing results belong to the CLI.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .checks import require
from .shapes import D, DEV_SIZE, K  # pixels per image (784), classes (10), images held out as the dev set


@dataclass(frozen=True)
class SeedConfig:
    """Every default of the seed's program, in one place. The CLI builds `numpynn seed`'s options from these
    fields and their help texts, so a default is never written twice."""

    iterations: int = field(default=2000, metadata={"help": "full-batch gradient-descent steps, as in the seed"})
    alpha: float = field(
        default=0.01, metadata={"help": "learning rate; the seed never states it, 0.01 reproduces its numbers"}
    )
    hidden: int = field(default=10, metadata={"help": "hidden units H; the seed has 10"})
    seed: int = field(default=0, metadata={"help": "seeds the train/dev shuffle and the initial weights"})
    dev_size: int = field(default=DEV_SIZE, metadata={"help": "training images held out as the dev set"})
    print_every: int = field(default=10, metadata={"help": "print the loss every this many iterations (0: never)"})
    block: int = field(
        default=512,
        metadata={"help": "fast path only (ignored with --plain): images per block when summing the gradient; "
                          "changes speed, not results"},
    )
    threads: int = field(
        default=2,
        metadata={"help": "fast path only (ignored with --plain): blocks summed on this many threads at once, each "
                          "with single-threaded BLAS; give the number of cores. Changes speed, and the sums' "
                          "rounding, not results"},
    )

    def __post_init__(self):
        rules = [  # (field, is it in range, how to fix it)
            ("iterations", self.iterations >= 0, "use 0 or more"),
            ("alpha", np.isfinite(self.alpha) and self.alpha > 0, "use a finite number above 0, e.g. 0.01"),
            ("hidden", self.hidden >= 1, "use 1 or more"),
            ("seed", self.seed >= 0, "use 0 or more"),
            ("dev_size", self.dev_size >= 1, "use 1 or more (and fewer than the training images)"),
            ("print_every", self.print_every >= 0, "use 0 (never) or more"),
            ("block", self.block >= 1, "use 1 or more"),
            ("threads", 1 <= self.threads <= 256, "use 1 to 256, e.g. the number of cores"),
        ]
        for name, ok, fix in rules:
            require(ok, name, getattr(self, name), fix)


class Params(NamedTuple):
    W1: np.ndarray  # (H, D)
    b1: np.ndarray  # (H, 1)
    W2: np.ndarray  # (K, H)
    b2: np.ndarray  # (K, 1)


def init_params(rng: np.random.Generator, H: int = SeedConfig.hidden, dtype=np.float32) -> Params:
    """W ~ N(0, 1) * 0.01, b = 0, as the seed does.
    Fixed: the seed drew from the global np.random in float64; a generator passed in makes runs reproducible,
    and float32 weights keep every product with the float32 X in float32."""
    W1 = (rng.standard_normal((H, D)) * 0.01).astype(dtype)  # (H, D)
    b1 = np.zeros((H, 1), dtype)  # (H, 1)
    W2 = (rng.standard_normal((K, H)) * 0.01).astype(dtype)  # (K, H)
    b2 = np.zeros((K, 1), dtype)  # (K, 1)
    return Params(W1, b1, W2, b2)


def ReLU(Z):
    """ReLU(z) = max(0, z)"""
    return np.maximum(Z, 0)


def derivative_ReLU(Z):
    """ReLU'(z) = 1 if z > 0 else 0   (at z = 0 we take 0, as the seed does)"""
    return Z > 0


def softmax(Z):
    """softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z), per column.
    Subtracting the column's max changes nothing mathematically and keeps exp() from overflowing."""
    E = np.exp(Z - Z.max(axis=0, keepdims=True))  # (K, m), every entry in (0, 1]
    return E / E.sum(axis=0, keepdims=True)  # (K, m)


def one_hot(y, K: int = K):
    """Y[k, i] = 1 if y_i == k.  Fixed: the seed's Y.max() + 1 rows are too few when a batch lacks the top class."""
    Y = np.zeros((K, y.size), np.float32)  # (K, m)
    Y[y, np.arange(y.size)] = 1
    return Y


def forward_propagation(X, W1, b1, W2, b2):
    """Z1 = W1 X + b1,  A1 = ReLU(Z1),  Z2 = W2 A1 + b2,  A2 = softmax(Z2).
    The biases enter at the hidden and output layers; the input layer has none."""
    Z1 = W1 @ X + b1  # (H, m)
    A1 = ReLU(Z1)  # (H, m)
    Z2 = W2 @ A1 + b2  # (K, m)
    A2 = softmax(Z2)  # (K, m)
    return Z1, A1, Z2, A2


def cross_entropy(Z2, y):
    """Loss = -(1/m) sum_i log softmax(Z2)[y_i, i] = (1/m) sum_i (logsumexp(Z2[:, i]) - Z2[y_i, i]).
    Fixed: the seed took log(A2 + 1e-8); from the logits the loss is exact, and finite even when a probability
    underflows to 0."""
    z_max = Z2.max(axis=0)  # (m,)
    log_sum_exp = z_max + np.log(np.exp(Z2 - z_max).sum(axis=0))  # (m,)
    return float(np.mean(log_sum_exp - Z2[y, np.arange(y.size)]))


def backward_propagation(X, y, Z1, A1, W2, A2):
    """dZ2 = A2 - Y              dW2 = (1/m) dZ2 A1^T      db2 = (1/m) sum_i dZ2[:, i]
    dZ1 = (W2^T dZ2) * ReLU'(Z1)  dW1 = (1/m) dZ1 X^T       db1 = (1/m) sum_i dZ1[:, i]"""
    m = y.size
    dZ2 = A2 - one_hot(y, A2.shape[0])  # (K, m)  m * dL/dZ2 for softmax + cross-entropy; 1/m comes in dW, db
    dW2 = dZ2 @ A1.T / m  # (K, H)
    db2 = dZ2.sum(axis=1, keepdims=True) / m  # (K, 1)  a sum over samples, per unit
    dZ1 = (W2.T @ dZ2) * derivative_ReLU(Z1)  # (H, m)  element-wise: the seed's "·" here is not a matrix product
    dW1 = dZ1 @ X.T / m  # (H, D)
    db1 = dZ1.sum(axis=1, keepdims=True) / m  # (H, 1)
    return dW1, db1, dW2, db2


def update_params(params: Params, grads, alpha: float) -> Params:
    """theta <- theta - alpha * dtheta, for each of W1, b1, W2, b2.
    The seed subtracted in place; this returns new arrays, so gradients are values and no caller's array changes."""
    return Params(*(theta - alpha * dtheta for theta, dtheta in zip(params, grads)))


def gradient_descent(
    X,
    y,
    iterations: int,
    alpha: float,
    *,
    params: Params | None = None,
    rng: np.random.Generator | None = None,
    hidden: int = SeedConfig.hidden,
    print_every: int = SeedConfig.print_every,
    log: Callable[[str], None] | None = print,
):
    """Full-batch gradient descent: every iteration runs forward, backward and update on all m images.

    Starts from `params` if given, else from init_params(rng). Every `print_every` iterations it records the
    loss of that iteration's forward pass (before its update) and, if `log` is set, prints
    `Iteration i: Loss = x.xxxx` as the seed does. Returns (params, losses), losses mapping iteration -> loss."""
    if params is None:
        params = init_params(rng if rng is not None else np.random.default_rng(0), hidden, X.dtype)
    losses = {}
    for i in range(iterations):
        Z1, A1, Z2, A2 = forward_propagation(X, *params)
        grads = backward_propagation(X, y, Z1, A1, params.W2, A2)
        params = update_params(params, grads, alpha)
        if print_every > 0 and i % print_every == 0:
            losses[i] = cross_entropy(Z2, y)
            if log is not None:
                log(f"Iteration {i}: Loss = {losses[i]:.4f}")
    return params, losses


def predict(X, params: Params):
    """The class with the highest probability, per column: argmax_k A2[k, i]."""
    _, _, _, A2 = forward_propagation(X, *params)
    return A2.argmax(axis=0)


def accuracy(X, y, params: Params) -> float:
    """Fraction of images classified correctly, in [0, 1] (the seed returned a percentage; the CLI prints one)."""
    return float(np.mean(predict(X, params) == y))


def run_seed(splits, config: SeedConfig | None = None, log: Callable[[str], None] | None = print, *,
             plain: bool = False) -> dict:
    """The seed's whole program on already-loaded splits: train, then measure train, dev and test accuracy.
    `splits` holds batch-first arrays (N, 784); the seed's column layout is their transpose, a free view.
    plain=True trains with this module's gradient_descent; plain=False with seed_fast's, which computes the
    same iterations faster (the weights agree up to float32 rounding)."""
    from . import seed_fast  # imported here because seed_fast builds on this module

    config = config or SeedConfig()
    options = {} if plain else {"block": config.block, "threads": config.threads}
    train = gradient_descent if plain else seed_fast.gradient_descent
    start = time.perf_counter()
    params, losses = train(
        splits.X_train.T,
        splits.y_train,
        config.iterations,
        config.alpha,
        rng=np.random.default_rng(config.seed),
        hidden=config.hidden,
        print_every=config.print_every,
        log=log,
        **options,
    )
    seconds = time.perf_counter() - start
    return {
        "params": params,
        "losses": losses,
        "train_accuracy": accuracy(splits.X_train.T, splits.y_train, params),
        "dev_accuracy": accuracy(splits.X_dev.T, splits.y_dev, params),
        "test_accuracy": accuracy(splits.X_test.T, splits.y_test, params),
        "seconds": seconds,
    }
