"""numpynn ensemble: the averaged probabilities (worked by hand), the file round trip, every command taking the file,
and bad inputs as one line."""
import json
import zipfile

import numpy as np
import pytest

from numpynn import serialize
from numpynn.checks import OptionError
from numpynn.ensemble import Ensemble
from numpynn.model import mlp
from numpynn.serialize import ModelFileError, load_model, save_ensemble, save_model

from .conftest import run_cli as run

FAST = ["--hidden", "16", "--epochs", "2", "--batch-size", "16", "--dev-size", "20", "--quiet"]


def test_the_ensemble_states_the_mean_of_its_members_probabilities_each_at_its_own_temperature():
    # Two one-layer "networks" with 2 classes whose logits are fixed by hand: W = 0, b = the logits.
    a, b = mlp([4, 2], rng=np.random.default_rng(0)), mlp([4, 2], rng=np.random.default_rng(1))
    for model, logits in ((a, [0.0, 0.0]), (b, [np.log(3.0), 0.0])):
        model.layers[0].params["W"][...] = 0
        model.layers[0].params["b"][...] = logits
    b.temperature = 1.0
    # a says (1/2, 1/2); b says softmax(log 3, 0) = (3/4, 1/4); the mean is (5/8, 3/8).
    P = Ensemble([a, b]).predict_proba(np.zeros((1, 4), np.float32))
    np.testing.assert_allclose(P, [[5 / 8, 3 / 8]], rtol=1e-6)
    b.temperature = 2.0  # softmax(log 3 / 2, 0) = (sqrt 3, 1) / (sqrt 3 + 1)
    P = Ensemble([a, b]).predict_proba(np.zeros((1, 4), np.float32))
    np.testing.assert_allclose(P[0, 0], (0.5 + np.sqrt(3) / (np.sqrt(3) + 1)) / 2, rtol=1e-6)


def test_its_logits_stay_finite_where_every_member_is_certain():
    a, b = mlp([4, 3], rng=np.random.default_rng(0)), mlp([4, 3], rng=np.random.default_rng(1))
    for model in (a, b):
        model.layers[0].params["W"][...] = 0
        model.layers[0].params["b"][...] = [0, 2000, -2000]  # softmax underflows to exact 0 and 1 in float32
    Z = Ensemble([a, b]).forward_in_batches(np.zeros((2, 4), np.float32))
    assert np.isfinite(Z).all() and (Z.argmax(axis=1) == 1).all()


def test_members_must_agree_on_inputs_and_classes_and_be_two_or_more():
    with pytest.raises(OptionError, match="two or more"):
        Ensemble([mlp([4, 2])])
    with pytest.raises(OptionError, match="same inputs"):
        Ensemble([mlp([4, 2]), mlp([5, 2])])
    with pytest.raises(OptionError, match="same 2 classes"):
        Ensemble([mlp([4, 2]), mlp([4, 3])])


def members(tmp_path):
    rng = np.random.default_rng(0)
    models = [mlp([784, 8, 10], rng=rng), mlp([784, 12, 10], rng=rng, dropout=0.5)]
    models[1].temperature = 1.7
    return models


def test_an_ensemble_file_round_trips(tmp_path):
    ensemble = Ensemble(members(tmp_path))
    path = save_ensemble(tmp_path / "e.npz", ensemble, [{"file": "a.npz"}, {"file": "b.npz"}], {"metrics": {}})
    loaded, header = load_model(path)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2 and header["kind"] == "model"
    assert [m["file"] for m in header["members"]] == ["a.npz", "b.npz"]
    assert loaded.members[1].temperature == 1.7
    X = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    assert loaded.n_params() == ensemble.n_params()
    with zipfile.ZipFile(path) as z:
        assert "member1/model/0.W.npy" in z.namelist()


def rewrite(path, out, change):
    """A copy of ensemble file `path` with its header changed by `change(header)`."""
    with zipfile.ZipFile(path) as z:
        data = {info.filename: z.read(info) for info in z.infolist()}
    header = serialize.load(path)[1]
    change(header)
    text = json.dumps(header)
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array(text))
    data["__header__.npy"] = buffer.getvalue()
    with zipfile.ZipFile(out, "w") as z:
        for name, blob in data.items():
            z.writestr(name, blob)
    return out


