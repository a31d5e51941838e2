"""The report: the numbers behind it (numpynn.analysis), its figures (numpynn.report), `numpynn report`,
`train --plot`, `seed --plot`, and docs/walkthrough.md's links to the code."""
import dataclasses
import io
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from numpynn import analysis, report, serialize
from numpynn.cli import main
from numpynn.data import load_mnist
from numpynn.layers import ReLU
from numpynn.metrics import confusion_matrix
from numpynn.model import mlp
from numpynn.train import Run, fit, make_config

from .conftest import make_mnist_dir, run_cli

REPO = pathlib.Path(__file__).resolve().parents[1]
FIGURES = {"learning_curves.png", "diagnostics.png", "confusion.png", "mistakes.png", "first_layer.png", "activations.png", "pca.png",
           "calibration.png"}


# A small trained MLP and CNN on the tiny generated MNIST, shared by the tests of this file.

@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = make_mnist_dir(tmp_path_factory.mktemp("tiny"), n_train=120, n_test=60)
    return load_mnist(data_dir=folder, dev_size=20, progress=False)


def _train(splits, **options):
    run = Run.start(make_config(batch_size=16, **options))
    fit(run, splits)
    return run


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained(request, splits):
    if request.param == "mlp":
        run = _train(splits, hidden=(16,), epochs=3)
    else:
        run = _train(splits, preset="cnn", channels=(2,), hidden=(8,), epochs=2)
    header = {"history": dataclasses.asdict(run.history), "config": dataclasses.asdict(run.config)}
    return run.model, header


def png_of(fig) -> Image.Image:
    """The figure as save_figure writes it, read back as an RGB image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=report.DPI)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def assert_readable(fig):
    """Every plotting area has a y label and an x label (or shares its x axis with one that has), and a title
    (its own or the figure's); colour bars and picture tiles with their axes off are exempt."""
    has_suptitle = fig._suptitle is not None and fig._suptitle.get_text()
    for ax in fig.axes:
        if not ax.axison or ax.get_label() == "<colorbar>":
            continue
        assert ax.get_ylabel(), f"no y label on {ax.get_title()!r}"
        siblings = ax.get_shared_x_axes().get_siblings(ax)
        assert any(other.get_xlabel() for other in siblings), f"no x label on {ax.get_title()!r}"
        assert ax.get_title() or has_suptitle


def check_image(fig, size):
    assert_readable(fig)
    image = png_of(fig)
    assert image.size == size
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    assert grey.std() > 20, "the picture is (nearly) blank"  # a white page is 0; these plots are about 40-90
    return image


def figure_data(model, header, splits):
    X, y = splits.X_test, splits.y_test
    P = model.predict_proba(X)
    return X, y, P, P.argmax(axis=1), P.max(axis=1)


# Each figure: non-blank, of its documented size, readable.

def test_learning_curves(trained):
    _, header = trained
    check_image(report.learning_curves(header["history"], 0.1), (1200, 440))


def test_learning_curves_of_a_run_without_a_dev_set():
    history = {"epochs": [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "dev_loss": None,
                           "dev_accuracy": None, "lr": 0.1, "seconds": 1.0}], "best_epoch": 0, "stopped": "completed"}
    check_image(report.learning_curves(history), (1200, 440))


def test_confusion(trained, splits):
    model, header = trained
    _, y, _, predicted, _ = figure_data(model, header, splits)
    fig = report.confusion(confusion_matrix(y, predicted))
    check_image(fig, (1100, 500))
    bar_ax = fig.axes[1]
    assert bar_ax.get_xlim()[0] == 0 and "from 0" in bar_ax.get_xlabel()  # bar lengths compare honestly


def test_the_per_class_bars_are_error_rates_from_0():
    C = np.diag([98, 99, 100]) + np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]])  # 2 %, 1 %, 0 % wrong
    fig = report.confusion(C)
    bar_ax = fig.axes[1]
    widths = [patch.get_width() for patch in bar_ax.patches]
    assert widths == pytest.approx([2.0, 1.0, 0.0])
    assert bar_ax.get_xlim() == (0, pytest.approx(3.2))
    assert [t.get_text() for t in bar_ax.texts][0] == " 2.0% wrong (98.0% right)"


