"""The seed's network as pictures: its computational graph, and its 784-10-10 layers.

Writes docs/img/backprop-graph.png (every node of one forward and backward pass, with the forward edges in
black and the gradient edges in red, each labelled with the line of math it computes) and
docs/img/network-784-10-10.png (the neurons and their connections). Batch-first shapes, as numpynn.layers.
Needs only matplotlib; runs offline in a few seconds:

    .venv/bin/python docs/figures/graph.py
"""
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

IMG = pathlib.Path(__file__).resolve().parents[1] / "img"
FORWARD, GRADIENT = "black", "#c0392b"

# name: (x, y, shape, kind); kind "data" is given, "param" is learned, "value" is computed
NODES = {
    "X": (0.0, 3.0, "(N, 784)", "data"),
    "W1": (1.0, 0.9, "(784, 10)", "param"),
    "b1": (2.6, 0.9, "(10,)", "param"),
    "Z1": (2.6, 3.0, "(N, 10)", "value"),
    "A1": (5.0, 3.0, "(N, 10)", "value"),
    "W2": (6.1, 0.9, "(10, 10)", "param"),
    "b2": (7.6, 0.9, "(10,)", "param"),
    "Z2": (7.6, 3.0, "(N, 10)", "value"),
    "P": (10.0, 3.0, "(N, 10)", "value"),
    "Y": (11.5, 0.9, "(N, 10)", "data"),
    "L": (12.7, 3.0, "scalar", "value"),
}
COLOURS = {"data": "#e8e8e8", "param": "#d6e9f8", "value": "#fdf2d0"}
FORWARD_EDGES = [("X", "Z1"), ("W1", "Z1"), ("b1", "Z1"), ("Z1", "A1"), ("A1", "Z2"), ("W2", "Z2"),
                 ("b2", "Z2"), ("Z2", "P"), ("P", "L"), ("Y", "L")]
FORWARD_LABELS = {("X", "Z1"): "$Z_1 = X W_1 + b_1$", ("Z1", "A1"): "$A_1 = \\mathrm{ReLU}(Z_1)$",
                  ("A1", "Z2"): "$Z_2 = A_1 W_2 + b_2$", ("Z2", "P"): "$P = \\mathrm{softmax}(Z_2)$",
                  ("P", "L"): "$L = -\\frac{1}{N}\\sum Y \\odot \\log P$"}
# (from, to, label, curvature of the arc, where the label goes): the gradient flows against the forward edges
GRADIENT_EDGES = [
    ("L", "Z2", "$dZ_2 = (P - Y) / N$", 0.33, (10.15, 4.45)),
    ("Z2", "A1", "$dA_1 = dZ_2 W_2^\\top$", 0.5, (6.3, 4.2)),
    ("Z2", "W2", "$dW_2 = A_1^\\top dZ_2$", 0.25, (5.75, 2.0)),
    ("Z2", "b2", "$db_2 = \\sum_n dZ_2$", -0.35, (8.6, 1.85)),
    ("A1", "Z1", "$dZ_1 = dA_1 \\odot [Z_1 > 0]$", 0.5, (3.8, 4.15)),
    ("Z1", "W1", "$dW_1 = X^\\top dZ_1$", 0.25, (0.75, 2.0)),
    ("Z1", "b1", "$db_1 = \\sum_n dZ_1$", -0.35, (3.6, 1.85)),
]
W, H = 0.95, 0.62  # node box size


