# %% [markdown]
# # 1. The seed, line by line
#
# numpynn grew from one small program: a 784-10-10 network (ReLU hidden layer, softmax output, cross-entropy
# loss) trained by full-batch gradient descent. Its functions live in `numpynn/seed.py`, and
# [docs/math.md](../docs/math.md) derives each equation. Here we run them one at a time and look at what each
# one gives back: the shapes, the numbers, the loss, the accuracy.
#
# The first cell reads `NUMPYNN_SMALL`: set to 1 (as the tests do), every notebook uses a small slice of
# MNIST and a few steps, so it runs in seconds. The numbers written in the text come from the full data.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from numpynn import seed
from numpynn.data import load_mnist

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)  # $NUMPYNN_DATA, the user cache, or a download
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])
ITERATIONS = 20 if SMALL else 500  # full-batch steps in the runs below
splits

# %% [markdown]
# ## The data
#
# `load_mnist` gives batch-first arrays, one image per **row**: `X_train` is (50000, 784), 784 = 28 × 28
# pixels scaled to [0, 1], and `y_train` holds the labels 0 to 9. 10,000 of MNIST's 60,000 training images
# are held out as a dev set, and the test set's 10,000 are kept for the end.
#
# The seed keeps one image per **column** instead. Transposing costs nothing: `X.T` is a view of the
# same memory.

# %%
X_train, y_train = splits.X_train.T, splits.y_train  # X (D, m) = (784, m), y (m,)
X_dev, y_dev = splits.X_dev.T, splits.y_dev
D, m = X_train.shape
print(f"X_train {X_train.shape} {X_train.dtype}, pixels from {X_train.min()} to {X_train.max()}")
print(f"y_train {y_train.shape} {y_train.dtype}, first labels {y_train[:10]}")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for i, ax in enumerate(axes):
    ax.imshow(X_train[:, i].reshape(28, 28), cmap="gray")
    ax.set_title(str(y_train[i]))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## `init_params`: small random weights
#
# $W_1$ is (10, 784) and $W_2$ is (10, 10), drawn from $0.01 \cdot \mathcal N(0, 1)$; the biases start at 0
# ([math.md §3](../docs/math.md#3-initialisation)).

# %%
params = seed.init_params(np.random.default_rng(0))
W1, b1, W2, b2 = params
for name, theta in zip(["W1", "b1", "W2", "b2"], params):
    print(f"{name} {str(theta.shape):10} std {theta.std():.4f}")

# %% [markdown]
# ## `forward_propagation`
#
# $Z_1 = W_1 X + b_1$, $A_1 = \mathrm{ReLU}(Z_1)$, $Z_2 = W_2 A_1 + b_2$, $A_2 = \mathrm{softmax}(Z_2)$: every
# image at once, one column each. With weights this small every logit in $Z_2$ is close to 0, so every
# class gets a probability close to 1/10.

# %%
Z1, A1, Z2, A2 = seed.forward_propagation(X_train, *params)
for name, array in zip(["Z1", "A1", "Z2", "A2"], [Z1, A1, Z2, A2]):
    print(f"{name} {array.shape}")
print("A2 for the first image:", np.round(A2[:, 0], 4), " sum", A2[:, 0].sum())

# %% [markdown]
# ## The loss
#
# The cross-entropy is the mean of $-\log$ of the probability given to the right class
# ([math.md §5](../docs/math.md#5-the-loss)). With every probability near 1/10 it starts at
# $\ln 10 \approx 2.3026$. Written out from $A_2$ here; the engine's `softmax_cross_entropy` computes the
# same number from the logits, which stays finite even when a probability rounds to 0.

# %%
from numpynn.losses import softmax_cross_entropy

loss = -np.mean(np.log(A2[y_train, np.arange(m)]))
loss_engine, _ = softmax_cross_entropy(Z2.T, y_train)  # batch-first: one row of logits per image
print(f"loss {loss:.4f}   engine {loss_engine:.4f}   ln 10 = {np.log(10):.4f}")

# %% [markdown]
# ## `backward_propagation`: the gradient
#
# One pass backwards gives $dW_1, db_1, dW_2, db_2$, each the shape of its parameter
# ([math.md §6](../docs/math.md#6-backward-propagation)). It returns values and changes nothing: only the
# update does.

# %%
grads = seed.backward_propagation(X_train, y_train, Z1, A1, W2, A2)
for name, g in zip(["dW1", "db1", "dW2", "db2"], grads):
    print(f"{name} {str(g.shape):10} largest |entry| {np.abs(g).max():.2e}")

