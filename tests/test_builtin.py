"""The built-in model (numpynn/models): what its file holds, that a changed copy is refused, and that predict,
info, evaluate and serve use it when no model is given, after the user's own model when one is."""
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from numpynn import serialize
from numpynn.images import prepare
from numpynn.model import mlp
from numpynn.models import BUILTIN, builtin_label, builtin_path
from numpynn.web.app import create_app
from numpynn.web.registry import BUILTIN_NAME

from .conftest import run_cli
from .test_serve import local_client, post_json, save, seven


@pytest.fixture(scope="module")
def builtin():
    return serialize.load_model(builtin_path())


def mnist_pictures(folder, mnist_dir, n=5):
    """The first n MNIST test digits as PNG files: (paths, labels)."""
    from numpynn.data import load_raw

    _, _, x_test, y_test = load_raw("mnist", mnist_dir, progress=False)
    paths = []
    for i in range(n):
        paths.append(folder / f"test{i}.png")
        Image.fromarray(x_test[i]).save(paths[-1])
    return paths, [int(label) for label in y_test[:n]]


def test_the_builtin_model_is_small_float32_and_carries_its_metrics_and_hash(builtin):
    model, header = builtin
    assert header["kind"] == "model" and header["name"] == BUILTIN
    assert builtin_path().stat().st_size < 1_500_000  # float32: about 1.3 MB
    assert {layer["dtype"] for layer in header["architecture"] if "dtype" in layer} == {"float32"}
    arrays, _ = serialize.load(builtin_path())
    assert header["weights_sha256"] == serialize.weights_sha256(arrays)
    assert header["metrics"]["test_accuracy"] >= 0.99 and header["metrics"]["dev_accuracy"] >= 0.99
    assert builtin_label(header) == f"built-in {BUILTIN} ({100 * header['metrics']['test_accuracy']:.2f} % on MNIST test)"


def test_a_changed_copy_of_the_builtin_model_is_refused_in_one_line(tmp_path, capsys):
    arrays, header = serialize.load(builtin_path())
    arrays["model/1.W"] = -arrays["model/1.W"]  # the first convolution's filters, inverted
    tampered = serialize.save(tmp_path / "tampered.npz", arrays, header)
    picture = tmp_path / "seven.png"
    Image.fromarray(np.rint(seven(28) * 255).astype(np.uint8)).save(picture)
    code, out, err = run_cli(capsys, "predict", tampered, picture)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "do not match the header's weights_sha256" in err


@pytest.mark.mnist
def test_predict_with_no_model_uses_the_builtin_model_and_says_so(tmp_path, mnist_dir, capsys, builtin):
    paths, labels = mnist_pictures(tmp_path, mnist_dir)
    code, out, err = run_cli(capsys, "predict", *paths, "--json")
    assert code == 0 and err == f"model: {builtin_label(builtin[1])}\n"
    assert [r["digit"] for r in json.loads(out)] == labels


@pytest.mark.mnist
def test_evaluate_with_no_model_measures_the_builtin_model_as_its_header_says(mnist_dir, capsys, builtin):
    code, out, err = run_cli(capsys, "evaluate", "--data", mnist_dir, "--json")
    assert code == 0 and err.startswith("model: built-in")
    assert json.loads(out)["accuracy"] == builtin[1]["metrics"]["test_accuracy"]


def test_predict_still_takes_a_model_file_first(tmp_path, capsys):
    model = save(tmp_path / "mine.npz", mlp([784, 8, 10], rng=np.random.default_rng(0)))
    picture = tmp_path / "seven.png"
    Image.fromarray(np.rint(seven(28) * 255).astype(np.uint8)).save(picture)
    code, out, err = run_cli(capsys, "predict", model, picture, "--json")
    theirs, _ = serialize.load_model(model)
    assert code == 0 and err == ""  # no line about the built-in model: it is not used
    assert json.loads(out)[0]["digit"] == int(theirs.predict(prepare(picture).reshape(1, 784))[0])
    code, _, err = run_cli(capsys, "predict", model)
    assert code == 2 and "give the pictures to read after the model file" in err


def test_info_with_no_model_describes_the_builtin_model(capsys, builtin):
    code, out, err = run_cli(capsys, "info")
    assert code == 0 and f"name: {BUILTIN}\n" in out and f"weights_sha256: {builtin[1]['weights_sha256']}" in out
    assert str(builtin_path()) in out.splitlines()[0]


def test_the_page_offers_the_users_model_first_then_the_builtin_one(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    save(folder / "learned.npz", mlp([784, 8, 10], rng=np.random.default_rng(1)))
    pinned = save(tmp_path / "mine.npz", mlp([784, 8, 10], rng=np.random.default_rng(2)))
    with local_client(create_app(folder, pinned, builtin=builtin_path())) as client:
        data = client.get("/api/models").json()
    assert [m["name"] for m in data["models"]] == ["mine", BUILTIN_NAME, "learned"] and data["default"] == "mine"
    assert [m["builtin"] for m in data["models"]] == [False, True, False]
    assert data["models"][1]["test_accuracy"] >= 0.99 and data["models"][1]["dev_accuracy"] >= 0.99


def test_with_no_model_the_page_reads_digits_with_the_builtin_one_at_once(tmp_path):
    with local_client(create_app(tmp_path / "nothing-here", builtin=builtin_path())) as client:
        data = client.get("/api/models").json()
        assert data["default"] == BUILTIN_NAME
        answer = post_json(client, {"pixels": seven(28).tolist()}).json()
    assert answer["model"] == BUILTIN_NAME and answer["digit"] == 7


def test_python_m_numpynn_models_makes_a_float32_file_with_its_metrics_and_hash(tmp_path, tiny_mnist, capsys):
    from numpynn.models.__main__ import main

    trained = mlp([784, 16, 10], rng=np.random.default_rng(0), dtype=np.float64)
    source = save(tmp_path / "trained.npz", trained, dataset={"name": "mnist", "dev_size": 20, "split_seed": 0},
                  config={"preset": "mlp"})
    assert main([str(source), "--out", str(tmp_path / "built.npz"), "--data", str(tiny_mnist)]) == 0
    out = capsys.readouterr().out
    model, header = serialize.load_model(tmp_path / "built.npz")  # the hash is checked here
    assert {layer["dtype"] for layer in header["architecture"] if "dtype" in layer} == {"float32"}
    assert header["name"] == BUILTIN and header["config"] == {"preset": "mlp"}
    assert header["weights_sha256"] == serialize.weights_sha256(serialize.load(tmp_path / "built.npz")[0])
    assert {"test_loss", "dev_loss", "dev_accuracy"} <= header["metrics"].keys()  # measured again, on tiny_mnist
    assert f"weights_sha256 {header['weights_sha256']}" in out
    X = np.random.default_rng(1).random((8, 784))
    np.testing.assert_allclose(model.predict_proba(X), trained.predict_proba(X), atol=1e-5)


def test_the_docs_photo_lit_from_one_side_reads_as_the_docs_say(capsys):
    """docs/images.md shows docs/img/shaded-input.jpg, a 3 on paper lit from the right, read by the built-in model."""
    picture = pathlib.Path(__file__).resolve().parents[1] / "docs" / "img" / "shaded-input.jpg"
    code, out, err = run_cli(capsys, "predict", str(picture), "--json")
    assert code == 0 and json.loads(out)[0]["digit"] == 3 and not json.loads(out)[0]["not_sure"]
