# %% [markdown]
# # 6. What the network sees
#
# The network learned from MNIST: white digits on black, 28×28, each scaled into a 20×20 box and centred
# by its centre of mass. A digit drawn on paper looks nothing like that. `numpynn.images.prepare` repeats
# MNIST's recipe on any picture; `numpynn predict` and the web page both use it. Here we follow one drawing
# through every step, then let a trained network read it. [docs/images.md](../docs/images.md) describes each
# step and its limits.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw

from numpynn import images
from numpynn.data import load_mnist
from numpynn.train import Run, fit, make_config

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])


def show(pictures, titles, size=2.2):
    fig, axes = plt.subplots(1, len(pictures), figsize=(size * len(pictures), size * 1.1))
    for ax, picture, title in zip(np.atleast_1d(axes), pictures, titles):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1 if np.asarray(picture).dtype != np.uint8 else 255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    plt.show()

# %% [markdown]
# ## A network to read with
#
# A 784-256-10 network, trained for three epochs with the `mlp` preset's settings (SGD with momentum, a
# cosine schedule, label smoothing 0.1). It reads 97.0 % of the dev digits right.

# %%
config = make_config("mlp", hidden=(256,), epochs=1 if SMALL else 3)
run = Run.start(config)
fit(run, splits, log=print)
model = run.model


def read(x):
    """The network's answer for one prepared 28x28 digit: (digit, its probability, all 10 probabilities)."""
    p = model.predict_proba(x.reshape(1, 784))[0]  # (10,)
    return int(p.argmax()), float(p.max()), p

# %% [markdown]
# ## A drawing
#
# A "2" in blue pen on cream paper, off-centre in a 240×180 picture: the example of
# [docs/images.md](../docs/images.md#an-example), drawn here with Pillow.

# %%
paper = Image.new("RGB", (240, 180), (246, 241, 226))
pen = ImageDraw.Draw(paper)
ink = (40, 50, 120)
pen.arc((120, 30, 190, 100), start=190, end=30, fill=ink, width=14)    # the top curve
pen.line([(184, 82), (118, 150)], fill=ink, width=14)                  # the diagonal
pen.line([(118, 150), (200, 146)], fill=ink, width=14)                 # the base
paper

# %% [markdown]
# ## What if we just shrink it?
#
# Scaled straight down to 28×28 and made grey, the picture is a pale rectangle with a small dark mark in a
# corner: the opposite of MNIST's white ink on black, in the wrong place, at the wrong size. The network
# answers 6, with 27 %: a guess.

# %%
naive = np.asarray(paper.convert("L").resize((28, 28), Image.Resampling.BOX), np.float32) / 255
digit, p, _ = read(naive)
print(f"the network says {digit}, with probability {p:.1%}")
show([naive], ["shrunk to 28×28"])

# %% [markdown]
# ## `prepare`, step by step
#
# The steps below call the functions `prepare` is made of (module-private: `_read`, `_ink`, `_fit`,
# `_centre`, the steps of `numpynn/images.py`'s docstring), so each stage can be shown:
#
# 1. **grey**: luminance, $0.299R + 0.587G + 0.114B$;
# 2. **ink**: the background's level is the median of the outer frame of pixels (or a plane through it, when
#    the paper is lit from one side); what stands out from it by less than the noise is set to 0; the rest is
#    ink, dark or light, whichever stands out more, and dark ink is inverted so the ink is white on black;
#    the picture is cropped to the ink;
# 3. **scale**: the longer side becomes 20 pixels, the aspect ratio kept, each pixel the fraction of its area
#    covered by ink (MNIST's grey edges come from exactly this);
# 4. **levels**: the brightest pixel becomes 1;
# 5. **centre**: pasted into 28×28 so that the centre of mass sits at row 14, column 14.

