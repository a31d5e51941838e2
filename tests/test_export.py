"""numpynn export: the ONNX graph passes onnx.checker and computes in onnxruntime what numpynn computes, on all
10,000 MNIST test images, for the presets' networks and one with every layer; the command's bad inputs are one line.

onnx and onnxruntime are in the test extra, so they are imported plainly: without them these tests fail, never skip.
The models train for a few Adam steps on a slice of MNIST (a few seconds), enough to move every weight and
BatchNorm's running statistics away from their initial values; they are shared by the whole module.
"""
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest

from numpynn import export, serialize
from numpynn.conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool, MaxPool2D, Unflatten
from numpynn.data import load_mnist
from numpynn.layers import BatchNorm, Dense, Dropout, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from numpynn.losses import softmax_cross_entropy
from numpynn.model import LAYERS, Sequential, mlp
from numpynn.models import builtin_path
from numpynn.optim import Adam
from numpynn.train import build_model, make_config
from numpynn.widthnorm import WidthNorm

from .conftest import run_cli

TOLERANCE = 1e-5  # float32 rounding of sums taken in another order: the differences measured are ~1e-6

pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(data_dir=mnist_dir, progress=False)


def every_layer(rng) -> Sequential:
    """One chain with every layer numpynn has, and the options that change the graph: a stride-2 convolution,
    'same' padding, an average pool with stride 1, a max pool of 3 with stride 2, both ways from images to rows
    (Flatten and GlobalAvgPool, with an Unflatten between), LeakyReLU's slope, BatchNorm and Dropout, and first
    WidthNorm (test_widthnorm.py also runs its graph on images with no ink, one pixel, and all white)."""
    return Sequential([
        WidthNorm(12),  # (N, 784) every digit's ink 12 columns wide
        Unflatten((1, 28, 28)),
        Conv2D(1, 4, 3, stride=2, padding=1, rng=rng),  # (N, 4, 14, 14)
        LeakyReLU(0.2),
        AvgPool2D(2, stride=1),  # (N, 4, 13, 13)
        Conv2D(4, 6, 3, padding=1, rng=rng),  # (N, 6, 13, 13)  same padding
        Tanh(),
        MaxPool2D(3, stride=2),  # (N, 6, 6, 6)
        Flatten(),  # (N, 216)
        Dense(216, 64, rng=rng),
        BatchNorm(64, momentum=0.2),
        Sigmoid(),
        Dropout(0.25, seed=1),
        Unflatten((4, 4, 4)),
        Conv2D(4, 8, 3, padding=1, rng=rng),  # (N, 8, 4, 4)
        ReLU(),
        GlobalAvgPool(),  # (N, 8)
        Dense(8, 10, rng=rng),
    ])


def train_briefly(model, splits, steps: int, batch_size: int = 64, lr: float = 1e-3) -> Sequential:
    """A few Adam steps on the first 2000 training images: weights away from their initial draw, and
    BatchNorm's running mean and variance moved by real batches."""
    rng, opt = np.random.default_rng(1), Adam(lr)
    for _ in range(steps):
        rows = rng.integers(0, 2000, batch_size)
        _, dZ = softmax_cross_entropy(model.forward(splits.X_train[rows]), splits.y_train[rows])
        model.backward(dZ, need_dX=False)
        opt.step(model.params(), model.grads())
    return model


@pytest.fixture(scope="module")
def models(mnist):
    """name -> a briefly trained model: the mlp, seed and cnn presets' networks, and every layer in one; and the
    built-in model, fully trained (numpynn/models)."""
    rng = np.random.default_rng(0)
    return {
        "mlp": train_briefly(build_model(make_config("mlp"), rng), mnist, steps=10),
        "seed": train_briefly(build_model(make_config("seed"), rng), mnist, steps=30, lr=3e-3),
        "cnn": train_briefly(build_model(make_config("cnn"), rng), mnist, steps=3),
        "every layer": train_briefly(every_layer(rng), mnist, steps=30, lr=3e-2),
        "built-in": serialize.load_model(builtin_path())[0],
    }