def test_mistakes_gallery(trained, splits):
    model, header = trained
    X, y, P, predicted, confidence = figure_data(model, header, splits)
    wrong = analysis.most_confident_mistakes(P, y, 24)
    rows = max(1, -(-len(wrong) // 8))
    fig = report.mistakes(X[wrong].reshape(-1, 28, 28), y[wrong], predicted[wrong], confidence[wrong])
    check_image(fig, (1040, round(100 * (1.5 * rows + 0.5))))


def test_mistakes_gallery_of_made_up_mistakes():
    images = np.random.default_rng(0).random((10, 28, 28))
    fig = report.mistakes(images, np.arange(10), (np.arange(10) + 1) % 10, np.linspace(0.9, 0.5, 10))
    check_image(fig, (1040, 350))
    assert "white ink on black" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "true 0, said 1\n90.0%" and len(titles) == 10


def test_the_mistakes_are_drawn_as_the_network_sees_them():
    ink = np.zeros((1, 28, 28))
    ink[0, 10:18, 13:15] = 1.0  # a white stroke (1) on black (0), as in MNIST
    image = np.asarray(png_of(report.mistakes(ink, [1], [7], [0.9], columns=1)).convert("L"))
    tile = image[image.shape[0] // 2 - 20 : image.shape[0] // 2 + 20, image.shape[1] // 2 - 20 : image.shape[1] // 2 + 20]
    assert tile.min() < 30 and tile.max() > 225  # black background and white ink both there
    assert np.median(tile) < 30  # mostly black: the background is drawn black, as the network sees it


def test_first_layer(trained):
    model, _ = trained
    filters, what = analysis.first_layer_filters(model, 64)
    columns = min(8, len(filters))
    rows = -(-len(filters) // columns)
    check_image(report.first_layer(filters, what), (round(100 * (1.2 * columns + 1)), round(100 * (1.2 * rows + 0.6))))


def test_activations(trained, splits):
    model, _ = trained
    hidden = analysis.activation_layers(model)
    outputs = analysis.layer_outputs(model, splits.X_test, hidden)
    stats = [(f"layer {i}", analysis.activation_stats(outputs[i], True)) for i in hidden]
    check_image(report.activations(stats), (1100, round(100 * (3 * len(stats) + 0.4))))


def test_one_dead_unit_in_800_is_marked_and_counts_have_integer_ticks():
    A = np.abs(np.random.default_rng(0).standard_normal((50, 800)))  # (N, H) every unit active ...
    A[:, 7] = 0  # ... but one
    fig = report.activations([("layer 1 ReLU (800)", analysis.activation_stats(A, True))])
    units_ax = fig.axes[1]
    assert any(t.get_text() == "1 dead" for t in units_ax.texts)  # a bar 1 high on an axis to 800: annotated
    ticks = units_ax.yaxis.get_major_locator().tick_values(*units_ax.get_ylim())
    assert np.allclose(ticks, np.round(ticks))  # units are counted in whole numbers
    small = np.abs(np.random.default_rng(1).standard_normal((50, 3)))  # 3 units: matplotlib would tick 0.5s
    fig = report.activations([("tiny", analysis.activation_stats(small, True))])
    ticks = fig.axes[1].yaxis.get_major_locator().tick_values(*fig.axes[1].get_ylim())
    assert np.allclose(ticks, np.round(ticks))


def test_pca_maps(trained, splits):
    model, _ = trained
    X, y = splits.X_test, splits.y_test
    hidden = analysis.activation_layers(model)
    outputs = analysis.layer_outputs(model, X, hidden + [-1])
    maps = [(name, *analysis.pca(A.reshape(len(A), -1), 2)[::2])
            for name, A in [("pixels", X)] + [(f"layer {i}", outputs[i]) for i in sorted(outputs)]]
    columns = min(3, len(maps))
    rows = -(-len(maps) // columns)
    check_image(report.pca_maps(maps, y), (round(100 * (4 * columns + 1)), round(100 * (3.8 * rows + 0.5))))


def test_reliability(trained, splits):
    model, header = trained
    _, y, _, predicted, confidence = figure_data(model, header, splits)
    bins = analysis.reliability_bins(confidence, predicted == y, 10)
    check_image(report.reliability(bins, analysis.expected_calibration_error(confidence, predicted == y)), (600, 700))


def test_seed_loss_draws_the_recorded_losses():
    losses = {0: 2.30, 10: 2.1, 20: 1.7, 30: 1.2}
    fig = report.seed_loss(losses, "seed")
    check_image(fig, (900, 450))
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [0, 10, 20, 30] and list(line.get_ydata()) == [2.30, 2.1, 1.7, 1.2]


def test_save_figure_writes_a_png_atomically(tmp_path):
    path = report.save_figure(report.seed_loss({0: 1.0, 10: 0.5}, "t"), tmp_path / "f.png")
    assert Image.open(path).size == (900, 450)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temp file left behind


# The numbers.

@pytest.mark.parametrize("N, D", [(200, 12), (15, 40)])  # the covariance route, and the Gram-matrix route (D > N)
def test_pca_agrees_with_an_svd_reference(N, D):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 3)) * [5, 2, 1] @ rng.standard_normal((3, D)) + 0.1 * rng.standard_normal((N, D)) + 7
    scores, components, explained = analysis.pca(X, 2)
    Xc = X - X.mean(axis=0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)  # the reference: Xc = U S Vt, components are Vt's rows
    signs = np.sign((components * Vt[:2]).sum(axis=1))  # an eigenvector's sign is arbitrary
    assert np.allclose(components, signs[:, None] * Vt[:2], atol=1e-8)
    assert np.allclose(scores, signs * (U[:, :2] * S[:2]), atol=1e-8)
    assert np.allclose(explained, S[:2] ** 2 / (S**2).sum())
    assert np.allclose(components @ components.T, np.eye(2), atol=1e-10)
    assert (components[np.arange(2), np.abs(components).argmax(axis=1)] > 0).all()  # the sign convention


def test_pca_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="2-D array"):
        analysis.pca(np.ones(5))
    with pytest.raises(ValueError, match="k = 3"):
        analysis.pca(np.ones((2, 5)), 3)


def test_expected_calibration_error_on_a_hand_made_example():
    # Five bins: (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1].
    #   (.8, 1]: 0.95, 0.90, 0.85 -> mean confidence 0.90, 2 of 3 right (0.667): gap 0.2333, weight 3/6
    #   (.2, .4]: 0.30, 0.35      -> mean confidence 0.325, 1 of 2 right (0.5): gap 0.175, weight 2/6
    #   (.6, .8]: 0.80 (its upper edge belongs to it) -> 0.80, right (1.0): gap 0.20, weight 1/6
    # ECE = (3 * 0.2333 + 2 * 0.175 + 1 * 0.20) / 6 = (0.7 + 0.35 + 0.2) / 6 = 0.208333...
    confidence = np.array([0.95, 0.90, 0.85, 0.30, 0.35, 0.80])
    correct = np.array([True, True, False, False, True, True])
    assert analysis.expected_calibration_error(confidence, correct, 5) == pytest.approx(1.25 / 6)
    bins = analysis.reliability_bins(confidence, correct, 5)
    assert bins["count"].tolist() == [0, 2, 0, 1, 3]
    assert bins["confidence"][[1, 3, 4]] == pytest.approx([0.325, 0.80, 0.90])
    assert bins["accuracy"][[1, 3, 4]] == pytest.approx([0.5, 1.0, 2 / 3])
    assert np.isnan(bins["accuracy"][0]) and np.isnan(bins["confidence"][2])


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    # 10 predictions at confidence 0.7, 7 of them right; 4 at 0.25, 1 right.
    confidence = np.array([0.7] * 10 + [0.25] * 4)
    correct = np.array([True] * 7 + [False] * 3 + [True] + [False] * 3)
    assert analysis.expected_calibration_error(confidence, correct, 10) == pytest.approx(0.0, abs=1e-12)


def test_reliability_bins_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        analysis.reliability_bins(np.array([1.5]), np.array([True]))
    with pytest.raises(ValueError, match="one confidence"):
        analysis.reliability_bins(np.array([0.5, 0.6]), np.array([True]))


def test_activation_stats_find_dead_units_and_channels():
    A = np.array([[0.0, 1.0, 0.0], [0.0, 3.0, 2.0]])  # unit 0 is never above 0: dead
    s = analysis.activation_stats(A, relu_like=True, bins=4)
    assert s["dead"].tolist() == [True, False, False]
    assert s["active_rate"].tolist() == [0.0, 1.0, 0.5]
    assert s["mean"] == pytest.approx(1.0) and s["fraction_zero"] == pytest.approx(0.5)
    assert s["histogram"][0].sum() == 6
    maps = np.zeros((2, 3, 4, 4))  # (N, C, H, W): channel 1 fires at one pixel of one image; 0 and 2 never
    maps[1, 1, 2, 3] = 5.0
    s = analysis.activation_stats(maps, relu_like=True)
    assert s["dead"].tolist() == [True, False, True] and s["active_rate"][1] == pytest.approx(1 / 32)
    assert analysis.activation_stats(A, relu_like=False)["dead"] is None  # "dead" means nothing for tanh


def test_most_confident_mistakes_come_most_confident_first():
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([1, 1, 1, 0])  # rows 0, 2 and 3 are wrong, with confidence 0.9, 0.6, 0.7
    assert analysis.most_confident_mistakes(P, y, 5).tolist() == [0, 3, 2]
    assert analysis.most_confident_mistakes(P, y, 1).tolist() == [0]


def test_first_layer_filters_of_a_dense_and_a_conv_model(trained):
    model = mlp([784, 5, 10])
    filters, what = analysis.first_layer_filters(model, 3)
    assert filters.shape == (3, 28, 28) and np.array_equal(filters[1], model.layers[0].params["W"][:, 1].reshape(28, 28))
    assert "3 of 5" in what
    with pytest.raises(ValueError, match="not a square image"):
        analysis.first_layer_filters(mlp([10, 4, 2]), 3)
    trained_model, _ = trained
    filters, what = analysis.first_layer_filters(trained_model, 64)
    if "Conv2D" in what:
        assert filters.shape == (2, 5, 5)  # channels=(2,), 5x5 kernels, one input channel


def test_layer_outputs_match_a_full_forward(trained, splits):
    model, _ = trained
    X = splits.X_test[:37]
    hidden = analysis.activation_layers(model)
    assert hidden and all(isinstance(model.layers[i], ReLU) for i in hidden)
    outputs = analysis.layer_outputs(model, X, hidden + [-1], batch_size=10)  # batches of 10, 10, 10, 7
    everything = model.activations(X)
    for i, A in outputs.items():  # equal up to float32 rounding: BLAS may sum a 10-row and a 37-row product
        np.testing.assert_allclose(A, everything[i], rtol=1e-5, atol=1e-6)  # in different orders (kernel-dependent)
    assert len(model.layers) - 1 in outputs


# The report folder.

def test_write_report_draws_every_figure_and_the_page_shows_each(trained, splits, tmp_path):
    model, header = trained
    result = report.write_report(model, header, splits.X_test, splits.y_test, tmp_path, report.ReportConfig(samples=50))
    assert not result.missing
    written = {p.name for p in tmp_path.glob("*.png")}
    assert written == FIGURES == {name for name, _, _ in result.figures}
    page = (tmp_path / "index.html").read_text()
    assert set(re.findall(r'<img src="([^"]+)"', page)) == FIGURES
    assert page.count("<figcaption>") == len(FIGURES)  # a caption for each
    assert result.test_accuracy == pytest.approx((model.predict(splits.X_test) == splits.y_test).mean())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIGURES | {"index.html"})  # no temp files


def test_a_model_without_history_gets_every_other_figure_and_says_what_is_missing(splits, tmp_path):
    model = mlp([784, 8, 10])  # untrained, and saved by no trainer: no History
    result = report.write_report(model, {"architecture": model.spec()}, splits.X_test, splits.y_test, tmp_path,
                                 report.ReportConfig(samples=40), title="<b>x</b>.npz")
    assert [heading for heading, _ in result.missing] == ["Learning curves", "Training diagnostics"]
    assert "no training history" in result.missing[0][1] and "no diagnostics" in result.missing[1][1]
    assert {p.name for p in tmp_path.glob("*.png")} == FIGURES - {"learning_curves.png", "diagnostics.png"}
    page = (tmp_path / "index.html").read_text()
    assert "no training history" in page and "learning_curves.png" not in page
    assert "&lt;b&gt;x&lt;/b&gt;.npz" in page and "<b>x</b>" not in page  # what comes from outside is escaped


@pytest.mark.parametrize("history, why", [
    ({"epochs": "many"}, "malformed"),
    ({"epochs": [{"epoch": 1, "train_loss": "low"}]}, "malformed"),
    ({"epochs": []}, "empty"),
])
def test_a_malformed_history_is_reported_not_trusted(history, why):
    found, message = report.history_of({"history": history})
    assert found is None and why in message


def test_a_checkpoint_s_history_is_found():
    history = {"epochs": [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1}]}
    assert report.history_of({"trainer": {"history": history}})[0] is history


