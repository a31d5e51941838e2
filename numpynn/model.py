"""A model: a chain of layers, run in order forward and in reverse backward.

Around that, what a trainer and a model file need from it: the parameters and gradients as matching lists,
inference batch by batch, a state to save and load (plain data), and a description (spec) to rebuild it from.

    model = mlp([784, 800, 10], rng=np.random.default_rng(0))
    Z = model.forward(X)                          # (N, K) logits
    loss, dZ = softmax_cross_entropy(Z, y)
    model.backward(dZ)                            # fills every layer's grads
    opt.step(model.params(), model.grads())       # the optimizer changes the weights

Left out on purpose: branching graphs (only a chain of layers), reading and writing files (serialize.py does
that with state_dict and spec), and the training loop (train.py).
"""
from __future__ import annotations

import numpy as np

from .checks import require
from .conv import CONV_LAYERS
from .layers import LAYERS, BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from .losses import softmax
from .shapes import D, K
from .widthnorm import PREPROCESSING_LAYERS

# every layer from_spec can rebuild; numpynn.layers.LAYERS stays dense-only
LAYERS = {**LAYERS, **CONV_LAYERS, **PREPROCESSING_LAYERS}


class Classifier:
    """What every model that answers offers, from its logits and its temperature T: the probabilities and the
    predicted class. A subclass gives forward_in_batches(X, batch_size) and a temperature."""

    temperature = 1.0

    def probabilities(self, Z):
        """P = softmax(Z / T) for logits Z (N, K) and the model's temperature T.  (N, K)"""
        return softmax(Z / self.temperature)

    def predict_proba(self, X, batch_size: int = 256):
        """P = softmax(forward(X, train=False) / T), batch by batch so memory stays bounded.  (N, K)"""
        return self.probabilities(self.forward_in_batches(X, batch_size))

    def predict(self, X, batch_size: int = 256):
        """The most probable class of each image.  (N,)"""
        return self.predict_proba(X, batch_size).argmax(axis=1)


