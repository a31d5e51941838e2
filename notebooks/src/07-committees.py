# %% [markdown]
# # 7. Committees: why many networks read better than one
#
# Train the same network five times with five seeds and each gets a slightly different set of test digits
# wrong. Let them answer together, by averaging the probabilities they state,
#
# $$P(x) = \frac{1}{M} \sum_{m=1}^{M} \mathrm{softmax}\big(z_m(x) / T_m\big),$$
#
# and the committee is right more often than any one of them. This notebook measures that with
# `numpynn.ensemble.Ensemble` (what `numpynn ensemble` writes into a file), then asks *why* it works, when it
# stops working, and what one network gains from reading each digit five times, moved a pixel each way
# (test-time shifts). [docs/scale.md](../docs/scale.md) has the command and the full-size CNN committees.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from numpynn.calibrate import calibrate
from numpynn.data import load_mnist
from numpynn.ensemble import Ensemble, shifted
from numpynn.train import Run, fit, make_config

SMALL = os.environ.get("NUMPYNN_SMALL", "") not in ("", "0")  # 1: a slice of MNIST, few steps (for CI)
splits = load_mnist(seed=0, progress=False)
if SMALL:
    splits = type(splits)(splits.X_train[:2000], splits.y_train[:2000], splits.X_dev[:500],
                          splits.y_dev[:500], splits.X_test[:500], splits.y_test[:500])
EPOCHS = 1 if SMALL else 3  # passes over the training set for every network below
M = 5  # members of the committee
X, y = splits.X_test, splits.y_test
print(f"{len(splits.y_train)} training images, {len(y)} test images, {EPOCHS} epochs per network")


def train(seed, **options):
    """A fresh 784-256-10 network with the mlp preset's recipe (SGD with momentum, a cosine schedule, label
    smoothing 0.1), its weights and shuffling drawn from `seed`, changed by `options`; then its temperature
    is fitted on the dev set, as `numpynn train` does, so its probabilities mean what they say."""
    run = Run.start(make_config("mlp", **{"hidden": (256,), "epochs": EPOCHS, "seed": seed, **options}))
    fit(run, splits)
    calibrate(run.model, splits.X_dev, splits.y_dev)
    return run.model


def accuracy(P):
    """The share of test images whose most probable class is the right one, in %."""
    return 100 * float((P.argmax(axis=1) == y).mean())

# %% [markdown]
# ## Five networks, and the five together
#
# The members differ only in their seed: the initial weights and the order of the mini-batches. They train
# on the same images, for the same number of epochs.

# %%
members = [train(seed) for seed in range(M)]
P_members = np.stack([m.predict_proba(X) for m in members])  # (M, N, 10) each member's probabilities
for seed, P in enumerate(P_members):
    print(f"member {seed}: {accuracy(P):.2f} %")
committee = Ensemble(members)
P_committee = committee.predict_proba(X)  # (N, 10) the mean of the members' probabilities
print(f"mean of the members' accuracies: {np.mean([accuracy(P) for P in P_members]):.2f} %")
print(f"the committee: {accuracy(P_committee):.2f} %")

# %% [markdown]
# On the full data the members read 97.32 to 97.67 % of the test digits right (97.50 % on average) and the
# committee 97.68 %: 18 fewer errors in 10,000 than the average member, level with the best one. Less than
# one might hope. The next cell shows why.
#
# ## Why it works, and why not more: where the members are wrong
#
# If each member were wrong on a random 2.5 % of the images, independently of the others, three or more of
# five would be wrong on the same image with probability $\binom{5}{3} p^3 (1-p)^2 + \dots \approx 0.015\,\%$:
# one or two images in 10,000. They are not independent: some digits are hard for every network. Count, for
# each test image, how many of the five members get it wrong:

# %%
wrong = P_members.argmax(axis=2) != y  # (M, N) member m is wrong on image n
k = wrong.sum(axis=0)  # (N,) how many members are wrong on each image
committee_wrong = P_committee.argmax(axis=1) != y  # (N,)
print("members wrong | images | the committee wrong on")
for j in range(1, M + 1):
    print(f"{j:13d} | {int((k == j).sum()):6d} | {int((committee_wrong & (k == j)).sum()):6d}")
