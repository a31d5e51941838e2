"""Layers: each one a forward pass and, right under it, its backward pass.

Batch-first throughout: one row per image, so X is (N, D), a Dense layer's W is (D_in, D_out) and b is (D_out,).
The contract every layer keeps:

    Y = layer.forward(X, train=True)    train=True caches what backward needs (and lets Dropout and BatchNorm
                                        act as in training); train=False changes nothing: no cache, no running
                                        statistics, no random draws.
    dX = layer.backward(dY)             dY = dL/dY; reads only dY and the cache; fills layer.grads (dL/dparam,
                                        same keys as layer.params, fresh arrays) and returns dX = dL/dX.
    layer.need_dX                       True unless the caller has no use for dX: then a layer may skip it
                                        and return None (Dense and Conv2D do; the others ignore it).
    layer.params, layer.buffers         trainable arrays, and the non-trainable ones (BatchNorm's running stats).
    layer.spec()                        a JSON-able description that rebuilds the layer (see model.Sequential).

Gradients are values: backward never touches params; only an optimizer (optim.py) changes weights.

Left out on purpose (convolutions and pooling are in conv.py): layer norm, residual connections, weight sharing, and automatic
differentiation; every backward here is written by hand and checked by gradcheck.py.
"""
from __future__ import annotations

import numpy as np

from .checks import require


class Layer:
    """What every layer has. Layers with weights fill params in __init__ and grads in backward; a layer that
    draws random numbers keeps its own generator in self.rng, whose state the model saves (see Dropout)."""

    need_dX = True  # False: backward may skip dX and return None (Sequential.backward sets it on the first layer)

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}  # trainable, changed only by an optimizer
        self.grads: dict[str, np.ndarray] = {}  # dL/dparam from the last backward, same keys as params
        self.buffers: dict[str, np.ndarray] = {}  # saved with the model, never trained

    def spec(self) -> dict:
        return {"type": type(self).__name__}


INITS = ("he", "glorot", "seed")


