"""Data augmentation: new training digits made from old ones, drawn afresh for every mini-batch.

Every transform here is a resampling. A coordinate map says, for each output pixel q = (i, j), which point
p = (r, c) of the input to read; the output pixel is the input's value there, interpolated bilinearly from the
four pixels around p, with zeros outside the image (MNIST's black background):

    out[n, i, j] = in_n(p),    p = map_n(i, j)

Two maps, with their parameters drawn per image from `rng`:

    affine    q = A (p - m) + m + t, so p = A^-1 (q - m - t) + m, with m the image centre, t a shift and
              A = R(theta) @ K(k) * s: a rotation, a shear and a scale about the centre
    elastic   p = q + alpha * (G * U)(q), Simard, Steinkraus and Platt (2003): U is two fields of uniform noise
              in [-1, 1] (one per axis), G * a blur by a Gaussian of standard deviation sigma, alpha the strength

Rows in, rows out: X (N, D) with D = side * side, pixel values in [0, 1], as every numpynn model takes them; the
result has the same shape and dtype, its rows in the same order, and its values stay in [0, 1]. Labels are
untouched: small transforms keep a digit what it is (a rotation near 180 degrees would make a 6 a 9; the
defaults stay well short of that). The whole batch goes through one vectorised gather; there is no Python
loop over images. The same generator state gives the same batch.

Coordinates are (row, col) throughout, rows growing downwards, as NumPy indexes an image; pixel centres sit at
integer coordinates, so the centre of a 28 x 28 image is m = (13.5, 13.5).

Left out on purpose: other interpolations (nearest, bicubic), border modes other than zeros, colour, flips (a
flipped 2 is not a digit), and combining affine and elastic in one pass.
"""
from __future__ import annotations

import math

import numpy as np

from .checks import require


def bilinear(images, rows, cols):
    """Read each image at real-valued points, by bilinear interpolation, zero outside the image.
    With r0 = floor(r), c0 = floor(c), fr = r - r0, fc = c - c0, and in[., .] = 0 off the image:
        out = (1 - fr) ((1 - fc) in[r0, c0]     + fc in[r0, c0 + 1])
            +      fr  ((1 - fc) in[r0 + 1, c0] + fc in[r0 + 1, c0 + 1])
    images: (N, H, W)   rows, cols: (N, H_out, W_out), the point read for each output pixel   out: (N, H_out, W_out)"""
    N, H, W = images.shape
    # "Zero off the image" is a border of zeros one pixel wide. A point further out is first moved onto that
    # border by the clip: every pixel around it was off the image, so it reads 0 before and after the move.
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))            # (N, H + 2, W + 2)
    r, c = np.clip(rows, -1, H), np.clip(cols, -1, W)            # (N, H_out, W_out)
    r0 = np.minimum(np.floor(r), H - 1)                          # so r0 + 1 <= H stays on the border
    c0 = np.minimum(np.floor(c), W - 1)
    fr, fc = r - r0, c - c0                                      # in [0, 1]
    # One gather for the whole batch: the flat index of corner (r0, c0) of image n in `padded` (the border
    # shifts every row and column by one); the other three corners are one column and/or one row further.
    n = np.arange(N).reshape(N, 1, 1)
    corner = (n * (H + 2) + r0.astype(np.intp) + 1) * (W + 2) + c0.astype(np.intp) + 1   # (N, H_out, W_out)
    flat = padded.reshape(-1)
    top = (1 - fc) * np.take(flat, corner) + fc * np.take(flat, corner + 1)   # np.take: flat[corner], faster
    bottom = (1 - fc) * np.take(flat, corner + W + 2) + fc * np.take(flat, corner + W + 3)
    return (1 - fr) * top + fr * bottom                          # (N, H_out, W_out)


