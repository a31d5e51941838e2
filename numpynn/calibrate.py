"""Calibration: one temperature T, fitted on held-out images, that makes the stated probabilities honest.

A network trained with label smoothing (or for long without it) states probabilities that do not match how
often it is right: a model that says 0.9 on images it gets right 99 % of the time is under-confident. Dividing
every logit by one number T > 0 before the softmax keeps the order of the logits, so the predicted digit (and
the accuracy) cannot change, while T > 1 softens the probabilities and T < 1 sharpens them (Guo et al., 2017,
"On Calibration of Modern Neural Networks").

T is the one that makes the held-out labels most likely: it minimises the mean negative log-likelihood

    f(b) = (1/N) sum_i [ log sum_k exp(b z_ik) - b z_iy ],      b = 1 / T,   z_i = the logits of image i

With P = softmax(b z) row by row, the first two derivatives are

    f'(b)  = (1/N) sum_i [ sum_k p_ik z_ik - z_iy ]             (the expected logit minus the true one)
    f''(b) = (1/N) sum_i [ sum_k p_ik z_ik^2 - (sum_k p_ik z_ik)^2 ]   (the variance of z_i under p_i, >= 0)

so f is convex in b, and Newton's step b <- b - f'(b) / f''(b), halved while it would not lower f, finds its
minimum in a few steps. The fit is done on the dev split, never on the test images whose calibration it is
judged by.

Left out: vector or matrix scaling (one T per class, or an affine map of the logits), which can change the
predicted digit; histogram binning.
"""
from __future__ import annotations

import numpy as np

from .checks import require

T_MIN, T_MAX = 0.05, 20.0  # temperatures outside this range mean the logits carry no usable scale


def _nll(b: float, Z, y) -> float:
    """f(b): the mean negative log-likelihood of the labels y under softmax(b Z)."""
    bZ = b * Z  # (N, K)
    top = bZ.max(axis=1, keepdims=True)  # (N, 1)
    log_sum = np.log(np.exp(bZ - top).sum(axis=1)) + top[:, 0]  # (N,) log sum_k exp(b z_ik), without overflow
    return float((log_sum - bZ[np.arange(len(y)), y]).mean())


def _slope_and_curvature(b: float, Z, y) -> tuple[float, float]:
    """f'(b) and f''(b) from the formulas above."""
    bZ = b * Z  # (N, K)
    E = np.exp(bZ - bZ.max(axis=1, keepdims=True))  # (N, K)
    P = E / E.sum(axis=1, keepdims=True)  # (N, K) softmax(b z_i), row by row
    mean_z = (P * Z).sum(axis=1)  # (N,) the logit expected under p_i
    var_z = (P * Z * Z).sum(axis=1) - mean_z ** 2  # (N,) its variance, >= 0 up to rounding
    return float((mean_z - Z[np.arange(len(y)), y]).mean()), float(np.maximum(var_z, 0).mean())


def fit_temperature(Z, y, steps: int = 50) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(Z / T) for the labels y.

    Z: (N, K) logits of held-out images (never softmaxed), y: (N,) their integer labels in [0, K).
    Returns T in [T_MIN, T_MAX]; 1.0 when the logits are all equal (no scale to fit)."""
    Z, y = np.asarray(Z, dtype=np.float64), np.asarray(y)
    require(Z.ndim == 2 and Z.shape[0] > 0 and Z.shape[1] >= 2, "Z.shape", Z.shape,
            "give the logits of at least one image, one row of K >= 2 per image")
    require(bool(np.isfinite(Z).all()), "Z", "non-finite logits", "fit on a model whose logits are finite")
    require(y.shape == (Z.shape[0],) and np.issubdtype(y.dtype, np.integer), "y.shape", y.shape,
            f"give {Z.shape[0]} integer labels, one per row of Z")
    require(bool(((y >= 0) & (y < Z.shape[1])).all()), "y", f"{y.min()}..{y.max()}",
            f"labels must lie in [0, {Z.shape[1]})")
    b, b_min, b_max = 1.0, 1 / T_MAX, 1 / T_MIN
    f = _nll(b, Z, y)
    for _ in range(steps):
        slope, curvature = _slope_and_curvature(b, Z, y)
        if curvature <= 1e-12:  # the logits of every image are equal: softmax(b z) is flat for every b
            break
        step = slope / curvature  # Newton's step for b
        while True:  # halve the step until it lowers f (f is convex, so a small enough step always does)
            b_new = min(max(b - step, b_min), b_max)
            f_new = _nll(b_new, Z, y)
            if f_new <= f or abs(step) < 1e-12:
                break
            step /= 2
        converged = abs(b_new - b) < 1e-10 * max(1.0, b)
        b, f = b_new, min(f, f_new)
        if converged:
            break
    return float(1 / b)


def calibrate(model, X, y) -> float:
    """Fit `model`'s temperature on held-out images X (N, D) with labels y (N,), set it, and return it.
    The logits are those of the model at temperature 1: T is fitted afresh, not on top of an earlier T."""
    model.temperature = fit_temperature(model.forward_in_batches(X), y)
    return model.temperature


def negative_log_likelihood(Z, y, T: float = 1.0) -> float:
    """The mean negative log-likelihood of the labels y under softmax(Z / T): what fit_temperature minimises."""
    return _nll(1 / T, np.asarray(Z, dtype=np.float64), np.asarray(y))