@pytest.mark.parametrize("change, message", [
    (lambda h: h.update(members=h["members"][:1]), "unexpected member1/model/0.W"),
    (lambda h: h.update(members="two"), "1 to 100"),
    (lambda h: h.update(members=[*h["members"]] * 51), "1 to 100"),
    (lambda h: h.update(shift=-1), "shift = -1 is out of range"),
    (lambda h: h.update(shift=4), "shift = 4 is out of range"),
    (lambda h: h.update(shift=1.0), "shift = 1.0 is out of range"),
    (lambda h: h.update(shift=True), "shift = True is out of range"),
    (lambda h: h.update(shift="1"), "shift = '1' is out of range"),
    (lambda h: h.update(shift=10**400), "shift = a number of about 401 digits is out of range"),
    (lambda h: h.update(architecture=h["members"][0]["architecture"]), "no architecture of its own"),
    (lambda h: h["members"][1].update(temperature=-1), "member 2"),
    (lambda h: h["members"][0]["architecture"][0].update(D_out=9), "member0/model/0.W"),
    (lambda h: h["members"][0]["architecture"][0].update(D_in=50_000, D_out=1001), "parameters"),
    (lambda h: h["members"].append(h["members"][0]), "do not match"),
])
def test_hostile_ensemble_headers_are_refused_in_one_line(tmp_path, change, message):
    path = save_ensemble(tmp_path / "e.npz", Ensemble(members(tmp_path)), [{}, {}], {})
    bad = rewrite(path, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(bad)
    assert "\n" not in str(error.value)


def test_a_member_prefix_on_a_single_model_file_is_refused(tmp_path):
    path = save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {})
    with zipfile.ZipFile(path) as z:
        data = {info.filename: z.read(info) for info in z.infolist()}
    data["member0/model/0.W.npy"] = data["model/0.W.npy"]
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for name, blob in data.items():
            z.writestr(name, blob)
    with pytest.raises(ModelFileError, match="unexpected member0/model/0.W"):
        load_model(tmp_path / "bad.npz")


@pytest.fixture
def two_models(tmp_path, tiny_mnist, capsys):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"m{seed}.npz"
        code, _, err = run(capsys, "train", "--data", tiny_mnist, *FAST, "--seed", seed, "--out", path)
        assert code == 0, err
        paths.append(path)
    return paths


def test_the_ensemble_command_writes_a_file_every_command_takes(two_models, tmp_path, tiny_mnist, capsys):
    out = tmp_path / "e.npz"
    code, stdout, err = run(capsys, "ensemble", *two_models, "--out", out, "--data", tiny_mnist)
    assert code == 0, err
    assert "Ensemble of 2: test accuracy" in stdout and out.exists()
    code, stdout, err = run(capsys, "evaluate", out, "--data", tiny_mnist, "--json")
    assert code == 0, err
    accuracy = json.loads(stdout)["accuracy"]
    assert accuracy == pytest.approx(serialize.load(out)[1]["metrics"]["test_accuracy"])
    code, stdout, err = run(capsys, "info", out)
    assert code == 0 and "member 2 of 2: architecture" in stdout, err
    from numpynn.images import to_png

    to_png(np.zeros((28, 28)) + np.eye(28), tmp_path / "d.png")
    code, stdout, err = run(capsys, "predict", out, tmp_path / "d.png", "--json")
    assert code == 0, err
    assert abs(sum(json.loads(stdout)[0]["probabilities"]) - 1) < 1e-3
    code, stdout, err = run(capsys, "report", out, "--data", tiny_mnist, "--out", tmp_path / "rep")
    assert code == 0, err
    assert (tmp_path / "rep" / "index.html").exists() and "Learning curves" in stdout  # no history: said so
    pytest.importorskip("onnxruntime")
    code, stdout, err = run(capsys, "export", out, "--out", tmp_path / "e.onnx")
    assert code == 0 and "Checked with onnxruntime" in stdout, err


def test_an_exported_ensemble_computes_what_numpynn_computes(tmp_path):
    pytest.importorskip("onnxruntime")
    from numpynn.export import check_batch, compare_with_onnxruntime, to_onnx

    ensemble = Ensemble(members(tmp_path))
    ensemble.temperature = 0.6  # its own, as numpynn ensemble fits one
    X = check_batch()
    difference = compare_with_onnxruntime(to_onnx(ensemble, {}), ensemble, X)
    assert difference["logits"] < 1e-4 and difference["probabilities"] < 1e-5


