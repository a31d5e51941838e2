"""The spread of activations and gradients through a 10-layer ReLU MLP for three initialisations.

Draws docs/img/init-spread.png and prints the numbers docs/backprop.md quotes. The network is numpynn's own
(Dense layers with init "seed", "glorot" and "he", ReLU after each), 784 -> 256 x 10 -> 10, in float64, fed the
first 1,000 MNIST test images (never shuffled, so the run is reproducible); the gradient is that of the
softmax cross-entropy with their true labels. Nothing is trained: this is the network at step 0.

    .venv/bin/python docs/figures/init_spread.py [--data DIR]      # DIR holds the MNIST files; else $NUMPYNN_DATA
"""
import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from numpynn.data import load_raw
from numpynn.layers import Dense, ReLU
from numpynn.losses import softmax_cross_entropy

OUT = pathlib.Path(__file__).resolve().parents[1] / "img" / "init-spread.png"
DEPTH, WIDTH, N = 10, 256, 1000
INITS = {"seed": "0.01 * N(0, 1) (the seed's)", "glorot": "Glorot uniform", "he": "He: N(0, 2 / D_in)"}


def spreads(init: str, X, y):
    """std of each hidden layer's activations A_l, and of the gradient dZ_l reaching each layer's Z_l."""
    rng = np.random.default_rng(0)
    sizes = [X.shape[1]] + [WIDTH] * DEPTH
    layers = []
    for D_in, D_out in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(D_in, D_out, init, rng, np.float64), ReLU()]
    layers.append(Dense(WIDTH, 10, init, rng, np.float64))
    A, act_std = X, []
    for layer in layers:
        A = layer.forward(A)
        if isinstance(layer, ReLU):
            act_std.append(A.std())
    _, dY = softmax_cross_entropy(A, y)
    grad_std = []
    for layer in reversed(layers):
        dY = layer.backward(dY)
        if isinstance(layer, ReLU):
            grad_std.append(dY.std())  # dZ_l = dL/dZ_l of the Dense layer below this ReLU
    return np.array(act_std), np.array(grad_std[::-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the MNIST files (default: $NUMPYNN_DATA)")
    args = parser.parse_args()
    _, _, x_test, y_test = load_raw("mnist", args.data, download=False, progress=False)
    X = x_test[:N].reshape(N, -1).astype(np.float64) / 255  # (N, 784), pixels in [0, 1] as numpynn trains
    y = y_test[:N].astype(np.int64)
    print(f"input: {N} MNIST test images, std of the pixels {X.std():.3f}")
    fig, (ax_a, ax_g) = plt.subplots(1, 2, figsize=(10, 4))
    layers = np.arange(1, DEPTH + 1)
    print("layer:             " + " ".join(f"{l:>8d}" for l in layers))
    for init, label in INITS.items():
        act_std, grad_std = spreads(init, X, y)
        print(f"{init:7s} std(A_l)  " + " ".join(f"{s:8.2e}" for s in act_std))
        print(f"{init:7s} std(dZ_l) " + " ".join(f"{s:8.2e}" for s in grad_std))
        ax_a.semilogy(layers, act_std, "o-", label=label)
        ax_g.semilogy(layers, grad_std, "o-", label=label)
    ax_a.set(title="forward: std of the activations $A_l$", xlabel="hidden layer $l$", ylabel="std (log scale)")
    ax_g.set(title="backward: std of the gradient $dZ_l$", xlabel="hidden layer $l$")
    for ax in (ax_a, ax_g):
        ax.set_xticks(layers)
        ax.grid(True, which="major", alpha=0.3)
    ax_a.legend()
    fig.suptitle(f"A 784-{WIDTH}x{DEPTH}-10 ReLU network at initialisation, {N} MNIST test images")
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=100)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
