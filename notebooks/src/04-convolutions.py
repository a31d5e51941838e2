# %% [markdown]
# # 4. Convolutions: what a filter does to a digit, and a tiny CNN
#
# A dense layer looks at all 784 pixels at once and has no idea that pixel 300 sits next to pixel 301. A
# convolution slides one small filter over the image, so it looks for the same local pattern (an edge, a
# stroke's end) everywhere. Here we apply filters we choose to a digit, open up `Conv2D` to see it is one
# matrix product (im2col), and train a tiny CNN.
# [docs/conv.md](../docs/conv.md) derives the layer's forward and backward passes.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from numpynn.conv import Conv2D, Flatten, MaxPool2D, Unflatten, windows
from numpynn.data import load_mnist
from numpynn.layers import Dense, ReLU
from numpynn.losses import softmax_cross_entropy
from numpynn.model import Sequential
from numpynn.optim import Adam
from numpynn.train import evaluate

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])
EPOCHS = 1  # for the tiny CNN at the end


def show(images, titles, signed=False, size=1.8):
    """One row of pictures. signed: red above 0, blue below, white at 0 (for filters and edge maps)."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 1.1))
    for ax, image, title in zip(np.atleast_1d(axes), images, titles):
        if signed:
            limit = np.abs(image).max()
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            ax.imshow(image, cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    plt.show()

# %% [markdown]
# ## Three filters we choose
#
# Images enter a convolution as (N, C, H, W): N images of C channels. One MNIST digit is (1, 1, 28, 28). A
# `Conv2D(1, 3, kernel=3, padding=1)` holds three 3×3 filters; we overwrite its random weights with a
# vertical-edge detector, a horizontal-edge detector and a blur. Each output pixel is the sum of the 3×3
# window around it, weighted by the filter (the kernel is not flipped: a cross-correlation, as in PyTorch).

# %%
digit = splits.X_train[0].reshape(1, 1, 28, 28)  # (N, C, H, W)
filters = np.array([
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],        # left to right: dark -> light is positive
    [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],        # top to bottom
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]],           # a 3x3 average (times 9)
], np.float32)
conv = Conv2D(1, 3, kernel=3, padding=1)
conv.params["W"][...] = filters[:, None]         # W: (C_out, C_in, k, k) = (3, 1, 3, 3)
maps = conv.forward(digit, train=False)          # (1, 3, 28, 28): one map per filter
print("input", digit.shape, "-> output", maps.shape)
show([digit[0, 0]], [f"the digit ({splits.y_train[0]})"])
show([*maps[0]], ["vertical edges", "horizontal edges", "blur"], signed=True)

# %% [markdown]
# In the edge maps, red is where the ink starts (dark to light) and blue where it ends. The padding of one
# row of zeros on every side keeps the output 28×28.
#
# ## Inside `Conv2D`: im2col, then one product
#
# `windows` gives every 3×3 window of the padded image as a view (no copy). Laid out as columns, one column
# per output pixel, the convolution is a single matrix product: the filters, one per row, times the columns.

# %%
padded = np.pad(digit, ((0, 0), (0, 0), (1, 1), (1, 1)))    # (1, 1, 30, 30)
V = windows(padded, 3, 1)                                   # (N, C, H_out, W_out, k, k) = (1, 1, 28, 28, 3, 3)
cols = V.reshape(28 * 28, 9).T                              # (C*k*k, H_out*W_out) = (9, 784): im2col
Z = filters.reshape(3, 9) @ cols                            # (C_out, H_out*W_out): the whole convolution
print("windows", V.shape, " cols", cols.shape, " Z", Z.shape)
print("largest difference from Conv2D:", float(np.abs(Z.reshape(3, 28, 28) - maps[0]).max()))
i, j = 14, 19  # on the right-hand edge of the 7's stroke
print(f"window at ({i}, {j}):\n{V[0, 0, i, j].round(2)}\nis column {i * 28 + j} of cols:", cols[:, i * 28 + j].round(2))
print("the vertical-edge filter there:", Z[0, i * 28 + j].round(2))

# %% [markdown]
# ## Max pooling
#
# `MaxPool2D(2)` keeps the largest value of each 2×2 block: the map halves in size, and a stroke that moves
# by one pixel mostly still lands in the same block.

# %%
pooled = MaxPool2D(2).forward(maps, train=False)             # (1, 3, 14, 14)
print(maps.shape, "->", pooled.shape)
show([*pooled[0]], ["vertical, pooled", "horizontal, pooled", "blur, pooled"], signed=True)

# %% [markdown]
# ## A tiny CNN, trained
#
# Eight 5×5 filters, learned instead of chosen: `Unflatten` turns each row of 784 pixels into a (1, 28, 28)
# image, `Conv2D(1, 8, 5)` gives eight 24×24 maps, `MaxPool2D(2)` halves them to 12×12, then ReLU, `Flatten`
# and one `Dense` layer to the 10 classes: 11,738 weights. One epoch of Adam on batches of 64.

# %%
rng = np.random.default_rng(0)
cnn = Sequential([Unflatten((1, 28, 28)), Conv2D(1, 8, 5, rng=rng), MaxPool2D(2), ReLU(), Flatten(),
                  Dense(8 * 12 * 12, 10, rng=rng)])
print("weights:", cnn.n_params())
optimizer = Adam(lr=1e-3)
X, y = splits.X_train, splits.y_train
shuffle = np.random.default_rng(1)
for epoch in range(EPOCHS):
    order = shuffle.permutation(len(y))
    for start in range(0, len(y), 64):
        batch = order[start : start + 64]
        loss, dZ = softmax_cross_entropy(cnn.forward(X[batch], train=True), y[batch])
        cnn.backward(dZ, need_dX=False)
        optimizer.step(cnn.params(), cnn.grads())
    dev_loss, dev_accuracy = evaluate(cnn, splits.X_dev, splits.y_dev)
    print(f"epoch {epoch + 1}: dev loss {dev_loss:.4f}, dev accuracy {dev_accuracy:.2%}")

# %% [markdown]
# ## What it learned
#
# The eight filters, and the eight maps they make of our digit (after pooling and ReLU). After one epoch the
# filters are still rough, but several have a light side and a dark side, like the edge detectors we wrote
# by hand, at other angles.

# %%
conv1 = cnn.layers[1]
show([w[0] for w in conv1.params["W"]], [f"filter {k}" for k in range(8)], signed=True, size=1.3)
inside = cnn.activations(splits.X_train[:1])   # every layer's output for one image
show([m for m in inside[3][0]], [f"map {k}" for k in range(8)], size=1.3)

# %% [markdown]
# ## Exercises
#
# The numbers below are from the full data (50,000 training images, one epoch, the seeds above), where the
# tiny CNN reaches 95.2 % on the dev set.
#
# 1. **A filter of your own.** Write a 3×3 filter that finds diagonal strokes (for example
#    `[[2, 1, 0], [1, 0, -1], [0, -1, -2]]`), add it as a fourth filter (`Conv2D(1, 4, ...)`), and find where
#    on the 7 it answers most strongly.
# 2. **More filters.** With 16 filters instead of 8 (`Conv2D(1, 16, 5)` and `Dense(16 * 12 * 12, 10)`, 23,466
#    weights), the dev accuracy after one epoch goes from 95.2 % to about 97.2 %, and the epoch takes about
#    1.7 times as long.
# 3. **No pooling.** Remove `MaxPool2D(2)` and use `Dense(8 * 24 * 24, 10)`: four times the dense weights
#    (46,298 in all), and a dev accuracy of about 96.6 %. Here pooling costs a little accuracy after one
#    epoch and saves three quarters of the weights.
# 4. **A dense network of the same size.** `mlp([784, 15, 10], rng=rng)` has about as many weights (11,935).
#    Trained the same way, one epoch of Adam, it reaches about 91.2 %: four points below the CNN, with the
#    same number of weights.