def test_importing_numpynn_does_not_import_matplotlib():
    code = "import sys, numpynn, numpynn.report, numpynn.analysis, numpynn.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# The command line.

run = run_cli  # (exit code, stdout, stderr) of `numpynn ARGV...`, from conftest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_mnist_dir(tmp_path_factory.mktemp("cli-data"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("model")
    code = main(["train", "--data", str(data_dir), "--hidden", "16", "--epochs", "2", "--batch-size", "16",
                 "--dev-size", "20", "--quiet", "--out", str(folder / "m.npz")])
    assert code == 0
    return folder / "m.npz"


def test_numpynn_report_writes_the_folder_beside_the_model_by_default(capsys, model_file, data_dir):
    code, out, err = run(capsys, "report", model_file, "--data", data_dir, "--samples", 30)
    assert code == 0, err
    folder = model_file.parent / "m-report"
    # numpynn train calibrated the model: the report also draws the diagram at temperature 1
    assert {p.name for p in folder.iterdir()} == FIGURES | {"calibration-before.png", "index.html"}
    assert f"Report: {folder / 'index.html'}" in out and "not drawn" not in out


def test_numpynn_report_says_what_a_model_without_history_lacks(capsys, data_dir, tmp_path):
    model = mlp([784, 8, 10])
    serialize.save_model(tmp_path / "bare.npz", model, {})  # as MLPClassifier's users would save one
    code, out, err = run(capsys, "report", tmp_path / "bare.npz", "--data", data_dir, "--out", tmp_path / "r")
    assert code == 0, err
    assert "not drawn: Learning curves: the model file has no training history" in out
    assert "not drawn: Training diagnostics: no training history" in out
    assert len(list((tmp_path / "r").glob("*.png"))) == len(FIGURES) - 2