# %% [markdown]
# ## `update_params`, and the loop
#
# $\theta \leftarrow \theta - \alpha\, d\theta$ for each parameter. Forward, backward, update, repeated: that is
# the whole of training. The loop below is written out; `alpha` is the learning rate.

# %%
alpha = 0.1
params = seed.init_params(np.random.default_rng(0))
losses = []
for i in range(ITERATIONS):
    Z1, A1, Z2, A2 = seed.forward_propagation(X_train, *params)
    losses.append(-np.mean(np.log(A2[y_train, np.arange(m)])))
    grads = seed.backward_propagation(X_train, y_train, Z1, A1, params[2], A2)
    params = seed.update_params(params, grads, alpha)
print(f"loss after {ITERATIONS} steps: {losses[-1]:.4f}")
print(f"train accuracy {seed.accuracy(X_train, y_train, params):.2%}, dev accuracy {seed.accuracy(X_dev, y_dev, params):.2%}")

plt.figure(figsize=(6, 3))
plt.plot(losses)
plt.xlabel("iteration")
plt.ylabel("training loss")
plt.title(f"full-batch gradient descent, alpha = {alpha}")
plt.show()

# %% [markdown]
# On the full data, 500 steps at $\alpha = 0.1$ take the loss from 2.30 to 0.39 and reach 88.5 % on the dev
# set. The loss sits near 2.30 for the first few dozen steps (2.27 at step 50) before it falls: each layer's
# gradient is proportional to the other layer's weights, and both start tiny. Once they have grown, learning
# speeds up.
#
# `gradient_descent` runs the same loop (it sums the gradient over blocks of images, which is faster and
# gives the same numbers up to float32 rounding), and `predict` takes the most probable class of each image:

# %%
params_gd, _ = seed.gradient_descent(X_train, y_train, ITERATIONS, alpha, rng=np.random.default_rng(0), log=None)
print("largest difference from the loop's W1:", float(np.abs(params_gd[0] - params[0]).max()))
print("predicted:", seed.predict(X_dev[:, :10], params_gd), "\ntrue:     ", y_dev[:10])

# %% [markdown]
# ## What it gets wrong
#
# The first dev images the network misclassifies, with what it said:

# %%
predicted = seed.predict(X_dev, params)
wrong = np.flatnonzero(predicted != y_dev)[:10]
fig, axes = plt.subplots(1, len(wrong), figsize=(10, 1.6))
for ax, i in zip(axes, wrong):
    ax.imshow(X_dev[:, i].reshape(28, 28), cmap="gray")
    ax.set_title(f"{y_dev[i]} → {predicted[i]}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Exercises
#
# The numbers below are from the full data (50,000 training images, `default_rng(0)`), where the loop above
# ends at a loss of 0.39 and 88.5 % on the dev set after 500 steps at `alpha = 0.1`.
#
# 1. **The learning rate.** Set `alpha = 0.01` (the seed's `make run` default) and rerun the loop. After 500
#    steps the loss is still 2.27 and the dev accuracy 24 %: the run has barely left the plateau. With
#    `alpha = 0.5` it reaches 0.28 and 91.2 %. At `alpha = 5` the loss settles at 2.30 and stays there, and
#    the dev accuracy is 11 %: it has stopped learning altogether. Why? Run `forward_propagation` with the
#    trained weights and look at `(A1 > 0).mean()`: 0.0. The first steps were so large that every hidden unit
#    ended up dead, negative for every image, so no gradient reaches $W_1$ any more; the network answers 1,
#    the most common digit, for every image.
# 2. **More hidden units.** `seed.init_params(np.random.default_rng(0), 32)` gives 32 hidden units instead of
#    10. With `alpha = 0.1` the loss after 500 steps is 0.36 (against 0.39) and the dev accuracy 89.5 %.
# 3. **The plateau.** Start from weights ten times larger: `W1, b1, W2, b2 =
#    seed.init_params(np.random.default_rng(0))`, then `params = (W1 * 10, b1, W2 * 10, b2)`, and run 100
#    steps. The loss is 1.75 at step 50 and 1.04 at step 100 (against 2.27 and 1.78), and the dev accuracy
#    71 % (against 45 %). Why not start larger still? At 1000 times, the first loss is 1788 (confident wrong
#    answers cost a lot), and after 100 steps it is still 21, with 15 % on the dev set.
