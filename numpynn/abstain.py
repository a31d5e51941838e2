""""Not sure": when to give no answer, from how sure the network is and how much ink it was shown.

The rule, for probabilities P = softmax(z / T) (calibrated; (N, K)) and prepared images X ((N, 784) in [0, 1]):

    p_max(x) = max_k P_k(x)                    how sure the network is of its top class
    ink(x)   = (1/784) sum_j x_j               the share of the 28x28 field that is ink
    not sure  <=>  p_max(x) < t   or   ink(x) > u        (the second test only when X and u are given)

Both limits are chosen on digits the network did not learn from (the dev split), each for a share of them
that it may answer "not sure". For the threshold t and a share a: with p_(1) <= ... <= p_(n) the dev digits'
top probabilities sorted and m = floor(a n), the rule abstains on #{i : p_i < t} digits, which is at most m
exactly when t <= p_(m+1), so

    t = p_(m+1)            the largest threshold within the budget: it abstains as often as it may

(the one that abstains least is t = 0, which never does). Ties at p_(m+1) are answered, not abstained on, so
the dev rate may come out below a. The ink limit mirrors it from the other end: with ink sorted in
decreasing order, u = ink_(m+1), the smallest limit that at most m dev digits exceed. The two together abstain
on at most a_t + a_u of the dev digits.

Why these two. On the drawn digits and non-digits of tests/fixtures/drawings.npz, with the cnn-affine model
(benchmarks/not_sure.py), at the same share of drawn digits abstained on:
- the margin P_(1) - P_(2) and the entropy -sum_k P_k log P_k catch the same share of non-digits as p_max
  (within 1.5 points, less than the 2-point noise of 500 drawings), the largest logit and the energy
  log sum_k exp(z_k / T) 6-8 points fewer: p_max is kept, the simplest to show ("72 % sure");
- the network is sure of a dot: prepare() scales it up to a filled disc, read as a 0 at over 99 %. No MNIST
  digit is that inky: ink(x) is at most 0.29 for 99.9 % of dev digits, 0.33 for a dot. The ink limit at
  a_u = 0.1 % catches the dots and the fattest dashes, about 7 points more of all non-digits, for 0.1 % of
  digits.

Limits: a network trained only on digits is sure of many drawings that are no digit (measured: an H, M, V
or W read as a 4, a D as a 0, a "!" as a 1): neither test catches those. That needs a reject option learned
from non-digits; docs/not-sure.md sketches one and gives the measurements. The limits belong to one model and
one temperature: choose them again for another. NumPy only.
"""
from __future__ import annotations

import math

import numpy as np

from .checks import require

DEV_RATE = 0.03  # the share of dev digits the top-probability test may answer "not sure"
INK_RATE = 0.001  # the share the ink test may: what no digit looks like


def choose_rule(P_dev, X_dev) -> dict:
    """A model's rule, chosen on its dev digits: {"threshold": t, "ink_limit": u, "dev_rate": DEV_RATE},
    what `numpynn train` stores in the model file's header as "not_sure"."""
    return {"threshold": choose_threshold(P_dev, DEV_RATE), "ink_limit": choose_ink_limit(X_dev, INK_RATE),
            "dev_rate": DEV_RATE}


def apply_rule(rule: dict | None, P, X) -> np.ndarray:
    """not_sure with a stored rule (choose_rule's dict); a model file without one (None) is always sure: (N,)"""
    if rule is None:
        return np.zeros(len(P), bool)
    return not_sure(P, rule["threshold"], X, rule["ink_limit"])


def choose_threshold(P_dev, max_abstain: float) -> float:
    """The largest t such that at most a fraction max_abstain of the rows of P_dev have p_max < t.

    P_dev: (n, K) probabilities of dev digits (rows sum to 1), calibrated as they will be at prediction.
    max_abstain: in [0, 1), e.g. 0.03 for "not sure" on at most 3 % of digits like these."""
    P_dev = _probabilities(P_dev, "P_dev")
    require(_real(max_abstain) and 0 <= max_abstain < 1, "max_abstain", max_abstain,
            "give the share of digits that may be answered 'not sure', in [0, 1), e.g. 0.03")
    p_max = np.sort(P_dev.max(axis=1))                                   # (n,) ascending
    # m = floor(a n); the 1e-9 keeps 0.29 * 100 = 28.999999999999996 from flooring to 28
    m = math.floor(max_abstain * len(p_max) + 1e-9)
    return float(p_max[m])                                               # p_(m+1), 1-based


