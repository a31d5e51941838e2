# %% [markdown]
# # 2. Backpropagation by hand, then checked
#
# A network small enough to follow every number: 2 images of 3 pixels, a Dense layer to 2 hidden units, a
# ReLU, a Dense layer to 2 classes, softmax and cross-entropy. We compute its forward pass and its gradients
# by hand, with nothing but the chain rule, and compare with what numpynn's layers compute. Then we check
# every layer's backward pass the way numpynn's tests do: against finite differences.
#
# numpynn's engine is batch-first: one image per **row**, $Z = XW + b$ with $W$ of shape
# (D_in, D_out). [docs/walkthrough.md §2](../docs/walkthrough.md#2-from-columns-to-rows-the-layer-contract)
# maps the seed's column equations onto these.

# %%
import os

import numpy as np

from numpynn.gradcheck import check_layer, check_loss, numerical_gradient, relative_error
from numpynn.layers import Dense, ReLU
from numpynn.losses import softmax_cross_entropy
from numpynn.model import Sequential

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # nothing here needs the data: the same either way
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## The network, with numbers we choose
#
# Float64 throughout: gradient checks need it (in float32, rounding alone is bigger than the errors we look
# for).

# %%
X = np.array([[1.0, 0.0, 2.0],
              [0.0, 1.0, -1.0]])          # (N, D) = (2, 3): two images of three pixels
y = np.array([0, 1])                      # (N,): their classes
W1 = np.array([[0.5, -0.3],
               [-0.2, 0.8],
               [0.3, 0.4]])               # (3, 2)
b1 = np.array([0.1, -0.2])                # (2,)
W2 = np.array([[1.0, -1.0],
               [0.5, 0.7]])               # (2, 2)
b2 = np.array([0.0, 0.1])                 # (2,)

# %% [markdown]
# ## Forward, by hand
#
# $Z_1 = XW_1 + b_1$, $A_1 = \max(0, Z_1)$, $Z_2 = A_1 W_2 + b_2$, $P = \mathrm{softmax}(Z_2)$ row by row,
# $L = -\frac1N \sum_i \log P_{i, y_i}$.

# %%
Z1 = X @ W1 + b1
A1 = np.maximum(Z1, 0)
Z2 = A1 @ W2 + b2
P = np.exp(Z2) / np.exp(Z2).sum(axis=1, keepdims=True)
L = -np.mean(np.log(P[np.arange(2), y]))
print("Z1 =\n", Z1, "\nA1 =\n", A1, "\nZ2 =\n", Z2, "\nP =\n", P, "\nL =", round(L, 6))

# %% [markdown]
# The second image's first hidden unit has $Z_1 = -0.4$: the ReLU turns it off, and (as we'll see) no
# gradient flows back through it.
#
# ## Backward, by hand
#
# Each line is the chain rule applied to one line of the forward pass, last line first:
#
# - softmax and cross-entropy together: $dZ_2 = (P - Y) / N$, with $Y$ the one-hot labels
#   (the $1/N$ because the loss is a mean);
# - $Z_2 = A_1 W_2 + b_2$ gives $dW_2 = A_1^\top dZ_2$, $db_2 = \sum_i dZ_2$ (over the rows), $dA_1 = dZ_2 W_2^\top$;
# - the ReLU lets the gradient through where $Z_1 > 0$: $dZ_1 = dA_1 \odot [Z_1 > 0]$;
# - $Z_1 = XW_1 + b_1$ gives $dW_1 = X^\top dZ_1$, $db_1 = \sum_i dZ_1$.

# %%
Y = np.eye(2)[y]                  # (N, K) one-hot
dZ2 = (P - Y) / 2                 # (N, K)
dW2 = A1.T @ dZ2                  # (H, K)
db2 = dZ2.sum(axis=0)             # (K,)
dA1 = dZ2 @ W2.T                  # (N, H)
dZ1 = dA1 * (Z1 > 0)              # (N, H)
dW1 = X.T @ dZ1                   # (D, H)
db1 = dZ1.sum(axis=0)             # (H,)
print("dZ2 =\n", dZ2, "\ndW2 =\n", dW2, "\ndZ1 =\n", dZ1, "\ndW1 =\n", dW1, "\ndb1 =", db1)

# %% [markdown]
# Look at `dZ1`: the second row's first entry is 0, the unit the ReLU switched off. And `dZ2`'s rows each sum
# to 0: pushing all logits up together changes no probability.
#
# ## The same network in numpynn
#
# `Dense`, `ReLU` and `softmax_cross_entropy` are the engine's layers and loss; `Sequential` chains them.
# Backward fills each layer's `grads` and returns $dX$; it changes no weight.

# %%
dense1, dense2 = Dense(3, 2, dtype=np.float64), Dense(2, 2, dtype=np.float64)
dense1.params["W"][...], dense1.params["b"][...] = W1, b1
dense2.params["W"][...], dense2.params["b"][...] = W2, b2
model = Sequential([dense1, ReLU(), dense2])

