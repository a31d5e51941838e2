"""WidthNorm: every digit's ink re-scaled to one width, the first layer of a width-normalised model.

Exact values for boxes of ink, the layer's gradient against central differences, real digits keep their rows
and get the asked width, the layer travels in the model file and through ONNX, and bad widths are one line."""
import json

import numpy as np
import onnxruntime
import pytest

from numpynn import export
from numpynn.checks import OptionError
from numpynn.config import build_model, make_config
from numpynn.data import load_mnist
from numpynn.explain import logit_gradient
from numpynn.gradcheck import check_layer
from numpynn.serialize import ModelFileError, load_model, save_model
from numpynn.widthnorm import WidthNorm, width_maps

from .conftest import run_cli


def image_with_ink(columns, rows=range(5, 21), side=28, value=1.0):
    X = np.zeros((side, side), np.float32)
    X[np.ix_(list(rows), list(columns))] = value
    return X.reshape(1, -1)  # (1, side*side)


@pytest.mark.parametrize("columns, width, expected", [
    (range(10, 14), 8, {c: 1.0 for c in range(8, 16)}),  # 4 columns stretched to 8 around their centre, 12
    (range(4, 24), 10, {c: 1.0 for c in range(9, 19)}),  # 20 squeezed to 10 around 14
    # 5 columns (centre 12.5) to 10: the output spans [7.5, 17.5), so its end columns are half covered
    (range(10, 15), 10, {7: 0.5, **{c: 1.0 for c in range(8, 17)}, 17: 0.5}),
    (range(0, 28), 28, {c: 1.0 for c in range(28)}),  # already 28 wide: unchanged
])
def test_a_box_of_ink_becomes_width_columns_around_its_centre_and_keeps_its_rows(columns, width, expected):
    Y = WidthNorm(width).forward(image_with_ink(columns), train=False).reshape(28, 28)
    row = np.array([expected.get(c, 0.0) for c in range(28)], np.float32)
    np.testing.assert_allclose(Y[5:21], np.tile(row, (16, 1)), atol=1e-6)
    assert not Y[:5].any() and not Y[21:].any()  # the rows without ink stay without


def test_faint_pixels_do_not_set_the_box_but_are_moved_with_it():
    X = image_with_ink(range(10, 14)).reshape(28, 28)
    X[0, 2] = 0.05  # below INK (0.1) times the brightest (1): not part of the box
    Y = WidthNorm(8).forward(X.reshape(1, -1), train=False).reshape(28, 28)
    np.testing.assert_allclose(Y[5, 8:16], 1.0, atol=1e-6)  # the box is still columns 10..13
    # column 2 is 10 columns left of the box's centre (12); stretched 2x it lands 20 left of it: off the image
    assert not Y[0].any()


def test_an_image_without_ink_passes_through_unchanged():
    X = np.zeros((2, 784), np.float32)
    X[1] = -0.5  # no pixel above 0: no ink either
    np.testing.assert_array_equal(WidthNorm(14).forward(X, train=False), X)


def test_the_backward_pass_matches_central_differences():
    rng = np.random.default_rng(0)
    X = np.zeros((3, 12, 12))
    X[0, 2:10, 3:6] = rng.uniform(0.3, 1.0, (8, 3))  # narrow: stretched
    X[1, 1:11, 1:11] = rng.uniform(0.3, 1.0, (10, 10))  # wide: squeezed
    X[2, 4:7, 5] = rng.uniform(0.3, 1.0, 3)  # one column
    errors = check_layer(WidthNorm(7, side=12), X.reshape(3, -1))
    assert errors["X"] < 1e-7, errors


def test_train_and_inference_agree_and_the_dtype_is_kept():
    X = image_with_ink(range(9, 12), value=0.8)
    layer = WidthNorm(16)
    Y_train, Y_test = layer.forward(X, train=True), layer.forward(X, train=False)
    np.testing.assert_array_equal(Y_train, Y_test)
    assert Y_train.dtype == np.float32 and Y_train.shape == (1, 784)
    assert layer.backward(np.ones_like(Y_train)).dtype == np.float32


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return load_mnist(data_dir=mnist_dir, progress=False).X_test[:500]


@pytest.mark.parametrize("width", [10, 14, 20])
def test_real_digits_get_the_width_asked_for_and_keep_their_height(digits, width):
    Y = WidthNorm(width).forward(digits, train=False)
    for x, y in zip(digits.reshape(-1, 28, 28), Y.reshape(-1, 28, 28)):
        assert np.array_equal(x.any(axis=1), y.any(axis=1))  # the same rows hold ink: heights do not change
        ink = (y > 0.1 * y.max()).any(axis=0).nonzero()[0]
        # area resampling greys the box's two edge columns; the ink's box is the width, give or take them
        assert width - 2 <= ink[-1] + 1 - ink[0] <= width + 1
    M = width_maps(digits.reshape(-1, 28, 28), width)
    # each output pixel is a mean of the input it covers (what lies outside the image counts as 0): weights
    # of 0 or more that add up to 1 for the columns that show the ink's box, at most 1 elsewhere
    assert M.min() >= 0 and M.sum(axis=2).max() <= 1 + 1e-5
    for x, m in zip(digits.reshape(-1, 28, 28), M):
        box = (x > 0.1 * x.max()).any(axis=0).nonzero()[0]
        centre = (box[0] + box[-1] + 1) / 2
        np.testing.assert_allclose(m[int(np.ceil(centre - width / 2)):int(centre + width / 2)].sum(axis=1), 1,
                                   atol=1e-5)