def choose_ink_limit(X_dev, max_abstain: float = 0.001) -> float:
    """The smallest u such that at most a fraction max_abstain of the dev images have ink(x) > u.

    X_dev: (n, 784) or (n, 28, 28) dev digits in [0, 1], as the network takes them.
    max_abstain: in [0, 1); 0.001 catches what no digit looks like (a dot scaled up to a filled disc)."""
    ink = _ink(X_dev, "X_dev")
    require(_real(max_abstain) and 0 <= max_abstain < 1, "max_abstain", max_abstain,
            "give the share of digits that may be answered 'not sure', in [0, 1), e.g. 0.001")
    m = math.floor(max_abstain * len(ink) + 1e-9)
    return float(np.sort(ink)[::-1][m])                                  # ink_(m+1) in decreasing order


def not_sure(P, t: float, X=None, ink_limit: float | None = None) -> np.ndarray:
    """True for each row whose top probability is below t, or (given X and ink_limit) whose image holds more
    ink than ink_limit: bool (N,). P: (N, K) probabilities; X: (N, 784) or (N, 28, 28) in [0, 1]."""
    P = _probabilities(P, "P")
    require(_real(t) and 0 <= t <= 1, "t", t, "use a threshold in [0, 1] from choose_threshold")
    unsure = P.max(axis=1) < t                                           # (N,)
    require((X is None) == (ink_limit is None), "ink_limit", ink_limit,
            "give both X and ink_limit (from choose_ink_limit), or neither")
    if X is None:
        return unsure
    ink = _ink(X, "X")
    require(len(ink) == len(P), "X.shape", np.shape(X), f"give one image per row of P ({len(P)})")
    require(_real(ink_limit) and 0 <= ink_limit <= 1, "ink_limit", ink_limit,
            "use a limit in [0, 1] from choose_ink_limit")
    return unsure | (ink > ink_limit)                                    # (N,)


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def _ink(X, name: str) -> np.ndarray:
    """ink(x) = the mean of each image's pixels: (N,)."""
    X = np.asarray(X)
    require(X.ndim in (2, 3) and len(X) >= 1 and X[0].size == 784, f"{name}.shape", X.shape,
            "pass images (N, 784) or (N, 28, 28), as the network takes them")
    require(np.issubdtype(X.dtype, np.floating) and bool(np.isfinite(X).all()) and X.min() >= 0 and X.max() <= 1,
            name, f"{X.dtype} values from {X.min()} to {X.max()}", "pass images in [0, 1]: divide bytes by 255")
    return X.reshape(len(X), -1).mean(axis=1)                            # (N,)


def _probabilities(P, name: str) -> np.ndarray:
    """P as a float array (N, K), checked: N >= 1, K >= 2, every value in [0, 1], rows summing to 1 (so
    logits, which would give a meaningless threshold, are refused)."""
    P = np.asarray(P)
    require(P.ndim == 2 and P.shape[0] >= 1 and P.shape[1] >= 2, f"{name}.shape", P.shape,
            "pass probabilities (N, K), one row per image, such as model.predict_proba(X)")
    require(np.issubdtype(P.dtype, np.floating), f"{name}.dtype", str(P.dtype), "pass float probabilities")
    require(bool(np.isfinite(P).all()), name, "NaN or infinite values", "pass finite probabilities")
    require(bool((P >= 0).all() and (P <= 1).all() and np.allclose(P.sum(axis=1), 1, atol=1e-3)),
            name, "values outside [0, 1] or rows not summing to 1",
            "pass probabilities (softmax of the logits divided by the temperature), not logits")
    return P