@pytest.mark.parametrize("argv, code, needle", [
    (["{missing}"], 1, "no such file"),
    (["{corrupt}"], 1, "corrupt"),
    (["{model}", "--out", "{file}"], 2, "is not a folder"),
    (["{model}", "--out", "{nowhere}"], 2, "does not exist"),
    (["{model}", "--samples", "1"], 2, "--samples"),
    (["{model}", "--bins", "x"], 2, "--bins"),
    (["{wide}"], 1, "does not take"),
    (["{binary}"], 1, "tells 2 classes apart"),
])
def test_numpynn_report_refuses_bad_input_in_one_line(capsys, model_file, data_dir, tmp_path, argv, code, needle):
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    (tmp_path / "file").write_text("x")
    serialize.save_model(tmp_path / "wide.npz", mlp([100, 4, 10]), {})
    serialize.save_model(tmp_path / "binary.npz", mlp([784, 4, 2]), {})
    names = {"binary": tmp_path / "binary.npz", "missing": tmp_path / "no.npz", "corrupt": tmp_path / "corrupt.npz", "model": model_file,
             "file": tmp_path / "file", "nowhere": tmp_path / "no" / "such", "wide": tmp_path / "wide.npz"}
    before = sorted(tmp_path.iterdir())
    got, out, err = run(capsys, "report", *[a.format(**names) for a in argv], "--data", data_dir,
                        *([] if "--out" in argv else ["--out", tmp_path / "r"]))
    assert got == code
    assert err.count("\n") == 1 and err.startswith("numpynn: error:") and needle in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written, not even the folder