def affine_maps(A, t, side: int, dtype=np.float64):
    """The points read by the affine transform q = A (p - m) + m + t of each image: p = A^-1 (q - m - t) + m
    for every output pixel q = (i, j), with m = ((side - 1) / 2, (side - 1) / 2) the centre.
    A: (N, 2, 2) acting on (row, col) vectors   t: (N, 2), (row, col) shifts in pixels
    returns rows, cols: (N, side, side)"""
    A, t = np.asarray(A, dtype), np.asarray(t, dtype)
    m = (side - 1) / 2
    # A^-1 = [[d, -b], [-c, a]] / (ad - bc), written out: exact for the identity, where a library inverse
    # might leave a rounding error and so blur an image that should come back unchanged.
    a, b, c, d = A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1]  # (N,)
    inverse = np.stack([d, -b, -c, a]) / (a * d - b * c)          # (4, N): A^-1 row by row
    inverse = inverse.reshape(4, -1, 1, 1)                        # (4, N, 1, 1), to broadcast over pixels
    i = np.arange(side, dtype=dtype).reshape(1, side, 1) - m - t[:, 0].reshape(-1, 1, 1)   # (N, side, 1)
    j = np.arange(side, dtype=dtype).reshape(1, 1, side) - m - t[:, 1].reshape(-1, 1, 1)   # (N, 1, side)
    rows = inverse[0] * i + inverse[1] * j + m                   # (N, side, side)
    cols = inverse[2] * i + inverse[3] * j + m
    return rows, cols


def random_affine(N: int, rng: np.random.Generator, shift: float, rotation: float, scale: float, shear: float,
                  dtype=np.float64):
    """N affine transforms, each parameter uniform in its range, independently per image:
        t ~ U[-shift, shift]^2 pixels,  theta ~ U[-rotation, rotation] degrees,  s ~ U[1 - scale, 1 + scale],
        k = tan(phi), phi ~ U[-shear, shear] degrees
        A = R(theta) @ K(k) * s,   R = [[cos, -sin], [sin, cos]],   K = [[1, 0], [k, 1]]   on (row, col) vectors
    R turns the digit counter-clockwise as it is displayed (np.rot90's sense) for theta > 0; K slides each row
    sideways by k times its height above or below the centre, as a slanted hand does.
    returns A: (N, 2, 2), t: (N, 2)"""
    u = rng.uniform(-1.0, 1.0, (N, 5))                           # all draws at once, in a fixed order
    t = shift * u[:, 0:2]                                        # (N, 2)
    theta = np.deg2rad(rotation) * u[:, 2]                       # (N,)
    s = 1 + scale * u[:, 3]
    k = np.tan(np.deg2rad(shear) * u[:, 4])
    cos, sin, zero, one = np.cos(theta), np.sin(theta), np.zeros(N), np.ones(N)
    R = np.stack([cos, -sin, sin, cos], axis=1).reshape(N, 2, 2)
    K = np.stack([one, zero, k, one], axis=1).reshape(N, 2, 2)
    A = (R @ K) * s.reshape(N, 1, 1)                             # (N, 2, 2)
    return A.astype(dtype), t.astype(dtype)


def gaussian_matrix(side: int, sigma: float, dtype=np.float64):
    """G (side, side) with G[i, k] = g(i - k), g(d) = exp(-d^2 / (2 sigma^2)) / Z, Z = the sum of the numerator
    over every offset d in [-(side - 1), side - 1]. G @ F @ G.T is then F convolved with the 2-D Gaussian
    kernel g(a) g(b), with zeros outside F: the kernel is separable, so blurring rows then columns is the
    same as blurring both at once. A (side x side) product per axis, for every field of a batch at once."""
    d = np.arange(-(side - 1), side)                             # every offset two pixels can have
    g = np.exp(-(d**2) / (2 * sigma**2))
    g /= g.sum()
    i = np.arange(side)
    return g[i[:, None] - i[None, :] + side - 1].astype(dtype)   # (side, side)


def elastic_maps(N: int, side: int, rng: np.random.Generator, alpha: float, sigma: float, dtype=np.float64):
    """Simard et al.'s displacement fields and the points they read: for output pixel q = (i, j),
        p = q + alpha * (G @ U @ G.T),   U ~ U[-1, 1], one field per axis and image, G = gaussian_matrix(side, sigma)
    A large sigma makes the fields smooth (the digit bends as a whole), a small one makes them rough; alpha
    sets how far pixels move. For sigma = 4 the blurred field's standard deviation is about 0.04 (uniform noise
    has variance 1/3, and the blur divides it by about 4 pi sigma^2), so alpha = 34 moves a pixel by about
    1.4 pixels (standard deviation along each axis, away from the border, where the zeros outside pull it down).
    returns rows, cols: (N, side, side)"""
    U = rng.uniform(-1.0, 1.0, (2, N, side, side)).astype(dtype)  # (2, N, side, side): row and col fields
    G = gaussian_matrix(side, sigma, dtype)                      # (side, side)
    dr, dc = alpha * (G @ U @ G.T)                               # each (N, side, side); matmul broadcasts over N
    grid = np.arange(side, dtype=dtype)
    return grid.reshape(side, 1) + dr, grid.reshape(1, side) + dc