class Sequential(Classifier):
    """Y = layer_L(... layer_2(layer_1(X))).   Backward: dX = backward_1(backward_2(... backward_L(dY)))"""

    def __init__(self, layers: list):
        self.layers = list(layers)
        # The softmax's temperature T: probabilities are softmax(Z / T). Training leaves it at 1; calibration
        # (numpynn.calibrate) fits it on held-out images afterwards. It never changes which class wins.
        self.temperature = 1.0

    def forward(self, X, train: bool = True):
        for layer in self.layers:
            X = layer.forward(X, train)
        return X

    def activations(self, X) -> list[np.ndarray]:
        """Every layer's output in inference mode, in order: [layer_1(X), layer_2(layer_1(X)), ...]; the last is
        the logits. What a report or a web page shows of the inside of the network."""
        outputs = []
        for layer in self.layers:
            X = layer.forward(X, train=False)
            outputs.append(X)
        return outputs

    def backward(self, dY, need_dX=True):
        """Fills every layer's grads. Returns dL/dX, or None with need_dX=False: training has no use for
        the input's gradient, so the first layer with weights is told it need not compute its dX (layer.need_dX),
        for 784-800-10 a third of the step's arithmetic, and the layers before it (reshapes) are not run."""
        first = next((i for i, layer in enumerate(self.layers) if layer.params), len(self.layers))
        layers = self.layers if need_dX else self.layers[first:]
        for i, layer in enumerate(layers):
            layer.need_dX = need_dX or i > 0  # set on every call, so no earlier call's choice lingers
        for layer in reversed(layers):
            dY = layer.backward(dY)
        return dY if need_dX else None  # dL/dX

    def params(self) -> list[np.ndarray]:
        """Every trainable array, layer by layer, in the order of param_names()."""
        return [theta for layer in self.layers for theta in layer.params.values()]

    def grads(self) -> list[np.ndarray]:
        """dL/dparam from the last backward, in the order of params()."""
        if any(layer.params.keys() != layer.grads.keys() for layer in self.layers):
            raise RuntimeError("no gradients yet: call backward after a forward with train=True")
        return [layer.grads[name] for layer in self.layers for name in layer.params]

    def param_names(self) -> list[str]:
        """'<layer index>.<name>', e.g. ['0.W', '0.b', '1.gamma', ...], in the order of params()."""
        return [f"{i}.{name}" for i, layer in enumerate(self.layers) for name in layer.params]

    def n_params(self) -> int:
        return sum(theta.size for theta in self.params())

    def state_dict(self) -> dict:
        """Copies of every param and buffer, named like param_names(), and each Dropout generator's state as
        '<i>.rng': the dict of plain ints and strings that rng.bit_generator.state gives. All plain data: a
        model file stores the generator states as JSON text (serialize.py), this module knows no format."""
        state = {}
        for i, layer in enumerate(self.layers):
            for name, value in {**layer.params, **layer.buffers}.items():
                state[f"{i}.{name}"] = value.copy()
            if hasattr(layer, "rng"):
                state[f"{i}.rng"] = layer.rng.bit_generator.state  # a fresh dict on every call
        return state

    def load_state_dict(self, state) -> None:
        """Load a state_dict (or what serialize.load read of one) after checking every name and shape and each
        generator state; refuses a mismatch before changing anything. Arrays are copied into the existing
        ones, so an optimizer holding them keeps working, and are cast to the model's dtype."""
        own = self.state_shapes()
        missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or extra:
            raise ValueError(f"state does not fit this model: missing entries {missing}, unexpected entries {extra}")
        for name, shape in own.items():
            if name.endswith(".rng"):
                self._check_generator_state(name, state[name])
            elif np.shape(state[name]) != shape:
                raise ValueError(f"state entry {name!r} has shape {np.shape(state[name])}; this model needs {shape}")
        for i, layer in enumerate(self.layers):
            for name, value in {**layer.params, **layer.buffers}.items():
                value[...] = state[f"{i}.{name}"]
            if hasattr(layer, "rng"):
                layer.rng.bit_generator.state = state[f"{i}.rng"]

    def _check_generator_state(self, name: str, value) -> None:
        """A ValueError unless `value` is a state that layer name's generator takes (check_generator_state)."""
        layer = self.layers[int(name.split(".")[0])]
        check_generator_state(f"state entry {name!r}", value, type(layer.rng.bit_generator))

    def state_shapes(self) -> dict[str, tuple]:
        """The names of state_dict() with their shapes, without copying anything."""
        shapes = {}
        for i, layer in enumerate(self.layers):
            for name, value in {**layer.params, **layer.buffers}.items():
                shapes[f"{i}.{name}"] = value.shape
            if hasattr(layer, "rng"):
                shapes[f"{i}.rng"] = ()
        return shapes

    def spec(self) -> list[dict]:
        return [layer.spec() for layer in self.layers]

    @classmethod
    def from_spec(cls, spec: list[dict], rng: np.random.Generator | None = None, state=None) -> Sequential:
        """A model of this description: with `state` (a state_dict, e.g. from a model file), holding it;
        otherwise fresh, its initial weights drawn by rng. Given the state, no initial weights are drawn, so
        loading a model costs its size once, not three times (the draws are float64)."""
        rng = rng if rng is not None else np.random.default_rng(0)
        layers = []
        for i, layer_spec in enumerate(spec):
            kind = layer_spec.get("type")
            require(kind in LAYERS, "type", kind, f"use one of {', '.join(LAYERS)}")
            kwargs = {key: value for key, value in layer_spec.items() if key != "type"}
            require(not {"rng", "W"} & kwargs.keys(), "spec", layer_spec, "describe a layer by its sizes and "
                    "options, as layer.spec() does: its generator and weights are not part of a spec")
            if kind in ("Dense", "Conv2D"):  # the layers that draw their initial values
                kwargs["rng"] = rng
                if state is not None and f"{i}.W" in state:
                    kwargs["W"] = np.asarray(state[f"{i}.W"])
            layers.append(LAYERS[kind](**kwargs))
        model = cls(layers)
        if state is not None:
            model.load_state_dict(state)  # checks every name and shape, and fills in the rest
        return model

    def outputs_in_batches(self, X, indices, batch_size: int = 256) -> dict[int, np.ndarray]:
        """{i: layer i's output on all of X} for the layer indices asked for (-1: the last layer, the logits), in
        inference mode and batch by batch, so memory stays bounded (a CNN's columns grow with the batch: about
        50 MB for 256 images in the cnn preset). Only those layers' outputs are kept, and no layer after the
        last of them runs.  (N, ...) each"""
        require(batch_size >= 1, "batch_size", batch_size, "use 1 or more")
        parts = {i % len(self.layers): [] for i in indices}
        last = max(parts, default=-1)
        for start in range(0, max(len(X), 1), batch_size):  # an empty X still runs one (empty) batch: (0, ...)
            A = X[start : start + batch_size]
            for i, layer in enumerate(self.layers[: last + 1]):
                A = layer.forward(A, train=False)
                if i in parts:
                    parts[i].append(A)
        return {i: np.concatenate(outputs) for i, outputs in parts.items()}

    def forward_in_batches(self, X, batch_size: int = 256):
        """Z = forward(X, train=False), batch by batch (see outputs_in_batches).  (N, K)"""
        return self.outputs_in_batches(X, [-1], batch_size)[len(self.layers) - 1]