def test_the_page_lists_and_reads_with_an_ensemble(two_models, tmp_path, tiny_mnist, capsys):
    from fastapi.testclient import TestClient

    from numpynn.web.app import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    assert run(capsys, "ensemble", *two_models, "--out", folder / "e.npz", "--data", tiny_mnist)[0] == 0
    app = create_app(folder)
    client = TestClient(app, base_url="http://127.0.0.1:8000", headers={"X-Numpynn-Token": app.state.token})
    listed = client.get("/api/models").json()["models"]
    assert [m["name"] for m in listed] == ["e"] and " | " in listed[0]["architecture"]
    answer = client.post("/api/predict?why=1&toward=3", json={"pixels": np.eye(28).tolist(), "model": "e"})
    assert answer.status_code == 200, answer.text
    assert abs(sum(answer.json()["probabilities"]) - 1) < 1e-3
    from numpynn.explain import saliency

    ensemble, _ = load_model(folder / "e.npz")
    seen = np.asarray(answer.json()["why"], np.float32)  # the page's map: the whole ensemble's, not member 1's
    X = np.asarray(answer.json()["input"], np.float32).reshape(1, 784)  # what it saw, to 3 decimals
    k = answer.json()["digit"]
    assert seen.shape == (784,) and len(answer.json()["toward"]["map"]) == 784
    whole, first = saliency(ensemble, X, k)[0], saliency(ensemble.members[0], X, k)[0]
    scale = np.abs(whole).max()
    assert np.abs(seen - whole).max() < 0.02 * scale < np.abs(seen - first).max()


@pytest.mark.parametrize("case, message", [
    ("one", "an ensemble needs two or more model files, or one with test-time shifts (--shift 1); 1 given"),
    ("missing", "no such file"),
    ("checkpoint", "a checkpoint, not a model file"),
    ("ensemble", "already an ensemble"),
    ("inputs", "does not take 784-pixel images"),
    ("out", "end in .npz"),
    ("datasets", "different datasets"),
])
def test_bad_ensemble_inputs_are_one_line(two_models, tmp_path, tiny_mnist, capsys, case, message):
    a, b = two_models
    extra = []
    if case == "one":
        models = [a]
    elif case == "missing":
        models = [a, tmp_path / "nope.npz"]
    elif case == "checkpoint":
        models = [a, tmp_path / "m1.ckpt.npz"]
    elif case == "ensemble":
        assert run(capsys, "ensemble", a, b, "--out", tmp_path / "e.npz", "--data", tiny_mnist)[0] == 0
        models = [a, tmp_path / "e.npz"]
    elif case == "inputs":  # a network for 100-pixel images: the loader refuses it as a member, by name
        save_model(tmp_path / "small.npz", mlp([100, 8, 10]), {})
        models = [a, tmp_path / "small.npz"]
    elif case == "datasets":
        save_model(tmp_path / "fashion.npz", mlp([784, 8, 10]), {"dataset": {"name": "fashion-mnist"}})
        models = [a, tmp_path / "fashion.npz"]
    else:
        models, extra = [a, b], ["--out", tmp_path / "e.txt"]
    code, _, err = run(capsys, "ensemble", *models, *(extra or ["--out", tmp_path / "out.npz"]), "--data", tiny_mnist)
    assert code in (1, 2) and message in err and len(err.strip().splitlines()) == 1, err


def test_the_ensemble_is_calibrated_on_the_images_no_member_trained_on(tmp_path, capsys):
    from .conftest import make_mnist_dir

    data = make_mnist_dir(tmp_path / "data", n_train=400, n_test=100)
    paths = []
    for hidden in (16, 24):  # one split (seed 0) for both: its 150 dev images are unseen by either member
        path = tmp_path / f"h{hidden}.npz"
        code, _, err = run(capsys, "train", "--data", data, "--hidden", hidden, "--epochs", 2, "--batch-size", 16,
                           "--dev-size", 150, "--quiet", "--out", path)
        assert code == 0, err
        paths.append(path)
    code, stdout, err = run(capsys, "ensemble", *paths, "--out", tmp_path / "e.npz", "--data", data)
    assert code == 0 and "fitted on the 150 training images no member trained on" in stdout, err
    model, header = load_model(tmp_path / "e.npz")
    assert model.temperature == header["temperature"] != 1.0 and header["metrics"]["calibration_images"] == 150
    assert "threshold" in header["not_sure"]
    X = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    model.temperature, P1 = 1.0, model.predict_proba(X)
    model.temperature = header["temperature"]
    assert (model.predict_proba(X).argmax(axis=1) == P1.argmax(axis=1)).all()  # the answers never change