def ends(a, b):
    """The points where the straight line between nodes a and b leaves their boxes."""
    (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
    dx, dy = xb - xa, yb - ya
    t = min((W / 2 + 0.07) / abs(dx) if dx else 1, (H / 2 + 0.07) / abs(dy) if dy else 1)
    return (xa + t * dx, ya + t * dy), (xb - t * dx, yb - t * dy)


def draw_graph(path):
    fig, ax = plt.subplots(figsize=(14, 5.6))
    for name, (x, y, shape, kind) in NODES.items():
        ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.05",
                                    facecolor=COLOURS[kind], edgecolor="0.3", zorder=3))
        symbol = name[0] + (f"_{name[1]}" if len(name) > 1 else "")
        ax.text(x, y + 0.1, f"${symbol}$", ha="center", va="center", fontsize=15, zorder=4)
        ax.text(x, y - 0.17, shape, ha="center", va="center", fontsize=8, color="0.3", zorder=4)
    for a, b in FORWARD_EDGES:
        (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
        ax.add_patch(FancyArrowPatch(*ends(a, b), arrowstyle="-|>", mutation_scale=14, color=FORWARD,
                                     shrinkA=0, shrinkB=0, lw=1.3, zorder=2))
        if (a, b) in FORWARD_LABELS:
            ax.text((xa + xb) / 2, ya + 0.2, FORWARD_LABELS[(a, b)], ha="center", va="bottom", fontsize=9.5)
    for a, b, label, rad, (lx, ly) in GRADIENT_EDGES:
        (xa, ya, *_), (xb, yb, *_) = NODES[a], NODES[b]
        # along the chain, from the top of one box to the top of the other, above the forward edge
        points = ((xa, ya + H / 2 + 0.06), (xb, yb + H / 2 + 0.06)) if ya == yb else ends(a, b)
        ax.add_patch(FancyArrowPatch(*points, arrowstyle="-|>", mutation_scale=14, color=GRADIENT,
                                     shrinkA=0, shrinkB=0, lw=1.3, ls="--", zorder=1,
                                     connectionstyle=f"arc3,rad={rad}"))
        ax.text(lx, ly, label, ha="center", va="center", fontsize=9.5, color=GRADIENT,
                bbox=dict(facecolor="white", edgecolor="none", pad=1, alpha=0.85), zorder=5)
    ax.text(0.0, -0.25, "black: forward, computing each node from its inputs\n"
            "red, dashed: backward, each gradient from the one after it\n"
            "(softmax and cross-entropy are one step backward: L to $Z_2$ directly)",
            fontsize=9, va="top", color="0.25")
    ax.text(13.2, -0.25, "grey: data   blue: learned   yellow: computed", fontsize=9, va="top", ha="right",
            color="0.25")
    ax.set_xlim(-0.7, 13.4)
    ax.set_ylim(-1.1, 4.75)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_network(path):
    """784 inputs (a few drawn, the rest elided), 10 hidden ReLU units, 10 softmax outputs."""
    fig, ax = plt.subplots(figsize=(9, 6))
    shown_inputs = [0, 1, 2, 3, None, 780, 781, 782, 783]  # None: the dots standing for the rest
    columns = {0: [], 1: [], 2: []}
    for i, pixel in enumerate(shown_inputs):
        y = 9.0 - i * 1.125
        if pixel is None:
            ax.text(0, y, "⋮", ha="center", va="center", fontsize=20)
            continue
        columns[0].append((0, y, f"$x_{{{pixel}}}$"))
    for j in range(10):
        columns[1].append((4, 9.0 - j, f"$h_{j}$"))
        columns[2].append((8, 9.0 - j, f"$p_{j}$"))
    for (x0, y0, _) in columns[0]:
        for (x1, y1, _) in columns[1]:
            ax.plot([x0, x1], [y0, y1], color="#4a7fb5", lw=0.35, alpha=0.6, zorder=1)
    for (x0, y0, _) in columns[1]:
        for (x1, y1, _) in columns[2]:
            ax.plot([x0, x1], [y0, y1], color="#c0392b", lw=0.35, alpha=0.6, zorder=1)
    for col, colour in zip(columns.values(), ("#e8e8e8", "#d6e9f8", "#fdf2d0")):
        for x, y, label in col:
            ax.add_patch(plt.Circle((x, y), 0.36, facecolor=colour, edgecolor="0.3", zorder=2))
            ax.text(x, y, label, ha="center", va="center", fontsize=9, zorder=3)
    for j in range(10):
        ax.text(8.55, 9.0 - j, f"digit {j}", va="center", fontsize=9)
    titles = [(0, "input: 784 pixels\n$X$ (N, 784)"), (4, "hidden: 10 ReLU units\n$A_1$ (N, 10)"),
              (8, "output: softmax over 10\n$P$ (N, 10)")]
    for x, text in titles:
        ax.text(x, 10.0, text, ha="center", va="bottom", fontsize=10)
    ax.text(2, -1.0, "$W_1$ (784, 10), $b_1$ (10,)\n7,850 parameters", ha="center", va="top", fontsize=10,
            color="#4a7fb5")
    ax.text(6, -1.0, "$W_2$ (10, 10), $b_2$ (10,)\n110 parameters", ha="center", va="top", fontsize=10,
            color="#c0392b")
    ax.set_xlim(-1, 9.6)
    ax.set_ylim(-2.2, 11.2)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    IMG.mkdir(exist_ok=True)
    draw_graph(IMG / "backprop-graph.png")
    draw_network(IMG / "network-784-10-10.png")
    print(f"wrote {IMG / 'backprop-graph.png'} and {IMG / 'network-784-10-10.png'}")