def check_generator_state(what: str, value, bit_generator=np.random.PCG64) -> None:
    """A ValueError naming `what` unless `value` is a state that a generator of this kind (default_rng's PCG64
    unless told) takes exactly as written: tried on a fresh one, which must then give the same dict back. So a
    number too large for its 128-bit fields (OverflowError in NumPy), a negative one, a fraction it would round,
    or a key it would ignore is refused here, before any generator is changed."""
    try:
        if not isinstance(value, dict):
            raise TypeError(f"a {type(value).__name__}")
        fresh = bit_generator()
        fresh.state = value
        if fresh.state != value:  # e.g. 1.5 read as 1, or an extra key dropped
            raise ValueError("it does not read back as written")
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ValueError(f"{what} is not a generator state, the dict rng.bit_generator.state gives "
                         f"({str(error)[:100]})") from None


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def mlp(sizes=(D, 800, K), activation: str = "relu", init: str = "he", dropout: float = 0.0,
        batchnorm: bool = False, rng: np.random.Generator | None = None, dtype=np.float32) -> Sequential:
    """A multilayer perceptron with sizes = [D, H_1, ..., K]: for each hidden layer
    Dense -> BatchNorm (if batchnorm) -> activation -> Dropout (if dropout > 0), then a Dense giving K logits
    (the softmax lives in the loss). mlp([784, 10, 10], init="seed") is the seed's network, and with
    rng = default_rng(s) its weights are exactly numpynn.seed.init_params(default_rng(s))'s, transposed."""
    require(len(sizes) >= 2, "sizes", sizes, "give at least the input and output sizes, e.g. [784, 10]")
    require(activation in ACTIVATIONS, "activation", activation, f"use one of {', '.join(ACTIVATIONS)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    layers = []
    for i, (D_in, D_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(D_in, D_out, init, rng, dtype))
        if i == len(sizes) - 2:
            break  # the output layer: logits, no activation
        if batchnorm:
            layers.append(BatchNorm(D_out, dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout != 0:  # any other value, even one out of range, goes to Dropout, which checks it
            layers.append(Dropout(dropout, seed=int(rng.integers(2**31))))  # each Dropout its own stream
    return Sequential(layers)