# ---------------------------------------------------------------------------------------------------------
# What an ensemble file can hold is checked before anything is written; an ensemble is no starting point

def test_too_many_members_are_refused_before_any_is_loaded(tmp_path, tiny_mnist, capsys):
    model = save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {})
    for n in (serialize.MAX_ENSEMBLE + 1, 1000):
        code, out, err = run(capsys, "ensemble", *[model] * n, "--out", tmp_path / "e.npz", "--data", tiny_mnist)
        assert code == 2 and f"at most {serialize.MAX_ENSEMBLE}" in err and err.count("\n") == 1, err
    assert not (tmp_path / "e.npz").exists()


def test_members_with_too_many_parameters_together_are_refused(two_models, tmp_path, tiny_mnist, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(serialize, "MAX_PARAMETERS", 20_000)  # each member has 12,730: two do not fit
    code, out, err = run(capsys, "ensemble", *two_models, "--out", tmp_path / "e.npz", "--data", tiny_mnist)
    assert code == 1 and "25,460 parameters together" in err and "20,000" in err and err.count("\n") == 1, err
    assert not (tmp_path / "e.npz").exists() and out == ""


def test_save_ensemble_refuses_what_load_would_refuse(tmp_path, monkeypatch):
    ensemble = Ensemble(members(tmp_path) + [mlp([784, 8, 10])])
    monkeypatch.setattr(serialize, "MAX_ENSEMBLE", 2)
    with pytest.raises(ModelFileError, match="an ensemble of 3 models; an ensemble file holds at most 2"):
        save_ensemble(tmp_path / "e.npz", ensemble, [{}, {}, {}], {})
    monkeypatch.setattr(serialize, "MAX_ENSEMBLE", 100)
    monkeypatch.setattr(serialize, "MAX_PARAMETERS", 100)
    with pytest.raises(ModelFileError, match="parameters together"):
        save_ensemble(tmp_path / "e.npz", ensemble, [{}, {}, {}], {})
    assert not list(tmp_path.iterdir())


def test_out_may_not_be_one_of_the_members_by_any_name(two_models, tmp_path, tiny_mnist, capsys):
    a, b = two_models
    before = a.read_bytes(), b.read_bytes()
    (tmp_path / "link.npz").symlink_to(a)
    (tmp_path / "sub").mkdir()
    for out in (a, b, tmp_path / "link.npz", tmp_path / "sub" / ".." / b.name):
        code, _, err = run(capsys, "ensemble", a, b, "--out", out, "--data", tiny_mnist)
        assert code == 2 and "one of the members" in err and err.count("\n") == 1, err
    assert (a.read_bytes(), b.read_bytes()) == before
    code, _, err = run(capsys, "ensemble", tmp_path / "link.npz", b, "--out", a, "--data", tiny_mnist)
    assert code == 2 and "one of the members" in err


def test_an_ensemble_cannot_be_a_starting_point(two_models, tmp_path, tiny_mnist, capsys):
    from numpynn.train import Run, make_config, start_from

    out = tmp_path / "e.npz"
    assert run(capsys, "ensemble", *two_models, "--out", out, "--data", tiny_mnist)[0] == 0
    code, _, err = run(capsys, "train", "--data", tiny_mnist, *FAST, "--init-from", out, "--out", tmp_path / "t.npz")
    assert code == 1 and "an ensemble of 2 models, which cannot be a starting point" in err, err
    assert err.count("\n") == 1 and "unexpected" not in err and not (tmp_path / "t.npz").exists()
    with pytest.raises(ValueError, match="init_from e: an ensemble"):
        start_from(Run.start(make_config("mlp", hidden=(16,))), load_model(out)[0], "init_from e")


# ---------------------------------------------------------------------------------------------------------
# Test-time shifts: every member also reads each image moved s pixels up, down, left and right

def test_a_shifted_image_moves_its_pixels_and_fills_with_zeros():
    from numpynn.ensemble import shifted, views

    I = np.arange(1, 10, dtype=np.float32).reshape(1, 9)  # [[1 2 3] [4 5 6] [7 8 9]]
    assert shifted(I, 1, 0, 3).reshape(3, 3).tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]  # down
    assert shifted(I, -1, 0, 3).reshape(3, 3).tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]  # up
    assert shifted(I, 0, 1, 3).reshape(3, 3).tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]  # right
    assert shifted(I, 0, -2, 3).reshape(3, 3).tolist() == [[3, 0, 0], [6, 0, 0], [9, 0, 0]]  # two left
    assert shifted(I, 3, 0, 3).tolist() == [[0] * 9] and shifted(I, 0, 0, 3).tolist() == I.tolist()
    assert shifted(I, 1, 0, 3) is not I and I[0, 0] == 1  # the input is left as it was
    assert views(0) == [(0, 0)] and views(2) == [(0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)]