def test_train_plot_redraws_the_curves_and_diagnostics_after_every_epoch(capsys, data_dir, tmp_path, monkeypatch):
    drawn, diagnosed = [], []
    save = report.save_figure

    def counting(fig, path):
        if pathlib.Path(path).name == "learning_curves.png":
            drawn.append((len(fig.axes[0].get_lines()[0].get_xdata()), fig._suptitle.get_text()))  # epochs drawn
        else:
            diagnosed.append(fig._suptitle.get_text())
        return save(fig, path)

    monkeypatch.setattr(report, "save_figure", counting)
    code, out, err = run(capsys, "train", "--data", data_dir, "--hidden", "8", "--epochs", "3", "--batch-size", "16",
                         "--dev-size", "20", "--quiet", "--out", tmp_path / "m.npz", "--plot", tmp_path / "plots")
    assert code == 0, err
    assert [n for n, _ in drawn] == [1, 2, 3, 3]  # after every epoch, and once more when the run has ended
    assert drawn[1][1] == "Learning curves: 2 epochs so far" and drawn[-1][1] == "Learning curves: 3 epochs (completed)"
    assert Image.open(tmp_path / "plots" / "learning_curves.png").size == (1200, 440)
    assert diagnosed == ["Training diagnostics per layer: 1 epoch", "Training diagnostics per layer: 2 epochs",
                         "Training diagnostics per layer: 3 epochs", "Training diagnostics per layer: 3 epochs"]
    assert Image.open(tmp_path / "plots" / "diagnostics.png").size == (1500, 460)
    assert f"Plot: {tmp_path / 'plots' / 'learning_curves.png'}, {tmp_path / 'plots' / 'diagnostics.png'}" in out


