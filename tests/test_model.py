"""The model: a network worked by hand, the seed's training reproduced by the engine, saving and resuming
bit for bit, rebuilding from a spec, and inference."""
import inspect
import json

import numpy as np
import pytest

from numpynn import seed as S
from numpynn.layers import BatchNorm, Dense, Dropout, Layer, ReLU
from numpynn.losses import softmax, softmax_cross_entropy
from numpynn.model import LAYERS, Sequential, mlp
from numpynn.optim import SGD, Adam
from numpynn.serialize import decode_state, encode_state


def digits(n, seed=0):
    """n MNIST-like images (n, 784) in [0, 1], float32: sparse random ink plus a band whose height gives the
    label, so there is something to learn."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    images = rng.random((n, 28, 28)) * (rng.random((n, 28, 28)) < 0.1)  # (n, 28, 28)  ~90% zeros
    rows = np.arange(28)
    band = (rows >= 2 + 2 * y[:, None]) & (rows < 6 + 2 * y[:, None])  # (n, 28)
    images[:, :, 4:24] += 0.8 * band[:, :, None]
    return np.minimum(images, 1).reshape(n, 784).astype(np.float32), y


def test_a_2_2_2_network_worked_by_hand():
    model = Sequential([Dense(2, 2, dtype=np.float64), ReLU(), Dense(2, 2, dtype=np.float64)])
    first, second = model.layers[0].params, model.layers[2].params
    first["W"][:] = [[1, -1], [0.5, 1]]
    first["b"][:] = [0, -2]
    second["W"][:] = [[0.5, 0.25], [1, -1]]
    second["b"][:] = [0, 0.5]
    X, y = np.array([[1.0, 2.0]]), np.array([0])

    # Z1 = X W1 + b1 = [1*1 + 2*0.5, 1*(-1) + 2*1] + [0, -2] = [2, -1]      A1 = relu(Z1) = [2, 0]
    # Z2 = A1 W2 + b2 = [2*0.5 + 0*1, 2*0.25 + 0*(-1)] + [0, 0.5] = [1, 1]    P = softmax(Z2) = [0.5, 0.5]
    Z2 = model.forward(X)
    np.testing.assert_array_equal(model.layers[0].forward(X), [[2, -1]])
    np.testing.assert_array_equal(Z2, [[1, 1]])
    # L = -log P[0] = log 2 = 0.693147
    loss, dZ2 = softmax_cross_entropy(Z2, y, K=2)
    assert loss == pytest.approx(0.6931471805599453, rel=1e-15)
    # dZ2 = (P - Y) / N = [0.5 - 1, 0.5 - 0] / 1 = [-0.5, 0.5]
    np.testing.assert_array_equal(dZ2, [[-0.5, 0.5]])
    dX = model.backward(dZ2)
    # dW2 = A1.T dZ2 = [[2*(-0.5), 2*0.5], [0, 0]] = [[-1, 1], [0, 0]]        db2 = [-0.5, 0.5]
    # dA1 = dZ2 W2.T = [-0.5*0.5 + 0.5*0.25, -0.5*1 + 0.5*(-1)] = [-0.125, -1]
    # dZ1 = dA1 * (Z1 > 0) = [-0.125, 0]                       (the second hidden unit is off: no gradient)
    # dW1 = X.T dZ1 = [[1*(-0.125), 0], [2*(-0.125), 0]] = [[-0.125, 0], [-0.25, 0]]     db1 = [-0.125, 0]
    # dX = dZ1 W1.T = [-0.125*1 + 0*(-1), -0.125*0.5 + 0*1] = [-0.125, -0.0625]
    dW1, db1, dW2, db2 = model.grads()
    np.testing.assert_array_equal(dW2, [[-1, 1], [0, 0]])
    np.testing.assert_array_equal(db2, [-0.5, 0.5])
    np.testing.assert_array_equal(dW1, [[-0.125, 0], [-0.25, 0]])
    np.testing.assert_array_equal(db1, [-0.125, 0])
    np.testing.assert_array_equal(dX, [[-0.125, -0.0625]])

    # One SGD step with lr = 1: W1 = [[1.125, -1], [0.75, 1]], b1 = [0.125, -2],
    # W2 = [[1.5, -0.75], [1, -1]], b2 = [0.5, 0].  Then Z1 = [1.125 + 1.5 + 0.125, -1 + 2 - 2] = [2.75, -1],
    # A1 = [2.75, 0], Z2 = [2.75*1.5 + 0.5, 2.75*(-0.75) + 0] = [4.625, -2.0625],
    # L = log(1 + exp(-(4.625 + 2.0625))) = log(1 + exp(-6.6875)) = 0.0012456
    SGD(lr=1.0).step(model.params(), model.grads())
    np.testing.assert_array_equal(second["W"], [[1.5, -0.75], [1, -1]])
    np.testing.assert_array_equal(model.forward(X), [[4.625, -2.0625]])
    assert softmax_cross_entropy(model.forward(X), y, K=2)[0] == pytest.approx(0.0012456187631302, rel=1e-12)


def test_the_engine_trains_the_seeds_network_to_the_same_weights_as_the_seed():
    """Same as the seed: 784-10-10 from the seed's initial weights, full-batch gradient descent, 50 iterations."""
    X, y = digits(2000)
    alpha, iterations = 0.5, 50
    initial = S.init_params(np.random.default_rng(0))
    model = Sequential([Dense(784, 10, init="seed"), ReLU(), Dense(10, 10, init="seed")])
    for layer, W, b in ((model.layers[0], initial.W1, initial.b1), (model.layers[2], initial.W2, initial.b2)):
        layer.params["W"][...] = W.T  # the seed's W is (D_out, D_in), the engine's (D_in, D_out)
        layer.params["b"][...] = b[:, 0]  # the seed's b is a column (D_out, 1)

    opt, losses = SGD(lr=alpha), {}
    for i in range(iterations):
        loss, dZ = softmax_cross_entropy(model.forward(X), y)
        losses[i] = loss
        model.backward(dZ)
        opt.step(model.params(), model.grads())

    trained, seed_losses = S.gradient_descent(X.T, y, iterations, alpha, params=initial, log=None)
    W1, b1, W2, b2 = model.params()
    for ours, theirs in ((W1, trained.W1.T), (b1, trained.b1[:, 0]), (W2, trained.W2.T), (b2, trained.b2[:, 0])):
        assert ours.dtype == theirs.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert np.abs(W2 - initial.W2.T).max() > 0.05  # the weights did move: equal to 1e-5 means something
    for i, seed_loss in seed_losses.items():
        assert losses[i] == pytest.approx(seed_loss, rel=1e-5)
    assert losses[iterations - 1] < losses[0] - 0.5


