"""numpynn.explain: the gradient to the pixels is the true derivative of the inference network, gradient x input
splits a ReLU network's score among the pixels, and occlusion (no gradients at all) agrees with it."""
import numpy as np
import pytest

from numpynn import explain
from numpynn.checks import OptionError
from numpynn.conv import Conv2D, Flatten, MaxPool2D, Unflatten
from numpynn.layers import BatchNorm, Dense, Dropout, ReLU, Tanh
from numpynn.model import Sequential, mlp


def every_layer_model(seed=0):
    """Conv2D, MaxPool2D, ReLU, Flatten, Dense, BatchNorm (with running statistics that are not 0 and 1), Tanh
    and Dropout, in float64 so finite differences are exact enough to check against."""
    rng = np.random.default_rng(seed)
    f64 = dict(rng=rng, dtype=np.float64)
    model = Sequential([Unflatten((1, 28, 28)), Conv2D(1, 2, 5, stride=2, padding=1, **f64), MaxPool2D(2), ReLU(),
                        Flatten(), Dense(2 * 6 * 6, 8, **f64), BatchNorm(8, dtype=np.float64), Tanh(),
                        Dropout(0.5), Dense(8, 10, **f64)])
    bn = model.layers[6]
    bn.buffers["running_mean"][:] = rng.normal(0, 0.5, 8)
    bn.buffers["running_var"][:] = rng.uniform(0.5, 2, 8)
    bn.params["gamma"][:] = rng.uniform(0.5, 1.5, 8)
    return model


def numeric_gradient(f, x, h=1e-6):
    g = np.zeros_like(x)
    for j in range(x.size):
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        g[j] = (f(up) - f(down)) / (2 * h)
    return g


def test_the_logit_gradient_is_the_inference_networks_derivative():
    model = every_layer_model()
    x = np.random.default_rng(1).random(784)
    k = 3
    expected = numeric_gradient(lambda v: model.forward(v[None], train=False)[0, k], x)
    got = explain.logit_gradient(model, x[None], k)[0]
    assert np.abs(got - expected).max() < 1e-6 * max(1, np.abs(expected).max())
    # Dropout and BatchNorm were used in their inference form: a training-mode pass would differ
    assert not np.allclose(got, explain.logit_gradient(model, x[None], 4)[0])


def test_toward_is_the_derivative_of_log_p_with_the_temperature():
    model = every_layer_model(seed=2)
    model.temperature = 2.0
    x = np.random.default_rng(3).random(784)
    t = 7

    def log_p(v):
        return np.log(model.probabilities(model.forward(v[None], train=False))[0, t])

    expected = numeric_gradient(log_p, x)
    assert np.abs(explain.toward(model, x[None], t)[0] - expected).max() < 1e-6 * max(1, np.abs(expected).max())


def test_gradient_x_input_splits_a_bias_free_relu_networks_score_exactly():
    model = mlp([784, 32, 10], rng=np.random.default_rng(0), dtype=np.float64)
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"][:] = 0  # z(x) is then homogeneous: z(a x) = a z(x), and Euler gives z = x . dz/dx
    X = np.random.default_rng(1).random((4, 784))
    Z = model.forward(X, train=False)
    S = explain.saliency(model, X, Z.argmax(axis=1))
    assert np.allclose(S.sum(axis=1), Z.max(axis=1), rtol=1e-10)


def test_occlusion_agrees_with_the_saliency_on_real_digits(mnist_dir):
    """Two independent measures of which pixels matter: occlusion runs only forward passes. For a ReLU network,
    blacking out a patch lowers z_k by about the saliency summed over the patch (exactly, if no ReLU switches)."""
    from numpynn.config import make_config
    from numpynn.data import load_mnist
    from numpynn.train import Run, fit

    config = make_config("mlp", hidden=(64,), epochs=1, warmup_epochs=0.0)
    splits = load_mnist(data_dir=mnist_dir, dev_size=1000, seed=0, progress=False)
    run = Run.start(config)
    fit(run, splits)
    model, X = run.model, splits.X_test[:20]
    k = model.predict(X)
    S = explain.saliency(model, X, k)
    correlations = []
    for x, s, c in zip(X, S, k):
        occluded = explain.occlusion(model, x, int(c))
        patch_sums = _spread_patch_sums(s)  # the saliency aggregated exactly as occlusion aggregates its drops
        correlations.append(np.corrcoef(occluded, patch_sums)[0, 1])
    assert np.median(correlations) > 0.9 and min(correlations) > 0.6, correlations


def _spread_patch_sums(s, patch=4, stride=2, side=28):
    s = s.reshape(side, side)
    total, covered = np.zeros((side, side)), np.zeros((side, side))
    for r in range(0, side - patch + 1, stride):
        for c in range(0, side - patch + 1, stride):
            total[r:r + patch, c:c + patch] += s[r:r + patch, c:c + patch].sum()
            covered[r:r + patch, c:c + patch] += 1
    return (total / np.maximum(covered, 1)).reshape(-1)


def test_explaining_leaves_the_model_able_to_train_and_predict_the_same():
    model = every_layer_model()
    X = np.random.default_rng(4).random((3, 784))
    before = model.forward(X, train=False)
    state = {name: value.copy() for name, value in model.state_dict().items() if isinstance(value, np.ndarray)}
    explain.saliency(model, X, 0)
    explain.toward(model, X, 1)
    assert np.array_equal(model.forward(X, train=False), before)
    for name, value in state.items():
        assert np.array_equal(model.state_dict()[name], value), name  # no running statistic moved


