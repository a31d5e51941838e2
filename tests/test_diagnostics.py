"""Training diagnostics (numpynn/diagnostics.py): gradient norms, update ratios and dead or saturated units,
checked by hand, recorded by fit() for every kind of run, carried by checkpoints and model files, and drawn
by the report."""
import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from numpynn import diagnostics, report, serialize
from numpynn.conv import Conv2D, Flatten, Unflatten
from numpynn.data import load_mnist
from numpynn.layers import Dense, ReLU, Sigmoid, Tanh
from numpynn.losses import softmax_cross_entropy
from numpynn.model import Sequential
from numpynn.train import Run, build_optimizer, fit, make_config, model_header

from .conftest import make_mnist_dir, run_cli
from .test_train import Crash, crash_at_epoch


def one_dense_run(optimizer="sgd", lr=0.1, N=12, D=5, K=3, seed=0):
    """A Run of one float64 Dense layer, trained full-batch (one step per epoch) on random data."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((N, D)), rng.integers(0, K, N)
    config = make_config(hidden=(1,), optimizer=optimizer, lr=lr, momentum=0.0, schedule="constant",
                         label_smoothing=0.0, batch_size=N, epochs=1)
    model = Sequential([Dense(D, K, rng=rng, dtype=np.float64)])
    run = Run(model, build_optimizer(config), config, np.random.default_rng(1), np.random.default_rng(2))
    return run, SimpleNamespace(X_train=X, y_train=y, X_dev=X, y_dev=y)


def full_batch_dW(model, data):
    _, dZ = softmax_cross_entropy(model.forward(data.X_train, train=True), data.y_train, 3)
    model.backward(dZ)
    return model.layers[0].grads["W"].copy()


def test_sgd_moves_the_weights_by_lr_times_the_gradient_and_the_ratio_says_so():
    """Plain SGD: W_after - W_before = -lr dW exactly, so the ratio is log10(lr ||dW|| / ||W||)."""
    run, data = one_dense_run(lr=0.1)
    W0 = run.model.params()[0].copy()
    dW = full_batch_dW(run.model, data)  # the order of the rows changes only the rounding (float64)
    fit(run, data)
    d = run.history.epochs[0]["diagnostics"]
    assert d["steps"] == 1 and d["every"] == diagnostics.EVERY
    [entry] = d["params"]
    assert (entry["layer"], entry["type"], entry["param"]) == (0, "Dense", "W")
    assert entry["grad_norm"] == pytest.approx(np.linalg.norm(dW), rel=1e-12)
    assert entry["update_ratio"] == pytest.approx(math.log10(0.1 * np.linalg.norm(dW) / np.linalg.norm(W0)), rel=1e-9)
    np.testing.assert_allclose(run.model.params()[0], W0 - 0.1 * dW, rtol=1e-12)
    assert d["units"] == []  # no activation layer


def test_adam_s_first_step_moves_every_weight_by_lr_and_the_ratio_measures_that():
    """Adam's first step is lr * g / (|g| + eps) per weight (m_hat = g, v_hat = g**2): about lr each, so
    ||step|| = lr * sqrt(number of weights); a ratio computed from the gradient (lr ||dW|| / ||W||) would be wrong."""
    run, data = one_dense_run(optimizer="adam", lr=1e-3)
    W0 = run.model.params()[0].copy()
    fit(run, data)
    [entry] = run.history.epochs[0]["diagnostics"]["params"]
    assert entry["update_ratio"] == pytest.approx(math.log10(1e-3 * math.sqrt(W0.size) / np.linalg.norm(W0)), abs=1e-6)


@pytest.mark.parametrize("activation, b0, measure, share", [
    (ReLU, -1.0, "dead", 1 / 3),  # unit 0: Z = -1 on every image, never above 0; unit 1 (Z = 10) is alive
    (Tanh, -1.0, "saturated", 1 / 3),  # tanh(10) = 1.0 is in the flat tail; tanh(-1) = -0.76 is not
    (Tanh, -10.0, "saturated", 2 / 3),  # tanh(-10) = -1.0 too
    (Sigmoid, -1.0, "saturated", 1 / 3),  # sigmoid(10) = 0.99995 is; sigmoid(-1) = 0.27 is not
    (Sigmoid, -10.0, "saturated", 2 / 3),  # sigmoid(-10) = 0.00005 too
])
def test_dead_and_saturated_units_on_a_layer_built_to_have_them(activation, b0, measure, share):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))  # (N, D)
    dense = Dense(4, 3, rng=rng, dtype=np.float64)
    dense.params["W"][:, :2] = 0.0
    dense.params["b"][:] = [b0, 10.0, 0.0]  # units 0 and 1 give the same Z on every image; unit 2 varies
    shares = diagnostics.unit_shares(Sequential([dense, activation()]), X, batch_size=7)  # a unit must be stuck
    assert shares == [{"layer": 1, "type": activation.__name__, "measure": measure,    # in every batch
                       "share": pytest.approx(share), "units": 3}]


def test_a_unit_active_on_one_image_of_the_sample_is_not_dead():
    X = np.zeros((10, 2))
    X[9, 0] = 1.0  # only the last image, in the last batch
    layer = Dense(2, 2, dtype=np.float64)
    layer.params["W"][:] = [[1.0, 0.0], [0.0, 1.0]]
    shares = diagnostics.unit_shares(Sequential([layer, ReLU()]), X, batch_size=4)
    assert shares[0]["share"] == 0.5  # unit 0 fires on image 9; unit 1 on none


def test_a_convolution_s_unit_is_a_channel():
    conv = Conv2D(1, 2, 3, rng=np.random.default_rng(0))
    conv.params["W"][1] = 0.0
    conv.params["b"][:] = [0.0, -1.0]  # channel 1: -1 everywhere
    conv.params["W"][0] = 1.0
    model = Sequential([Unflatten((1, 6, 6)), conv, ReLU(), Flatten()])
    X = np.random.default_rng(1).random((5, 36)).astype(np.float32)
    [share] = diagnostics.unit_shares(model, X)
    assert (share["layer"], share["units"], share["share"]) == (2, 2, 0.5)


# --- in fit(): every kind of run records them ---------------------------------------------------------------

@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = make_mnist_dir(tmp_path_factory.mktemp("tiny"), n_train=120, n_test=40)
    return load_mnist(data_dir=folder, dev_size=20, progress=False)


KINDS = {
    "mlp": dict(hidden=(16,), epochs=2, batch_size=16),
    "cnn": dict(preset="cnn", channels=(2, 3), hidden=(8,), epochs=2, batch_size=16, threads=1),
    "threads 2": dict(hidden=(16,), epochs=2, batch_size=16, threads=2, dropout=0.2),
    "cnn threads 2": dict(preset="cnn", channels=(2,), hidden=(8,), epochs=2, batch_size=16, threads=2),
    "batchnorm tanh": dict(hidden=(16, 8), epochs=2, batch_size=16, batchnorm=True, activation="tanh",
                           optimizer="adamw", lr=1e-3),
}


def check_rows(run):
    """Every row has diagnostics for every layer with weights and every activation layer, as plain JSON."""
    weighted = [(i, type(layer).__name__) for i, layer in enumerate(run.model.layers) if layer.params]
    active = [i for i, layer in enumerate(run.model.layers) if isinstance(layer, diagnostics.RELU_LIKE + diagnostics.SATURATING)]
    for row in run.history.epochs:
        d = row["diagnostics"]
        assert json.loads(json.dumps(d, allow_nan=False)) == d  # JSON with no NaN
        assert [(e["layer"], e["type"]) for e in d["params"]] == weighted
        assert all(e["grad_norm"] > 0 and -8 < e["update_ratio"] < 1 for e in d["params"])
        assert [u["layer"] for u in d["units"]] == active and all(0 <= u["share"] <= 1 for u in d["units"])
        assert d["steps"] == 1 and d["images"] == 20  # 100 images in batches of 16: 7 steps, the first sampled


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_run_records_diagnostics_in_every_row(splits, kind):
    options = dict(KINDS[kind])
    run = Run.start(make_config(options.pop("preset", "mlp"), **options))
    fit(run, splits)
    assert len(run.history.epochs) == 2
    check_rows(run)


def test_the_threads_path_measures_the_whole_batch_s_gradient(splits):
    """threads 2 sums the slices' gradients: its norms match one thread's up to float32 rounding (one slice's
    gradient alone would be about half)."""
    rows = {}
    for threads in (1, 2):
        run = Run.start(make_config(hidden=(16,), epochs=2, batch_size=16, threads=threads))
        fit(run, splits)
        rows[threads] = run.history.epochs
    for one, two in zip(rows[1], rows[2]):
        for a, b in zip(one["diagnostics"]["params"], two["diagnostics"]["params"]):
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
            assert b["update_ratio"] == pytest.approx(a["update_ratio"], abs=1e-4)


def test_diagnose_false_records_none_and_trains_the_same_weights(splits):
    runs = []
    for diagnose in (True, False):
        run = Run.start(make_config(hidden=(16,), epochs=2, batch_size=16, dropout=0.3))
        fit(run, splits, diagnose=diagnose)
        runs.append(run)
    assert all("diagnostics" not in row for row in runs[1].history.epochs)
    for p, q in zip(runs[0].model.params(), runs[1].model.params()):
        np.testing.assert_array_equal(p, q)  # measuring changes nothing, not even a generator


def test_sampling_every_kth_step():
    run, data = one_dense_run(N=12)
    run.config = dataclasses.replace(run.config, batch_size=1, epochs=2)
    fit(run, data)  # 12 steps per epoch: 0 and 10 are sampled
    assert [row["diagnostics"]["steps"] for row in run.history.epochs] == [2, 2]


# --- checkpoints, resume and model files --------------------------------------------------------------------

def test_diagnostics_survive_a_checkpoint_and_a_resume_bit_for_bit(splits, tmp_path):
    config = make_config(hidden=(16,), epochs=4, batch_size=16, dropout=0.2, optimizer="adam", lr=1e-3)
    straight = Run.start(config)
    fit(straight, splits)
    part = Run.start(config)
    with pytest.raises(Crash):  # killed as epoch 3 starts
        fit(part, splits, checkpoint=tmp_path / "c.npz", progress=crash_at_epoch(3))
    arrays, header = serialize.load_checkpoint(tmp_path / "c.npz")
    assert header["trainer"]["history"]["epochs"][1]["diagnostics"] == part.history.epochs[1]["diagnostics"]
    resumed = Run.resume(arrays, header)
    fit(resumed, splits)
    assert resumed.history.epochs[:2] == json.loads(json.dumps(part.history.epochs))
    for a, b in zip(straight.history.epochs, resumed.history.epochs):
        assert a["diagnostics"] == b["diagnostics"]  # the same weights and gradients give the same numbers
    # ... and a model file carries them too
    path = serialize.save_model(tmp_path / "m.npz", resumed.model, model_header(resumed.config, resumed.history, {}, "mnist"))
    _, loaded = serialize.load_model(path)
    assert [row["diagnostics"] for row in loaded["history"]["epochs"]] == [row["diagnostics"] for row in straight.history.epochs]


def test_a_checkpoint_from_before_diagnostics_resumes_and_reports(splits, tmp_path):
    run = Run.start(make_config(hidden=(16,), epochs=2, batch_size=16))
    fit(run, splits, checkpoint=tmp_path / "c.npz")
    arrays, header = serialize.load(tmp_path / "c.npz")
    for row in header["trainer"]["history"]["epochs"]:
        del row["diagnostics"]  # as numpynn wrote them before
    serialize.save(tmp_path / "old.npz", arrays, header)
    resumed = Run.resume(*serialize.load_checkpoint(tmp_path / "old.npz"), epochs=3)
    fit(resumed, splits)
    assert ["diagnostics" in row for row in resumed.history.epochs] == [False, False, True]
    series, why = report.diagnostics_of(dataclasses.asdict(resumed.history))
    assert why == "" and all(math.isnan(v) for v in next(iter(series["grad_norm"].values()))[:2])
    report.training_diagnostics(series)  # gaps where there is no number
    old, why = report.diagnostics_of(header["trainer"]["history"])
    assert old is None and "no diagnostics" in why


# --- the report's figure -----------------------------------------------------------------------------------

def test_the_figure_draws_every_layer_and_the_rule_of_thumb(splits):
    run = Run.start(make_config("cnn", channels=(2,), hidden=(8,), epochs=2, batch_size=16, threads=1))
    fit(run, splits)
    series, why = report.diagnostics_of(dataclasses.asdict(run.history))
    assert why == "" and series["every"] == diagnostics.EVERY and series["images"] == 20
    assert list(series["grad_norm"]) == ["layer 1 Conv2D W", "layer 5 Dense W", "layer 8 Dense W"]
    assert list(series["units"]) == ["layer 3 ReLU (dead)", "layer 6 ReLU (dead)"]
    fig = report.training_diagnostics(series)
    from .test_report import check_image

    check_image(fig, (1500, 460))
    grad_ax, ratio_ax, units_ax = fig.axes[:3]
    assert [line.get_ydata()[0] for line in ratio_ax.get_lines() if line.get_linestyle() == "--"] == [-3]
    assert units_ax.get_ylim()[0] == 0 and grad_ax.get_yscale() == "log"
    assert "one optimizer step in 10" in report.diagnostics_caption(series)


@pytest.mark.parametrize("diagnosed, why", [
    ({"params": "all"}, "malformed"),
    ({"params": [{"layer": "0", "type": "Dense", "param": "W", "grad_norm": 1.0, "update_ratio": -3.0}],
      "units": []}, "malformed"),
    ({"params": [], "units": [{"layer": 1, "type": "ReLU", "measure": "asleep", "share": 0.1}]}, "malformed"),
    ({"params": [{"layer": 0, "type": "Dense", "param": "W", "grad_norm": "big", "update_ratio": None}],
      "units": []}, "malformed"),
])
def test_malformed_diagnostics_are_reported_not_trusted(diagnosed, why):
    history = {"epochs": [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1, "diagnostics": diagnosed}]}
    series, message = report.diagnostics_of(history)
    assert series is None and why in message


def test_numpynn_report_of_an_old_model_file_says_not_drawn(capsys, splits, tmp_path):
    data = make_mnist_dir(tmp_path / "data")
    run = Run.start(make_config(hidden=(8,), epochs=1, batch_size=16))
    fit(run, splits, diagnose=False)  # a History like those written before diagnostics
    serialize.save_model(tmp_path / "old.npz", run.model, model_header(run.config, run.history, {}, "mnist"))
    code, out, err = run_cli(capsys, "report", tmp_path / "old.npz", "--data", data, "--out", tmp_path / "r",
                             "--samples", 20)
    assert code == 0, err
    assert "not drawn: Training diagnostics: the training history has no diagnostics" in out
    assert (tmp_path / "r" / "learning_curves.png").exists() and not (tmp_path / "r" / "diagnostics.png").exists()