def numpynn_logits(model, X, batch_size: int = 500):
    """model.forward(X, train=False) in batches, as predict_proba runs it (a CNN's columns grow with the batch)."""
    return np.concatenate([model.forward(X[s : s + batch_size], train=False) for s in range(0, len(X), batch_size)])


def run_onnx(proto_or_path, X):
    source = proto_or_path.SerializeToString() if isinstance(proto_or_path, onnx.ModelProto) else str(proto_or_path)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(["logits", "probabilities"], {"pixels": X})


@pytest.mark.parametrize("name", ["mlp", "seed", "cnn", "every layer", "built-in"])
def test_onnxruntime_computes_what_numpynn_computes_on_all_10000_test_images(models, mnist, name):
    model, X = models[name], mnist.X_test
    assert len(X) == 10_000
    proto = export.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    logits, probabilities = run_onnx(proto, X)  # all 10,000 in one batch: N is dynamic
    Z = numpynn_logits(model, X)  # (10000, 10)
    assert logits.shape == probabilities.shape == (10_000, 10) and logits.dtype == np.float32
    logits_diff, probabilities_diff = np.abs(logits - Z).max(), np.abs(probabilities - model.probabilities(Z)).max()
    print(f"{name}: max |onnxruntime - numpynn| {logits_diff:.2e} (logits, largest |logit| {np.abs(Z).max():.1f}), "
          f"{probabilities_diff:.2e} (probabilities)")
    assert logits_diff <= TOLERANCE and probabilities_diff <= TOLERANCE
    assert (logits.argmax(axis=1) == Z.argmax(axis=1)).mean() > 0.999  # ties may break differently, nothing else
    assert np.abs(Z).max() > 2  # trained weights: logits large enough for rounding to show


def test_the_trained_models_are_not_trivial(models):
    """What the comparison above relies on: BatchNorm's running statistics moved from their initial 0 and 1."""
    batchnorm = models["every layer"].layers[10]
    assert isinstance(batchnorm, BatchNorm)
    assert np.abs(batchnorm.buffers["running_mean"]).max() > 0.05
    assert np.abs(batchnorm.buffers["running_var"] - 1).max() > 0.05
    kinds = {type(layer) for layer in models["every layer"].layers}
    assert kinds == set(export.EXPORTABLE) == set(LAYERS.values())  # a new layer fails here until it is exported


def test_the_graph_names_its_input_and_outputs_with_a_dynamic_batch_and_carries_the_header(models):
    header = {"numpynn_version": "0.1.0", "metrics": {"test_accuracy": 0.9842, "stopped": None},
              "preprocessing": {"scale": "pixel / 255"}}
    proto = export.to_onnx(models["cnn"], header)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", export.OPSET)] and export.OPSET == 21
    graph = proto.graph
    assert [i.name for i in graph.input] == ["pixels"]
    assert [o.name for o in graph.output] == ["logits", "probabilities"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.input, *graph.output]]
    assert dims == [["N", 784], ["N", 10], ["N", 10]]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [n.op_type for n in graph.node] == ["Reshape", "Conv", "MaxPool", "Relu", "Conv", "MaxPool", "Relu",
                                               "Flatten", "Gemm", "Relu", "Gemm", "Softmax"]  # Dropout: no node
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["numpynn_version"] == "0.1.0" and '"test_accuracy": 0.9842' in meta["metrics"]
    assert Sequential.from_spec(json.loads(meta["architecture"])).spec() == models["cnn"].spec()
    X = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    for rows in (X[:1], X):  # one image and three: any N
        logits, _ = run_onnx(proto, rows)
        assert np.abs(logits - models["cnn"].forward(rows, train=False)).max() <= TOLERANCE


