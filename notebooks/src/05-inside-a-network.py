# %% [markdown]
# # 5. Inside a trained network, and how to tell that training is healthy
#
# A loss curve says *that* training goes well or badly; it rarely says *why*. This notebook trains a
# 784-256-256-10 network with numpynn's engine and then looks inside it two ways:
#
# - **after training**: what each layer's units do on real digits (activation statistics), what the first
#   layer's weights look like, and which digits the network gets most confidently wrong;
# - **during training**: the diagnostics `numpynn.train.fit` records for every layer and epoch (the History's
#   `"diagnostics"`): the gradient norm $\lVert dW \rVert$, the update-to-weight ratio
#   $\log_{10}(\lVert \Delta W \rVert / \lVert W \rVert)$, and the share of dead ReLU units.
#
# Then it breaks training on purpose, with a learning rate six times too large, and shows how the diagnostics
# tell you at once, after one epoch, what the loss alone does not explain.
# [docs/walkthrough.md](../docs/walkthrough.md) explains every figure of `numpynn report`;
# [docs/training.md](../docs/training.md) defines the diagnostics.

# %%
import io
import os

import PIL.Image
from IPython.display import Image, display

from numpynn import analysis, report
from numpynn.data import load_mnist
from numpynn.train import Run, fit, make_config

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])
EPOCHS = 1 if SMALL else 3  # passes over the training set for every run below
print(f"{len(splits.y_train)} training images, {len(splits.y_dev)} dev images, {EPOCHS} epochs per run")


def draw(figure):
    """Show one of numpynn.report's figures (matplotlib Figures of their own, not pyplot's) in the notebook,
    as a 256-colour PNG (as `numpynn report` writes them: a few times smaller in the stored notebook)."""
    rendered, png = io.BytesIO(), io.BytesIO()
    figure.savefig(rendered, format="png", dpi=72)
    PIL.Image.open(rendered).convert("RGB").quantize(256).save(png, format="PNG", optimize=True)
    display(Image(png.getvalue()))

# %% [markdown]
# ## A healthy run
#
# The `mlp` preset's recipe (SGD with momentum 0.9, learning rate 0.1 on a cosine schedule, He
# initialisation) with two hidden layers of 256 and no label smoothing. `fit` records the diagnostics on one
# optimizer step in ten, and counts dead units on 1,000 dev images after each epoch; it costs about 3 % of
# the training time.

# %%
def train(**options):
    """A fresh network trained with the mlp preset's recipe, changed by `options`; returns (run, history)."""
    config = make_config("mlp", hidden=(256, 256), epochs=EPOCHS, label_smoothing=0.0, **options)
    run = Run.start(config)
    return run, fit(run, splits)


def show(history):
    """One line per epoch: dev accuracy, then per weight matrix the update ratio and the gradient norm, then
    the share of dead units per ReLU layer."""
    for row in history.epochs:
        d = row["diagnostics"]
        ratios = "  ".join(f"W{p['layer']}: {p['update_ratio']:.2f}" if p["update_ratio"] is not None
                           else f"W{p['layer']}: none" for p in d["params"])
        norms = "  ".join(f"{p['grad_norm']:.3f}" for p in d["params"])
        dead = "  ".join(f"{100 * u['share']:.1f} %" for u in d["units"])
        print(f"epoch {row['epoch']}: dev {100 * row['dev_accuracy']:.2f} %  |  log10 update ratio {ratios}  |  "
              f"||dW|| {norms}  |  dead {dead}")


run, history = train(lr=0.1)
show(history)

# %% [markdown]
# Reading it, layer by layer (`W0` is the first Dense layer, `W2` the second, `W4` the output layer):
#
# - **The update ratio** starts near $-2.3$ (each step moves the weights by about 0.5 % of their size) and
#   falls with the cosine schedule to about $-3.6$ in the last epoch. Around $-3$, a thousandth per step, is
#   the usual rule of thumb for a healthy rate; all three layers move at about the same relative speed,
#   which is what He initialisation and a single learning rate aim for.
# - **The gradient norms** shrink as the network learns (fewer examples are still wrong), and no layer's
#   gradient is orders of magnitude below the others': every layer is learning.
# - **Dead units**: about 2 % of the first hidden layer's units (5 or 6 of 256) never fire on the dev
#   images; the second layer has none. A few dead units are normal.
#
# The same numbers as a figure, the one `numpynn report` and `numpynn train --plot DIR` draw:

# %%
series, why_not = report.diagnostics_of({"epochs": history.epochs})
draw(report.training_diagnostics(series))

# %% [markdown]
# ## After training: what the hidden units do
#
# `analysis.layer_outputs` runs the test images through the network and keeps the output of the layers we
# ask for; `analysis.activation_stats` summarises each: how often a unit is exactly 0 (ReLU's sparsity), how
# many units are dead, and the histogram of the values.

