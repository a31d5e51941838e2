""""Not sure": when to give no answer, from how sure the network is of its top class.

The rule is a threshold t on the top probability:

    p_max(x) = max_k P_k(x)            P = softmax(z / T), the calibrated probabilities    (N, K)
    not sure  <=>  p_max(x) < t

t is chosen on digits the network did not learn from (the dev split), so that at most a fraction `a` of them
are answered "not sure". With p_(1) <= p_(2) <= ... <= p_(n) the dev digits' top probabilities sorted and
m = floor(a n), the rule abstains on #{i : p_i < t} digits, which is at most m exactly when t <= p_(m+1):

    t = p_(m+1)            the largest threshold within the budget, so it abstains as often as it may

(the one that abstains least is t = 0, which never does). Ties at p_(m+1) are answered, not abstained on, so
the dev rate may come out below a. The rule then abstains on drawings that are not digits only because the
network is unsure of them; benchmarks/not_sure.py measures how often that is, both ways.

Why the top probability, and not another measure of doubt: on the drawn digits and non-digits of
tests/fixtures/drawings.npz, with the cnn-affine model, the margin between the top two probabilities and
the entropy -sum_k P_k log P_k abstained on the same share of non-digits as p_max (within 1.5 points, less
than the 2-point noise of 500 drawings) at the same share of drawn digits, and the largest logit or the
energy log sum_k exp z_k on 6-8 points fewer; p_max is the simplest to show a user ("72 % sure").

Limits: a network trained only on digits is often sure of a drawing that is no digit (measured: a dot, a
filled disc once scaled up, read as a 0; an H, M, V or W as a 4; a "!" as a 1): no threshold catches those. That needs a reject option learned from non-digits; see
benchmarks/README.md. The threshold belongs to one model and one temperature: choose it again for another.
NumPy only.
"""
from __future__ import annotations

import math

import numpy as np

from .checks import require


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


def not_sure(P, t: float) -> np.ndarray:
    """True for each row whose top probability is below t: bool (N,)."""
    P = _probabilities(P, "P")
    require(_real(t) and 0 <= t <= 1, "t", t, "use a threshold in [0, 1] from choose_threshold")
    return P.max(axis=1) < t                                             # (N,)


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


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