def init_weights(shape, fan_in: int, fan_out: int, init: str, rng: np.random.Generator | None, dtype) -> np.ndarray:
    """Initial weights of `shape`, drawn by rng in float64 and then cast to dtype (as the seed does):
        "he"      W ~ N(0, 2 / fan_in)                                    for ReLU
        "glorot"  W ~ Uniform(-a, a),  a = sqrt(6 / (fan_in + fan_out))   for tanh and sigmoid
        "seed"    W ~ N(0, 1) * 0.01                                      numpynn.seed's
    fan_in: how many inputs one output sums over; fan_out: how many outputs one input feeds.
    `init` is one of INITS; each layer checks which it offers."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if init == "he":
        W = rng.standard_normal(shape) * np.sqrt(2 / fan_in)
    elif init == "glorot":
        a = np.sqrt(6 / (fan_in + fan_out))
        W = rng.uniform(-a, a, shape)
    else:
        W = rng.standard_normal(shape) * 0.01
    return W.astype(dtype)


class Dense(Layer):
    """Affine map  Z = X @ W + b.
    Backward:  dW = X.T @ dZ,  db = sum over the batch of dZ,  dX = dZ @ W.T
    X: (N, D_in)   W: (D_in, D_out)   b: (D_out,)   Z: (N, D_out)
    init: "he" W ~ N(0, 2 / D_in) (for ReLU), "glorot" W ~ Uniform(-a, a) with a = sqrt(6 / (D_in + D_out))
    (for tanh and sigmoid), "seed" W ~ N(0, 1) * 0.01 as numpynn.seed; b = 0 always."""

    def __init__(self, D_in: int, D_out: int, init: str = "he", rng: np.random.Generator | None = None,
                 dtype=np.float32, W: np.ndarray | None = None):
        super().__init__()
        require(D_in >= 1 and D_out >= 1, "D_in, D_out", (D_in, D_out), "use sizes of 1 or more")
        require(init in INITS, "init", init, f"use one of {', '.join(INITS)}")
        self.D_in, self.D_out, self.init, self.dtype = D_in, D_out, init, np.dtype(dtype)
        if W is not None:  # a model being loaded: its weights as given, nothing drawn (no second copy in memory)
            require(W.shape == (D_in, D_out), "W", W.shape, f"give W of shape {(D_in, D_out)}")
            self.params = {"W": np.ascontiguousarray(W, self.dtype), "b": np.zeros(D_out, self.dtype)}
            return
        # Drawn as (D_out, D_in) and transposed: the seed's orientation, so init="seed" with the same rng gives
        # exactly numpynn.seed.init_params's numbers.
        W = init_weights((D_out, D_in), D_in, D_out, init, rng, self.dtype)  # (D_out, D_in)
        self.params = {
            "W": np.ascontiguousarray(W.T),  # (D_in, D_out)
            "b": np.zeros(D_out, self.dtype),  # (D_out,)
        }

    def forward(self, X, train=True):
        W, b = self.params["W"], self.params["b"]
        if train:
            self.X = X  # kept for dW
        return X @ W + b  # (N, D_out)

    def backward(self, dZ):  # dZ = dL/dZ, (N, D_out)
        W = self.params["W"]
        self.grads = {
            "W": self.X.T @ dZ,  # (D_in, D_out)
            "b": dZ.sum(axis=0),  # (D_out,)  b is added to every row, so its gradient sums over them
        }
        # The first layer's dX is a gradient for the pixels: training never uses it, and for 784-800-10 it
        # would be a third of the step's arithmetic, so Sequential.backward sets that layer's need_dX to False.
        return dZ @ W.T if self.need_dX else None  # (N, D_in)

    def spec(self):
        return {"type": "Dense", "D_in": self.D_in, "D_out": self.D_out, "init": self.init,
                "dtype": self.dtype.name}


class ReLU(Layer):
    """A = max(0, Z).   Backward: dZ = dA * (Z > 0)   (we take the derivative at 0 to be 0, as the seed does)"""

    def forward(self, Z, train=True):
        if train:
            self.mask = Z > 0  # (N, H) bool: all backward needs
        return np.maximum(Z, 0)  # (N, H)

    def backward(self, dA):
        return dA * self.mask  # (N, H)


class LeakyReLU(Layer):
    """A = Z if Z > 0 else slope * Z.   Backward: dZ = dA * (1 if Z > 0 else slope)
    A small slope keeps a gradient flowing through units that a plain ReLU would leave dead."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        require(0 <= slope < 1, "slope", slope, "use a number in [0, 1), e.g. 0.01")
        self.slope = slope

    def forward(self, Z, train=True):
        dA_dZ = np.where(Z > 0, 1, self.slope).astype(Z.dtype)  # (N, H)  the local derivative
        if train:
            self.dA_dZ = dA_dZ
        return Z * dA_dZ  # (N, H)  the line through 0 with slope 1 or `slope`, so A = Z * A'(Z)

    def backward(self, dA):
        return dA * self.dA_dZ  # (N, H)

    def spec(self):
        return {"type": "LeakyReLU", "slope": self.slope}


class Sigmoid(Layer):
    """A = 1 / (1 + exp(-Z)).   Backward: dZ = dA * A * (1 - A)
    Computed from E = exp(-|Z|), which lies in (0, 1] and never overflows:
    A = 1 / (1 + E) where Z >= 0, and A = E / (1 + E) where Z < 0 (the same function, rearranged)."""

    def forward(self, Z, train=True):
        E = np.exp(-np.abs(Z))  # (N, H)
        A = np.where(Z >= 0, 1, E) / (1 + E)  # (N, H)
        if train:
            self.A = A  # the derivative is a function of the output alone
        return A

    def backward(self, dA):
        return dA * self.A * (1 - self.A)  # (N, H)


class Tanh(Layer):
    """A = tanh(Z).   Backward: dZ = dA * (1 - A**2)"""

    def forward(self, Z, train=True):
        A = np.tanh(Z)  # (N, H)
        if train:
            self.A = A
        return A

    def backward(self, dA):
        return dA * (1 - self.A**2)  # (N, H)


