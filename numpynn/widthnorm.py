"""Width normalisation: every digit stretched or squeezed sideways to one width before the network sees it.

MNIST's digits were scaled to fit a 20 x 20 box keeping their shape, so a "1" is about 20 pixels tall and 4 wide
and a "0" 20 by 15. Ciresan, Meier and Schmidhuber (2012, "Multi-column deep neural networks for image
classification") trained the columns of their committee on copies of MNIST whose digits were re-scaled to one
width each (10, 12, ..., 20 pixels): networks that see different inputs make different mistakes, and a
committee can only outvote mistakes its members do not share. This layer does that re-scaling inside the
model, as its first layer, so a model file carries its own preprocessing and every command (evaluate, predict,
serve, report, ensemble) feeds it ordinary digits.

For one image (side x side pixels), let its ink be the pixels brighter than INK times its brightest, and let the
ink's columns run from c0 to c1: b = c1 + 1 - c0 columns wide, centred at c = (c0 + c1 + 1) / 2. The output puts
those b columns into w columns around the same centre. Output column j (the interval [j, j + 1)) then shows
the input interval [u_j, u_j + b/w), with

    u_j = c0 + (j - (c - w/2)) * b/w
    M[j, i] = |[i, i + 1) and [u_j, u_j + b/w)| / (b/w)     the share of that interval in input column i
    Y[r, j] = sum_i X[r, i] M[j, i]                         every row r by the same M:  Y = X M^T

Each output pixel is the mean of the input it covers (area resampling); the rows are left as they are, so the
heights do not change. Pixels outside the image count as 0. An image with no ink passes through (M = I).

Backward: M depends on X only through the box (c0, c1), which small changes of X do not move, so where the
layer has a derivative it is the linear map X -> X M^T, and  dX = dY M.   X, Y, dY, dX: (N, side*side) rows.

numpynn's exporter writes these same steps as ONNX nodes (export.py), so an exported model normalises too.

Left out on purpose: changing the height, slant correction (deskewing), centring by mass, and a cap on how far
a narrow digit (a "1") is stretched.
"""
from __future__ import annotations

import numpy as np

from .checks import require
from .layers import Layer
from .shapes import SIDE

INK = 0.1  # a pixel brighter than this fraction of its image's brightest is ink: it decides the box


def width_maps(images, width: int):
    """M (N, side_out, side_in) for images (N, side, side): each image's resampling of columns, above."""
    N, side, _ = images.shape
    brightest = images.max(axis=(1, 2), keepdims=True)  # (N, 1, 1)
    columns = ((images > INK * brightest) & (brightest > 0)).any(axis=1)  # (N, side) does column i hold ink?
    has_ink = columns.any(axis=1)  # (N,)
    c0 = columns.argmax(axis=1)  # (N,) the first column with ink
    c1 = side - 1 - columns[:, ::-1].argmax(axis=1)  # (N,) the last
    b = (c1 + 1 - c0).astype(np.float64)  # (N,) the ink's width, columns
    c = (c0 + c1 + 1) / 2  # (N,) its centre
    step = (b / width)[:, None, None]  # (N, 1, 1) input columns per output column
    j = np.arange(side)[None, :, None]  # (1, side_out, 1)
    i = np.arange(side)[None, None, :]  # (1, 1, side_in)
    u = c0[:, None, None] + (j - (c[:, None, None] - width / 2)) * step  # (N, side_out, 1) each interval's start
    overlap = np.minimum(u + step, i + 1) - np.maximum(u, i)  # (N, side_out, side_in)
    M = np.clip(overlap, 0, None) / step  # (N, side_out, side_in)
    M[~has_ink] = np.eye(side)
    return M.astype(images.dtype)


class WidthNorm(Layer):
    """Y = each image of X with its ink re-scaled to `width` columns (module docstring).   Backward: dX = dY M
    X: (N, side*side)   Y: (N, side*side)"""

    def __init__(self, width: int, side: int = SIDE):
        super().__init__()
        for name, value in (("side", side), ("width", width)):
            require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 1 <= value <= 1024,
                    name, value, "give a whole number of pixels from 1 to 1024")
        require(width <= side, "width", width, f"give a width of at most the image's side ({side})")
        self.side, self.width = int(side), int(width)

    def forward(self, X, train=True):
        D = self.side * self.side
        require(np.ndim(X) == 2 and np.shape(X)[1] == D, "X.shape", np.shape(X),
                f"give rows of {D} pixels, one {self.side}x{self.side} image per row")
        images = X.reshape(-1, self.side, self.side)  # (N, side, side)
        M = width_maps(images, self.width)  # (N, side, side)
        if train:
            self.M = M
        return (images @ M.transpose(0, 2, 1)).reshape(X.shape)  # (N, side*side)  Y = X M^T, row by row

    def backward(self, dY):  # (N, side*side)
        if not self.need_dX:
            return None
        dX = dY.reshape(-1, self.side, self.side) @ self.M  # (N, side, side)
        return dX.reshape(dY.shape)  # (N, side*side)

    def spec(self):
        return {"type": "WidthNorm", "width": self.width, "side": self.side}


PREPROCESSING_LAYERS: dict[str, type] = {"WidthNorm": WidthNorm}
