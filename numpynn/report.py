"""The training report: matplotlib figures of what a network learned, and a folder of PNGs with an index.html.

Each figure function takes plain data (arrays, a History as a dict) and returns a matplotlib Figure, so
`numpynn report`, `numpynn train --plot`, a web page and the tests all draw the same pictures:

    fig = learning_curves(header["history"])       # a model file written by numpynn train carries its History
    save_figure(fig, "curves.png")                  # atomically: a temp file beside it, then a rename

    write_report(model, header, X_test, y_test, "report/")   # every figure, and index.html showing them all

The numbers behind the pictures (PCA, calibration, activation statistics) come from numpynn.analysis.
matplotlib is imported inside the functions that draw, so `import numpynn` (and this module) stays light;
figures are made with matplotlib.figure.Figure, rendered by Agg, never through pyplot: no display is needed,
and no global state is shared between threads (a web server may draw several at once).

Left out on purpose: interactive plots, and anything that needs the training data itself (the report reads a
model file and the test set).
"""
from __future__ import annotations

import html
import io
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from . import analysis, losses
from .atomic import write_atomically
from .checks import require
from .metrics import confusion_matrix, per_class

DPI = 100  # every figure's size is given in inches; at this DPI one inch is 100 pixels


@dataclass(frozen=True)
class ReportConfig:
    """Every default of the report. `numpynn report` builds one flag per field from this class."""

    samples: int = field(default=2000, metadata={
        "help": "test images (a seeded random sample) for the activation statistics and PCA maps"})
    mistakes: int = field(default=24, metadata={"help": "how many of the most confident mistakes to show"})
    filters: int = field(default=64, metadata={"help": "first-layer weight pictures to show, at most"})
    bins: int = field(default=10, metadata={"help": "confidence bins of the reliability diagram"})
    seed: int = field(default=0, metadata={"help": "seeds the choice of the sample of test images"})

    def __post_init__(self):
        for name, low in (("samples", 2), ("mistakes", 1), ("filters", 1), ("bins", 2), ("seed", 0)):
            require(getattr(self, name) >= low, name, getattr(self, name), f"use {low} or more")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(fig, path) -> pathlib.Path:
    """Write fig as a PNG at `path` atomically (a temp file beside it, then a rename), so a page that reloads
    the picture mid-run never sees half of one. The picture is reduced to a 256-colour palette first: a plot
    has few colours, and the file comes out three to four times smaller with no visible change."""
    from PIL import Image

    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=DPI)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    png = io.BytesIO()
    palette.save(png, format="PNG", optimize=True)
    return write_atomically(path, png.getvalue())


# The figures. Each docstring gives the size in pixels at DPI.