def test_mlp_with_the_seed_init_starts_from_the_seeds_weights():
    model = mlp([784, 10, 10], init="seed", rng=np.random.default_rng(3))
    initial = S.init_params(np.random.default_rng(3))
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "ReLU", "Dense"]
    np.testing.assert_array_equal(model.params()[0], initial.W1.T)
    np.testing.assert_array_equal(model.params()[2], initial.W2.T)


def test_mlp_layout_names_and_counts():
    model = mlp([4, 3, 2], activation="tanh", init="glorot", dropout=0.5, batchnorm=True)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "BatchNorm", "Tanh", "Dropout", "Dense"]
    assert model.param_names() == ["0.W", "0.b", "1.gamma", "1.beta", "4.W", "4.b"]
    assert [theta.shape for theta in model.params()] == [(4, 3), (3,), (3,), (3,), (3, 2), (2,)]
    assert model.n_params() == 4 * 3 + 3 + 3 + 3 + 3 * 2 + 2
    assert all(theta.dtype == np.float32 for theta in model.params())


def test_grads_come_in_the_order_of_params_and_only_after_backward():
    model = mlp([5, 4, 3], batchnorm=True)
    with pytest.raises(RuntimeError, match="backward"):
        model.grads()
    Z = model.forward(np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32))
    model.backward(softmax_cross_entropy(Z, np.arange(6) % 3, K=3)[1])
    assert [g.shape for g in model.grads()] == [theta.shape for theta in model.params()]
    assert all(g.dtype == np.float32 for g in model.grads())


def test_training_lowers_the_loss():
    X, y = digits(500, seed=1)
    model = mlp([784, 32, 10], dropout=0.2, batchnorm=True, rng=np.random.default_rng(0))
    opt = Adam(lr=1e-2)
    losses = []
    for _ in range(30):
        loss, dZ = softmax_cross_entropy(model.forward(X), y)
        losses.append(loss)
        model.backward(dZ)
        opt.step(model.params(), model.grads())
    assert losses[-1] < losses[0] / 2
    assert (model.predict(X) == y).mean() > 0.9


