"""Your own digits as extra training data: the IDX pair `numpynn examples export` writes, read back, split into
a part to train on and a held-out part, and the accuracy on the held-out part.

The held-out share (HELD_OUT_SHARE, at least one example once there are two) is drawn by the run's seed, so the
same examples and the same seed always hold out the same digits. The MNIST dev and test sets stay as they are:
the held-out examples are the only measure of how well a model reads *your* handwriting, and they are never
trained on. The training part is added to MNIST's training split REPEAT times: a few dozen examples among
55,000 digits, added once, change nothing measurable (docs/web.md has the numbers); repeated, they are seen
as often as a small class, and a short fine-tune from a model that already reads MNIST lets them count.

Left out: weighting your examples in the loss (repeating them is the same in expectation, and needs no change
to the loop), a separate dev split of them (too few to spare), and any augmentation specific to them
(config.augment applies to every training image alike).
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from .atomic import write_atomically
from .checks import require
from .idx import DataError, check_pair, idx_bytes, read_idx

IMAGES_FILE = "train-images-idx3-ubyte"  # MNIST's names, uncompressed
LABELS_FILE = "train-labels-idx1-ubyte"
HELD_OUT_SHARE = 0.2
# Times each of your training examples is added. Measured (docs/web.md): 183 drawn digits, fine-tuning a
# 784-64-10 model for one epoch, 3 seeds: added once, the held-out accuracy moved by -1, 0 and 0 of 37 digits;
# added 20 times, by 0, +1 and +1, with the test accuracy unchanged.
REPEAT = 20
MAX_REPEAT = 1000
# Training images your examples may add, repeats included: ten times MNIST's 60,000, 1.9 GB as float32. The
# copies are made in memory (added_to), so examples x repeat is checked against this before any is made.
MAX_ADDED = 600_000


def export(folder, images: np.ndarray, labels: np.ndarray) -> list[pathlib.Path]:
    """Write images uint8 (N, 28, 28) and labels uint8 (N,) as IDX files into `folder`, each whole or not at
    all (numpynn.atomic). Returns the two paths."""
    folder = pathlib.Path(folder)
    check_pair(images, labels, IMAGES_FILE, LABELS_FILE)
    return [write_atomically(folder / IMAGES_FILE, idx_bytes(images)),
            write_atomically(folder / LABELS_FILE, idx_bytes(labels))]


def read(folder) -> tuple[np.ndarray, np.ndarray]:
    """The IDX pair in `folder` (as export wrote it): images uint8 (N, 28, 28), labels uint8 (N,).
    DataError naming the file when one is missing or not an MNIST-style pair."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; give the folder `numpynn examples export DIR` wrote")
    paths = [folder / IMAGES_FILE, folder / LABELS_FILE]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: missing; give the folder `numpynn examples export DIR` wrote")
    images, labels = (read_idx(path) for path in paths)
    check_pair(images, labels, *paths)
    if len(labels) == 0:
        raise DataError(f"{folder}: no examples in it; store some from the page's Draw tab first")
    return images, labels


def features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1], as MNIST's images are fed to the network."""
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)  # (N, 784)


def split_held_out(n: int, seed: int, share: float = HELD_OUT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out) of n examples: round(share * n) held out, at least 1 once n >= 2, drawn by
    `seed` (its own stream, so it echoes neither the MNIST split nor the weights)."""
    held = 0 if n < 2 else max(1, round(share * n))
    order = np.random.default_rng([seed, 4]).permutation(n)  # (n,)
    return np.sort(order[held:]), np.sort(order[:held])


@dataclasses.dataclass(frozen=True)
class Extra:
    """Your examples, split: X float32 (N, 784) in [0, 1], y int64 (N,)."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_held: np.ndarray
    y_held: np.ndarray

    @classmethod
    def of(cls, images: np.ndarray, labels: np.ndarray, seed: int) -> "Extra":
        train, held = split_held_out(len(labels), seed)
        X, y = features(images), labels.astype(np.int64)
        return cls(X[train], y[train], X[held], y[held])

    def most_repeats(self) -> int:
        """The largest repeat these examples may have: MAX_REPEAT, or fewer where MAX_ADDED would be passed."""
        return max(1, min(MAX_REPEAT, MAX_ADDED // max(1, len(self.y_train))))

    def check_repeat(self, repeat) -> None:
        """OptionError (a ValueError) named "repeat" unless `repeat` is a whole number from 1 to most_repeats():
        callers check it before the data loads, and name it as their interface does."""
        most = self.most_repeats()
        require(isinstance(repeat, int) and not isinstance(repeat, bool) and 1 <= repeat <= most, "repeat", repeat,
                f"use a whole number from 1 to {most}" + (f" ({len(self.y_train):,} examples; at most {MAX_ADDED:,} "
                "images are added in all)" if most < MAX_REPEAT else ""))

    def added_to(self, splits, repeat: int = REPEAT):
        """The splits with these training examples, `repeat` times each, after MNIST's own (fit shuffles them
        in every epoch)."""
        self.check_repeat(repeat)
        return dataclasses.replace(splits, X_train=np.concatenate([splits.X_train, *[self.X_train] * repeat]),
                                   y_train=np.concatenate([splits.y_train, *[self.y_train] * repeat]))

    def held_out_accuracy(self, model) -> float | None:
        """The share of the held-out examples the model reads right (None when none are held out)."""
        if len(self.y_held) == 0:
            return None
        return float(np.mean(model.predict(self.X_held) == self.y_held))

    def summary(self) -> dict:
        return {"train": len(self.y_train), "held_out": len(self.y_held)}
