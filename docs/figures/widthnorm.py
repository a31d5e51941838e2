"""The first eight MNIST test digits, and the same digits after WidthNorm at widths 10, 14 and 20.

Writes docs/img/widthnorm.png: one row per digit, four panels each (the digit as it is, then widths 10, 14
and 20), white ink on black as the network sees it, each pixel drawn 3 x 3. Needs only NumPy and Pillow:

    .venv/bin/python docs/figures/widthnorm.py [--data DIR]      # DIR holds the MNIST files; else $NUMPYNN_DATA
"""
import argparse
import pathlib

import numpy as np
from PIL import Image

from numpynn.data import load_mnist
from numpynn.widthnorm import WidthNorm

IMG = pathlib.Path(__file__).resolve().parents[1] / "img"
WIDTHS = (10, 14, 20)
GAP, ZOOM = 2, 3  # pixels of grey between panels; each pixel drawn ZOOM x ZOOM


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the MNIST files (default: $NUMPYNN_DATA)")
    X = load_mnist(data_dir=parser.parse_args().data, progress=False).X_test[:8]  # (8, 784)
    panels = [X] + [WidthNorm(w).forward(X, train=False) for w in WIDTHS]  # 4 x (8, 784)
    rows = []
    for n in range(len(X)):
        row = [np.pad(p[n].reshape(28, 28), ((GAP, GAP), (GAP, 0)), constant_values=0.35) for p in panels]
        rows.append(np.concatenate(row + [np.full((28 + 2 * GAP, GAP), 0.35)], axis=1))
    grid = np.concatenate(rows, axis=0)
    picture = Image.fromarray((grid * 255).round().astype(np.uint8))
    picture = picture.resize((picture.width * ZOOM, picture.height * ZOOM), Image.NEAREST)
    picture.save(IMG / "widthnorm.png", optimize=True)
    print(f"wrote {IMG / 'widthnorm.png'} ({picture.width} x {picture.height})")


if __name__ == "__main__":
    main()