@pytest.mark.parametrize("call", [
    lambda m: explain.saliency(m, np.zeros((2, 784)), 10),
    lambda m: explain.saliency(m, np.zeros((2, 784)), -1),
    lambda m: explain.saliency(m, np.zeros((2, 784)), 1.5),
    lambda m: explain.toward(m, np.zeros(784), 3),
    lambda m: explain.toward(m, np.full((1, 784), np.nan), 3),
    lambda m: explain.occlusion(m, np.zeros(784), 3, patch=0),
    lambda m: explain.occlusion(m, np.zeros(100), 3),
])
def test_bad_inputs_are_one_option_error(call):
    with pytest.raises(OptionError) as caught:
        call(mlp([784, 8, 10], rng=np.random.default_rng(0)))
    assert "\n" not in str(caught.value)


def test_fgsm_moves_each_pixel_by_at_most_eps_and_lowers_p_of_the_true_class():
    model = every_layer_model()
    X = np.random.default_rng(5).random((6, 784))
    y = model.forward(X, train=False).argmax(axis=1)
    X_adv = explain.fgsm(model, X, y, 0.05)
    assert np.abs(X_adv - X).max() <= 0.05 + 1e-12 and X_adv.min() >= 0 and X_adv.max() <= 1
    p = model.probabilities(model.forward(X, train=False))[np.arange(6), y]
    p_adv = model.probabilities(model.forward(X_adv, train=False))[np.arange(6), y]
    assert (p_adv < p).all()
    with pytest.raises(OptionError):
        explain.fgsm(model, X, y, 2)


def test_predict_explain_writes_the_picture_and_says_where(tmp_path, capsys):
    from PIL import Image, ImageDraw

    from numpynn import serialize

    from .conftest import run_cli

    serialize.save_model(tmp_path / "m.npz", mlp([784, 16, 10], rng=np.random.default_rng(0)), {})
    picture = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(picture).line([(70, 60), (210, 60), (120, 230)], fill=255, width=18)
    picture.save(tmp_path / "seven.png")
    (tmp_path / "why").mkdir()
    code, out, err = run_cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "seven.png", "--explain", tmp_path / "why")
    assert code == 0, err
    written = tmp_path / "why" / "seven.explain.png"
    assert "why (red: raised the score of" in out and str(written) in out
    with Image.open(written) as image:
        assert image.mode == "RGB" and image.size == (57 * 8, 28 * 8)
        left, right = np.asarray(image)[:, : 28 * 8], np.asarray(image)[:, 29 * 8:]
    assert (left[..., 0] == left[..., 2]).all()  # the digit in grey
    assert (right[..., 0] > right[..., 2] + 100).any() and (right[..., 2] > right[..., 0] + 100).any()  # red, blue
    code, _, err = run_cli(capsys, "predict", tmp_path / "m.npz", tmp_path / "seven.png", "--explain", tmp_path / "no")
    assert code == 2 and "--explain" in err and err.count("\n") == 1


def test_the_api_answers_why_and_toward_and_refuses_bad_queries(tmp_path):
    from numpynn import serialize
    from numpynn.web.app import create_app

    from .test_serve import local_client, png, seven

    folder = tmp_path / "models"
    folder.mkdir()
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    serialize.save_model(folder / "m.npz", model, {})
    body = png(seven())
    with local_client(create_app(folder)) as client:
        def ask(query):
            return client.post(f"/api/predict{query}", files={"image": ("s.png", body, "image/png")})

        plain = ask("").json()
        assert "why" not in plain and "toward" not in plain
        answer = ask("?why=1&toward=3").json()
        x = np.asarray(answer["input"], np.float32).reshape(1, -1)
        assert np.allclose(answer["why"], explain.saliency(model, x, answer["digit"])[0], atol=1e-4)
        assert answer["toward"]["digit"] == 3
        assert np.allclose(answer["toward"]["map"], explain.toward(model, x, 3)[0], atol=1e-4)
        assert ask("").json()["probabilities"] == plain["probabilities"]  # explaining changed nothing
        for query in ("?why=yes", "?toward=10", "?toward=-1", "?toward=a", "?toward="):
            reply = ask(query)
            assert reply.status_code == 422 and "\n" not in reply.json()["detail"], query


@pytest.mark.parametrize("shift", [0, 2])
def test_an_ensemble_is_explained_as_a_whole_through_its_members_and_views(shift):
    from numpynn.ensemble import Ensemble

    a, b = every_layer_model(seed=0), every_layer_model(seed=2)
    a.temperature, b.temperature = 1.3, 0.7
    ensemble = Ensemble([a, b], shift=shift)
    ensemble.temperature = 1.5
    x = np.random.default_rng(4).random(784)
    k, t = 3, 8
    expected = numeric_gradient(lambda v: ensemble.forward(v[None])[0, k], x)  # the logit log P_k
    got = explain.logit_gradient(ensemble, x[None], k)[0]
    assert np.abs(got - expected).max() < 1e-6 * max(1, np.abs(expected).max())
    assert not np.allclose(got, explain.logit_gradient(a, x[None], k)[0], atol=1e-3)  # not the first member's

    def log_p(v):
        return np.log(ensemble.probabilities(ensemble.forward(v[None]))[0, t])

    expected = numeric_gradient(log_p, x)
    assert np.abs(explain.toward(ensemble, x[None], t)[0] - expected).max() < 1e-6 * max(1, np.abs(expected).max())
