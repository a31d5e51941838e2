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


# The temperature through the engine, the file format and the commands.

import json  # noqa: E402

from numpynn import serialize  # noqa: E402
from numpynn.calibrate import calibrate  # noqa: E402
from numpynn.losses import softmax  # noqa: E402
from numpynn.model import mlp  # noqa: E402

from .conftest import run_cli  # noqa: E402

FAST = ["--hidden", "32", "--epochs", "3", "--batch-size", "16", "--dev-size", "40", "--quiet"]


def test_the_temperature_divides_the_logits_everywhere_the_model_states_probabilities():
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    X = np.random.default_rng(1).random((5, 784)).astype(np.float32)
    Z = model.forward(X, train=False)
    model.temperature = 2.0
    assert np.allclose(model.predict_proba(X), softmax(Z / 2), atol=1e-7)
    assert np.allclose(model.probabilities(Z), softmax(Z / 2), atol=1e-7)
    assert (model.predict(X) == Z.argmax(axis=1)).all()


def test_calibrate_sets_the_fitted_temperature_from_the_logits_at_t_1():
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    X = np.random.default_rng(1).random((300, 784)).astype(np.float32)
    y = model.predict(X)  # labels the model gets right every time: the best T is sharper than 1
    model.temperature = 7.0  # an earlier T is not built upon
    T = calibrate(model, X, y)
    assert model.temperature == T == fit_temperature(model.forward(X, train=False), y) and T < 1


def test_the_temperature_round_trips_and_old_files_mean_1(tmp_path):
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    model.temperature = 0.5
    serialize.save_model(tmp_path / "m.npz", model, {})
    loaded, header = serialize.load_model(tmp_path / "m.npz")
    assert loaded.temperature == header["temperature"] == 0.5
    arrays, header = serialize.load(tmp_path / "m.npz")
    del header["temperature"]  # a file written before models had a temperature
    serialize.save(tmp_path / "old.npz", arrays, header)
    assert serialize.load_model(tmp_path / "old.npz")[0].temperature == 1.0


@pytest.mark.parametrize("T", [0, -1, 1e6, "1", True, None, [1], float("nan"), float("inf")])
def test_a_bad_temperature_in_a_file_is_one_line(tmp_path, T):
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    arrays, header = serialize.load(serialize.save_model(tmp_path / "m.npz", model, {}))
    serialize.save(tmp_path / "bad.npz", arrays, {**header, "temperature": T})
    with pytest.raises(serialize.ModelFileError, match="temperature") as caught:
        serialize.load_model(tmp_path / "bad.npz")
    assert "\n" not in str(caught.value)


def test_train_calibrates_on_the_dev_set_unless_told_not_to(tmp_path, tiny_mnist, capsys):
    code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "c.npz", "--json")
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    model, header = serialize.load_model(tmp_path / "c.npz")
    assert summary["temperature"] == header["metrics"]["temperature"] == model.temperature != 1.0
    assert {"test_ece", "test_ece_uncalibrated"} <= header["metrics"].keys()
    code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--no-calibrate",
                             "--out", tmp_path / "u.npz", "--json")
    assert code == 0, err
    model, header = serialize.load_model(tmp_path / "u.npz")
    assert model.temperature == 1.0 and "temperature" not in header["metrics"]
    assert json.loads(out.splitlines()[-1])["temperature"] == 1.0


def test_numpynn_calibrate_fits_the_same_temperature_as_train(tmp_path, tiny_mnist, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "c.npz")
    assert code == 0, err
    trained, header = serialize.load_model(tmp_path / "c.npz")
    code, out, err = run_cli(capsys, "calibrate", tmp_path / "c.npz", "--data", tiny_mnist, "--out", tmp_path / "r.npz")
    assert code == 0, err
    assert "test expected calibration error" in out and "(unchanged)" in out
    again, new_header = serialize.load_model(tmp_path / "r.npz")
    assert again.temperature == pytest.approx(trained.temperature, rel=1e-9)
    assert new_header["config"] == header["config"] and new_header["history"] == header["history"]
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "r.npz", "--data", tiny_mnist)
    assert code == 0 and f"temperature {again.temperature:.3f}" in out


@pytest.mark.parametrize("argv, needle", [
    (["--out", "x.txt"], "end in .npz"),
    (["--out", "/no/such/dir/x.npz"], "no such folder"),
])
def test_bad_calibrate_calls_are_one_line(tmp_path, tiny_mnist, capsys, argv, needle):
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    serialize.save_model(tmp_path / "m.npz", model, {})  # no dataset in the header
    code, _, err = run_cli(capsys, "calibrate", tmp_path / "m.npz", "--data", tiny_mnist, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "calibrate", tmp_path / "m.npz", "--data", tiny_mnist)
    assert code == 1 and "which dev set" in err and err.count("\n") == 1


def test_the_report_draws_calibration_before_and_after(tmp_path, tiny_mnist, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "c.npz")
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", tmp_path / "c.npz", "--data", tiny_mnist, "--out", tmp_path / "r")
    assert code == 0, err
    assert (tmp_path / "r" / "calibration-before.png").is_file() and (tmp_path / "r" / "calibration.png").is_file()
    assert "fitted on the dev set" in (tmp_path / "r" / "index.html").read_text()


def test_an_exported_calibrated_model_gives_the_calibrated_probabilities():
    pytest.importorskip("onnxruntime")
    from numpynn.export import check_batch, compare_with_onnxruntime, to_onnx

    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    model.temperature = 0.25  # sharp: the probabilities differ a lot from softmax(logits)
    difference = compare_with_onnxruntime(to_onnx(model), model, check_batch())
    assert difference["logits"] < 1e-5 and difference["probabilities"] < 1e-5
    model.temperature = 1.0  # and the graph without a Div node still matches
    assert compare_with_onnxruntime(to_onnx(model), model, check_batch())["probabilities"] < 1e-5


def test_the_estimator_calibrates_on_a_held_out_fraction_when_asked():
    from numpynn.estimator import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((300, 20)).astype(np.float32)
    y = np.where(X[:, 0] + 0.3 * rng.standard_normal(300) > 0.5, "big", "small")  # noisy labels: T matters
    plain = MLPClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=32).fit(X, y)
    assert plain.model_.temperature == 1.0
    held = MLPClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=32, calibration_fraction=0.2).fit(X, y)
    assert held.model_.temperature != 1.0
    P = held.predict_proba(X)
    assert np.allclose(P, softmax(held.model_.forward(X, train=False) / held.model_.temperature), atol=1e-6)
    for bad in (-0.1, 1.0, "0.1", True):
        with pytest.raises(OptionError, match="calibration_fraction"):
            MLPClassifier(epochs=1, calibration_fraction=bad).fit(X, y)


def test_info_says_how_probabilities_are_made_and_when_it_is_not_sure(tmp_path, tiny_mnist, capsys):
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "c.npz")
    assert code == 0, err
    model, header = serialize.load_model(tmp_path / "c.npz")
    code, out, _ = run_cli(capsys, "info", tmp_path / "c.npz")
    assert f"probabilities: softmax(logits / {model.temperature:.3g}), the temperature fitted" in out
    assert f"not sure: when the top probability is below {header['not_sure']['threshold']:.4g}" in out
    serialize.save_model(tmp_path / "plain.npz", mlp([784, 16, 10], rng=np.random.default_rng(0)), {})
    code, out, _ = run_cli(capsys, "info", tmp_path / "plain.npz")
    assert "softmax(logits / 1), not calibrated" in out and "not sure:" not in out
