"""What the page shows of a network's inside: the output of each hidden layer for one digit, and a hidden
unit's incoming weights.

The hidden layers shown are the ends of the network's blocks: each activation (ReLU, tanh, ...) of a dense
block, as H units; the last of the pool and the activation of a convolution block, as C feature maps (numpynn's
cnn blocks pool first, then apply the activation; either order is shown once, as what the next block reads). A unit's incoming
weights are the column of the Dense layer that feeds it, drawn as 28x28 when that layer reads the picture
itself; a feature map's are its convolution kernel, (C_in, k, k).

Everything is computed by Sequential.activations, the model's own forward pass in inference mode; nothing
here repeats the math.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import explain
from ..shapes import SIDE, D, K  # what the page draws and shows: 28x28 digits, 10 classes
ACTIVATIONS = {"ReLU", "LeakyReLU", "Sigmoid", "Tanh"}
POOLS = {"MaxPool2D", "AvgPool2D", "GlobalAvgPool"}
PASS_THROUGH = {"Dropout", "BatchNorm"}  # between a layer and the one it feeds, changing no shape
PICTURES = {"WidthNorm"}  # preprocessing layers: what they give the next layer is still the 28x28 picture


class Inside:
    def __init__(self, model):
        self.model = model
        self._copy = None  # see _explainer
        layers = model.layers
        names = [type(layer).__name__ for layer in layers]
        try:
            outputs = model.activations(np.zeros((1, D), np.float32))
        except ValueError:
            outputs = None
        if outputs is None or outputs[-1].shape != (1, K):
            raise ValueError(f"this network does not read 28x28 digits into {K} classes; the page needs one that "
                             f"does (numpynn train makes them)")
        self.out_shapes = [o.shape[1:] for o in outputs]  # per example, e.g. (800,) or (32, 14, 14)
        self.shown = []  # indices of the layers whose outputs the page shows
        for i, name in enumerate(names[:-1]):
            following = next((n for n in names[i + 1 :] if n not in PASS_THROUGH), None)
            if (name in POOLS and following not in ACTIVATIONS) or (name in ACTIVATIONS and following not in POOLS):
                self.shown.append(i)
        self.layers = self._describe()  # computed once: every prediction's answer carries it

    def describe(self) -> list[dict]:
        """One entry per shown layer: its index (what GET /api/weights takes), a name, units or maps, shape."""
        return [dict(layer) for layer in self.layers]

    def _describe(self) -> list[dict]:
        described = []
        for n, i in enumerate(self.shown, start=1):
            shape = self.out_shapes[i]
            kind = "maps" if len(shape) == 3 else "units"
            size = f"{shape[0]} maps of {shape[1]}x{shape[2]}" if kind == "maps" else f"{shape[0]} units"
            name = type(self.model.layers[i]).__name__
            described.append({"index": i, "name": f"hidden {n}: {name}, {size}", "kind": kind,
                              "shape": list(shape), "weights": self._feeder(i) is not None})
        return described

    def run(self, x):
        """x: (784,) float32, a prepared digit. Returns P (10,) and the shown layers' outputs, one per entry of
        describe(), each (H,) or (C, h, w)."""
        outputs = self.model.activations(x.reshape(1, D))  # one array per layer, each (1, ...)
        P = self.model.probabilities(outputs[-1])[0]        # (10,) softmax(logits / T)
        return P, [outputs[i][0] for i in self.shown]

    def why(self, x, k: int) -> np.ndarray:
        """Gradient x input for class k on the prepared digit x (784,): which pixels raised (positive) or lowered
        (negative) its score (numpynn.explain.saliency).  (784,)"""
        return explain.saliency(self._explainer(), x.reshape(1, D), k)[0]

    def toward(self, x, t: int) -> np.ndarray:
        """d log p_t / dx on x (784,): where ink would make the network more sure of class t.  (784,)"""
        return explain.toward(self._explainer(), x.reshape(1, D), t)[0]

    def _explainer(self):
        """A copy of the model for explanations, made on first use: the backward pass keeps caches in the layers,
        and the model that answers predictions is never touched by it."""
        if self._copy is None:
            self._copy = copy.deepcopy(self.model)
        return self._copy

    def weights(self, layer: int, unit: int) -> tuple[np.ndarray, list[int]]:
        """The incoming weights of unit `unit` of shown layer `layer`, and the shape to draw them in.
        ValueError (one line) for a layer that is not shown or a unit out of range."""
        if layer not in self.shown:
            raise ValueError(f"layer {layer} is not a hidden layer of this model: use one of "
                             f"{', '.join(map(str, self.shown))}")
        size = self.out_shapes[layer][0]
        if not 0 <= unit < size:
            raise ValueError(f"unit {unit} is out of range: layer {layer} has {size} (0 to {size - 1})")
        d = self._feeder(layer)
        if d is None:
            raise ValueError(f"layer {layer} has no incoming weights of its own")
        W = self.model.layers[d].params["W"]
        if W.ndim == 4:                                      # Conv2D: (C_out, C_in, k, k)
            return W[unit], list(W.shape[1:])
        column = W[:, unit]                                  # Dense: (D_in,)
        if d == 0 or type(self.model.layers[d - 1]).__name__ in PICTURES:  # it reads the picture itself
            return column, [SIDE, SIDE]
        before = d - 1                                       # what Dense layer d reads, per example
        if type(self.model.layers[before]).__name__ == "Flatten":
            return column, list(self.out_shapes[before - 1])  # the maps that were flattened
        return column, [len(column)]

    def _feeder(self, i: int):
        """The index of the nearest layer with weights at or before i (the one whose outputs unit i reads)."""
        for d in range(i, -1, -1):
            if "W" in self.model.layers[d].params:
                return d
        return None
