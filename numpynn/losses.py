"""The loss: softmax and cross-entropy, fused, batch-first (one row of K logits per image).

Fusing the two is what makes it stable: log softmax(Z) = Z - logsumexp(Z) is computed from the logits with
the row's max subtracted, so exp() never overflows and no probability is ever passed to log(). It also makes
the gradient simple, dL/dZ = (P - Y) / N.

Left out on purpose: other losses (mean squared error, hinge), class weights, and one-hot or soft label
inputs; labels are integers in [0, K), and label smoothing builds the soft targets itself.
"""
from __future__ import annotations

import numpy as np

from .shapes import K


def softmax(Z):
    """P[i, k] = exp(Z[i, k] - max_j Z[i, j]) / sum_j exp(Z[i, j] - max_j Z[i, j]), one row per image.
    Subtracting the row's max changes nothing mathematically and keeps exp() from overflowing."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))  # (N, K), every entry in (0, 1]
    return E / E.sum(axis=1, keepdims=True)  # (N, K)


def softmax_cross_entropy(Z, y, K: int = K, label_smoothing: float = 0.0):
    """L = -(1/N) sum_i sum_k Y[i, k] log P[i, k],   P = softmax(Z),   log P = Z - logsumexp(Z) row by row
    Y = (1 - eps) * onehot(y) + eps / K   (eps = label_smoothing; eps = 0 gives the one-hot targets)
    dL/dZ = (P - Y) / N
    Z: (N, K) logits   y: (N,) integer labels in [0, K).   Returns (L as a float, dZ (N, K))."""
    y = np.asarray(y)
    if Z.ndim != 2 or Z.shape[1] != K:
        raise ValueError(f"logits have shape {Z.shape}; expected (N, {K}), one row of K = {K} per image")
    if y.shape != (Z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {Z.shape[0]} integers, one per row of the logits; got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(f"labels must lie in [0, {K}); found {y.min()}..{y.max()}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing = {label_smoothing!r} is out of range: use a number in [0, 1), e.g. 0.1")
    N = Z.shape[0]
    Z_shift = Z - Z.max(axis=1, keepdims=True)  # (N, K)  the largest logit of each row becomes 0
    log_P = Z_shift - np.log(np.exp(Z_shift).sum(axis=1, keepdims=True))  # (N, K)  the sum is >= 1: log is safe
    Y = np.full_like(Z, label_smoothing / K)  # (N, K)
    Y[np.arange(N), y] += 1 - label_smoothing
    loss = -(Y * log_P).sum() / N
    # For one image, dL/dZ_j = -sum_k Y_k d(log P_k)/dZ_j = -sum_k Y_k (1[k = j] - P_j) = P_j sum_k Y_k - Y_j,
    # and every row of Y sums to 1, so it is P_j - Y_j. The mean over the batch divides it by N.
    dZ = (np.exp(log_P) - Y) / N  # (N, K)
    return float(loss), dZ