class Dropout(Layer):
    """Inverted dropout. In training each unit is zeroed with probability p and the survivors are scaled up:
        Y = X * M,   M = (U >= p) / (1 - p),   U ~ Uniform[0, 1), drawn afresh on every forward
    so E[Y] = X, and inference is simply Y = X.   Backward: dX = dY * M, with the same mask.
    The layer owns its generator, seeded by `seed`; the model saves its state (model.Sequential.state_dict)
    so a resumed run draws the very masks the uninterrupted one would have drawn."""

    def __init__(self, p: float, seed: int = 0):
        super().__init__()
        require(0 <= p < 1, "p", p, "use a dropout probability in [0, 1), e.g. 0.5")
        self.p, self.seed = p, seed
        self.rng = np.random.default_rng(seed)

    def forward(self, X, train=True):
        if not train:
            return X
        U = self.rng.random(X.shape, dtype=np.float32)  # (N, H)  float32 whatever X is: same masks in any dtype
        self.M = (U >= self.p).astype(X.dtype) / (1 - self.p)  # (N, H)  0 or 1 / (1 - p)
        return X * self.M  # (N, H)

    def backward(self, dY):
        return dY * self.M  # (N, H)

    def spec(self):
        return {"type": "Dropout", "p": self.p, "seed": self.seed}


class BatchNorm(Layer):
    """Batch normalization, per feature (column):
        X_hat = (X - mu) / sqrt(var + eps),   Y = gamma * X_hat + beta
    Training: mu and var are the batch's mean and variance (dividing by N), and running averages follow them,
    running = (1 - momentum) * running + momentum * batch, where the running variance, as in PyTorch, takes the
    unbiased batch variance var * N / (N - 1); inference uses the running averages instead.
    Backward (training, where mu and var depend on every row of X), with dX_hat = dY * gamma:
        dX = (dX_hat - mean(dX_hat) - X_hat * mean(dX_hat * X_hat)) / sqrt(var + eps)   means over the batch"""

    def __init__(self, D: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        require(D >= 1, "D", D, "use 1 or more features")
        require(0 < momentum <= 1, "momentum", momentum, "use a number in (0, 1], e.g. 0.1")
        require(eps > 0, "eps", eps, "use a small positive number, e.g. 1e-5")
        self.D, self.momentum, self.eps, self.dtype = D, momentum, eps, np.dtype(dtype)
        self.params = {"gamma": np.ones(D, self.dtype), "beta": np.zeros(D, self.dtype)}  # (D,) each
        self.buffers = {"running_mean": np.zeros(D, self.dtype), "running_var": np.ones(D, self.dtype)}

    def forward(self, X, train=True):
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not train:
            X_hat = (X - self.buffers["running_mean"]) / np.sqrt(self.buffers["running_var"] + self.eps)  # (N, D)
            return gamma * X_hat + beta  # (N, D)
        mu, var = X.mean(axis=0), X.var(axis=0)  # (D,) each
        self.inv_std = 1 / np.sqrt(var + self.eps)  # (D,)
        self.X_hat = (X - mu) * self.inv_std  # (N, D)
        m, N = self.momentum, len(X)
        # The running variance estimates the data's, not the batch's: divide-by-N is 1.6 % low at N = 64, so
        # it takes N - 1, as PyTorch does and so the same weights give PyTorch's eval outputs. (N = 1: var is 0.)
        var_unbiased = var * (N / max(N - 1, 1))  # (D,)
        self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * mu  # (D,)
        self.buffers["running_var"] = (1 - m) * self.buffers["running_var"] + m * var_unbiased  # (D,)
        return gamma * self.X_hat + beta  # (N, D)

    def backward(self, dY):  # (N, D)
        X_hat, gamma = self.X_hat, self.params["gamma"]
        self.grads = {"gamma": (dY * X_hat).sum(axis=0), "beta": dY.sum(axis=0)}  # (D,) each
        dX_hat = dY * gamma  # (N, D)
        # Moving one X[i] moves mu and var, and through them every X_hat in its column: hence the two means.
        return (dX_hat - dX_hat.mean(axis=0) - X_hat * (dX_hat * X_hat).mean(axis=0)) * self.inv_std  # (N, D)

    def spec(self):
        return {"type": "BatchNorm", "D": self.D, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}


LAYERS: dict[str, type] = {cls.__name__: cls for cls in (Dense, ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, BatchNorm)}