# %%
model = run.model
hidden = analysis.activation_layers(model)  # the indices of the ReLU layers
outputs = analysis.layer_outputs(model, splits.X_test, hidden)
stats = [(f"layer {i} ReLU", analysis.activation_stats(outputs[i], relu_like=True)) for i in hidden]
for name, s in stats:
    print(f"{name}: {100 * s['fraction_zero']:.1f} % of outputs are 0; {s['dead'].sum()} of {s['dead'].size} "
          f"units dead on the test images")
draw(report.activations(stats))

# %% [markdown]
# More than half of all hidden outputs are exactly zero: for any one digit, most units stay silent, and the
# digit is described by which units *do* fire. That sparsity is ReLU working as intended; only a unit that
# is silent for *every* digit (dead) is wasted.
#
# **The first layer's weights.** Unit $j$ of the first layer computes $z_j = \sum_d x_d W_{dj} + b_j$, so
# its 784 weights, reshaped to 28 × 28, are the picture it responds to: ink on red pixels raises $z_j$, ink
# on blue ones lowers it.

# %%
filters, what = analysis.first_layer_filters(model, 16)
draw(report.first_layer(filters, what))

# %% [markdown]
# **The most confident mistakes**: the test digits the network got wrong with the highest probability on
# its (wrong) answer. Drawn white on black, as the network sees them. Many are digits a person would also
# hesitate over; some are simply badly written.

# %%
P = model.predict_proba(splits.X_test)  # (N, 10)
wrong = analysis.most_confident_mistakes(P, splits.y_test, 16)
draw(report.mistakes(splits.X_test[wrong].reshape(-1, 28, 28), splits.y_test[wrong], P[wrong].argmax(axis=1),
                     P[wrong].max(axis=1)))

# %% [markdown]
# ## A broken run, and what the diagnostics say
#
# The same recipe with the learning rate six times larger, 0.6. On the full data the first epoch ends at a
# dev accuracy of about 23 %, and three epochs reach only 77 %. The loss tells you something is wrong; the
# diagnostics tell you what.

# %%
broken_run, broken = train(lr=0.6)
show(broken)
draw(report.training_diagnostics(report.diagnostics_of({"epochs": broken.epochs})[0]))

# %% [markdown]
# - **The update ratio of the first epoch is about $-1.9$**: each step moved the weights by more than 1 % of
#   their size, four times the healthy run's first epoch. The early steps were too large.
# - **About 95 % of the first layer's units and 75 % of the second's are dead** after the first epoch
#   (healthy run: 2 % and 0 %). Large steps pushed their biases and weights to where no digit makes them
#   fire, and a dead ReLU unit gets no gradient, so it never comes back: the network trains on with the
#   dozen units that survived. That is why it stalls well below the healthy run, and why a lower learning
#   rate later in the schedule does not rescue it.
#
# The remedy follows from the diagnosis: a smaller learning rate, or a warm-up (`warmup_epochs=1`), which
# starts with small steps while the weights are still random (exercise 3).

# %% [markdown]
# ## Exercises
#
# Each changes one option of `train(...)`. The results to expect are from full-data runs (3 epochs, seeds as
# above); with `NUMPYNN_SMALL=1` the numbers differ.
#
# 1. **Far too large: `train(lr=1.5)`.** Expect every hidden unit dead after the first epoch (100 % and
#    100 %), gradient norms of exactly 0 from then on, update ratios of `none` (the weights no longer move at
#    all), and a dev accuracy of about 11 %: the network answers one class for everything.
# 2. **Far too small: `train(lr=0.001)`.** Nothing dies, but the update ratio starts at about $-3.7$ and
#    ends near $-5$; the gradient norms stay large (about 0.5 to 0.9: there is much left to learn), and the
#    dev accuracy reaches only about 87.7 % in 3 epochs.
# 3. **Warm-up.** `train(lr=0.6, warmup_epochs=1)` does not rescue the broken run: expect `TrainingDiverged`
#    (the loss becomes NaN) in epoch 2, when the warm-up is over and the steps are as large as before. Halve
#    the rate: `train(lr=0.3)` ends with 20 % of the first layer dead and 97.4 % dev; `train(lr=0.3,
#    warmup_epochs=1)` with 6 % dead and 97.4 % dev. Compare the first epoch's dead share of the two (about
#    20 % against 2 %): the warm-up's small first steps keep the units alive.
# 4. **The seed's initialisation: `train(init="seed")`** (weights $0.01 \cdot N(0, 1)$ instead of He's).
#    With two layers of 256 and momentum it still trains (about 97.0 % dev), but look at the first epoch:
#    the update ratio is about $-1.9$ in every layer, because the weights start a hundred times smaller
#    than He's, so the same step is a larger *relative* change.
# 5. **Sigmoid units: `train(activation="sigmoid")`.** The third panel now counts *saturated* units (output
#    near 0 or 1 on every dev image). Expect none, and a dev accuracy of about 92.4 % after 3 epochs, five
#    points under ReLU's: with this recipe sigmoid's trouble is not saturation but its small derivative (at
#    most 1/4), so every layer's gradient is smaller and learning is slower.