def test_train_plot_into_a_missing_parent_fails_before_training(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", "--data", data_dir, "--epochs", "1", "--dev-size", "20", "--quiet",
                       "--out", tmp_path / "m.npz", "--plot", tmp_path / "no" / "plots")
    assert code == 2 and "--plot" in err and "does not exist" in err
    assert not (tmp_path / "m.npz").exists()


def test_seed_plot_draws_the_printed_losses(capsys, data_dir, tmp_path, monkeypatch):
    drawn = []
    seed_loss = report.seed_loss
    monkeypatch.setattr(report, "seed_loss", lambda losses, title: drawn.append(dict(losses)) or seed_loss(losses, title))
    code, out, err = run(capsys, "seed", "--data", data_dir, "--iterations", "30", "--alpha", "0.5", "--dev-size", "20",
                         "--plot", tmp_path / "p")
    assert code == 0, err
    printed = {int(i): float(loss) for i, loss in re.findall(r"Iteration (\d+): Loss = ([\d.]+)", out)}
    assert list(printed) == [0, 10, 20]
    assert drawn[0].keys() == printed.keys()
    assert all(round(drawn[0][i], 4) == printed[i] for i in printed)  # the very numbers the seed printed
    assert Image.open(tmp_path / "p" / "seed_loss.png").size == (900, 450)


@pytest.mark.parametrize("argv, needle", [
    (["--print-every", "0"], "--print-every"),
    (["--plot-dir-is-a-file"], "is not a folder"),
])
def test_seed_plot_refuses_bad_input_before_training(capsys, data_dir, tmp_path, argv, needle):
    (tmp_path / "file").write_text("x")
    plot = tmp_path / "file" if argv == ["--plot-dir-is-a-file"] else tmp_path / "p"
    extra = [] if argv == ["--plot-dir-is-a-file"] else argv
    code, out, err = run(capsys, "seed", "--data", data_dir, "--iterations", "5", *extra, "--plot", plot)
    assert code == 2 and needle in err and err.count("\n") == 1
    assert "Iteration" not in out and not (tmp_path / "p").exists()


# docs/walkthrough.md: every link to the code names something that exists there.

WALKTHROUGH = REPO / "docs" / "walkthrough.md"
CODE_LINK = re.compile(r"\[`([A-Za-z_][\w.]*)`\]\(\.\./(numpynn/\w+\.py)\)")


def test_the_walkthrough_links_each_name_to_the_file_that_defines_it():
    text = WALKTHROUGH.read_text(encoding="utf-8")
    links = CODE_LINK.findall(text)
    assert len(links) >= 20, "the walkthrough should link its equations to the code"
    import importlib

    for name, path in links:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        obj = module
        for part in name.split("."):
            assert hasattr(obj, part), f"docs/walkthrough.md links `{name}` to {path}, which has no {part}"
            obj = getattr(obj, part)


def test_the_walkthrough_s_pictures_and_links_exist():
    text = WALKTHROUGH.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not (WALKTHROUGH.parent / t).exists()]
    assert not missing, f"docs/walkthrough.md links to missing files: {missing}"
    images = re.findall(r"!\[[^\]]*\]\((img/report-[\w-]+\.png)\)", text)
    assert len(images) >= 7
    for image in images:
        size = (WALKTHROUGH.parent / image).stat().st_size
        assert size < 150_000, f"{image} is {size} bytes; keep committed pictures small"
