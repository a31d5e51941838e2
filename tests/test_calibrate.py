"""numpynn.calibrate: the fitted temperature minimises the held-out NLL and recovers a known scale."""
import numpy as np
import pytest

from numpynn.calibrate import T_MAX, T_MIN, _slope_and_curvature, fit_temperature, negative_log_likelihood
from numpynn.checks import OptionError


def _calibrated(n=20_000, K=10, seed=0):
    """Logits z and labels drawn from softmax(z) itself: for these, T = 1 is the true temperature."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(0, 3, (n, K))
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return Z, y


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_a_known_scale_is_recovered(scale):
    Z, y = _calibrated()
    T = fit_temperature(Z * scale, y)  # logits made over- (scale > 1) or under-confident by a known factor
    assert T == pytest.approx(scale, rel=0.05)


def test_the_fit_is_the_minimum_of_the_nll():
    Z, y = _calibrated(seed=1)
    Z = Z * 1.7
    T = fit_temperature(Z, y)
    best = negative_log_likelihood(Z, y, T)
    for other in (T * 0.9, T * 0.99, T * 1.01, T * 1.1, 1.0):
        assert best <= negative_log_likelihood(Z, y, other) + 1e-12
    slope, _ = _slope_and_curvature(1 / T, Z, y)
    assert abs(slope) < 1e-6  # f'(b) = 0 at the minimum


def test_the_derivatives_match_finite_differences():
    Z, y = _calibrated(n=500, seed=2)
    b, h = 0.8, 1e-5
    slope, curvature = _slope_and_curvature(b, Z, y)
    f = lambda b: negative_log_likelihood(Z, y, 1 / b)  # noqa: E731
    assert slope == pytest.approx((f(b + h) - f(b - h)) / (2 * h), rel=1e-5)
    s_up, _ = _slope_and_curvature(b + h, Z, y)
    s_down, _ = _slope_and_curvature(b - h, Z, y)
    assert curvature == pytest.approx((s_up - s_down) / (2 * h), rel=1e-5)


def test_the_predicted_class_never_changes():
    Z, y = _calibrated(n=2000, seed=3)
    T = fit_temperature(Z * 4, y)
    assert ((Z * 4 / T).argmax(axis=1) == Z.argmax(axis=1)).all()


def test_flat_logits_keep_t_1_and_extremes_are_clamped():
    assert fit_temperature(np.zeros((5, 10)), np.arange(5)) == 1.0
    Z = np.eye(10)[np.arange(50) % 10]  # right every time: the sharper the better, T wants to go to 0
    assert fit_temperature(Z, np.arange(50) % 10) == pytest.approx(T_MIN)
    Z = np.eye(10)[(np.arange(50) + 1) % 10]  # always wrong: the flatter the better, T wants to go to infinity
    assert fit_temperature(Z, np.arange(50) % 10) == pytest.approx(T_MAX)


@pytest.mark.parametrize("Z, y, name", [
    (np.zeros((0, 10)), np.zeros(0, int), "Z.shape"),
    (np.zeros(10), np.zeros(1, int), "Z.shape"),
    (np.zeros((3, 1)), np.zeros(3, int), "Z.shape"),
    (np.full((3, 10), np.nan), np.zeros(3, int), "Z"),
    (np.zeros((3, 10)), np.zeros(2, int), "y.shape"),
    (np.zeros((3, 10)), np.zeros(3), "y.shape"),
    (np.zeros((3, 10)), np.array([0, 1, 10]), "y"),
    (np.zeros((3, 10)), np.array([0, -1, 2]), "y"),
])
def test_bad_inputs_are_one_option_error(Z, y, name):
    with pytest.raises(OptionError) as caught:
        fit_temperature(Z, y)
    assert caught.value.name == name
    assert "\n" not in str(caught.value)