def check_affine(shift: float, rotation: float, scale: float, shear: float) -> None:
    """The ranges of affine's parameters: an OptionError naming the first one outside its range."""
    require(_finite(shift) and shift >= 0, "shift", shift, "use 0 (none) or more pixels, e.g. 2")
    require(_finite(rotation) and 0 <= rotation <= 180, "rotation", rotation, "use 0 to 180 degrees, e.g. 12")
    require(_finite(scale) and 0 <= scale < 1, "scale", scale, "use a fraction in [0, 1), e.g. 0.1")
    require(_finite(shear) and 0 <= shear <= 60, "shear", shear, "use 0 to 60 degrees, e.g. 10")


def check_elastic(alpha: float, sigma: float) -> None:
    """The ranges of elastic's parameters: an OptionError naming the first one outside its range."""
    require(_finite(alpha) and alpha >= 0, "alpha", alpha, "use 0 (none) or more, e.g. 34")
    require(_finite(sigma) and sigma > 0, "sigma", sigma, "use a standard deviation above 0 pixels, e.g. 4")


def affine(X, rng: np.random.Generator, *, shift: float, rotation: float, scale: float, shear: float):
    """Each row of X, as a square image, shifted, rotated, scaled and sheared about its centre by its own random
    transform (random_affine). shift in pixels, rotation and shear in degrees, scale a fraction (0.1: 90-110 %).
    X: (N, D), D = side * side, values in [0, 1]   returns (N, D), X's dtype, values in [0, 1]"""
    check_affine(shift, rotation, scale, shear)
    images, side = _images(X)
    A, t = random_affine(len(X), rng, shift, rotation, scale, shear, X.dtype)
    return _resample(images, *affine_maps(A, t, side, X.dtype))


def elastic(X, rng: np.random.Generator, *, alpha: float, sigma: float):
    """Each row of X, as a square image, bent by its own smooth random displacement field (elastic_maps).
    alpha the strength, sigma in pixels; Simard et al. found alpha = 34, sigma = 4 good on 28 x 28 digits.
    X: (N, D), D = side * side, values in [0, 1]   returns (N, D), X's dtype, values in [0, 1]"""
    check_elastic(alpha, sigma)
    images, side = _images(X)
    return _resample(images, *elastic_maps(len(X), side, rng, alpha, sigma, X.dtype))


def _images(X):
    """X (N, D) as images (N, side, side), a view; a one-line ValueError unless it can be."""
    require(isinstance(X, np.ndarray) and X.ndim == 2, "X.shape", np.shape(X), "pass rows of pixels, (N, D)")
    require(np.issubdtype(X.dtype, np.floating), "X.dtype", X.dtype, "pass float pixels in [0, 1]")
    side = math.isqrt(X.shape[1])
    require(side * side == X.shape[1] and side >= 1, "D", X.shape[1], "augmentation needs square images, "
            "D = side * side (784 for 28 x 28)")
    # The result is clipped to [0, 1], which would silently change pixels outside that range: refuse them.
    if X.size:
        low, high = float(X.min()), float(X.max())
        require(0 <= low and high <= 1, "X's range", (low, high),
                "augmentation works on pixel values in [0, 1] (numpynn's pixel / 255)")
    return X.reshape(len(X), side, side), side


def _resample(images, rows, cols):
    N, side, _ = images.shape
    out = bilinear(images, rows, cols).reshape(N, side * side)  # (N, D)
    # Weights of 0..1 that sum to 1, over pixels in [0, 1] and zeros: the result is in [0, 1] but for a rounding
    # error in the last bit, which the clip removes.
    return np.clip(out, 0, 1).astype(images.dtype, copy=False)


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)