def test_leaky_relu_slope_and_batchnorm_eps_reach_the_graph():
    rng = np.random.default_rng(0)
    model = Sequential([Dense(784, 16, rng=rng), BatchNorm(16, eps=0.5), LeakyReLU(0.3), Dense(16, 10, rng=rng)])
    model.layers[1].buffers["running_var"][:] = rng.uniform(0.01, 0.1, 16)  # eps = 0.5 dominates: a wrong eps shows
    nodes = {n.op_type: n for n in export.to_onnx(model).graph.node}
    assert onnx.helper.get_attribute_value(nodes["LeakyRelu"].attribute[0]) == pytest.approx(0.3)
    assert onnx.helper.get_attribute_value(nodes["BatchNormalization"].attribute[0]) == pytest.approx(0.5)
    X = rng.random((50, 784), dtype=np.float32) - 0.5
    logits, _ = run_onnx(export.to_onnx(model), X)
    assert np.abs(logits - model.forward(X, train=False)).max() <= TOLERANCE


class Swish(Layer):
    """A layer numpynn does not have: the exporter must refuse it, not guess."""

    def forward(self, X, train=True):
        return X / (1 + np.exp(-X))


@pytest.mark.parametrize("layers, says", [
    (lambda rng: [Dense(784, 10, rng=rng), Swish()], "layer 1 (Swish) has no ONNX form"),
    (lambda rng: [Dense(784, 10, rng=rng, dtype=np.float64)], "layer 0 (Dense) computes in float64"),
    (lambda rng: [Unflatten(), BatchNorm(28), Flatten(), Dense(784, 10, rng=rng)],  # numpynn normalises the width
     "layer 1 (BatchNorm) gets ('N', 1, 28, 28) images"),
    (lambda rng: [Unflatten(), Conv2D(1, 10, 28, rng=rng)], "the model's output is ('N', 10, 1, 1)"),
    (lambda rng: [Dense(700, 10, rng=rng)], "layer 0 (Dense) does not take"),
])
def test_what_cannot_be_exported_faithfully_is_refused_in_one_line(layers, says):
    with pytest.raises(export.ExportError) as error:
        export.to_onnx(Sequential(layers(np.random.default_rng(0))))
    assert says in str(error.value) and "\n" not in str(error.value)


def test_without_onnx_the_exporter_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(export.ExportError, match=r"^numpynn export needs the onnx package: pip install 'numpynn\[onnx\]'$"):
        export.to_onnx(mlp([784, 10]))


# The command, as a user runs it.

@pytest.fixture(scope="module")
def model_file(models, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "mlp.npz"
    serialize.save_model(path, models["mlp"], {"numpynn_version": "0.1.0", "metrics": {"test_accuracy": 0.5}})
    return path


def test_export_writes_a_file_that_onnxruntime_runs_and_says_how_well_it_agrees(model_file, mnist, tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    code, stdout, stderr = run_cli(capsys, "export", model_file, "--out", out)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"Wrote {out}  (ONNX opset 21, ") and len(lines) == 2
    assert lines[1].startswith(f"Checked with onnxruntime {onnxruntime.__version__} on 256 check images")
    said = float(lines[1].split("from numpynn ")[1].split(" ")[0])
    assert said <= TOLERANCE
    onnx.checker.check_model(str(out), full_check=True)
    model, _ = serialize.load_model(model_file)
    logits, _ = run_onnx(out, mnist.X_test[:1000])
    assert np.abs(logits - model.forward(mnist.X_test[:1000], train=False)).max() <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx"]  # no temporary file left beside it


def test_the_builtin_model_exports_as_a_command_with_its_header(tmp_path, capsys):
    out = tmp_path / "builtin.onnx"
    code, stdout, stderr = run_cli(capsys, "export", builtin_path(), "--out", out)
    assert code == 0 and stdout.startswith(f"Wrote {out}"), stderr
    said = float(stdout.splitlines()[1].split("from numpynn ")[1].split(" ")[0])
    assert said <= TOLERANCE
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata["metrics"]) == serialize.load(builtin_path())[1]["metrics"]