def a_model_that_has_been_used(seed=0):
    """A model with BatchNorm and Dropout whose running stats and generators have moved away from their start."""
    model = mlp([6, 5, 4, 3], dropout=0.5, batchnorm=True, rng=np.random.default_rng(seed))
    X = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    for _ in range(3):
        model.forward(X)
    return model, X


def test_state_dict_round_trips_through_npz_without_pickle(tmp_path):
    model, X = a_model_that_has_been_used()
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var", "3.rng", "7.rng"} <= state.keys()
    assert isinstance(state["3.rng"], dict)  # plain data: the file format (serialize.py) makes it JSON text
    np.savez(tmp_path / "model.npz", **encode_state(state))
    continued = model.forward(X)  # training mode: draws the next dropout masks

    rebuilt = Sequential.from_spec(json.loads(json.dumps(model.spec())), rng=np.random.default_rng(99))
    with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
        rebuilt.load_state_dict(decode_state(saved))
    np.testing.assert_array_equal(rebuilt.forward(X), continued)  # the same weights, stats and masks
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[name], value)
    np.testing.assert_array_equal(rebuilt.forward(X, train=False), model.forward(X, train=False))


def test_a_resumed_training_run_is_bit_identical(tmp_path):
    X, y = digits(64, seed=2)

    def train(model, opt, steps):
        for _ in range(steps):
            loss, dZ = softmax_cross_entropy(model.forward(X), y)
            model.backward(dZ)
            opt.step(model.params(), model.grads())

    model, opt = mlp([784, 16, 10], dropout=0.3, batchnorm=True), Adam(lr=1e-3)
    train(model, opt, 3)
    np.savez(tmp_path / "model.npz", **encode_state(model.state_dict()))
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    train(model, opt, 3)

    resumed, resumed_opt = Sequential.from_spec(model.spec(), rng=np.random.default_rng(7)), Adam(lr=1e-3)
    with np.load(tmp_path / "model.npz") as model_state, np.load(tmp_path / "opt.npz") as opt_state:
        resumed.load_state_dict(decode_state(model_state))
        resumed_opt.load_state_dict(opt_state)
    train(resumed, resumed_opt, 3)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda state: state.update({"0.W": np.zeros((6, 4), np.float32)}), r"'0\.W' has shape \(6, 4\)"),
        (lambda state: state.pop("1.running_var"), r"missing entries \['1\.running_var'\]"),
        (lambda state: state.pop("3.rng"), r"missing entries \['3\.rng'\]"),
        (lambda state: state.update({"9.W": np.zeros(3)}), r"unexpected entries \['9\.W'\]"),
        (lambda state: state.update({"3.rng": np.array("not json")}), r"'3\.rng' is not a generator state"),
        (lambda state: state.update({"3.rng": {"bit_generator": "PCG64", "state": 7}}), r"'3\.rng'"),
    ],
)
def test_load_state_dict_refuses_a_mismatch_and_changes_nothing(change, match):
    model, _ = a_model_that_has_been_used()
    before = model.state_dict()
    state = a_model_that_has_been_used(seed=5)[0].state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_spec_round_trip_and_json():
    model = mlp([8, 6, 4], activation="leaky_relu", init="glorot", dropout=0.1, batchnorm=True)
    spec = json.loads(json.dumps(model.spec()))
    assert spec[0] == {"type": "Dense", "D_in": 8, "D_out": 6, "init": "glorot", "dtype": "float32"}
    rebuilt = Sequential.from_spec(spec)
    assert rebuilt.spec() == model.spec()
    assert rebuilt.param_names() == model.param_names()
    with pytest.raises(ValueError, match="type"):
        Sequential.from_spec([{"type": "Conv3D"}])