def test_with_shifts_the_mean_runs_over_members_and_views():
    a, b = members(None)
    X = np.random.default_rng(2).random((6, 784), dtype=np.float32)
    padded = np.pad(X.reshape(6, 28, 28), ((0, 0), (2, 2), (2, 2)))  # another way to move an image: pad, cut
    cuts = [padded[:, 2 - dy:30 - dy, 2 - dx:30 - dx].reshape(6, 784) for dy, dx in
            [(0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)]]
    expected = np.mean([m.predict_proba(V) for m in (a, b) for V in cuts], axis=0)  # the members' own T inside
    np.testing.assert_allclose(Ensemble([a, b], shift=2).predict_proba(X), expected, rtol=1e-5, atol=1e-7)
    one = Ensemble([b], shift=2)  # one member: a committee of its views alone
    np.testing.assert_allclose(one.predict_proba(X), np.mean([b.predict_proba(V) for V in cuts], axis=0),
                               rtol=1e-5, atol=1e-7)
    assert not np.allclose(one.predict_proba(X), b.predict_proba(X))  # the views did change something


@pytest.mark.parametrize("models, shift, message", [
    (1, 0, "members = 1 is out of range: an ensemble needs two or more models, or one model with test-time"),
    (2, -1, "shift = -1 is out of range: use 0 .* or 1 to 3 pixels"),
    (2, 4, "shift = 4 is out of range"),
    (2, 1.0, "shift = 1.0 is out of range"),
    (2, True, "shift = True is out of range"),
])
def test_bad_shifts_are_one_line(models, shift, message):
    with pytest.raises(OptionError, match=message):
        Ensemble(members(None)[:models], shift=shift)


def test_shifts_need_square_images():
    with pytest.raises(OptionError, match="test-time shifts need square images; the members read 12 inputs"):
        Ensemble([mlp([12, 2]), mlp([12, 2])], shift=1)
    assert len(Ensemble([mlp([12, 2]), mlp([12, 2])]).views) == 1  # without shifts any input will do


def test_a_shifted_ensemble_file_round_trips_and_one_member_is_enough(tmp_path):
    ensemble = Ensemble(members(tmp_path)[1:], shift=1)
    path = save_ensemble(tmp_path / "e.npz", ensemble, [{"file": "b.npz"}], {})
    loaded, header = load_model(path)
    assert header["shift"] == 1 and loaded.shift == 1 and len(loaded.views) == 5 and len(loaded.members) == 1
    X = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    old = rewrite(save_ensemble(tmp_path / "two.npz", Ensemble(members(tmp_path)), [{}, {}], {}),
                  tmp_path / "old.npz", lambda h: h.pop("shift"))  # a file from before shifts: none
    assert load_model(old)[0].shift == 0
    alone = rewrite(path, tmp_path / "alone.npz", lambda h: h.update(shift=0))  # one member, no views: refused
    with pytest.raises(ModelFileError, match="ensemble is invalid .members = 1 is out of range: an ensemble needs "
                       "two or more models, or one model with test-time shifts") as error:
        load_model(alone)
    assert "\n" not in str(error.value)