def test_export_runs_as_a_command_and_defaults_to_the_model_name(model_file, tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(model_file.read_bytes())
    done = subprocess.run([sys.executable, "-m", "numpynn", "export", str(model)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.onnx").is_file() and done.stdout.startswith(f"Wrote {tmp_path / 'm.onnx'}")


def test_export_without_onnxruntime_writes_the_file_and_says_it_was_not_checked(model_file, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, stdout, _ = run_cli(capsys, "export", model_file, "--out", tmp_path / "m.onnx")
    assert code == 0 and (tmp_path / "m.onnx").is_file()
    assert stdout.splitlines()[1] == "Not checked: onnxruntime is not installed (pip install onnxruntime to compare " \
                                     "it with numpynn)"


def one_line_error(code, stdout, stderr, exit_code):
    assert code == exit_code and stdout == ""
    assert stderr.startswith("numpynn: error: ") and stderr.count("\n") == 1, stderr
    return stderr


def test_export_without_onnx_says_how_to_install_it_and_writes_nothing(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    err = one_line_error(*run_cli(capsys, "export", model_file, "--out", tmp_path / "m.onnx"), 1)
    assert err == "numpynn: error: numpynn export needs the onnx package: pip install 'numpynn[onnx]'\n"
    assert not list(tmp_path.iterdir())


def test_export_refuses_an_out_that_is_not_onnx(model_file, tmp_path, capsys):
    err = one_line_error(*run_cli(capsys, "export", model_file, "--out", tmp_path / "m.npz"), 2)
    assert "ONNX files end in .onnx" in err and not list(tmp_path.iterdir())


def test_export_refuses_a_folder_it_cannot_write(model_file, read_only_folder, capsys):
    err = one_line_error(*run_cli(capsys, "export", model_file, "--out", read_only_folder / "m.onnx"), 2)
    assert "not writable" in err and not list(read_only_folder.iterdir())
    err = one_line_error(*run_cli(capsys, "export", model_file, "--out", read_only_folder / "no" / "m.onnx"), 2)
    assert "no such folder" in err


def test_export_refuses_a_file_that_is_not_a_model(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("not a model")
    err = one_line_error(*run_cli(capsys, "export", tmp_path / "notes.npz", "--out", tmp_path / "m.onnx"), 1)
    assert "corrupt or truncated model file" in err
    err = one_line_error(*run_cli(capsys, "export", tmp_path / "missing.npz", "--out", tmp_path / "m.onnx"), 1)
    assert "no such file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.npz"]


def test_export_refuses_a_model_it_cannot_export_and_writes_nothing(tmp_path, capsys, monkeypatch):
    float64 = tmp_path / "float64.npz"  # a real model file numpynn loads, with float64 weights
    serialize.save_model(float64, mlp([784, 10], rng=np.random.default_rng(0), dtype=np.float64), {})
    err = one_line_error(*run_cli(capsys, "export", float64, "--out", tmp_path / "m.onnx"), 1)
    assert "layer 0 (Dense) computes in float64" in err

    model = Sequential([Dense(784, 10, rng=np.random.default_rng(0)), Swish()])
    monkeypatch.setattr(serialize, "load_model", lambda path: (model, {}))  # what no model file can hold
    err = one_line_error(*run_cli(capsys, "export", float64, "--out", tmp_path / "m.onnx"), 1)
    assert "layer 1 (Swish) has no ONNX form" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float64.npz"]


def test_export_writes_nothing_when_onnxruntime_disagrees(model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export, "compare_with_onnxruntime",
                        lambda proto, model, X: {"logits": 0.5, "probabilities": 0.1, "largest_logit": 20.0,
                                                 "onnxruntime": "9.9"})
    err = one_line_error(*run_cli(capsys, "export", model_file, "--out", tmp_path / "m.onnx"), 1)
    assert "disagrees with numpynn by up to 0.5" in err and not list(tmp_path.iterdir())


def test_export_compares_the_logits_relative_to_their_size(tmp_path, capsys):
    """Huge but finite weights give logits of ~1e30, where float32 rounding in another order differs by ~1e24:
    that is agreement, and the file is written; a difference of 0.5 in logits of 20 is not."""
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    model.layers[0].params["W"] *= 1e30
    path = serialize.save_model(tmp_path / "big.npz", model, {})
    code, stdout, stderr = run_cli(capsys, "export", path, "--out", tmp_path / "big.onnx")
    assert code == 0 and (tmp_path / "big.onnx").exists(), stderr
    assert "the largest |logit| is" in stdout