def learning_curves(history: dict, label_smoothing: float = 0.0):
    """Train and dev loss, accuracy and the learning rate per epoch, from a History as a dict
    (dataclasses.asdict(history), or a model file's header["history"]).  1200 x 440 pixels."""
    from matplotlib.ticker import MaxNLocator

    rows = history["epochs"]
    epochs = [row["epoch"] for row in rows]
    fig = _figure(12, 4.4)
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    loss_ax.plot(epochs, [row["train_loss"] for row in rows], "o-", ms=3, label="train: mean over the epoch's batches")
    acc_ax.plot(epochs, [100 * row["train_accuracy"] for row in rows], "o-", ms=3)
    if any(row.get("dev_loss") is not None for row in rows):
        loss_ax.plot(epochs, [row["dev_loss"] for row in rows], "s-", ms=3, label="dev: measured after the epoch")
        acc_ax.plot(epochs, [100 * row["dev_accuracy"] for row in rows], "s-", ms=3)
    best, finished = history.get("best_epoch") or 0, bool(history.get("stopped"))
    if best:  # while training, the best dev epoch so far; at the end, the epoch whose weights the model holds
        what = "the epoch whose weights the model holds" if finished else "the best dev accuracy so far"
        loss_ax.axvline(best, color="grey", ls=":", lw=1, label=f"{what} ({best})")
        acc_ax.axvline(best, color="grey", ls=":", lw=1)
    smoothing = f" (train with label smoothing {label_smoothing:g})" if label_smoothing else ""
    loss_ax.set(title=f"Loss{smoothing}", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    lr_ax.plot(epochs, [row["lr"] for row in rows], "o-", ms=3, color="tab:green")
    lr_ax.set(title="Learning rate at the end of each epoch", xlabel="epoch", ylabel="learning rate")
    lr_ax.set_ylim(bottom=0)
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, max(epochs[-1] if epochs else 1, 1) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig.legend(*loss_ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9)
    stopped = f" ({history['stopped']})" if finished else " so far"
    fig.suptitle(f"Learning curves: {len(rows)} epoch{'s' * (len(rows) != 1)}{stopped}")
    return fig


def diagnostics_of(history: dict) -> tuple[dict | None, str]:
    """(series, "") from a History's rows' "diagnostics" (diagnostics.Tracker.epoch_row), or (None, why not).
    series: {"epochs": [...], "grad_norm": {label: [per epoch]}, "update_ratio": {...}, "units": {...}}, with
    NaN for an epoch that has no number (a row from before diagnostics, say, in a run resumed from an old
    checkpoint). The rows come from a file, so their shape is checked, not trusted."""
    rows = history["epochs"]
    number = lambda x: x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
    series = {"epochs": [row["epoch"] for row in rows], "grad_norm": {}, "update_ratio": {}, "units": {}}
    found = False
    for e, row in enumerate(rows):
        d = row.get("diagnostics")
        if d is None:
            continue
        try:
            for entry in d["params"]:
                if not (isinstance(entry["layer"], int) and number(entry["grad_norm"]) and number(entry["update_ratio"])):
                    raise TypeError
                label = f"layer {entry['layer']} {str(entry['type'])[:20]} {str(entry['param'])[:10]}"
                for key in ("grad_norm", "update_ratio"):
                    series[key].setdefault(label, [math.nan] * len(rows))[e] = _nan(entry[key])
            for entry in d["units"]:
                if not (isinstance(entry["layer"], int) and entry["measure"] in ("dead", "saturated")
                        and number(entry["share"])):
                    raise TypeError
                label = f"layer {entry['layer']} {str(entry['type'])[:20]} ({entry['measure']})"
                series["units"].setdefault(label, [math.nan] * len(rows))[e] = 100 * _nan(entry["share"])
        except (KeyError, TypeError, AttributeError):
            return None, f"the diagnostics of epoch {row['epoch']} are malformed (expected numpynn's diagnostics rows)"
        found = True
        series["every"], series["images"] = d.get("every"), d.get("images")
    if not found:
        return None, ("the training history has no diagnostics: the file was written by a numpynn that did not "
                      "record them, or trained with diagnose=False; train again to get them")
    return series, ""


def diagnostics_caption(series: dict) -> str:
    """How to read training_diagnostics(series), with the sampling the run used."""
    every, images = series.get("every"), series.get("images")
    sampled = f"one optimizer step in {every}" if isinstance(every, int) and every > 1 else "every optimizer step"
    on = f"{images} held-out images" if isinstance(images, int) and images > 0 else "a sample of images"
    return (
        f"How healthy each layer was, epoch by epoch, measured while training on {sampled} (each point is the "
        "mean over the epoch's sampled steps). Left: the norm of the gradient of the layer's weights; a layer "
        "whose norm is orders of magnitude below the others' learns little, one that keeps growing is diverging. "
        "Middle: how far one step moved the weights relative to their size, log10(||W after - W before|| / "
        "||W||), whatever the optimizer; near the dashed line at -3 (a thousandth per step) is the usual healthy "
        "range, well above it (-1) the weights are thrashed, well below it (-5) they barely move, and it falls "
        f"as the learning rate's schedule falls. Right: the share of units that are dead (ReLU: above 0 on none "
        f"of {on}) or saturated (tanh, sigmoid: in a flat tail on all of them); such units pass no gradient, so "
        "a share that climbs is capacity lost for good.")


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def training_diagnostics(series: dict):
    """Per layer and epoch: the gradient norm ||dW|| (log scale), the update ratio log10(||dW_step|| / ||W||)
    with the rule of thumb -3, and the share of dead or saturated units per activation layer.
    series: diagnostics_of(history)[0].  1500 x 460 pixels."""
    from matplotlib.ticker import MaxNLocator

    epochs = series["epochs"]
    fig = _figure(15, 4.6)
    grad_ax, ratio_ax, units_ax = fig.subplots(1, 3)
    for label, values in series["grad_norm"].items():
        grad_ax.plot(epochs, values, "o-", ms=3, label=label)
    for label, values in series["update_ratio"].items():
        ratio_ax.plot(epochs, values, "o-", ms=3, label=label)
    ratio_ax.axhline(-3, color="grey", ls="--", lw=1, label="-3: the rule of thumb")
    for label, values in series["units"].items():
        units_ax.plot(epochs, values, "o-", ms=3, label=label)
    grad_ax.set_yscale("log")
    grad_ax.set(title="Gradient norm ||dW|| (mean over sampled steps)", xlabel="epoch", ylabel="||dW|| (log scale)")
    ratio_ax.set(title="Update / weight: log10(||step|| / ||W||)", xlabel="epoch",
                 ylabel="log10 ratio (-3: a thousandth per step)")
    shown = [v for values in series["units"].values() for v in values if not math.isnan(v)]
    units_ax.set_ylim(0, max(5.0, 1.15 * max(shown, default=0)))  # 0 is the floor; a few % must stay visible
    units_ax.set(title="Dead (ReLU) or saturated (tanh, sigmoid) units", xlabel="epoch", ylabel="units (%)")
    if not series["units"]:
        units_ax.text(0.5, 0.5, "no activation layers", ha="center", transform=units_ax.transAxes)
    for ax in (grad_ax, ratio_ax, units_ax):
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, max(epochs[-1] if epochs else 1, 1) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"Training diagnostics per layer: {len(epochs)} epoch{'s' * (len(epochs) != 1)}")
    return fig


