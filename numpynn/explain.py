"""Explanations: which pixels made the network say what it said, from its own backward pass down to the pixels.

For an image x (784 pixels) and the logit z_k of a class k, backpropagation gives dz_k/dx, one number per
pixel: how fast z_k moves when that pixel brightens. Three maps come from it:

    saliency   S = x * dz_k/dx          gradient x input: each pixel's share of z_k. For a network of Dense,
                                        ReLU and pooling layers, z_k(x) = sum_j S_j + (the biases' part) on the
                                        piece of input space where no ReLU switches, so S splits the score
                                        among the pixels that are lit (a dark pixel, x_j = 0, gets 0).
    toward t   d log p_t / dx            "what would make it a t": where more ink (positive) or less ink
                                        (negative) raises the probability of class t. With p = softmax(z / T),
                                        d log p_t / dz = (onehot(t) - p) / T, pushed back through the network.
    occlusion  z_k(x) - z_k(x with a patch blacked out), per patch, spread back onto its pixels: an
               independent check that needs no gradient, only forward passes. Where the saliency says a
               region matters, blacking it out should lower z_k by about the saliency summed over it.

The backward pass is the engine's own, in inference mode: Dropout is the identity there, and BatchNorm a fixed
per-feature affine map y = gamma (x - mean) / sqrt(var + eps) + beta (its running statistics), whose
derivative is the constant gamma / sqrt(var + eps). Every other layer computes the same in training and in
inference, so its training-mode forward (which keeps what backward needs) is used as it is. The layers keep
those caches and write their grads, so use a model here that is not training at the same time (the web page
explains with a copy of its model).

An ensemble (ensemble.py) is explained as a whole: its logits are L = log P, P the mean over members m and
views v of p_mv = softmax(u_mv), u_mv = z_m(S_v x) / T_m, so with l_mv = log p_mv = log_softmax(u_mv):

    L_k = log sum_mv exp(l_mv,k) - log(M V)       dL_k / dl_mv,k = p_mv,k / (M V P_k) = w_mv,k
    dl_mv = dL * w_mv                              (per class: each member-view's share of P_k)
    du_mv = dl_mv - p_mv * sum_k dl_mv,k           (log-softmax's backward)
    dz_mv = du_mv / T_m                            then down member m to its view S_v x, and
    dx    = sum_mv S_v^T dx_v                      S_v^T moves the view's gradient back: the opposite shift

`fgsm` uses the same gradient the other way: to find the smallest-looking change that makes the network wrong.

Left out: integrated gradients, SmoothGrad, Grad-CAM; docs/explain.md shows the maps and their limits.
"""
from __future__ import annotations

import numpy as np

from .checks import require
from .ensemble import log_mean, shifted
from .layers import BatchNorm, Dropout


def backward_to_pixels(model, X, dZ) -> np.ndarray:
    """dL/dX for L = sum(dZ * Z), Z = the model's logits for X in inference mode.  X (N, D), dZ (N, K) -> (N, D)"""
    if hasattr(model, "members"):
        return ensemble_backward_to_pixels(model, X, dZ)
    caches = []
    for layer in model.layers:                               # forward, keeping what backward needs
        if isinstance(layer, Dropout):                       # inference: y = x
            caches.append(None)
        elif isinstance(layer, BatchNorm):                   # inference: y = x * scale + shift, per feature
            scale = layer.params["gamma"] / np.sqrt(layer.buffers["running_var"] + layer.eps)  # (D,)
            caches.append(scale)
            X = (X - layer.buffers["running_mean"]) * scale + layer.params["beta"]
        else:
            caches.append(layer)
            X = layer.forward(X, train=True)                 # the same values as train=False for these layers
    require(X.shape == dZ.shape, "dZ.shape", dZ.shape, f"give one row per image of the logits' shape {X.shape}")
    dY = dZ
    for layer, cache in zip(reversed(model.layers), reversed(caches)):
        if cache is None:
            continue                                         # Dropout: dx = dy
        if isinstance(cache, np.ndarray):
            dY = dY * cache                                  # BatchNorm in inference: dx = dy * scale
        else:
            layer.need_dX = True
            dY = layer.backward(dY)
    return dY                                                # (N, D)


