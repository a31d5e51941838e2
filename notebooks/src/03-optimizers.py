# %% [markdown]
# # 3. Optimizers: from full batch to mini-batches, momentum and Adam
#
# The seed computes its gradient on all 50,000 training images before it takes one step. This notebook
# trains the same kind of network with numpynn's engine (`model.mlp`, `losses`, `optim`) in a loop written
# out below, and changes one thing at a time: the batch, then the optimizer. Then `train.fit` does it all,
# with a learning-rate schedule and a dev set scored after every epoch.
# [docs/walkthrough.md §3](../docs/walkthrough.md#3-mini-batches-and-optimizers) has the equations.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from numpynn.data import load_mnist
from numpynn.losses import softmax_cross_entropy
from numpynn.model import mlp
from numpynn.optim import SGD, Adam
from numpynn.train import evaluate

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])
X, y = splits.X_train, splits.y_train  # batch-first: X (N, 784), y (N,)
N = len(y)
EPOCHS = 2                             # passes over the training set for each mini-batch run
FULL_BATCH_STEPS = 5 if SMALL else 30  # steps of the full-batch run, each one a pass over all N images
print(f"{N} training images, {len(splits.y_dev)} dev images")

# %% [markdown]
# ## The loop
#
# One function trains a fresh 784-100-10 network (ReLU, He initialisation) and returns the loss of every
# step. Each step: take a batch, forward, loss, backward, and let the optimizer change the weights. With
# `batch_size = N` every step sees every image: the seed's full-batch gradient descent. Otherwise the
# training set is shuffled once per epoch and cut into batches.

# %%
def train(optimizer, batch_size, steps, seed=0):
    """A fresh 784-100-10 network trained for `steps` steps; returns (model, the loss of each step's batch)."""
    model = mlp([784, 100, 10], rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)  # shuffles the training set
    losses, batches = [], []
    for _ in range(steps):
        if not batches:  # a new epoch: a new order, cut into batches
            order = rng.permutation(N)
            batches = [order[i : i + batch_size] for i in range(0, N, batch_size)]
        batch = batches.pop(0)
        Z = model.forward(X[batch], train=True)           # (B, 10) logits
        loss, dZ = softmax_cross_entropy(Z, y[batch])     # the loss and dL/dZ = (P - Y) / B
        model.backward(dZ, need_dX=False)                 # fills every layer's grads
        optimizer.step(model.params(), model.grads())     # the only line that changes weights
        losses.append(loss)
    return model, np.array(losses)


def smooth(losses, n=25):
    """The mean of each run of n consecutive losses: mini-batch losses are noisy."""
    n = min(n, len(losses))
    return np.convolve(losses, np.ones(n) / n, mode="valid")


def dev_accuracy(model):
    return evaluate(model, splits.X_dev, splits.y_dev)[1]

# %% [markdown]
# ## Full batch against mini-batches
#
# Full batch: 30 steps of plain gradient descent at learning rate 0.5, each on all 50,000 images. Mini-batch:
# batches of 128, learning rate 0.1, for two epochs, 782 steps. Per step, the full batch's is the better
# step: its gradient is exact. Per image looked at, mini-batches win by far: a batch of 128 estimates the same
# gradient at a 390th of the cost. On the full data, the 30 full-batch steps (30 passes over the data) end at
# a loss of 0.44 and 87.7 % on the dev set; the mini-batches, in 2 passes, at 0.27 and 92.4 %.