def confusion(C):
    """The confusion matrix C (K, K) (rows: true class, columns: predicted) with every count written in its
    cell, on a log colour scale so that a handful of mistakes still shows; beside it, each class's error rate,
    1 - its recall C[k, k] / sum of row k, on an axis from 0.  1100 x 500 pixels."""
    from matplotlib.colors import LogNorm

    C = np.asarray(C)
    K = len(C)
    fig = _figure(11, 5)
    matrix_ax, bar_ax = fig.subplots(1, 2, width_ratios=[1.4, 1])
    image = matrix_ax.imshow(np.maximum(C, 0.5), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(C.max(), 1)))
    dark = C > math.sqrt(max(C.max(), 1))  # on the darker half of the log scale, write in white
    for i in range(K):
        for j in range(K):
            if C[i, j]:
                matrix_ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=7 if C[i, j] >= 1000 else 8,
                               color="white" if dark[i, j] else "black")
    matrix_ax.set(xticks=range(K), yticks=range(K), xlabel="predicted class", ylabel="true class",
                  title=f"Confusion matrix: {int(np.trace(C))} of {int(C.sum())} right")
    fig.colorbar(image, ax=matrix_ax, label="images (log scale)", shrink=0.8)
    recall = per_class(C)["recall"]
    # The error rate from 0, not the accuracy from 90 %: a bar's length is then proportional to the class's
    # mistakes, and an axis cut off below would make a 1-point difference look like a tenfold one.
    error = 100 * (1 - recall)  # (K,)
    bar_ax.barh(range(K), error, color="tab:red", alpha=0.8)
    for k, (r, e) in enumerate(zip(recall, error)):
        bar_ax.text(e, k, f" {e:.1f}% wrong ({100 * r:.1f}% right)", va="center", fontsize=8)
    bar_ax.set(xlim=(0, max(1.0, 1.6 * error.max())), yticks=range(K), ylim=(K - 0.5, -0.5),
               xlabel="error on the class (%), from 0", ylabel="true class",
               title="Per-class error (100 % - the class's accuracy)")
    bar_ax.grid(axis="x", alpha=0.3)
    return fig