@pytest.mark.parametrize("width, side", [(0, 28), (29, 28), (2.5, 28), (True, 28), ("14", 28), (4, 0), (4, 10**6)])
def test_bad_widths_and_sides_are_one_line(width, side):
    with pytest.raises(ValueError) as error:
        WidthNorm(width, side=side)
    assert "\n" not in str(error.value) and ("width" in str(error.value) or "side" in str(error.value))


def test_rows_of_the_wrong_size_are_one_line():
    with pytest.raises(ValueError, match=r"give rows of 784 pixels"):
        WidthNorm(14).forward(np.zeros((2, 100), np.float32))


def test_the_config_puts_widthnorm_first_in_both_architectures():
    for preset in ("cnn-fast", "mlp"):
        model = build_model(make_config(preset, width_norm=16), np.random.default_rng(0))
        assert isinstance(model.layers[0], WidthNorm) and model.layers[0].width == 16
        assert not any(isinstance(layer, WidthNorm) for layer in model.layers[1:])
    assert not isinstance(build_model(make_config("cnn-fast"), np.random.default_rng(0)).layers[0], WidthNorm)


@pytest.mark.parametrize("value", [-1, 29, 1000])
def test_a_width_norm_out_of_range_is_refused_by_the_config_and_the_cli(capsys, value):
    with pytest.raises(OptionError, match="width_norm"):
        make_config("cnn", width_norm=value)
    code, out, err = run_cli(capsys, "train", "--preset", "cnn", "--width-norm", value, "--epochs", 1)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "width" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def model():
    model = build_model(make_config("cnn-fast", width_norm=12), np.random.default_rng(3))
    model.layers[-1].params["b"][:] = np.arange(10, dtype=np.float32) / 10  # logits that differ
    return model


def test_a_width_normalised_model_round_trips_through_its_file(tmp_path, model, digits):
    path = save_model(tmp_path / "wn.npz", model, {})
    loaded, header = load_model(path)
    assert header["architecture"][0] == {"type": "WidthNorm", "width": 12, "side": 28}
    np.testing.assert_array_equal(loaded.forward(digits, train=False), model.forward(digits, train=False))


@pytest.mark.parametrize("layer, message", [
    ({"type": "WidthNorm", "width": 1000, "side": 28}, "width"),
    ({"type": "WidthNorm", "width": "wide", "side": 28}, "width"),
    ({"type": "WidthNorm", "width": 12, "side": 10**9}, "side"),
    ({"type": "WidthNorm", "width": 12, "side": 28, "mode": "x"}, "invalid"),
    ({"type": "WidthNorm", "width": 12, "side": 20}, "400"),  # then it would not take 784 pixels
])
def test_a_crafted_widthnorm_in_a_header_is_one_line(tmp_path, model, layer, message):
    path = save_model(tmp_path / "wn.npz", model, {})
    arrays = dict(np.load(path, allow_pickle=False))
    header = json.loads(str(arrays.pop("__header__")))
    header["architecture"][0] = layer
    header.pop("weights_sha256", None)
    np.savez(tmp_path / "bad.npz", __header__=np.array(json.dumps(header)), **arrays)
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(tmp_path / "bad.npz")
    assert "\n" not in str(error.value)


def test_the_onnx_graph_computes_what_the_layer_computes_on_edge_images(model, digits):
    X = np.zeros((6, 784), np.float32)
    X[1] = 1  # all white: 28 columns of ink
    X[2, 14 * 28 + 3] = 0.7  # one pixel
    X[3] = image_with_ink(range(10, 15))  # five columns: half-covered edges
    X[4] = image_with_ink([0, 27])  # ink at both edges of the image
    X[5] = digits[0]  # row 0 stays all black: no ink
    X = np.concatenate([X, digits[:50]])
    proto = export.to_onnx(model)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = session.run([export.LOGITS], {export.INPUT: X})[0]
    Z = model.forward(X, train=False)
    assert np.abs(logits - Z).max() <= 1e-4 * max(1.0, np.abs(Z).max())
    assert [n.op_type for n in proto.graph.node][:2] == ["Reshape", "ReduceMax"]


def test_explanations_reach_the_pixels_through_widthnorm(model, digits):
    """The gradient of a logit with respect to the pixels, through the layer, against a central difference."""
    x = digits[:1].astype(np.float64)
    grad = logit_gradient(model, digits[:1], 3)[0]  # (784,)
    v = np.random.default_rng(0).standard_normal(784) * (x[0] > 0.2)  # along pixels with ink: the box stays
    eps = 1e-3
    z = [model.forward((x + s * eps * v).astype(np.float32), train=False)[0, 3] for s in (1, -1)]
    assert abs((z[0] - z[1]) / (2 * eps) - grad @ v) <= 1e-2 * max(1.0, abs(grad @ v))


def test_the_page_answers_with_a_width_normalised_model_and_draws_its_weights_as_28x28(tmp_path):
    from .test_serve import local_client, post_json, save, seven
    from numpynn.web.app import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    model = build_model(make_config("mlp", hidden=(16,), width_norm=14), np.random.default_rng(0))
    save(folder / "wn.npz", model)
    with local_client(create_app(folder), raise_server_exceptions=False) as client:
        answer = post_json(client, {"pixels": seven(28).tolist(), "model": "wn"}).json()
        x = np.asarray(answer["input"], np.float32).reshape(1, 784)  # the prepared digit, rounded to 3 decimals
        np.testing.assert_allclose(answer["probabilities"], model.predict_proba(x)[0], atol=1e-3)
        weights = client.get("/api/weights", params={"model": "wn", "layer": answer["layers"][0]["index"],
                                                      "unit": 3}).json()
    assert weights["shape"] == [28, 28]  # the first Dense layer reads the (width-normalised) picture
    np.testing.assert_allclose(weights["values"], model.layers[1].params["W"][:, 3], atol=5e-5)