# %%
batch_size = 128
full_model, full_losses = train(SGD(lr=0.5), batch_size=N, steps=FULL_BATCH_STEPS)
mini_model, mini_losses = train(SGD(lr=0.1), batch_size=batch_size, steps=EPOCHS * -(-N // batch_size))
print(f"full batch: {len(full_losses)} steps, {len(full_losses)} epochs, loss {full_losses[-1]:.3f}, "
      f"dev accuracy {dev_accuracy(full_model):.2%}")
print(f"mini-batch: {len(mini_losses)} steps, {EPOCHS} epochs, loss {smooth(mini_losses)[-1]:.3f} "
      f"(mean of the last 25 batches), dev accuracy {dev_accuracy(mini_model):.2%}")

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
full_steps = np.arange(1, len(full_losses) + 1)
mini_steps = np.arange(1, len(mini_losses) + 1)
left.plot(full_steps, full_losses, "o-", ms=3, label="full batch, lr 0.5")
left.plot(mini_steps, mini_losses, alpha=0.3, color="C1")
left.plot(mini_steps[-len(smooth(mini_losses)):], smooth(mini_losses), color="C1", label=f"batch {batch_size}, lr 0.1")
left.set(xscale="log", xlabel="steps", ylabel="training loss", title="per step")
right.plot(full_steps * N, full_losses, "o-", ms=3, label="full batch")
right.plot(mini_steps * batch_size, mini_losses, alpha=0.3, color="C1")
right.plot(mini_steps[-len(smooth(mini_losses)):] * batch_size, smooth(mini_losses), color="C1",
           label=f"batch {batch_size}")
right.set(xscale="log", xlabel="images looked at", title="per image (the cost)")
left.legend()
right.legend()
plt.show()

# %% [markdown]
# ## Momentum and Adam
#
# All three below use batches of 128 for two epochs; only the optimizer changes.
#
# - **SGD**: $\theta \leftarrow \theta - \eta\, g$.
# - **Momentum** keeps a running sum of past gradients and steps along it: $v \leftarrow \mu v + g$,
#   $\theta \leftarrow \theta - \eta v$. Noise in $g$ averages out, and a direction the gradients agree on
#   builds up speed, up to $1 / (1 - \mu) = 10$ times the step for $\mu = 0.9$.
# - **Adam** divides each weight's step by a running estimate of its gradient's size, so rarely-used
#   weights (the pixels near the border) and busy ones move at similar speeds.
#
# On the full data, momentum (95.1 % on the dev set after two epochs) and Adam (94.5 %) leave plain SGD
# (90.9 %) far behind at the same number of steps.

# %%
optimizers = {
    "SGD, lr 0.05": SGD(lr=0.05),
    "SGD + momentum 0.9, lr 0.05": SGD(lr=0.05, momentum=0.9),
    "Adam, lr 0.001": Adam(lr=1e-3),
}
steps = EPOCHS * -(-N // batch_size)
plt.figure(figsize=(7, 3.5))
for name, optimizer in optimizers.items():
    model, losses = train(optimizer, batch_size, steps)
    print(f"{name:28} loss {smooth(losses)[-1]:.3f} (last 25 batches)   dev accuracy {dev_accuracy(model):.2%}")
    plt.plot(np.arange(len(smooth(losses))) + 25, smooth(losses), label=name)
plt.yscale("log")
plt.xlabel("step")
plt.ylabel("training loss (mean of 25 batches)")
plt.legend()
plt.show()

# %% [markdown]
# ## The engine's loop: `train.fit`
#
# `numpynn train` runs the same steps through `train.fit`, which adds what a real run needs: a learning-rate
# schedule (a cosine from `lr` down to 0), the dev set scored after every epoch, early stopping, checkpoints.
# `make_config` starts from a preset and changes what you name; every option is a field of `TrainConfig`.

# %%
from numpynn.train import Run, fit, make_config

config = make_config("mlp", hidden=(100,), epochs=3, lr=0.1, label_smoothing=0.0)
run = Run.start(config)
history = fit(run, splits, log=print)
print(f"optimizer: {type(run.optimizer).__name__}, momentum {run.optimizer.momentum}, "
      f"schedule {config.schedule}, last lr {history.epochs[-1]['lr']:.5f}")

# %% [markdown]
# ## Exercises
#
# The numbers below are from the full data (50,000 training images), with the seeds of `train` above.
#
# 1. **Batch size.** Train with `SGD(lr=0.1)` and `batch_size=32`, then `batch_size=512`, for two epochs each
#    (`steps=2 * -(-N // batch_size)`). Dev accuracy: about 95.4 % with 32 (3,126 steps) and 89.4 % with 512
#    (196 steps), against 92.4 % with 128. Bigger batches give cleaner steps, but fewer of them. What would
#    make 512 catch up?
# 2. **More momentum.** `SGD(lr=0.05, momentum=0.99)` ends two epochs at a loss of about 0.39 and 91.7 % on
#    the dev set: better than plain SGD's 90.9 %, worse than momentum 0.9's 95.1 %. The step it builds up,
#    up to $\eta / (1 - \mu) = 5$ times the gradient, overshoots.
# 3. **Adam's learning rate.** `Adam(lr=1e-2)` reaches about 95.8 % here, better than the usual 1e-3's
#    94.5 % over so short a run, and `Adam(lr=1e-4)` only 89.3 %.
# 4. **The schedule.** In `make_config`, add `schedule="constant"`: the dev accuracy after the three epochs
#    is 96.6 %, against 96.5 % with the cosine: over three epochs the schedule makes no difference here.
#    Try it over 20.