def test_the_ensemble_command_with_shifts(two_models, tmp_path, tiny_mnist, capsys):
    out = tmp_path / "e.npz"
    code, stdout, err = run(capsys, "ensemble", two_models[0], "--shift", 1, "--out", out, "--data", tiny_mnist)
    assert code == 0, err
    assert "Ensemble of 1, each on 5 views (the image and its 1-pixel shifts): test accuracy" in stdout
    header = serialize.load(out)[1]
    assert header["shift"] == 1 and header["metrics"]["views"] == 5
    code, stdout, err = run(capsys, "evaluate", out, "--data", tiny_mnist, "--json")
    assert code == 0 and json.loads(stdout)["accuracy"] == pytest.approx(header["metrics"]["test_accuracy"]), err
    code, stdout, err = run(capsys, "info", out)
    assert code == 0 and "test-time shifts: every member also reads each image moved 1 pixel up" in stdout, err
    from fastapi.testclient import TestClient

    from numpynn.web.app import create_app

    app = create_app(tmp_path)  # the page lists it, says so, and reads with it
    client = TestClient(app, base_url="http://127.0.0.1:8000", headers={"X-Numpynn-Token": app.state.token})
    listed = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert listed["e"]["architecture"].endswith(" | each on 5 views, moved 1 px")
    answer = client.post("/api/predict", json={"pixels": np.eye(28).tolist(), "model": "e"})
    assert answer.status_code == 200 and abs(sum(answer.json()["probabilities"]) - 1) < 1e-3, answer.text


@pytest.mark.parametrize("flag, message", [
    ("4", "--shift = 4 is out of range: use 0 (no test-time shifts) or 1 to 3 pixels"),
    ("-1", "--shift = -1 is out of range"),
    ("x", "invalid int value: 'x'"),
    ("1.5", "invalid int value: '1.5'"),
])
def test_bad_shift_flags_are_one_line_before_any_member_is_loaded(tmp_path, tiny_mnist, capsys, flag, message):
    missing = tmp_path / "not-loaded.npz"  # never opened: the flag is refused first
    code, out, err = run(capsys, "ensemble", missing, missing, "--shift", flag, "--out", tmp_path / "e.npz",
                         "--data", tiny_mnist)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and out == "", err
    assert not (tmp_path / "e.npz").exists()


@pytest.mark.parametrize("shift, count", [(1, 2), (3, 1)])
def test_an_exported_shifted_ensemble_computes_what_numpynn_computes(tmp_path, shift, count):
    pytest.importorskip("onnxruntime")
    from numpynn.export import check_batch, compare_with_onnxruntime, to_onnx
    from numpynn.model import Sequential

    cnn = Sequential.from_spec([{"type": "Unflatten", "shape": [1, 28, 28]},
                                {"type": "Conv2D", "C_in": 1, "C_out": 2, "kernel": 5},
                                {"type": "MaxPool2D", "size": 4}, {"type": "Flatten"},
                                {"type": "Dense", "D_in": 72, "D_out": 10}], rng=np.random.default_rng(0))
    ensemble = Ensemble([cnn, *members(tmp_path)][:count], shift=shift)
    ensemble.temperature = 0.8
    X = check_batch()
    difference = compare_with_onnxruntime(to_onnx(ensemble, {}), ensemble, X)
    assert difference["logits"] < 1e-4 and difference["probabilities"] < 1e-5


def test_batches_and_the_members_kept_apart_give_the_same_log_p():
    from numpynn.ensemble import log_mean

    ensemble = Ensemble(members(None), shift=1)
    X = np.random.default_rng(3).random((70, 784), dtype=np.float32)
    whole = ensemble.log_mean_probabilities(X)
    np.testing.assert_allclose(ensemble.forward_in_batches(X, batch_size=16), whole, rtol=1e-12, atol=1e-12)
    log_p = ensemble.member_log_probabilities(X)
    assert log_p.shape == (2, 5, 70, 10)
    np.testing.assert_allclose(np.exp(log_p[1, 0]), ensemble.members[1].predict_proba(X), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(log_mean(log_p), whole, rtol=1e-12, atol=1e-12)
    assert ensemble.forward_in_batches(X[:0]).shape == (0, 10)


def test_the_command_prints_each_members_own_accuracy(two_models, tmp_path, tiny_mnist, capsys):
    code, stdout, err = run(capsys, "ensemble", *two_models, "--shift", 2, "--out", tmp_path / "e.npz",
                            "--data", tiny_mnist)
    assert code == 0, err
    for path in two_models:  # each member alone, on the images as they are: what its own evaluate says
        code, own, err = run(capsys, "evaluate", path, "--data", tiny_mnist, "--json")
        assert f"  {path}: test accuracy {100 * json.loads(own)['accuracy']:.2f}%" in stdout, stdout
