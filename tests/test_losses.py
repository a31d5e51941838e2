"""The fused softmax cross-entropy: its gradient against central differences, its values, its stability."""
import numpy as np
import pytest

from numpynn.gradcheck import check_loss
from numpynn.losses import softmax, softmax_cross_entropy


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_gradient_matches_central_differences(seed, label_smoothing):
    rng = np.random.default_rng(seed)
    N, K = int(rng.integers(1, 8)), int(rng.integers(2, 12))
    Z = rng.standard_normal((N, K)) * 3
    y = rng.integers(0, K, N)
    errors = check_loss(Z, y, K=K, label_smoothing=label_smoothing)
    assert errors["Z"] < 1e-7, errors


def test_loss_is_the_mean_negative_log_probability_of_the_label():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((6, 10))
    y = np.array([0, 3, 9, 9, 1, 5])
    loss, dZ = softmax_cross_entropy(Z, y)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)  # the textbook formula; fine for small logits
    assert loss == pytest.approx(-np.log(P[np.arange(6), y]).mean(), rel=1e-12)
    Y = np.eye(10)[y]
    np.testing.assert_allclose(dZ, (P - Y) / 6, atol=1e-15)


def test_uniform_logits_give_log_K_with_or_without_smoothing():
    for label_smoothing in (0.0, 0.2):
        loss, dZ = softmax_cross_entropy(np.zeros((3, 10)), np.array([1, 2, 3]), label_smoothing=label_smoothing)
        assert loss == pytest.approx(np.log(10))


def test_label_smoothing_targets_are_one_minus_eps_onehot_plus_eps_over_K():
    Z = np.array([[2.0, 0.0, -1.0, 0.5]])
    eps, K = 0.2, 4
    loss, dZ = softmax_cross_entropy(Z, np.array([2]), K=K, label_smoothing=eps)
    Y = np.array([[0.05, 0.05, 0.85, 0.05]])  # (1 - 0.2) * onehot + 0.2 / 4
    log_P = np.log(softmax(Z))
    assert loss == pytest.approx(-(Y * log_P).sum())
    np.testing.assert_allclose(dZ, softmax(Z) - Y)


def test_huge_logits_stay_finite():
    Z = np.array([[0.0, 800.0], [800.0, 0.0], [1e4, -1e4]])  # exp(800) overflows float64
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dZ = softmax_cross_entropy(Z, np.array([0, 0, 0]), K=2)
        P = softmax(Z)
    assert loss == pytest.approx(800 / 3)  # the first image's label has probability exp(-800), log -800
    assert np.isfinite(dZ).all() and np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1)


def test_float32_logits_give_float32_gradients():
    Z = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    loss, dZ = softmax_cross_entropy(Z, np.array([1, 2, 3, 4], np.uint8))  # MNIST labels are uint8
    assert dZ.dtype == np.float32 and isinstance(loss, float)
    np.testing.assert_allclose(dZ.sum(axis=1), 0, atol=1e-7)  # P and Y both sum to 1 per row


def test_softmax_rows_are_probabilities():
    P = softmax(np.random.default_rng(0).standard_normal((5, 10)) * 10)
    assert P.shape == (5, 10) and (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1)


@pytest.mark.parametrize(
    "Z, y, K, label_smoothing, match",
    [
        (np.zeros((2, 10)), np.array([0, 10]), 10, 0.0, r"\[0, 10\)"),
        (np.zeros((2, 10)), np.array([-1, 3]), 10, 0.0, r"\[0, 10\)"),
        (np.zeros((2, 10)), np.array([0.0, 1.0]), 10, 0.0, "integers"),
        (np.zeros((2, 10)), np.array([0, 1, 2]), 10, 0.0, "integers"),
        (np.zeros((2, 9)), np.array([0, 1]), 10, 0.0, r"\(N, 10\)"),
        (np.zeros((2, 10)), np.array([0, 1]), 10, 1.0, "label_smoothing"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(Z, y, K, label_smoothing, match):
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(Z, y, K, label_smoothing)
