"""Model files: round trips, and refusal of everything a hostile or damaged file could hold."""
import json
import zipfile

import numpy as np
import pytest

from numpynn import serialize
from numpynn.model import mlp
from numpynn.serialize import ModelFileError, load_model, save_model


@pytest.fixture
def model():
    return mlp([784, 32, 10], dropout=0.2, batchnorm=True, rng=np.random.default_rng(0))


@pytest.fixture
def saved(tmp_path, model):
    X = np.random.default_rng(1).random((64, 784), dtype=np.float32)
    model.forward(X, train=True)  # moves the BatchNorm statistics away from their initial values
    path = save_model(tmp_path / "m.npz", model, {"metrics": {"test_accuracy": 0.5}})
    return path, X


def test_saving_and_loading_gives_identical_predictions(model, saved):
    path, X = saved
    loaded, header = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert header["format_version"] == serialize.FORMAT_VERSION
    assert header["architecture"] == model.spec()
    assert header["metrics"]["test_accuracy"] == 0.5


def test_saving_is_atomic_and_leaves_no_temporary_file(tmp_path, model):
    save_model(tmp_path / "m.npz", model, {})
    save_model(tmp_path / "m.npz", model, {})  # overwriting goes through a rename too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_a_failed_save_leaves_the_old_file_intact(tmp_path, model, monkeypatch):
    path = save_model(tmp_path / "m.npz", model, {"metrics": {"v": 1}})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        save_model(path, model, {"metrics": {"v": 2}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def write_npz(path, header, **arrays):
    np.savez(path, __header__=np.array(json.dumps(header)), **arrays)
    return path


def test_a_pickled_object_array_is_refused(tmp_path, model):
    header = {"format_version": 1, "kind": "model", "architecture": model.spec()}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["model/0.W"] = np.array([{"evil": "payload"}], dtype=object)  # would need pickle to load
    path = write_npz(tmp_path / "evil.npz", header, **arrays)
    with pytest.raises(ModelFileError, match=r"model/0.W.npy: dtype '\|O' is not allowed"):
        load_model(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_or_truncated_file_gets_a_clear_error(saved, damage):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a zip file at all", "empty": b""}[damage])
    with pytest.raises(ModelFileError, match="corrupt or truncated") as error:
        load_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_unknown_format_versions_are_refused_with_advice(tmp_path, model):
    path = write_npz(tmp_path / "future.npz", {"format_version": 99, "architecture": model.spec()})
    with pytest.raises(ModelFileError, match="version 99 is not supported.*reads version 1"):
        load_model(path)


def test_a_file_without_header_is_not_a_model(tmp_path):
    np.savez(tmp_path / "plain.npz", W=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a numpynn model file"):
        load_model(tmp_path / "plain.npz")


def test_arrays_must_match_the_architecture(tmp_path, model):
    header = {"format_version": 1, "kind": "model", "architecture": model.spec()}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["model/0.W"] = np.zeros((784, 31), np.float32)
    with pytest.raises(ModelFileError, match=r"model/0.W.npy: shape \(784, 31\); expected \(784, 32\)"):
        load_model(write_npz(tmp_path / "shape.npz", header, **arrays))
    del arrays["model/0.W"]
    with pytest.raises(ModelFileError, match="do not match the architecture"):
        load_model(write_npz(tmp_path / "missing.npz", header, **arrays))


@pytest.mark.parametrize(
    "architecture, message",
    [
        ([{"type": "Dense", "D_in": 10**6, "D_out": 10**6, "init": "he"}], "limit"),  # 4 TB of weights
        ([{"type": "Dense", "D_in": -5, "D_out": 10, "init": "he"}], "negative"),
        ([{"type": "Conv2D", "C_in": 4096, "C_out": 4096, "kernel": 9}], "limit"),  # 1.4 billion weights
        ([{"type": "Teleporter"}], "invalid"),
        ("Dense", "no valid architecture"),
        ([], "no valid architecture"),
    ],
)
def test_the_header_architecture_is_checked_before_anything_is_built(tmp_path, architecture, message):
    path = write_npz(tmp_path / "arch.npz", {"format_version": 1, "architecture": architecture})
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_missing_file_and_bad_names(tmp_path, model):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="end in .npz"):
        save_model(tmp_path / "model.pkl", model, {})
    with pytest.raises(ModelFileError, match="no such folder"):
        save_model(tmp_path / "no" / "m.npz", model, {})


def test_a_convolutional_model_round_trips(tmp_path):
    from numpynn.conv import Conv2D, Flatten, MaxPool2D, Unflatten
    from numpynn.layers import Dense, ReLU
    from numpynn.model import Sequential

    rng = np.random.default_rng(0)
    model = Sequential([Unflatten((1, 28, 28)), Conv2D(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(4 * 14 * 14, 10, rng=rng)])  # a model file must take MNIST's (N, 784) rows
    X = rng.random((3, 784), dtype=np.float32)
    loaded, _ = load_model(save_model(tmp_path / "cnn.npz", model, {}))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_the_container_is_a_plain_zip_of_npy_files(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
        assert "__header__.npy" in z.namelist()


def test_an_unreadable_model_file_says_so(tmp_path, monkeypatch):
    path = serialize.save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(zipfile, "ZipFile", denied)  # root reads any file: the refusal is simulated
    with pytest.raises(ModelFileError, match="no permission to read it"):
        serialize.load(path)


def test_a_file_in_the_format_written_before_loads_and_gives_the_same_outputs(tmp_path):
    """The file as numpynn has always written it, built here by hand: the weights, the BatchNorm statistics
    (eval reads the stored running variance, whatever convention made it) and the dropout generator's state
    as JSON text in a 0-d string array. It loads, predicts what the stored numbers say, and draws on from the
    stored generator state."""
    rng = np.random.default_rng(4)
    W0, b0 = rng.standard_normal((784, 8)).astype(np.float32) * 0.05, rng.standard_normal(8).astype(np.float32)
    gamma, beta = rng.random(8).astype(np.float32) + 0.5, rng.standard_normal(8).astype(np.float32)
    mean, var = rng.standard_normal(8).astype(np.float32), rng.random(8).astype(np.float32) + 0.1
    W4, b4 = rng.standard_normal((8, 10)).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    generator = np.random.default_rng(123)
    generator.random(5)  # a generator that has moved on
    architecture = [{"type": "Dense", "D_in": 784, "D_out": 8, "init": "he", "dtype": "float32"},
                    {"type": "BatchNorm", "D": 8, "momentum": 0.1, "eps": 1e-5, "dtype": "float32"},
                    {"type": "ReLU"}, {"type": "Dropout", "p": 0.2, "seed": 7},
                    {"type": "Dense", "D_in": 8, "D_out": 10, "init": "he", "dtype": "float32"}]
    path = write_npz(tmp_path / "old.npz", {"format_version": 1, "kind": "model", "architecture": architecture},
                     **{"model/0.W": W0, "model/0.b": b0, "model/1.gamma": gamma, "model/1.beta": beta,
                        "model/1.running_mean": mean, "model/1.running_var": var,
                        "model/3.rng": np.array(json.dumps(generator.bit_generator.state)),
                        "model/4.W": W4, "model/4.b": b4})
    model, _ = load_model(path)

    X = np.random.default_rng(5).random((6, 784), dtype=np.float32)
    A = np.maximum((X @ W0 + b0 - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)  # eval: the stored statistics
    Z = A @ W4 + b4
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X), P / P.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert model.layers[3].rng.random() == generator.random()

    # and a file written now stores the generator the same way: JSON text, readable without numpynn
    with np.load(save_model(tmp_path / "new.npz", model, {}), allow_pickle=False) as saved:
        assert saved["model/3.rng"].dtype.kind == "U" and saved["model/3.rng"].shape == ()
        assert json.loads(str(saved["model/3.rng"])) == model.layers[3].rng.bit_generator.state


def test_weights_sha256_follows_its_definition():
    arrays = {"model/1.b": np.array([1.5, -2.0], ">f4"), "model/0.W": np.arange(6, dtype="<f8").reshape(2, 3),
              "model/2.rng": np.array("{}")}
    import hashlib

    expected = hashlib.sha256()
    for name, dtype, shape, data in [("model/0.W", "<f8", "2,3", np.arange(6, dtype="<f8").tobytes()),
                                     ("model/1.b", "<f4", "2", np.array([1.5, -2.0], "<f4").tobytes()),
                                     ("model/2.rng", "<U2", "", "{}".encode("utf-32-le"))]:
        expected.update(f"{name}\0{dtype}\0{shape}\0".encode() + data)
    assert serialize.weights_sha256(arrays) == expected.hexdigest()
    assert serialize.weights_sha256(arrays) == serialize.weights_sha256(dict(reversed(arrays.items())))


def test_a_file_whose_weights_do_not_match_its_weights_sha256_is_refused(tmp_path, model, capsys):
    from .conftest import run_cli

    arrays = serialize.join("model", model.state_dict())
    path = save_model(tmp_path / "m.npz", model, {"weights_sha256": serialize.weights_sha256(arrays)})
    _, header = load_model(path)  # the right hash loads
    arrays["model/0.W"] = arrays["model/0.W"].copy()
    arrays["model/0.W"][3, 5] += 1e-3  # a tampered copy: one weight changed, the header kept
    tampered = serialize.save(tmp_path / "tampered.npz", arrays, header)
    with pytest.raises(ModelFileError, match="do not match the header's weights_sha256"):
        load_model(tampered)
    code, out, err = run_cli(capsys, "info", tampered)
    assert code == 1 and out == "" and err.count("\n") == 1 and "weights_sha256" in err, err


@pytest.mark.parametrize("value", ["abc", "A" * 64, 12, None])
def test_a_weights_sha256_that_is_not_64_hex_digits_is_refused(tmp_path, model, value):
    path = save_model(tmp_path / "m.npz", model, {"weights_sha256": value})
    with pytest.raises(ModelFileError, match="weights_sha256 is .*, not 64 hex digits"):
        load_model(path)
