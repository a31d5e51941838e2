"""The numbers behind the report's figures: PCA, calibration, activation statistics, the most confident
mistakes and the first layer's weights as pictures. NumPy only, no files and no plotting (report.py draws).

    P = model.predict_proba(X)                              # (N, K)
    expected_calibration_error(P.max(axis=1), P.argmax(axis=1) == y)
    scores, components, explained = pca(A, 2)              # A: one layer's outputs, (N, D)

Left out on purpose: PCA beyond the exact eigen-decomposition (no randomized or incremental PCA; the report
runs it on a sample of a few thousand images), calibration fixes (temperature scaling), and t-SNE or UMAP,
which draw prettier maps but whose distances and axes mean nothing a reader can check.
"""
from __future__ import annotations

import numpy as np

from .conv import Conv2D
from .layers import Dense, LeakyReLU, ReLU, Sigmoid, Tanh

ACTIVATION_LAYERS = (ReLU, LeakyReLU, Sigmoid, Tanh)
RELU_LIKE = (ReLU, LeakyReLU)  # where "dead" means something: never above 0


def pca(X, k: int = 2):
    """Principal component analysis of the rows of X (N, D): the k directions along which they vary most.

        Xc = X - mean(X)                  centred, (N, D)
        C  = Xc.T @ Xc / (N - 1)          the covariance, (D, D); its top k eigenvectors V (D, k) are the
                                          components, its eigenvalues lambda the variance along each
        scores = Xc @ V                   each row's coordinates along them, (N, k)

    When D > N the D x D covariance is the larger problem, so we take the N x N Gram matrix G = Xc @ Xc.T
    instead: if G u = mu u, then C (Xc.T u) = (mu / (N - 1)) (Xc.T u), so V = Xc.T u / sqrt(mu) and
    scores = u * sqrt(mu), the same numbers. Each component's sign is fixed so that its largest entry is
    positive (an eigenvector's sign is arbitrary).

    Returns (scores (N, k), components (k, D), explained (k,)): explained[j] is the fraction of the total
    variance along component j. Computed in float64."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"pca needs a 2-D array of at least 2 rows; got shape {X.shape}")
    N, D = X.shape
    if not 1 <= k <= min(N, D):
        raise ValueError(f"k = {k} is out of range: use 1 to {min(N, D)} components for {N} rows of {D} values")
    Xc = X - X.mean(axis=0)  # (N, D)
    total = (Xc**2).sum() / (N - 1)  # the trace of C: the total variance
    if D <= N:
        lam, V = np.linalg.eigh(Xc.T @ Xc / (N - 1))  # ascending eigenvalues; V (D, D)
        lam, V = lam[::-1][:k], V[:, ::-1][:, :k]  # (k,), (D, k): the largest first
    else:
        mu, U = np.linalg.eigh(Xc @ Xc.T)  # (N,), (N, N)
        mu, U = np.clip(mu[::-1][:k], 0, None), U[:, ::-1][:, :k]  # tiny negative round-off becomes 0
        V = Xc.T @ U / np.sqrt(np.where(mu > 0, mu, 1))  # (D, k)  unit vectors (a zero-variance one stays 0)
        lam = mu / (N - 1)
    signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(k)])  # (k,)
    V = V * np.where(signs == 0, 1, signs)
    explained = lam / total if total > 0 else np.zeros(k)
    return Xc @ V, V.T, explained  # (N, k), (k, D), (k,)


def reliability_bins(confidence, correct, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Sort predictions into n_bins equal bins of confidence (the probability the model gave its answer):
    bin b holds confidences in (b / n_bins, (b + 1) / n_bins], the first bin also 0 itself.
    Returns edges (n_bins + 1,), and per bin: count, confidence (the mean confidence) and accuracy (the
    fraction correct); an empty bin has NaN for both. A calibrated model has accuracy = confidence in every bin."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError(f"give one confidence and one correct flag per prediction; got {confidence.shape} and "
                         f"{correct.shape}")
    if confidence.size and not ((confidence >= 0) & (confidence <= 1)).all():
        raise ValueError("confidences are probabilities: every one must lie in [0, 1]")
    if n_bins < 1:
        raise ValueError(f"n_bins = {n_bins} is out of range: use 1 or more")
    edges = np.linspace(0, 1, n_bins + 1)  # (n_bins + 1,)
    b = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)  # (N,) bin of each prediction
    count = np.bincount(b, minlength=n_bins)  # (n_bins,)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: 0 / 0 is NaN on purpose
        mean_confidence = np.bincount(b, confidence, n_bins) / count
        accuracy = np.bincount(b, correct.astype(np.float64), n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_confidence, "accuracy": accuracy}


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """ECE = sum over bins b of (n_b / N) |accuracy_b - confidence_b|: how far, on average over all
    predictions, the stated confidence is from the accuracy actually reached (Guo et al., 2017). 0 is
    perfectly calibrated; it depends on n_bins, so compare ECEs only at the same n_bins."""
    bins = reliability_bins(confidence, correct, n_bins)
    used = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float((bins["count"][used] * gaps).sum() / max(bins["count"].sum(), 1))


def most_confident_mistakes(P, y, n: int):
    """Indices of the n wrong predictions made with the highest probability, most confident first.  (<= n,)"""
    P, y = np.asarray(P), np.asarray(y)
    predicted = P.argmax(axis=1)  # (N,)
    wrong = np.flatnonzero(predicted != y)  # (M,)
    confidence = P[wrong, predicted[wrong]]  # (M,)
    return wrong[np.argsort(-confidence, kind="stable")[:n]]


def activation_stats(A, relu_like: bool, bins: int = 50) -> dict:
    """What one layer's outputs A look like over a set of images.

    A: (N, H) from a dense layer, or (N, C, H, W) from a convolution, where a unit is a channel (its one
    kernel is applied at every position). relu_like: whether "dead" makes sense (ReLU, LeakyReLU).
    Returns mean and std of all values; fraction_zero (ReLU's sparsity); active_rate (units,): the fraction
    of (image, position) pairs where the unit is above 0; dead (units,) bool: never above 0 on any image, so
    (for a ReLU) it passes no gradient and no longer learns; and a histogram of the values (counts, edges)."""
    A = np.asarray(A)
    if A.ndim not in (2, 4):
        raise ValueError(f"activations must be (N, H) or (N, C, H, W); got shape {A.shape}")
    positive = A > 0
    per_unit = positive.mean(axis=(0, 2, 3)) if A.ndim == 4 else positive.mean(axis=0)  # (units,)
    counts, edges = np.histogram(A, bins=bins)
    return {
        "mean": float(A.mean(dtype=np.float64)),
        "std": float(A.std(dtype=np.float64)),
        "fraction_zero": float((A == 0).mean()),
        "active_rate": per_unit,
        "dead": per_unit == 0 if relu_like else None,
        "histogram": (counts, edges),
        "shape": A.shape[1:],
    }


def activation_layers(model) -> list[int]:
    """Indices of the model's activation layers (ReLU, ...): their outputs are its hidden representations."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, ACTIVATION_LAYERS)]


def layer_outputs(model, X, indices, batch_size: int = 250) -> dict[int, np.ndarray]:
    """{i: layer i's outputs on X} for the given layer indices (-1: the last layer, the logits), in inference
    mode and batch by batch (Sequential.outputs_in_batches), so only the layers asked for are kept."""
    return model.outputs_in_batches(X, indices, batch_size)


def first_layer_filters(model, n: int) -> tuple[np.ndarray, str]:
    """The first layer with weights, as up to n pictures: (images (n, h, w), what they are).

    Dense: unit j's weights W[:, j] are one weight per pixel, so they reshape to the input image (28 x 28):
    the pattern that excites the unit most. Conv2D: each kernel W[o, c] is a small k x k picture, slid over
    the image. Raises ValueError if the first layer with weights is neither, or a Dense one whose inputs do
    not form a square image."""
    layer = next((layer for layer in model.layers if layer.params), None)
    if isinstance(layer, Conv2D):
        W = layer.params["W"]  # (C_out, C_in, k, k)
        kernels = W.reshape(-1, layer.kernel, layer.kernel)[:n]  # (n, k, k), output channel by input channel
        what = f"Conv2D kernels, {layer.kernel}x{layer.kernel}, {layer.C_out} channel(s) from {layer.C_in}"
        return kernels, what
    if isinstance(layer, Dense):
        side = int(round(layer.D_in**0.5))
        if side * side != layer.D_in:
            raise ValueError(f"the first layer takes {layer.D_in} inputs, not a square image")
        W = layer.params["W"]  # (D_in, D_out)
        images = W[:, :n].T.reshape(-1, side, side)  # (n, side, side)
        return images, f"Dense weights of the first {len(images)} of {layer.D_out} units, {side}x{side}"
    raise ValueError(f"the first layer with weights is a {type(layer).__name__}; only Dense and Conv2D are drawn")