print(f"the committee is wrong on {int(committee_wrong.sum())} images; "
      f"{int((committee_wrong & (k == 0)).sum())} of them every member reads right")

fig, ax = plt.subplots(figsize=(6, 2.6))
counts = [int((k == j).sum()) for j in range(1, M + 1)]
still = [int((committee_wrong & (k == j)).sum()) for j in range(1, M + 1)]
ax.bar(range(1, M + 1), counts, color="#9ecae1", label="images")
ax.bar(range(1, M + 1), still, color="#de2d26", label="the committee is wrong")
ax.set_xlabel("members wrong on the image")
ax.set_ylabel("test images")
ax.legend(frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the bars from the left. Where one member is wrong, the others outvote it: on the full data the
# committee is right on all 96 such images, and on 42 of the 53 where two are wrong. Where most of them are
# wrong, it is wrong too: averaging cannot fix a mistake the members share, and 148 of the 385 images that
# any member gets wrong are wrong for all five. That shared part is why a committee of copies of one recipe
# stops improving after a few members, and why committees are built from members that differ: other
# architectures, other inputs, other training images.
#
# ## The loss can only fall
#
# Accuracy has no such guarantee: a committee can be wrong where some of its members are right, and right
# where all of them are wrong (exercise 2). The loss has one. On an image of class $y$ the committee's
# cross-entropy is $-\log P_y = -\log \frac{1}{M}\sum_m p_{m,y}$, and $-\log$ is convex, so by Jensen's
# inequality
#
# $$-\log \frac{1}{M}\sum_m p_{m,y} \;\le\; \frac{1}{M}\sum_m \big(-\log p_{m,y}\big),$$
#
# image by image: the committee's loss is never above the members' mean loss, and the gap is larger the more
# the members disagree about $p_{m,y}$ (when they all state the same probability, the two sides are equal).

# %%
member_loss = -np.log(P_members[:, np.arange(len(y)), y])  # (M, N) each member's loss on each image
committee_loss = -np.log(P_committee[np.arange(len(y)), y])  # (N,)
print(f"members' mean loss {member_loss.mean():.4f}, the committee's {committee_loss.mean():.4f}")
above = committee_loss - member_loss.mean(axis=0)  # (N,) <= 0, up to the float32 rounding of P_members
print(f"largest excess over the members' mean, on any image: {above.max():.1e}")

# %% [markdown]
# On the full data the members' mean loss is 0.0805 and the committee's 0.0745; on no image is the
# committee's loss above the members' mean by more than the rounding of float32 probabilities (1.2e-7).
#
# ## The mean of probabilities, or a vote
#
# A vote counts each member's answer once; the mean of probabilities lets a sure member outweigh an unsure
# one. With calibrated members (each `train` above fits its temperature $T_m$ on the dev set, as
# `numpynn train` does) the stated probabilities mean what they say:

# %%
answers = P_members.argmax(axis=2)  # (M, N)
votes = np.stack([(answers == c).sum(axis=0) for c in range(10)], axis=1)  # (N, 10) votes per class
# ties go to the class the mean of probabilities prefers among the tied ones
vote = np.where(votes == votes.max(axis=1, keepdims=True), P_committee, -1).argmax(axis=1)  # (N,)
print(f"majority vote: {100 * float((vote == y).mean()):.2f} %   mean of probabilities: {accuracy(P_committee):.2f} %")

sizes = range(1, M + 1)
grown = [accuracy(Ensemble(members[:n]).predict_proba(X)) if n > 1 else accuracy(P_members[0]) for n in sizes]
print("members: " + ", ".join(f"{n}: {a:.2f} %" for n, a in zip(sizes, grown)))
fig, ax = plt.subplots(figsize=(5, 2.4))
ax.plot(sizes, grown, "o-")
ax.set_xticks(list(sizes))
ax.set_xlabel("members (seeds 0 to n - 1)")
ax.set_ylabel("test accuracy, %")
plt.tight_layout()
plt.show()

# %% [markdown]
# On the full data the second member brings most of the gain (97.32 to 97.57 %); after three, each adds
# little or nothing (97.64, 97.61, 97.68 %) for the same cost. Here the two rules also agree: majority vote
# and mean of probabilities both read 97.68 %. They part where the members are unsure, which five copies of
# one recipe rarely are at once.
#
# ## One network, five views: test-time shifts
#
# A committee needs not be of networks. Let one network read each digit five times, as it is and moved one
# pixel up, down, left and right, and average those five answers (`Ensemble(members, shift=1)`,
# `numpynn ensemble --shift 1`):
#
# $$P(x) = \frac{1}{5} \sum_{v} \mathrm{softmax}\big(z(S_v x) / T\big),$$
#
# where $S_v$ moves the picture (the pixels it moves away from become black). Whether that helps depends on
# what the network learned. The networks above never saw a moved digit:

# %%
VIEWS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]  # (rows down, columns right): the image, up, down, left, right


