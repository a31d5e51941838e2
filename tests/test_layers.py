"""Layers: every backward against central differences (float64), then each layer's behaviour on its own."""
import doctest
import json
import warnings

import numpy as np
import pytest

import numpynn.gradcheck
from numpynn import seed as S
from numpynn.gradcheck import check_layer
from numpynn.conv import Conv2D
from numpynn.layers import LAYERS, BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh

SEEDS = [0, 1, 2]


def away_from_zero(rng, shape):
    """Random inputs with |x| >= 0.1: a nudge of 1e-6 never crosses ReLU's kink at 0."""
    X = rng.standard_normal(shape)
    return np.sign(X) * (0.1 + np.abs(X))


def random_shape(rng):
    return int(rng.integers(2, 7)), int(rng.integers(2, 7))  # (N, D)


def make_layer(kind, D, rng):
    """A float64 layer of each kind, with non-trivial parameters where it has some."""
    if kind.startswith("Dense"):
        return Dense(D, int(rng.integers(1, 6)), init=kind.split("-")[1], rng=rng, dtype=np.float64)
    if kind == "BatchNorm":
        layer = BatchNorm(D, dtype=np.float64)
        layer.params["gamma"][:] = rng.uniform(0.5, 2, D)  # not 1 and 0, so a misplaced gamma or beta shows
        layer.params["beta"][:] = rng.standard_normal(D)
        return layer
    return {"ReLU": ReLU, "LeakyReLU": lambda: LeakyReLU(0.1), "Sigmoid": Sigmoid, "Tanh": Tanh,
            "Dropout": lambda: Dropout(0.4, seed=int(rng.integers(100)))}[kind]()


KINDS = ["Dense-he", "Dense-glorot", "Dense-seed", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_central_differences(kind, seed):
    rng = np.random.default_rng(seed)
    N, D = random_shape(rng)
    layer = make_layer(kind, D, rng)
    errors = check_layer(layer, away_from_zero(rng, (N, D)), rng=rng)
    assert set(errors) == {"X", *layer.params}
    assert max(errors.values()) < 1e-7, errors


def test_gradient_check_leaves_the_layer_as_it_found_it():
    layer = BatchNorm(3, dtype=np.float64)
    check_layer(layer, away_from_zero(np.random.default_rng(0), (4, 3)))
    np.testing.assert_array_equal(layer.buffers["running_mean"], 0)
    np.testing.assert_array_equal(layer.buffers["running_var"], 1)
    dropout = Dropout(0.5, seed=3)
    check_layer(dropout, np.ones((4, 3)))
    assert dropout.rng.random() == np.random.default_rng(3).random()


def test_gradient_check_finds_a_wrong_backward():
    class BadTanh(Tanh):
        def backward(self, dA):
            return dA * (1 - self.A)  # forgot the square

    errors = check_layer(BadTanh(), away_from_zero(np.random.default_rng(0), (4, 3)))
    assert errors["X"] > 1e-2


def test_gradcheck_docstring_example_runs():
    assert doctest.testmod(numpynn.gradcheck).failed == 0


def test_backward_fills_grads_with_fresh_values_and_leaves_params_alone():
    rng = np.random.default_rng(0)
    layer = Dense(4, 3, rng=rng)
    W, b = layer.params["W"].copy(), layer.params["b"].copy()
    X = rng.standard_normal((5, 4)).astype(np.float32)
    layer.forward(X)
    layer.backward(np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(layer.params["W"], W)
    np.testing.assert_array_equal(layer.params["b"], b)
    assert layer.grads["W"].shape == (4, 3) and layer.grads["b"].shape == (3,)
    assert layer.grads["W"] is not layer.params["W"]
    np.testing.assert_allclose(layer.grads["b"], 5)  # db sums dZ over the 5 rows
    assert layer.grads["W"].dtype == np.float32


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 400)), ("seed", 0.01)])
def test_dense_normal_inits_have_their_scale(init, std):
    layer = Dense(400, 300, init=init, rng=np.random.default_rng(0))
    W, b = layer.params["W"], layer.params["b"]
    assert W.shape == (400, 300) and W.dtype == np.float32 and W.flags.c_contiguous
    assert W.std() == pytest.approx(std, rel=0.02) and abs(W.mean()) < std / 50
    assert b.shape == (300,) and not b.any()


def test_dense_glorot_is_uniform_within_its_bound():
    W = Dense(400, 300, init="glorot", rng=np.random.default_rng(0)).params["W"]
    a = np.sqrt(6 / 700)
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.99 * a
    assert W.std() == pytest.approx(a / np.sqrt(3), rel=0.02)  # the std of Uniform(-a, a)


def test_dense_seed_init_draws_the_seeds_numbers():
    rng = np.random.default_rng(5)
    first, second = Dense(784, 10, init="seed", rng=rng), Dense(10, 10, init="seed", rng=rng)
    params = S.init_params(np.random.default_rng(5))
    np.testing.assert_array_equal(first.params["W"], params.W1.T)
    np.testing.assert_array_equal(second.params["W"], params.W2.T)


