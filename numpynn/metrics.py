"""Scores for a classifier: accuracy, the confusion matrix, per-class precision, recall and F1. NumPy only.

C[i, j] counts the images of true class i predicted as class j, so the diagonal holds the correct ones:
    precision_k = C[k, k] / sum_i C[i, k]    (of the images predicted k, how many were k)
    recall_k    = C[k, k] / sum_j C[k, j]    (of the images that were k, how many were found)
    F1_k        = 2 precision_k recall_k / (precision_k + recall_k)
A class never predicted (or never present) has precision (or recall) 0 rather than 0/0.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, K: int = 10) -> np.ndarray:
    """C (K, K) int64 with C[i, j] = #images of class i predicted as j."""
    C = np.zeros((K, K), np.int64)  # (K, K)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def per_class(C: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support (images per true class), each (K,)."""
    correct = np.diag(C).astype(np.float64)  # (K,)
    predicted, support = C.sum(axis=0), C.sum(axis=1)  # (K,) each
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(correct), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def report(y_true, y_pred, K: int = 10) -> dict:
    """Everything `numpynn evaluate` prints, as JSON-ready Python values."""
    C = confusion_matrix(y_true, y_pred, K)
    scores = per_class(C)
    return {
        "accuracy": float(np.trace(C) / max(C.sum(), 1)),
        "n": int(C.sum()),
        "confusion": C.tolist(),
        "per_class": [
            {"class": k, **{name: float(values[k]) if name != "support" else int(values[k])
                            for name, values in scores.items()}}
            for k in range(K)
        ],
        "macro_f1": float(scores["f1"].mean()),
    }