def mistakes(images, y_true, y_pred, confidence, columns: int = 8):
    """A gallery of misclassified images, most confident first: each titled with the true class, the
    predicted one and the probability the model gave it. images (n, h, w) in [0, 1], drawn as the network sees
    them: white ink (1) on black (0), MNIST's own convention.
    (1.3 x columns) x (1.5 x rows + 0.5) inches: 1040 x 500 pixels for 24 images in 8 columns."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    fig = _figure(columns * 1.3, rows * 1.5 + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, true, predicted, p in zip(axes, images, y_true, y_pred, confidence):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)  # as the network sees it: white ink (1) on black (0)
        ax.set_title(f"true {true}, said {predicted}\n{100 * p:.1f}%", fontsize=8)
    if n == 0:
        axes[0].text(0, 0.5, "no mistakes on these images", fontsize=12)
    fig.suptitle(f"The {n} most confident mistakes (true class, predicted class, probability given to it)\n"
                 "drawn as the network sees them: white ink on black")
    return fig


def first_layer(filters, what: str, columns: int = 8):
    """The first layer's weights as pictures, filters (n, h, w), on one shared colour scale centred on 0:
    red pixels push the unit's output up, blue ones down. what: a title saying what they are.
    (1.2 x columns + 1) x (1.2 x rows + 0.6) inches, columns = min(columns, n): 1060 x 1020 pixels for 64."""
    filters = np.asarray(filters)
    n = len(filters)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig = _figure(columns * 1.2 + 1, rows * 1.2 + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    scale = float(np.percentile(np.abs(filters), 99.5)) or 1.0  # a few extreme weights would wash the rest out
    for ax in axes:
        ax.set_axis_off()
    for k, (ax, image) in enumerate(zip(axes, filters)):
        shown = ax.imshow(image, cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(str(k), fontsize=7, pad=2)
    fig.colorbar(shown, ax=list(axes), label="weight", shrink=0.8)
    fig.suptitle(f"First layer: {what}")
    return fig


def activations(stats: list[tuple[str, dict]]):
    """Per hidden layer, a row of two histograms: all output values (log count, with the mean), and each
    unit's active rate (the fraction of inputs on which it is above 0), dead units in red at 0.
    stats: [(layer name, analysis.activation_stats(...)), ...].  11 x (3 x rows + 0.4) inches: 1100 x 340
    pixels for one layer."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, len(stats) * 3 + 0.4)
    axes = np.array(fig.subplots(len(stats), 2)).reshape(len(stats), 2)
    for (name, s), (values_ax, units_ax) in zip(stats, axes):
        counts, edges = s["histogram"]
        values_ax.stairs(counts, edges, fill=True, alpha=0.7)
        values_ax.axvline(s["mean"], color="black", ls="--", lw=1, label=f"mean {s['mean']:.3g}")
        values_ax.set_yscale("log")
        values_ax.set(xlabel="output value", ylabel="count (log scale)",
                      title=f"{name}: values ({100 * s['fraction_zero']:.1f}% exactly 0)")
        values_ax.legend(fontsize=8)
        rate, dead = s["active_rate"], s["dead"]
        units_ax.hist(rate if dead is None else rate[~dead], bins=np.linspace(0, 1, 41), color="tab:blue",
                      label="units")
        if dead is None:
            dead_text = "dead units: not defined for this activation"
        else:
            dead_text = f"dead (never above 0): {int(dead.sum())} of {dead.size} ({100 * dead.mean():.1f}%)"
            n_dead = int(dead.sum())
            units_ax.bar(0, n_dead, width=0.02, color="tab:red", label="dead units")
            if n_dead:  # 1 of 800 is a bar a pixel high: mark it, and write the count beside it
                units_ax.plot(0, n_dead, "v", color="tab:red", ms=7, clip_on=False)
                units_ax.annotate(f"{n_dead} dead", (0, n_dead), xytext=(0, 22), textcoords="offset points",
                                  color="tab:red", fontsize=8, ha="center",
                                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        units_ax.set(xlabel="fraction of inputs on which the unit is above 0", ylabel="units", xlim=(-0.03, 1.03),
                     title=dead_text)
        units_ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # units are counted: no 2.5 units
        units_ax.legend(fontsize=8)
        for ax in (values_ax, units_ax):
            ax.grid(alpha=0.3)
    fig.suptitle("Activations of each hidden layer on the test sample")
    return fig


def pca_maps(maps: list[tuple[str, np.ndarray, np.ndarray]], y, columns: int = 3):
    """One scatter plot per representation: each image at its first two principal components, coloured by
    its true class. maps: [(name, scores (N, 2), explained (2,)), ...].
    (4 x columns + 1) x (3.8 x rows + 0.5) inches, columns = min(columns, len(maps)): 1300 x 430 pixels for 3."""
    from matplotlib.lines import Line2D

    y = np.asarray(y)
    columns = min(columns, len(maps))
    rows = math.ceil(len(maps) / columns)
    fig = _figure(columns * 4 + 1, rows * 3.8 + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes[len(maps):]:
        ax.set_axis_off()
    for ax, (name, scores, explained) in zip(axes, maps):
        ax.scatter(scores[:, 0], scores[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.6, lw=0)
        ax.set(title=name, xlabel=f"PC 1 ({100 * explained[0]:.1f}% of variance)",
               ylabel=f"PC 2 ({100 * explained[1]:.1f}% of variance)")
        ax.tick_params(labelsize=7)
    from matplotlib import colormaps

    colours = colormaps["tab10"]
    handles = [Line2D([], [], ls="", marker="o", color=colours(k), label=str(k)) for k in range(10)]
    fig.legend(handles=handles, title="true class", loc="outside right center")
    fig.suptitle(f"PCA maps: {len(y)} test images, layer by layer")
    return fig


def reliability(bins: dict, ece: float, title: str = "Reliability diagram"):
    """A reliability diagram: per confidence bin, the accuracy reached (bars) against the mean confidence
    stated (dots) and the diagonal of perfect calibration; below, how many predictions fall in each bin.
    bins: analysis.reliability_bins(...).  600 x 700 pixels."""
    edges, count = bins["edges"], bins["count"]
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    used = count > 0
    fig = _figure(6, 7)
    diagram_ax, count_ax = fig.subplots(2, 1, height_ratios=[2.2, 1], sharex=True)
    diagram_ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    diagram_ax.bar(centres[used], bins["accuracy"][used], width=width * 0.9, color="tab:blue", alpha=0.75,
                   label="accuracy in the bin")
    diagram_ax.plot(centres[used], bins["confidence"][used], "o", color="black", ms=4,
                    label="mean confidence in the bin")
    diagram_ax.set(ylim=(0, 1.02), ylabel="accuracy", title=f"{title}: ECE = {100 * ece:.2f}%")
    diagram_ax.legend(fontsize=8, loc="upper left")
    diagram_ax.grid(alpha=0.3)
    count_ax.bar(centres, np.maximum(count, 0), width=width * 0.9, color="tab:grey")
    count_ax.set_yscale("symlog", linthresh=1)
    count_ax.set(xlim=(0, 1), xlabel="confidence (probability of the predicted class)",
                 ylabel="predictions (log scale)", title="Predictions in each bin")
    count_ax.grid(alpha=0.3)
    return fig


def seed_loss(losses: dict[int, float], title: str):
    """The seed's loss at every iteration it was recorded (every print_every, as it prints it).
    900 x 450 pixels."""
    iterations = sorted(losses)
    fig = _figure(9, 4.5)
    ax = fig.subplots()
    every = f", every {iterations[1] - iterations[0]} iterations" if len(iterations) > 1 else ""
    ax.plot(iterations, [losses[i] for i in iterations], "-", lw=1.5, label=f"loss on the training set{every}")
    ax.set(xlabel="iteration (one full-batch gradient-descent step each)", ylabel="cross-entropy loss", title=title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# The report: every figure from a model and a test set, written to a folder with an index.html.

@dataclass
class Report:
    """What write_report made: figures [(file name, title, caption)], and what it could not draw
    [(title, why)]."""

    figures: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    test_accuracy: float = 0.0
    ece: float = 0.0


def history_of(header: dict) -> tuple[dict | None, str]:
    """(the History dict in a model file's or a checkpoint's header, "") or (None, why there is none).
    The header comes from a file, so its shape is checked, not trusted."""
    history = header.get("history")
    if history is None and isinstance(header.get("trainer"), dict):  # a checkpoint keeps it with the trainer
        history = header["trainer"].get("history")
    if history is None:
        return None, ("the model file has no training history (only files written by `numpynn train` carry "
                      "one); train with `numpynn train` to get learning curves")
    need = ("epoch", "train_loss", "train_accuracy", "lr")
    rows = history.get("epochs") if isinstance(history, dict) else None
    ok = isinstance(rows, list) and all(
        isinstance(row, dict) and all(isinstance(row.get(key), (int, float)) for key in need)
        and all(row.get(key) is None or isinstance(row.get(key), (int, float)) for key in ("dev_loss", "dev_accuracy"))
        for row in rows)
    if not ok:
        return None, "the model file's training history is malformed (expected a list of epoch rows)"
    if not rows:
        return None, "the model file's training history is empty (no epoch finished)"
    return history, ""


def _layer_name(model, i: int, A_shape) -> str:
    shape = "x".join(map(str, A_shape))
    return f"layer {i} {type(model.layers[i]).__name__} ({shape})"


def write_report(model, header: dict, X, y, out_dir, config: ReportConfig | None = None, title: str = "model",
                 log=None) -> Report:
    """Draw every figure of the model on the test set X (N, D) float in [0, 1] (D = 784 for MNIST), y (N,)
    integer labels, and write them as PNGs with an index.html into out_dir (which must exist). header: the
    model file's header, for the History and the config (an empty dict will do). A figure that cannot be drawn (no
    History in the file, ...) is listed in Report.missing and on the page, and the others are still drawn."""
    config = config or ReportConfig()
    out = pathlib.Path(out_dir)
    report = Report()
    say = log or (lambda line: None)

    def emit(name, fig, heading, caption):
        save_figure(fig, out / name)
        report.figures.append((name, heading, caption))
        say(f"wrote {out / name}")

    Z = model.forward_in_batches(X)  # (N, K) logits
    P = model.probabilities(Z)  # (N, K) softmax(Z / T), the probabilities the model states
    K = P.shape[1]
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"the labels run from {y.min()} to {y.max()}, but the model has {K} classes")
    predicted, confidence = P.argmax(axis=1), P.max(axis=1)  # (N,) each
    correct = predicted == y
    report.test_accuracy = float(correct.mean())

    smoothing = (header.get("config") if isinstance(header.get("config"), dict) else {}).get("label_smoothing")
    smoothing = float(smoothing) if isinstance(smoothing, (int, float)) and 0 <= smoothing < 1 else 0.0
    history, why = history_of(header)
    if history is None:
        report.missing.append(("Learning curves", why))
    else:
        emit("learning_curves.png", learning_curves(history, smoothing), "Learning curves",
             "Loss, accuracy and learning rate per epoch, as recorded while training. The train numbers are "
             "means over each epoch's batches while the weights were still changing (with label smoothing and "
             "dropout, if any); the dev numbers are measured after the epoch, on images never trained on. A dev "
             "curve that turns up while the train curve keeps falling is overfitting.")
    series, why = diagnostics_of(history) if history is not None else (None, "no training history, so no diagnostics")
    if series is None:
        report.missing.append(("Training diagnostics", why))
    else:
        emit("diagnostics.png", training_diagnostics(series), "Training diagnostics", diagnostics_caption(series))

    C = confusion_matrix(y, predicted, K)
    off = C - np.diag(np.diag(C))  # (K, K) the mistakes only
    worst = np.unravel_index(off.argmax(), off.shape)
    commonest = (f" The commonest mistake: {worst[0]} read as {worst[1]} ({off[worst]} times)."
                 if off[worst] else "")
    emit("confusion.png", confusion(C), "Confusion matrix",
         f"Row k counts the test images of class k by what the model predicted; the diagonal is right. Beside it, "
         f"each class's error rate on an axis that starts at 0, so bar lengths compare honestly. "
         f"Test accuracy {100 * report.test_accuracy:.2f}%.{commonest}")

    side = math.isqrt(X.shape[1])
    if side * side == X.shape[1]:
        wrong = analysis.most_confident_mistakes(P, y, config.mistakes)
        emit("mistakes.png", mistakes(X[wrong].reshape(-1, side, side), y[wrong], predicted[wrong], confidence[wrong]),
             "Most confident mistakes",
             f"The {len(wrong)} wrong answers the model was surest of, out of {int((~correct).sum())} mistakes. "
             "They are drawn as the network sees them, white ink on black (MNIST's convention; the pixel values "
             "are the network's inputs). Many are digits a person would hesitate over too; a clearly readable "
             "one is a real weakness.")
    else:
        report.missing.append(("Most confident mistakes", f"the inputs ({X.shape[1]} values) are not square images"))

    try:
        filters, what = analysis.first_layer_filters(model, config.filters)
        emit("first_layer.png", first_layer(filters, what), "First layer's weights",
             "What each first-layer unit looks for, as a picture of its weights: its output grows with the ink "
             "on red pixels and shrinks with the ink on blue ones. Digit-like strokes mean the unit learned a "
             "pattern; speckle means its weights are still close to their random start.")
    except ValueError as error:
        report.missing.append(("First layer's weights", str(error)))

    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(len(X), min(config.samples, len(X)), replace=False))  # (n,)
    hidden = analysis.activation_layers(model)
    outputs = analysis.layer_outputs(model, X[sample], hidden + [-1])
    if hidden:
        stats = [(_layer_name(model, i, outputs[i].shape[1:]),
                  analysis.activation_stats(outputs[i], isinstance(model.layers[i], analysis.RELU_LIKE)))
                 for i in hidden]
        dead = sum(int(s["dead"].sum()) for _, s in stats if s["dead"] is not None)
        emit("activations.png", activations(stats), "Activations",
             f"For each hidden layer, on {len(sample)} test images: the distribution of its output values, and "
             f"how often each unit (for a convolution, each channel) is active. A dead unit is above 0 on no "
             f"image: a ReLU there passes no gradient, so it never learns again. Dead units here: {dead}.")
    else:
        report.missing.append(("Activations", "the model has no hidden activation layer"))

    representations = [("input pixels", X[sample])] + [
        (_layer_name(model, i, outputs[i].shape[1:]), outputs[i].reshape(len(sample), -1)) for i in hidden]
    last = len(model.layers) - 1
    representations.append((f"layer {last} logits ({K})", outputs[last].reshape(len(sample), -1)))
    maps = [(name, *_pca2(A)) for name, A in representations]
    emit("pca.png", pca_maps(maps, y[sample]), "PCA maps",
         f"Each of {len(sample)} test images placed at the two directions along which a layer's outputs vary "
         "most (principal components), coloured by true class. From the pixels to the logits, the classes "
         "should pull apart into separate clouds; two digits that share a cloud are the ones the model confuses. "
         "Two dimensions show only part of the variance (in each axis label).")

    smoothing_note = (f" This model was trained with label smoothing {smoothing:g}, which asks for "
                      f"{1 - smoothing + smoothing / K:.3g} on the right class, never 1: expect it to look "
                      f"underconfident." if smoothing else "")
    how_to_read = ("Predictions grouped by the probability the model gave its answer. Where bars reach above the "
                   "dots the model is right more often than it says (underconfident), below them less often "
                   "(overconfident). The expected calibration error is the average gap, weighted by the counts")
    T = model.temperature
    if T != 1.0:  # calibrated: first what training alone gave, softmax(Z), then what the model now states
        raw = losses.softmax(Z).max(axis=1)  # (N,) the confidence at temperature 1; the answers are the same
        raw_ece = analysis.expected_calibration_error(raw, correct, config.bins)
        emit("calibration-before.png",
             reliability(analysis.reliability_bins(raw, correct, config.bins), raw_ece, "Before calibration"),
             "Calibration before the temperature",
             f"{how_to_read}: {100 * raw_ece:.2f}% over {len(y)} test images in {config.bins} bins, for the "
             f"probabilities training alone gave (temperature 1).{smoothing_note}")
        smoothing_note = ""
    bins = analysis.reliability_bins(confidence, correct, config.bins)
    report.ece = analysis.expected_calibration_error(confidence, correct, config.bins)
    fitted = (f" The probabilities are softmax(logits / T) with T = {T:.3f}, fitted on the dev set after "
              f"training (calibrate.py); the predicted digits are the same." if T != 1.0 else
              " This model is not calibrated (temperature 1): `numpynn train` fits one unless --no-calibrate.")
    emit("calibration.png", reliability(bins, report.ece, "After calibration" if T != 1.0 else "Reliability diagram"),
         "Calibration",
         f"{how_to_read}: {100 * report.ece:.2f}% over {len(y)} test images in {config.bins} bins.{fitted}"
         f"{smoothing_note}")

    _write_index(out / "index.html", report, title, model, len(y))
    say(f"wrote {out / 'index.html'}")
    return report


def _pca2(A):
    scores, _, explained = analysis.pca(A, 2)
    return scores, explained


def _write_index(path: pathlib.Path, report: Report, title: str, model, n: int) -> None:
    """The page: a heading, the model's layers, what could not be drawn, then each figure with its caption.
    Every piece of text is escaped: the title is a file name, and the captions quote a file's content."""
    e = html.escape
    architecture = " &rarr; ".join(e(type(layer).__name__) for layer in model.layers)
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>numpynn report: {e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "img{max-width:100%;border:1px solid #ddd}figure{margin:2em 0}figcaption{max-width:70em}"
        ".missing{background:#fff4e5;padding:0.5em 1em;border-left:4px solid #f0a030}</style></head><body>",
        f"<h1>numpynn report: {e(title)}</h1>",
        f"<p>Architecture: {architecture or 'unknown'}. Test accuracy {100 * report.test_accuracy:.2f}% on "
        f"{n} images; expected calibration error {100 * report.ece:.2f}%.</p>",
    ]
    if report.missing:
        parts.append('<div class="missing"><p>Not drawn:</p><ul>')
        parts += [f"<li><b>{e(heading)}</b>: {e(why)}</li>" for heading, why in report.missing]
        parts.append("</ul></div>")
    for name, heading, caption in report.figures:
        parts += [f'<figure id="{e(name.removesuffix(".png"))}"><h2>{e(heading)}</h2>',
                  f'<img src="{e(name)}" alt="{e(heading)}"><figcaption>{e(caption)}</figcaption></figure>']
    parts.append("</body></html>\n")
    write_atomically(path, "\n".join(parts).encode("utf-8"))