def test_dense_forward_is_X_W_plus_b():
    layer = Dense(2, 3, dtype=np.float64)
    layer.params["W"][:] = [[1, 2, 3], [4, 5, 6]]
    layer.params["b"][:] = [0.5, 0, -1]
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 1.0], [0.0, 2.0]])), [[5.5, 7, 8], [8.5, 10, 11]])


def test_eval_forward_changes_nothing():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4)).astype(np.float32)
    for layer in (Dense(4, 4, rng=rng), ReLU(), LeakyReLU(), Sigmoid(), Tanh(), Dropout(0.5), BatchNorm(4)):
        before = {**layer.params, **layer.buffers}
        before = {name: value.copy() for name, value in before.items()}
        rng_state = layer.rng.bit_generator.state if hasattr(layer, "rng") else None
        np.testing.assert_array_equal(layer.forward(X, train=False), layer.forward(X, train=False))
        assert not hasattr(layer, "X") and not hasattr(layer, "M") and not hasattr(layer, "X_hat")  # no cache
        for name, value in before.items():
            np.testing.assert_array_equal({**layer.params, **layer.buffers}[name], value)
        if rng_state is not None:
            assert layer.rng.bit_generator.state == rng_state


def test_activations_forward_values():
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_array_equal(ReLU().forward(Z), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(LeakyReLU(0.1).forward(Z), [[-0.2, -0.05, 0, 0.5, 2]])
    np.testing.assert_allclose(Sigmoid().forward(Z), 1 / (1 + np.exp(-Z)), rtol=1e-15)
    np.testing.assert_allclose(Tanh().forward(Z), np.tanh(Z))


def test_relu_derivative_at_zero_is_zero_as_in_the_seed():
    relu = ReLU()
    relu.forward(np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 2))), [[0, 1]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_finite_at_plus_and_minus_1000_without_warnings(dtype):
    Z = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype)
    layer = Sigmoid()
    # Overflow, 0/0 or inf/inf would raise here; exp(-1000) underflowing to 0 is the right answer, and NumPy
    # is silent about underflow by default, so it is left to its default.
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        A = layer.forward(Z)
        dZ = layer.backward(np.ones_like(Z))
    assert A.dtype == dtype and np.isfinite(A).all() and np.isfinite(dZ).all()
    assert A[0, 0] == 0 and A[0, 2] == 0.5 and A[0, 4] == 1
    assert dZ[0, 2] == 0.25 and dZ[0, 0] == 0 and dZ[0, 4] == 0


def test_dropout_is_the_identity_at_inference():
    X = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)
    assert Dropout(0.5).forward(X, train=False) is X


def test_dropout_zeroes_a_fraction_p_and_keeps_the_expected_value():
    layer = Dropout(0.3, seed=1)
    X = np.ones((400, 500), np.float32)
    Y = layer.forward(X)
    assert Y.dtype == np.float32
    assert set(np.unique(Y)) == {0, np.float32(1 / 0.7)}  # survivors scaled by 1 / (1 - p)
    assert (Y == 0).mean() == pytest.approx(0.3, abs=0.005)
    assert Y.mean() == pytest.approx(1.0, abs=0.01)  # inverted dropout: E[Y] = X
    np.testing.assert_array_equal(layer.backward(X), Y)  # backward applies the same mask
    assert not np.array_equal(layer.forward(X), Y)  # a fresh mask every forward


def test_dropout_with_p_0_changes_nothing():
    X = np.random.default_rng(0).standard_normal((6, 4))
    np.testing.assert_array_equal(Dropout(0.0).forward(X), X)


def test_dropout_masks_follow_the_seed():
    X = np.ones((20, 20))
    np.testing.assert_array_equal(Dropout(0.5, seed=7).forward(X), Dropout(0.5, seed=7).forward(X))
    assert not np.array_equal(Dropout(0.5, seed=7).forward(X), Dropout(0.5, seed=8).forward(X))


def test_batchnorm_train_mode_normalizes_with_batch_statistics_and_updates_running_stats():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((256, 3)) * [1, 2, 3] + [5, -1, 0]).astype(np.float64)
    layer = BatchNorm(3, momentum=0.1, dtype=np.float64)
    Y = layer.forward(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Y.var(axis=0), X.var(axis=0) / (X.var(axis=0) + 1e-5), rtol=1e-12)
    # running = 0.9 * running + 0.1 * batch, from mean 0 and variance 1; the variance unbiased, as in PyTorch
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * X.mean(axis=0))
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * np.var(X, axis=0, ddof=1))
    layer.forward(X)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.19 * X.mean(axis=0))