def test_predict_proba_is_batched_in_eval_mode_and_changes_nothing():
    model, X = a_model_that_has_been_used()
    X = np.random.default_rng(4).standard_normal((25, 6)).astype(np.float32)
    before = model.state_dict()
    P = model.predict_proba(X, batch_size=7)
    assert P.shape == (25, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(P, model.predict_proba(X), rtol=1e-5)  # batches do not change the answer
    np.testing.assert_array_equal(model.predict(X), P.argmax(axis=1))
    for name, value in model.state_dict().items():  # no running stats moved, no dropout masks drawn
        np.testing.assert_array_equal(value, before[name])
    assert model.predict_proba(X[:0]).shape == (0, 3)


def test_sequential_takes_any_list_of_layers():
    model = Sequential([Dense(3, 3, dtype=np.float64), BatchNorm(3, dtype=np.float64), Dropout(0.0), ReLU()])
    assert model.param_names() == ["0.W", "0.b", "1.gamma", "1.beta"]
    X = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(model.forward(X, train=False), model.forward(X, train=False))


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: mlp([784]), "sizes"),
        (lambda: mlp([784, 10], activation="gelu"), "activation"),
        (lambda: mlp([784, 10], init="zeros"), "init"),
        (lambda: mlp([784, 10, 10], dropout=1.0), "p"),
        (lambda: mlp([784, 10, 10], dropout=-0.1), "p"),  # refused by Dropout, the one place that checks p
        (lambda: mlp([4, 2]).predict_proba(np.zeros((3, 4)), batch_size=0), "batch_size"),
    ],
)
def test_bad_hyperparameters_raise_a_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_activations_are_each_layers_inference_output():
    model = mlp([6, 5, 4, 3], rng=np.random.default_rng(1))
    X = np.random.default_rng(2).standard_normal((7, 6)).astype(np.float32)
    outputs = model.activations(X)
    assert [a.shape for a in outputs] == [(7, 5), (7, 5), (7, 4), (7, 4), (7, 3)]
    assert np.array_equal(outputs[-1], model.forward(X, train=False))
    assert np.array_equal(outputs[1], np.maximum(outputs[0], 0))


class Scale(Layer):
    """Y = X * s, a layer with weights that is neither Dense nor Conv2D: the need_dX contract is all it knows."""

    def __init__(self, D):
        super().__init__()
        self.params = {"s": np.full(D, 2.0)}

    def forward(self, X, train=True):
        if train:
            self.X = X
        return X * self.params["s"]

    def backward(self, dY):
        self.grads = {"s": (dY * self.X).sum(axis=0)}
        return dY * self.params["s"] if self.need_dX else None


def test_every_layer_needs_its_dX_unless_told_otherwise():
    assert all(cls.need_dX is True for cls in LAYERS.values())
    assert "isinstance" not in inspect.getsource(Sequential.backward)  # the contract, not a list of layer types


def test_backward_without_dX_asks_the_first_layer_with_weights_through_need_dX():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    model = Sequential([ReLU(), Scale(3), Dense(3, 2, rng=rng, dtype=np.float64)])
    model.forward(X)
    dZ = rng.standard_normal((4, 2))
    assert model.backward(dZ, need_dX=False) is None
    assert [layer.need_dX for layer in model.layers[1:]] == [False, True]
    lean = [g.copy() for g in model.grads()]
    dX = model.backward(dZ)  # a later full backward is not affected by the earlier choice
    assert dX.shape == X.shape and all(layer.need_dX for layer in model.layers)
    assert all(np.array_equal(g, h) for g, h in zip(lean, model.grads()))


def test_the_model_module_knows_no_file_format():
    import numpynn.model
    assert "json" not in vars(numpynn.model)


class Refuses(Layer):
    def forward(self, X, train=True):
        raise AssertionError("a layer after the last one asked for ran")


def test_batched_inference_is_written_once_and_runs_only_what_is_asked():
    rng = np.random.default_rng(0)
    model = Sequential([Dense(6, 5, rng=rng), ReLU(), Dense(5, 3, rng=rng)])
    X = rng.standard_normal((23, 6)).astype(np.float32)
    Z = model.forward_in_batches(X, batch_size=4)  # batches of 4, ..., 4, 3
    np.testing.assert_allclose(Z, model.forward(X, train=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict_proba(X, batch_size=4), softmax(Z))
    outputs = model.outputs_in_batches(X, [1, -1], batch_size=5)
    assert sorted(outputs) == [1, 2] and outputs[1].shape == (23, 5)
    np.testing.assert_allclose(outputs[2], Z, rtol=1e-5, atol=1e-6)
    early = Sequential(model.layers[:2] + [Refuses()])
    np.testing.assert_array_equal(early.outputs_in_batches(X, [1], batch_size=5)[1], outputs[1])
    assert model.forward_in_batches(X[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="batch_size"):
        model.forward_in_batches(X, batch_size=0)