def ensemble_backward_to_pixels(ensemble, X, dZ) -> np.ndarray:
    """dL/dX for L = sum(dZ * log P), P the ensemble's mean probability (see the module docstring): each
    member-view's share of P, pushed back through its log-softmax, its member and its shift.  (N, D)"""
    log_p = ensemble.member_log_probabilities(X)  # (M, V, N, K) every l_mv
    log_P = log_mean(log_p) + np.log(log_p.shape[0] * log_p.shape[1])  # (N, K) log sum_mv p_mv
    dX = np.zeros(X.shape, np.float64)  # (N, D)
    for m, member in enumerate(ensemble.members):
        for v, (dy, dx) in enumerate(ensemble.views):
            l = log_p[m, v]  # (N, K)
            dl = dZ * np.exp(l - log_P)  # (N, K) w_mv = p_mv / sum p
            du = dl - np.exp(l) * dl.sum(axis=1, keepdims=True)  # (N, K)
            dX_v = backward_to_pixels(member, ensemble.view(X, dy, dx), (du / member.temperature).astype(X.dtype))
            dX += dX_v if (dy, dx) == (0, 0) else shifted(dX_v, -dy, -dx, ensemble.side)  # S_v^T
    return dX.astype(X.dtype)


def logit_gradient(model, X, k) -> np.ndarray:
    """dz_k/dx for each image: X (N, D), k (N,) classes (or one class for all).  (N, D)"""
    X = _images(X)
    Z = model.forward(X, train=False)                        # (N, K), only for the shape
    dZ = np.zeros_like(Z)
    dZ[np.arange(len(X)), _classes(k, len(X), Z.shape[1])] = 1
    return backward_to_pixels(model, X, dZ)


def saliency(model, X, k) -> np.ndarray:
    """Gradient x input, S = x * dz_k/dx, for each image and its class k.  (N, D)"""
    X = _images(X)
    return X * logit_gradient(model, X, k)


def toward(model, X, t) -> np.ndarray:
    """d log p_t / dx with p = softmax(z / T) (the model's temperature): where ink would raise the probability
    of class t (positive) or lower it (negative).  X (N, D), t (N,) or one class.  (N, D)"""
    X = _images(X)
    Z = model.forward(X, train=False)                        # (N, K)
    P = model.probabilities(Z)                               # (N, K)
    Y = np.zeros_like(P)
    Y[np.arange(len(X)), _classes(t, len(X), Z.shape[1])] = 1
    return backward_to_pixels(model, X, (Y - P) / model.temperature)


def fgsm(model, X, y, eps: float) -> np.ndarray:
    """The fast gradient sign method (Goodfellow et al., 2014): each pixel moved by eps in the direction that
    raises the loss -log p_y fastest under a bound on every pixel's change, then kept in [0, 1]:
        x_adv = clip(x + eps * sign(d(-log p_y)/dx), 0, 1) = clip(x - eps * sign(toward(model, x, y)), 0, 1)
    X (N, D), y (N,) true classes.  (N, D)"""
    require(0 <= eps <= 1, "eps", eps, "give a change per pixel in [0, 1], e.g. 0.1")
    X = _images(X)
    return np.clip(X - eps * np.sign(toward(model, X, y)), 0, 1).astype(X.dtype)


def occlusion(model, x, k: int, patch: int = 4, stride: int = 2, side: int = 28) -> np.ndarray:
    """For one image x (D,) and class k: how much z_k drops when each patch x patch square (moved by stride)
    is set to 0 (no ink), each pixel getting the mean drop of the patches that cover it.  (D,)"""
    x = _images(np.asarray(x).reshape(1, -1))[0]
    require(x.size == side * side, "x.shape", x.shape, f"give one {side}x{side} image")
    require(1 <= patch <= side and 1 <= stride <= patch, "patch", (patch, stride),
            f"use 1 <= stride <= patch <= {side}")
    corners = [(r, c) for r in range(0, side - patch + 1, stride) for c in range(0, side - patch + 1, stride)]
    blacked = np.repeat(x.reshape(1, side, side), len(corners), axis=0)  # (M, side, side), one per patch
    for m, (r, c) in enumerate(corners):
        blacked[m, r:r + patch, c:c + patch] = 0
    z = model.forward(np.vstack([x[None], blacked.reshape(len(corners), -1)]), train=False)[:, k]  # (1 + M,)
    drop = z[0] - z[1:]                                      # (M,)
    total, covered = np.zeros((side, side)), np.zeros((side, side))
    for d, (r, c) in zip(drop, corners):
        total[r:r + patch, c:c + patch] += d
        covered[r:r + patch, c:c + patch] += 1
    return (total / np.maximum(covered, 1)).reshape(-1)      # (D,)


def _images(X) -> np.ndarray:
    X = np.asarray(X)
    X = X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)
    require(X.ndim == 2 and len(X) >= 1, "X.shape", X.shape, "give images as rows, (N, 784)")
    require(bool(np.isfinite(X).all()), "X", "non-finite pixels", "give pixels in [0, 1]")
    return X


def _classes(k, N: int, K: int) -> np.ndarray:
    k = np.broadcast_to(np.asarray(k), (N,))
    require(np.issubdtype(k.dtype, np.integer) and bool(((k >= 0) & (k < K)).all()), "class", k.tolist()[:5],
            f"give class numbers from 0 to {K - 1}")
    return k.astype(np.int64)