def views_of(model):
    """The network's test accuracy on each view alone, and on the mean of the five."""
    P = [model.predict_proba(shifted(X, dy, dx, 28)) for dy, dx in VIEWS]
    return [accuracy(p) for p in P], accuracy(Ensemble([model], shift=1).predict_proba(X))


alone, together = views_of(members[0])
print("plain member 0: views " + ", ".join(f"{a:.2f}" for a in alone) + f" %; the five together {together:.2f} %")

# %% [markdown]
# A dense network has one weight per pixel: a digit moved by one pixel lights other weights. On the full
# data each moved view reads much worse than the image itself (93.70 to 95.00 % against 97.32 %), and yet
# the five together read 97.59 %, better than the image alone: the moved views make other mistakes, and where
# the image is read wrongly without much confidence, the views can outvote it.
#
# Train the same network on digits that are moved, turned and stretched at random in every mini-batch
# (`augment="affine"`, [docs/training.md](../docs/training.md)), and it learns to read moved digits:

# %%
augmented = train(0, augment="affine")
alone, together = views_of(augmented)
print("augmented: views " + ", ".join(f"{a:.2f}" for a in alone) + f" %; the five together {together:.2f} %")

# %% [markdown]
# On the full data the augmented network reads the image itself better (97.90 % against 97.32 %) and every
# view nearly as well (97.19 to 97.66 %), but the five together read 97.90 %: no gain at all this time. So
# test-time shifts are a thing to measure, on images the network did not train on, not a rule. For the CNNs
# of [docs/scale.md](../docs/scale.md), measured on their dev sets, they removed about 2 errors in 10,000 per
# network. They cost five times the reading, and nothing in the model file but one number.
#
# ## Exercises
#
# The results to expect are from full-data runs (3 epochs, seeds as stated); with `NUMPYNN_SMALL=1` the
# numbers differ.
#
# 1. **Members of other sizes.** Build the committee from `train(0, hidden=(h,))` for h in 64, 128, 256,
#    512 and 1024 instead of five seeds of one size. Expect members of 96.65 to 97.77 % and a committee of
#    97.62 %: below the five seeds' 97.68 % and below its own best member (512 units). Members that differ
#    only help if none is much weaker than the rest.
# 2. **Right where every member is wrong.** Count the test images that all five members get wrong but the
#    committee reads right (`committee_wrong`, `k`). It can happen: if one member says 3, another 5, and all
#    give the true 8 their second-highest probability, the mean can put 8 first. Expect none of the 148 here:
#    these five agree too well.
# 3. **Farther shifts.** `Ensemble([augmented], shift=2)`: moved two pixels, each view reads worse. Expect
#    97.76 %, below the image alone and the one-pixel views (97.90 %).
# 4. **An overconfident member.** Set `members[0].temperature = 0.1` (its probabilities become nearly 0 or 1;
#    the fitted temperatures are about 0.47) and rebuild the committee. Expect it to fall from 97.68 to
#    97.65 %, a step towards member 0's 97.32 %: a loud member outvotes the others where they are unsure,
#    which is why `numpynn ensemble` keeps each member at its own calibrated temperature.