Z = model.forward(X, train=True)
loss, dZ = softmax_cross_entropy(Z, y, K=2)
dX = model.backward(dZ)
print(f"loss: numpynn {loss:.6f}, by hand {L:.6f}")
for name, ours, theirs in [("W1", dW1, dense1.grads["W"]), ("b1", db1, dense1.grads["b"]),
                           ("W2", dW2, dense2.grads["W"]), ("b2", db2, dense2.grads["b"])]:
    print(f"d{name}: largest difference {np.abs(ours - theirs).max():.1e}")

# %% [markdown]
# ## Is the backward pass right? Finite differences
#
# A derivative is a slope: nudge one number by a tiny $\varepsilon$ both ways and see how the loss moves,
# $\partial L / \partial w \approx (L(w + \varepsilon) - L(w - \varepsilon)) / 2\varepsilon$.
# `numerical_gradient` does that for every entry of an array, in place, and puts it back.

# %%
def loss_of_model():
    return softmax_cross_entropy(model.forward(X, train=True), y, K=2)[0]

numeric_dW1 = numerical_gradient(loss_of_model, dense1.params["W"])
print("dW1 by finite differences:\n", numeric_dW1)
print("relative error against the hand-written backward:", f"{relative_error(dW1, numeric_dW1):.1e}")

# %% [markdown]
# ## Every layer, checked the same way
#
# `check_layer` checks one layer at a time, with the trick from llm.c and CS231n: draw a random $dY$ and take
# $f(X) = \sum(\mathrm{forward}(X) \odot dY)$, whose gradient with respect to the output is exactly $dY$. Then
# backward's $dX$ and every entry of `grads` must match the finite differences of $f$. A correct backward
# agrees to about $10^{-9}$ or better; a wrong one is off by far more.

# %%
from numpynn.conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool, MaxPool2D
from numpynn.layers import BatchNorm, Dropout, LeakyReLU, Sigmoid, Tanh

rng = np.random.default_rng(0)
rows = rng.standard_normal((4, 5))              # (N, D): input for the dense layers
images = rng.standard_normal((2, 3, 6, 6))      # (N, C, H, W): input for the image layers
layers = [
    (Dense(5, 3, rng=rng, dtype=np.float64), rows),
    (ReLU(), rows), (LeakyReLU(0.1), rows), (Sigmoid(), rows), (Tanh(), rows),
    (Dropout(0.5, seed=1), rows), (BatchNorm(5, dtype=np.float64), rows),
    (Conv2D(3, 4, 3, padding=1, rng=rng, dtype=np.float64), images),
    (MaxPool2D(2), images), (AvgPool2D(2), images), (Flatten(), images), (GlobalAvgPool(), images),
]
for layer, inputs in layers:
    errors = check_layer(layer, inputs, rng=rng)
    print(f"{type(layer).__name__:14}", "  ".join(f"{name}: {error:.1e}" for name, error in errors.items()))
print(f"{'loss':14} Z: {check_loss(rng.standard_normal((4, 10)), np.array([3, 1, 4, 1]))['Z']:.1e}")

# %% [markdown]
# ## A bug, caught
#
# Here is a Dense layer with a classic mistake: the bias gradient is the mean over the batch instead of the
# sum. (The $1/N$ is already inside $dZ$, from the loss; dividing again makes the bias learn $N$ times too
# slowly.) Training would still run, and the loss would still fall. The check is what notices.

# %%
class DenseWithBug(Dense):
    def backward(self, dZ):
        dX = super().backward(dZ)
        self.grads["b"] = dZ.mean(axis=0)  # wrong: should be dZ.sum(axis=0)
        return dX

print(check_layer(DenseWithBug(5, 3, rng=rng, dtype=np.float64), rows, rng=rng))

# %% [markdown]
# ## Exercises
#
# 1. **Work one number by hand.** Take $dW_2[0, 0] = \sum_i A_1[i, 0]\, dZ_2[i, 0]$ from the printed arrays
#    and check it against `dW2`. Only the first image contributes: why?
# 2. **Break the ReLU.** Write `class BadReLU(ReLU)` whose `backward(self, dA)` returns `dA` unchanged
#    (forgetting the mask) and check it with `check_layer(BadReLU(), rows, rng=np.random.default_rng(0))`:
#    the error on X comes out at 1.0, where the real ReLU gives 2e-10.
# 3. **float32 is not enough.** Build `Dense(5, 3, rng=np.random.default_rng(0))` without `dtype=np.float64`
#    and call `check_layer` on it: it refuses, and says why. Then rebuild this notebook's little network in
#    float32 (`Dense(3, 2, dtype=np.float32)`, and `X.astype(np.float32)`) and compare its `dW1` with
#    `numerical_gradient` at `eps=1e-6`: the relative error is about 0.12, from rounding alone (2e-10 in
#    float64).
# 4. **The step size.** In `numerical_gradient(loss_of_model, dense1.params["W"], eps=...)` try other steps.
#    Against `dW1`, float64 gives a relative error of about 2e-4 at `eps=1e-2` (the curve is not a straight
#    line over so long a step), 2e-8 at `1e-4`, 2e-10 at `1e-6`, then 2e-8 at `1e-8` and 1.5e-6 at `1e-10`
#    (rounding: the two losses differ in fewer and fewer digits).