# %%
grey, alpha = images._read(paper, "the drawing")          # (180, 240) uint8, and no transparency
cropped = images._ink(grey, "the drawing")                # (h, w) white on black, cropped to the ink
scaled = images._fit(cropped)                             # longer side 20
levelled = scaled / scaled.max()
x = images._centre(levelled)                              # (28, 28)
print(f"grey {grey.shape} {grey.dtype} -> ink {cropped.shape} -> scaled {scaled.shape} -> centred {x.shape}")
print("the same as prepare(paper):", np.array_equal(x, images.prepare(paper)))
show([grey, cropped, levelled, x], ["1. grey", "2. ink, inverted, cropped", "3-4. 20 px, levels", "5. centred, 28×28"])

# %% [markdown]
# Next to real MNIST "2"s from the training set, it could pass for one of them:

# %%
twos = splits.X_train[splits.y_train == 2][:4].reshape(-1, 28, 28)
rows, cols = np.indices((28, 28))
centre = lambda a: ((a * rows).sum() / a.sum(), (a * cols).sum() / a.sum())
print("centre of mass (row, column): ours %.1f, %.1f;" % centre(x),
      "the MNIST twos'", ", ".join("%.1f, %.1f" % centre(t) for t in twos))
show([x, *twos], ["ours"] + ["MNIST"] * 4, size=1.6)

# %% [markdown]
# ## What the network says

# %%
digit, p, probabilities = read(x)
print(f"the network says {digit}, with probability {p:.1%}")
plt.figure(figsize=(5, 2.2))
plt.bar(range(10), probabilities)
plt.xticks(range(10))
plt.xlabel("digit")
plt.ylabel("probability")
plt.show()

# %% [markdown]
# A 2, with 89 %. No probability comes near 1 for any input: label smoothing trained the network to give the
# right class 0.91, never 1.
#
# ## A photograph: white chalk on black
#
# `docs/img/seven.jpg` is the other way round: light ink on a dark background, and a JPEG with its grain.
# What stands out from the frame's level is lighter than it, so nothing is inverted; the grain is below the
# noise threshold.

# %%
photo = Image.open("../docs/img/seven.jpg")
seven = images.prepare("../docs/img/seven.jpg")
digit, p, _ = read(seven)
print(f"{photo.size[0]}x{photo.size[1]} {photo.mode} -> {seven.shape}: the network says {digit} ({p:.1%})")
show([np.asarray(photo.convert("L")), seven], ["seven.jpg", f"prepared: {digit} ({p:.0%})"], size=3)

# %% [markdown]
# ## Exercises
#
# The numbers below are from the full-data run above (3 epochs, 97.0 % on the dev set).
#
# 1. **Skip the centring.** Paste `levelled` into the top-left corner of a 28×28 field of zeros instead of
#    calling `_centre` (`x2 = np.zeros((28, 28), np.float32); h, w = levelled.shape; x2[:h, :w] = levelled`)
#    and `read(x2)`. The network no longer sees a 2: its top answers are 5 and 6, at about 21 % each. A dense
#    network has no idea that a shifted 2 is still a 2.
# 2. **A thinner pen.** Redraw the 2 with `width=4` and prepare it. The strokes come out much thinner than
#    MNIST's, and the network still says 2, but with only about 41 % (against 89 %).
# 3. **Other colours.** Draw in grey `(90, 90, 90)` on black paper `(0, 0, 0)`. `prepare` makes the same
#    28×28 digit of it, to within rounding (light ink on dark is not inverted, and the levels step stretches
#    the grey to 1), so the network says 2 with the same probability as for the blue pen. At `(20, 20, 20)`
#    on black, the ink differs from the paper by less than the 10 % noise threshold, and `prepare` raises an
#    `ImageError` that says so.
# 4. **Your own digit.** Photograph or draw one, save it beside this notebook, and pass its path to
#    `images.prepare`. From the command line, `numpynn predict model.npz your-digit.png` does the same with
#    a model trained by `numpynn train`.
