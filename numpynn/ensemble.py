"""An ensemble: several trained networks that answer together, by averaging the probabilities they state.

    P(x) = (1/M) sum_m softmax(z_m(x) / T_m)          z_m: member m's logits, T_m: its own temperature

With test-time shifts (`shift` s >= 1 pixels), every member also reads each image moved s pixels up, down,
left and right (zero-filled where it moved away), and the mean runs over members and views alike:

    P(x) = (1/(M V)) sum_m sum_v softmax(z_m(S_v x) / T_m)      S_v: view v's shift, V = 5 (the image and 4 shifts)

The views read worse than the image alone, a little for a network trained on moved digits (--augment affine),
much for one that was not, but their mistakes fall elsewhere, so their mean can read better: a small committee
of one network. Whether it does is a thing to measure on images the network did not train on (docs/scale.md,
notebook 07). It costs V times the inference, and nothing in the file: the views are one number in the header.

Each member keeps its own calibration, so a member that is over-confident does not outvote the others. The
ensemble's "logits" are log P(x), computed stably from each member's log-softmax with log-sum-exp, so that
softmax(log P) = P: every interface that takes logits (training's evaluate, the report, the web page) gets the
averaged probabilities back. An average is less confident than its members; `numpynn ensemble` may fit the
ensemble a temperature of its own, on images none of its members trained on.

It offers Sequential's inference interface: forward (train=False only), forward_in_batches, probabilities,
predict_proba, predict, outputs_in_batches, activations, layers, n_params; and member_log_probabilities, each
member's view on its own. What a report or the web page shows of the inside of the
network (hidden layers, first-layer weights) is the first member's, with the ensemble's own output as the last
layer; explanations (explain.py: which pixels raised the answer) are the whole ensemble's.

Left out: training (each member is trained alone, by numpynn train or numpynn sweep), weighted votes,
stacking (a learned combiner), members with other inputs or class counts than the first, and views other than
shifts (rotations, scalings).
"""
from __future__ import annotations

import numpy as np

from .checks import require
from .model import Classifier

MAX_SHIFT = 3  # pixels: a view moves an image at most this far (a 28 x 28 digit moved further loses its ink)


def log_softmax(Z):
    """log softmax(Z) = Z - logsumexp(Z), row by row, with the row's max subtracted first.  (N, K)"""
    Z_shift = Z - Z.max(axis=1, keepdims=True)  # (N, K) the largest entry of each row becomes 0
    return Z_shift - np.log(np.exp(Z_shift).sum(axis=1, keepdims=True))  # the sum is >= 1: log is safe


def input_size(model) -> int | None:
    """The number of inputs the first layer that says so reads (Dense D_in, or the pixels Unflatten reshapes)."""
    for layer in model.layers:
        spec = layer.spec()
        if "shape" in spec:
            return int(np.prod(spec["shape"]))
        if "D_in" in spec:
            return int(spec["D_in"])
    return None


def log_mean(log_p):
    """log of the mean over the first two axes (members, views) of exp(log_p), by log-sum-exp: the largest term
    is taken out first, so nothing overflows and a row where every member is certain stays finite.
    (M, V, N, K) -> (N, K)"""
    log_p = log_p.reshape(log_p.shape[0] * log_p.shape[1], *log_p.shape[2:])  # (M V, N, K)
    top = log_p.max(axis=0)  # (N, K)
    return top + np.log(np.exp(log_p - top).sum(axis=0)) - np.log(len(log_p))  # (N, K)


def check_shift(shift, members: int) -> None:
    """OptionError unless `shift` is 0 to MAX_SHIFT pixels and there are two or more members, or one with a
    shift: the rules Ensemble asks of its arguments, for a caller to ask before it loads any member."""
    require(isinstance(shift, int) and not isinstance(shift, bool) and 0 <= shift <= MAX_SHIFT, "shift", shift,
            f"use 0 (no test-time shifts) or 1 to {MAX_SHIFT} pixels, e.g. 1")
    require(members >= 2 or (members == 1 and shift > 0), "members", members,
            "an ensemble needs two or more models, or one model with test-time shifts (a shift of 1 or more)")


def views(shift: int) -> list[tuple[int, int]]:
    """(dy, dx) of each view: the image itself, then moved `shift` pixels up, down, left and right."""
    if shift == 0:
        return [(0, 0)]
    return [(0, 0), (-shift, 0), (shift, 0), (0, -shift), (0, shift)]