def test_batchnorm_eval_mode_uses_the_running_stats():
    rng = np.random.default_rng(1)
    layer = BatchNorm(2, eps=1e-5, dtype=np.float64)
    layer.params["gamma"][:] = [2, 3]
    layer.params["beta"][:] = [1, -1]
    layer.buffers["running_mean"][:] = [10, -10]
    layer.buffers["running_var"][:] = [4, 0.25]
    X = rng.standard_normal((5, 2))
    expected = [2, 3] * (X - [10, -10]) / np.sqrt(np.array([4, 0.25]) + 1e-5) + [1, -1]
    np.testing.assert_allclose(layer.forward(X, train=False), expected)
    # One image at a time gives the same answer as the batch: inference does not depend on the batch.
    np.testing.assert_allclose(layer.forward(X[:1], train=False), expected[:1])
    assert not np.allclose(layer.forward(X, train=True), expected)


def test_batchnorm_running_stats_converge_to_the_data_statistics():
    rng = np.random.default_rng(2)
    layer = BatchNorm(2, momentum=0.1, dtype=np.float64)
    for _ in range(200):
        layer.forward(rng.standard_normal((512, 2)) * [0.5, 3] + [2, -4])
    np.testing.assert_allclose(layer.buffers["running_mean"], [2, -4], atol=0.1)
    np.testing.assert_allclose(layer.buffers["running_var"], [0.25, 9], rtol=0.05)


def test_every_layer_is_registered_and_its_spec_rebuilds_it():
    layers = [Dense(3, 2, init="glorot"), ReLU(), LeakyReLU(0.2), Sigmoid(), Tanh(), Dropout(0.25, seed=4),
              BatchNorm(5, momentum=0.2, eps=1e-3, dtype=np.float64)]
    assert set(LAYERS) == {type(layer).__name__ for layer in layers}
    for layer in layers:
        spec = json.loads(json.dumps(layer.spec()))  # JSON-able
        rebuilt = LAYERS[spec.pop("type")](**spec)
        assert rebuilt.spec() == layer.spec()
    assert layers[0].spec() == {"type": "Dense", "D_in": 3, "D_out": 2, "init": "glorot", "dtype": "float32"}


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Dense(3, 2, init="xavier"), "init"),
        (lambda: Dense(0, 2), "D_in"),
        (lambda: LeakyReLU(-0.1), "slope"),
        (lambda: Dropout(1.0), "p"),
        (lambda: Dropout(-0.1), "p"),
        (lambda: BatchNorm(3, momentum=0), "momentum"),
        (lambda: BatchNorm(3, eps=0), "eps"),
    ],
)
def test_bad_hyperparameters_raise_a_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("seed", [0, 7])
def test_dense_and_conv2d_draw_exactly_the_weights_of_the_written_out_formulas(seed):
    """One init_weights serves both layers; for the same seed it gives the numbers the formulas give, drawn in
    float64 in the layer's own orientation ((D_out, D_in) for Dense, transposed after) and then cast."""
    D_in, D_out, C_in, C_out, k = 12, 5, 3, 4, 3
    expected = {
        "he": lambda rng, shape, fan_in, fan_out: rng.standard_normal(shape) * np.sqrt(2 / fan_in),
        "glorot": lambda rng, shape, fan_in, fan_out: rng.uniform(-np.sqrt(6 / (fan_in + fan_out)),
                                                                  np.sqrt(6 / (fan_in + fan_out)), shape),
        "seed": lambda rng, shape, fan_in, fan_out: rng.standard_normal(shape) * 0.01,
    }
    for init, formula in expected.items():
        dense = Dense(D_in, D_out, init, np.random.default_rng(seed))
        W = formula(np.random.default_rng(seed), (D_out, D_in), D_in, D_out).astype(np.float32).T
        np.testing.assert_array_equal(dense.params["W"], W)
        assert dense.params["W"].flags.c_contiguous
        if init == "seed":
            continue  # Conv2D offers he and glorot
        conv = Conv2D(C_in, C_out, k, init=init, rng=np.random.default_rng(seed))
        W = formula(np.random.default_rng(seed), (C_out, C_in, k, k), C_in * k * k, C_out * k * k)
        np.testing.assert_array_equal(conv.params["W"], W.astype(np.float32))


def test_batchnorm_running_variance_is_pytorchs_unbiased_one_at_a_small_batch():
    """At N = 4 the two conventions differ by a third: the running variance takes ddof=1, in float32 too, and a
    batch of one image (variance 0) leaves no NaN."""
    X = np.array([[1.0, 0.0], [2.0, 0.0], [4.0, 1.0], [7.0, 3.0]], np.float32)  # (4, 2)
    layer = BatchNorm(2, momentum=0.25)
    layer.forward(X)
    assert layer.buffers["running_var"].dtype == np.float32
    np.testing.assert_allclose(layer.buffers["running_var"], 0.75 * 1 + 0.25 * np.var(X, axis=0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(np.var(X, axis=0, ddof=1), [7.0, 2.0])  # worked by hand: the sums of squares 21, 6
    layer.forward(X[:1])
    assert np.isfinite(layer.buffers["running_var"]).all()