def shifted(X, dy: int, dx: int, side: int):
    """Each row of X as a side x side image moved dy rows down and dx columns right (negative: up, left); the
    pixels it moved away from are 0 and what moves past the edge is gone.  (N, side * side)"""
    I = X.reshape(len(X), side, side)  # (N, side, side)
    S = np.zeros_like(I)  # (N, side, side)
    S[:, max(dy, 0):side + min(dy, 0), max(dx, 0):side + min(dx, 0)] = \
        I[:, max(-dy, 0):side + min(-dy, 0), max(-dx, 0):side + min(-dx, 0)]
    return S.reshape(len(X), side * side)


class Ensemble(Classifier):
    """P = (1/(M V)) sum_m sum_v softmax(Z_m(S_v X) / T_m), V = 1 view (the image) unless `shift` >= 1 (then 5).
    Its logits are log P; its own temperature 1 unless fitted. probabilities, predict_proba and predict are
    Classifier's: softmax(log P / T), which for T = 1 is P itself."""

    def __init__(self, members: list, shift: int = 0):
        check_shift(shift, len(members))
        D, K = input_size(members[0]), members[0].layers[-1].D_out
        self.side = int(round(np.sqrt(D or 0)))
        require(shift == 0 or self.side * self.side == D, "shift", shift,
                f"test-time shifts need square images; the members read {D} inputs, so use shift 0")
        for i, member in enumerate(members[1:], start=2):
            require(input_size(member) == D, "members", f"member {i} reads {input_size(member)} inputs",
                    f"every member must read the same inputs as the first ({D})")
            require(member.layers[-1].D_out == K, "members", f"member {i} has {member.layers[-1].D_out} classes",
                    f"every member must tell the same {K} classes apart")
        self.members, self.shift, self.views = list(members), shift, views(shift)
        # Each member applies its own T. Averaging makes P less confident than the members are, so the ensemble
        # may have a temperature of its own too, for log P: 1 unless fitted on images no member trained on.
        self.temperature = 1.0

    @property
    def layers(self) -> list:
        """The first member's layers: what a report or the page draws of the inside."""
        return self.members[0].layers

    def n_params(self) -> int:
        return sum(member.n_params() for member in self.members)

    def view(self, X, dy: int, dx: int):
        """The images moved dy rows down and dx columns right (X itself for the view (0, 0)).  (N, D)"""
        return X if (dy, dx) == (0, 0) else shifted(X, dy, dx, self.side)

    def member_log_probabilities(self, X, batch_size: int = 256, done=None):
        """log softmax(Z_m(S_v X) / T_m) of every member m on every view v of the images: what log P is the
        mean of, kept apart (numpynn ensemble scores each member from the same pass). M V N K float64 numbers
        (forward_in_batches keeps N small). done: None, or called with no arguments after each member's view
        (a progress bar's update).  (M, V, N, K)"""
        log_p = []
        for member in self.members:
            for dy, dx in self.views:
                Z = member.forward_in_batches(self.view(X, dy, dx), batch_size).astype(np.float64)  # (N, K)
                log_p.append(log_softmax(Z / member.temperature))
                if done is not None:
                    done()
        return np.stack(log_p).reshape(len(self.members), len(self.views), *log_p[0].shape)  # (M, V, N, K)

    def log_mean_probabilities(self, X, batch_size: int = 256):
        """log P = logsumexp_{m,v}(log softmax(Z_m(S_v X) / T_m)) - log(M V), row by row, without forming a
        probability.  (N, K)"""
        return log_mean(self.member_log_probabilities(X, batch_size))

    def forward(self, X, train: bool = False):
        """The ensemble's logits, log P, in inference mode (an ensemble is never trained as one).  (N, K)"""
        require(not train, "train", train, "an ensemble only infers; train each member on its own")
        return self.log_mean_probabilities(X, len(X) or 1)

    def forward_in_batches(self, X, batch_size: int = 256):
        """The ensemble's logits, log P, batch by batch: M V batch_size K numbers at a time, not M V N K.  (N, K)"""
        if len(X) <= batch_size:
            return self.log_mean_probabilities(X, batch_size)
        return np.concatenate([self.log_mean_probabilities(X[i:i + batch_size], batch_size)
                               for i in range(0, len(X), batch_size)])


    def outputs_in_batches(self, X, indices, batch_size: int = 256) -> dict:
        """The first member's layer outputs, but the last layer's (index -1 or len(layers) - 1) is the
        ensemble's log P (see Sequential.outputs_in_batches)."""
        last = len(self.layers) - 1
        wanted = {i % len(self.layers) for i in indices}
        outputs = self.members[0].outputs_in_batches(X, sorted(wanted - {last}), batch_size) if wanted - {last} else {}
        if last in wanted:
            outputs[last] = self.forward_in_batches(X, batch_size)
        return outputs

    def activations(self, X) -> list:
        """The first member's layer outputs, the last replaced by the ensemble's log P."""
        outputs = self.members[0].activations(X)
        outputs[-1] = self.forward_in_batches(X)
        return outputs
