"""Convolutional layers: a 2-D convolution, max and average pooling, and the two ways from feature maps to a
vector (Flatten, GlobalAvgPool). Each keeps the contract of numpynn.layers: forward(X, train) caches what
backward(dY) needs, backward fills grads and returns dX, and spec() rebuilds the layer.

Layout is NCHW throughout: X is (N, C, H, W), a batch of N images with C channels of H rows and W columns.
(Where W could mean the width or the kernel weights, the width is written W_in / W_out and W alone is the weights.)

How the convolution works: every k x k window of the (padded) input, across all C_in channels, is laid out as
one column of a matrix, the columns (im2col); the convolution is then one matrix product of the kernels, one
kernel per row, with it. Backward takes the same product's gradients, and col2im adds each column's gradient
back onto the pixels its window covered (windows overlap, so a pixel collects from several). docs/conv.md
derives it all, line by line.

Memory layout: the layers take and return ordinary (N, C, H, W) arrays, but store the ones they make as
(C, H, W, N), the batch fastest in memory (zeros_batch_last; Conv2D returns such a view). Then one kernel offset
of every window is a long contiguous run across the batch, which makes im2col and col2im, the copies that
move the layer's largest array, several times faster than with NCHW storage. Any (N, C, H, W) array works as
input; the numbers do not depend on the layout.

Left out on purpose: dilation, groups, non-square kernels, per-axis strides or padding, padding modes other than
zeros, and the fast tricks (FFT, Winograd). Like every layer here, this one is a cross-correlation, as in PyTorch:
the kernel is not flipped.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .checks import require
from .layers import Layer, init_weights
from .shapes import SIDE


def windows(X, k: int, s: int):
    """Every k x k window of X, stride s, as a view (no copy): (N, C, H_out, W_out, k, k), where
    window (i, j) starts at row i * s and column j * s. Windows that would run past the edge are dropped.
    windows(X, k, s)[..., u, v] is X[:, :, u::s, v::s] cut to H_out x W_out: offset (u, v) of every window at once."""
    return sliding_window_view(X, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, H_out, W_out, k, k)


def col2im(dwindows, dX, s: int):
    """The adjoint of windows(): adds to dX (N, C, H, W) the gradient of every window entry, onto the pixel
    that entry saw, and returns dX. One vectorised add per kernel offset (u, v): window (i, j)'s entry (u, v) is
    pixel (i * s + u, j * s + v), so offset (u, v) of all windows covers rows u, u + s, ... and columns v, v + s, ...
    A pixel inside several windows collects from each."""
    N, C, H_out, W_out, k, _ = dwindows.shape
    for u in range(k):
        for v in range(k):
            dX[:, :, u : u + s * H_out : s, v : v + s * W_out : s] += dwindows[:, :, :, :, u, v]
    return dX


def zeros_batch_last(shape, dtype=np.float32):
    """Zeros of shape (N, ...), e.g. (N, C, H, W), stored as (..., N): the batch is the fastest-moving axis in
    memory (see "Memory layout" at the top of this module). NumPy code reads it as an ordinary (N, ...) array."""
    axes = (len(shape) - 1,) + tuple(range(len(shape) - 1))
    return np.zeros(tuple(shape[1:]) + (shape[0],), dtype).transpose(axes)  # (N, ...)  a view of (..., N)


def require_images(X, name: str = "X") -> None:
    """A one-line ValueError unless X is a batch of images, (N, C, H, W)."""
    require(np.ndim(X) == 4, f"{name}.shape", np.shape(X), "pass images as (N, C, H, W)")


def require_int(value, name: str, low: int, fix: str) -> None:
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low, name, value, fix)


class Conv2D(Layer):
    """Z[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] * Xp[n, c, i*s + u, j*s + v],  Xp = X zero-padded by p.
    As one product: Z_mat = W_mat @ cols + b, where each column of cols is one window, all C_in*k*k of its
    values in W's (c, u, v) order, and there is one column per output pixel (n, i, j):
        cols: (C_in*k*k, N*H_out*W_out)   W_mat = W as (C_out, C_in*k*k)   Z_mat: (C_out, N*H_out*W_out)
    Backward:  dW = dZ_mat @ cols.T,  db = dZ summed over n, i, j,  dX = col2im(W_mat.T @ dZ_mat), unpadded.
    X: (N, C_in, H_in, W_in)   W: (C_out, C_in, k, k)   b: (C_out,)   Z: (N, C_out, H_out, W_out)
    H_out = (H_in + 2p - k) // s + 1, and the same for W_out.
    init: "he" W ~ N(0, 2 / fan_in), "glorot" W ~ Uniform(-a, a), a = sqrt(6 / (fan_in + fan_out)),
    with fan_in = C_in*k*k and fan_out = C_out*k*k (what one output, or one input, is connected to); b = 0.

    cols is the layer's largest array (for 32 -> 64 channels, 5 x 5, a batch of 128 at 8 x 8 outputs: 26 MB).
    Its columns run over (i, j, n) with the batch fastest, so each row of cols, and each add of col2im, is a long
    contiguous run across the batch: the reason for the module's batch-last memory layout."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int = 1, padding: int = 0, init: str = "he",
                 rng: np.random.Generator | None = None, dtype=np.float32, W: np.ndarray | None = None):
        super().__init__()
        require_int(C_in, "C_in", 1, "use 1 or more input channels")
        require_int(C_out, "C_out", 1, "use 1 or more output channels")
        require_int(kernel, "kernel", 1, "use a kernel size of 1 or more, e.g. 3")
        require_int(stride, "stride", 1, "use a stride of 1 or more")
        require_int(padding, "padding", 0, "use 0 or more rows of zero padding, e.g. kernel // 2")
        require(init in ("he", "glorot"), "init", init, "use one of he, glorot")
        self.C_in, self.C_out, self.kernel, self.stride, self.padding = C_in, C_out, kernel, stride, padding
        self.init, self.dtype = init, np.dtype(dtype)
        shape = (C_out, C_in, kernel, kernel)
        if W is not None:  # a model being loaded: its weights as given, nothing drawn (no second copy in memory)
            require(W.shape == shape, "W", W.shape, f"give W of shape {shape}")
            self.params = {"W": np.ascontiguousarray(W, self.dtype), "b": np.zeros(C_out, self.dtype)}
            return
        fan_in, fan_out = C_in * kernel * kernel, C_out * kernel * kernel  # one output's window, one input's reach
        self.params = {
            "W": init_weights(shape, fan_in, fan_out, init, rng, self.dtype),  # (C_out, C_in, k, k)
            "b": np.zeros(C_out, self.dtype),  # (C_out,)
        }

    def forward(self, X, train=True):
        require_images(X)
        W, b = self.params["W"], self.params["b"]
        k, s, p = self.kernel, self.stride, self.padding
        N, C_in, H_in, W_in = X.shape
        require(C_in == self.C_in, "X.shape[1]", C_in, f"this layer takes C_in = {self.C_in} channels")
        require(k <= min(H_in, W_in) + 2 * p, "kernel", k,
                f"the kernel must fit in the padded input, {H_in + 2 * p} x {W_in + 2 * p}")
        H_out = (H_in + 2 * p - k) // s + 1  # window starts 0, s, 2s, ... while the window still fits
        W_out = (W_in + 2 * p - k) // s + 1
        Xp = zeros_batch_last((N, C_in, H_in + 2 * p, W_in + 2 * p), X.dtype)  # (N, C_in, H_in + 2p, W_in + 2p)
        Xp[:, :, p : p + H_in, p : p + W_in] = X  # zero padding: a border of p zeros around every image
        # im2col: the one copy of the windows. Row (c, u, v) of cols is entry (u, v) of every window on channel c.
        cols = windows(Xp, k, s).transpose(1, 4, 5, 2, 3, 0)  # (C_in, k, k, H_out, W_out, N)  a view
        cols = cols.reshape(C_in * k * k, H_out * W_out * N)  # (C_in*k*k, H_out*W_out*N)  the copy
        W_mat = W.reshape(self.C_out, C_in * k * k)  # (C_out, C_in*k*k)
        Z = W_mat @ cols  # (C_out, H_out*W_out*N)
        Z += b[:, None]
        if train:
            self.cols, self.X_shape = cols, X.shape  # kept for dW and for dX's shape
        return Z.reshape(self.C_out, H_out, W_out, N).transpose(3, 0, 1, 2)  # (N, C_out, H_out, W_out)  a view

    def backward(self, dZ):  # dZ = dL/dZ, (N, C_out, H_out, W_out)
        W = self.params["W"]
        k, s, p = self.kernel, self.stride, self.padding
        N, C_in, H_in, W_in = self.X_shape
        _, C_out, H_out, W_out = dZ.shape
        dZ_mat = dZ.transpose(1, 2, 3, 0).reshape(C_out, H_out * W_out * N)  # (C_out, H_out*W_out*N)  as Z was
        W_mat = W.reshape(C_out, C_in * k * k)  # (C_out, C_in*k*k)
        self.grads = {
            # dW_mat = dZ_mat @ cols.T, computed as (cols @ dZ_mat.T).T: the same numbers, in the orientation
            # OpenBLAS multiplies fastest here (a tall result), 20-30 % sooner on the preset's second layer
            "W": (self.cols @ dZ_mat.T).T.reshape(W.shape),  # (C_out, C_in, k, k)  summed over every window
            "b": dZ_mat.sum(axis=1),  # (C_out,)  each b[o] is added to all of map o
        }
        if not self.need_dX:  # the first layer's dX is a gradient for the pixels, which training never uses
            return None
        dcols = W_mat.T @ dZ_mat  # (C_in*k*k, H_out*W_out*N)  dL/d(each window entry)
        dwindows = dcols.reshape(C_in, k, k, H_out, W_out, N).transpose(5, 0, 3, 4, 1, 2)  # windows()'s layout
        dXp = col2im(dwindows, zeros_batch_last((N, C_in, H_in + 2 * p, W_in + 2 * p), dZ.dtype), s)
        return dXp[:, :, p : p + H_in, p : p + W_in]  # (N, C_in, H_in, W_in)  the padding's gradient is dropped

    def spec(self):
        return {"type": "Conv2D", "C_in": self.C_in, "C_out": self.C_out, "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding, "init": self.init, "dtype": self.dtype.name}


class Pool2D(Layer):
    """What MaxPool2D and AvgPool2D share: a size x size window moved by stride (default: size, so windows
    tile the image without overlap). H_out = (H_in - size) // stride + 1; rows and columns left over are dropped."""

    def __init__(self, size: int = 2, stride: int | None = None):
        super().__init__()
        require_int(size, "size", 1, "use a window size of 1 or more, e.g. 2")
        stride = size if stride is None else stride
        require_int(stride, "stride", 1, "use a stride of 1 or more, or None for stride = size")
        self.size, self.stride = size, stride

    def windows(self, X):
        require_images(X)
        require(self.size <= min(X.shape[2:]), "size", self.size, f"the window must fit in the input, {X.shape[2:]}")
        return windows(X, self.size, self.stride)  # (N, C, H_out, W_out, size, size)  a view

    def spec(self):
        return {"type": type(self).__name__, "size": self.size, "stride": self.stride}


class MaxPool2D(Pool2D):
    """Y[n, c, i, j] = max of X over window (i, j).   Backward: the whole of dY[n, c, i, j] goes to the window's
    largest entry (the first one, in row-major order, if several tie) and the rest get 0; a pixel in several
    windows (stride < size) sums what it receives.
    X: (N, C, H_in, W_in)   Y: (N, C, H_out, W_out)
    Both run one window offset (u, v) at a time over the whole batch: size * size vectorised steps."""

    def forward(self, X, train=True):
        V = self.windows(X)  # (N, C, H_out, W_out, size, size)  a view
        offsets = list(np.ndindex(self.size, self.size))  # (u, v) in row-major order
        Y = V[..., 0, 0].copy(order="K")  # (N, C, H_out, W_out)  stored like X
        for u, v in offsets[1:]:
            np.maximum(Y, V[..., u, v], out=Y)
        if train:  # which entry of each window is its (first) max: one mask per offset, (N, C, H_out, W_out) each
            taken = np.zeros_like(Y, dtype=bool)  # windows whose max an earlier offset already holds
            self.is_max = []
            for u, v in offsets:
                is_max = (V[..., u, v] == Y) & ~taken
                taken |= is_max
                self.is_max.append(is_max)
            self.X_shape = X.shape
        return Y

    def backward(self, dY):  # (N, C, H_out, W_out)
        s, (H_out, W_out) = self.stride, dY.shape[2:]
        dX = zeros_batch_last(self.X_shape, dY.dtype)  # (N, C, H_in, W_in)
        for (u, v), is_max in zip(np.ndindex(self.size, self.size), self.is_max):
            # dY lands on each window's max, 0 elsewhere: col2im's add for offset (u, v)
            dX_uv = dX[:, :, u : u + s * H_out : s, v : v + s * W_out : s]  # a view: offset (u, v) of every window
            if s >= self.size:  # windows that do not overlap: no pixel gets two dY, so write them in place
                np.multiply(dY, is_max, out=dX_uv)
            else:
                dX_uv += dY * is_max
        return dX  # (N, C, H_in, W_in)


class AvgPool2D(Pool2D):
    """Y[n, c, i, j] = mean of X over window (i, j).   Backward: each of the window's size*size entries gets
    dY[n, c, i, j] / size**2, summed where windows overlap.
    X: (N, C, H_in, W_in)   Y: (N, C, H_out, W_out)"""

    def forward(self, X, train=True):
        V = self.windows(X)  # (N, C, H_out, W_out, size, size)
        if train:
            self.X_shape = X.shape
        return V.mean(axis=(-2, -1))  # (N, C, H_out, W_out)

    def backward(self, dY):  # (N, C, H_out, W_out)
        size = self.size
        dV = np.broadcast_to(dY[..., None, None] / size**2, dY.shape + (size, size))  # (N, C, H_out, W_out, size, size)
        return col2im(dV, zeros_batch_last(self.X_shape, dY.dtype), self.stride)  # (N, C, H_in, W_in)


class Flatten(Layer):
    """Y = X with each image's C*H*W values in one row (C-order).   Backward: dX = dY with X's shape again.
    X: (N, C, H, W)   Y: (N, C*H*W)"""

    def forward(self, X, train=True):
        if train:
            self.X_shape = X.shape
        return X.reshape(X.shape[0], -1)  # (N, C*H*W)

    def backward(self, dY):  # (N, C*H*W)
        dX = zeros_batch_last(self.X_shape, dY.dtype)  # (N, C, H, W)  stored as the layers before expect
        dX[...] = dY.reshape(self.X_shape)
        return dX


class Unflatten(Layer):
    """Y = each row of X as an image of `shape` = (C, H, W): how an MNIST row of 784 pixels becomes (1, 28, 28)
    for the convolutions, so a CNN takes the same (N, 784) input as every other model.
    Backward: dX = dY as rows again.   X: (N, C*H*W)   Y: (N, C, H, W)"""

    def __init__(self, shape=(1, SIDE, SIDE)):
        super().__init__()
        shape = tuple(shape)
        require(len(shape) == 3 and all(isinstance(n, int) and n >= 1 for n in shape), "shape", shape,
                "give (C, H, W), three sizes of 1 or more, e.g. (1, 28, 28)")
        self.shape = shape

    def forward(self, X, train=True):
        require(X.ndim == 2 and X.shape[1] == np.prod(self.shape), "X.shape", X.shape,
                f"give rows of {int(np.prod(self.shape))} values, one image of {self.shape} per row")
        return X.reshape(X.shape[0], *self.shape)  # (N, C, H, W)

    def backward(self, dY):  # (N, C, H, W)
        return dY.reshape(dY.shape[0], -1)  # (N, C*H*W)

    def spec(self):
        return {"type": "Unflatten", "shape": list(self.shape)}


class GlobalAvgPool(Layer):
    """Y[n, c] = mean of X[n, c] over all H*W positions.   Backward: dX[n, c, h, w] = dY[n, c] / (H*W)
    X: (N, C, H, W)   Y: (N, C)"""

    def forward(self, X, train=True):
        require_images(X)
        if train:
            self.X_shape = X.shape
        return X.mean(axis=(2, 3))  # (N, C)

    def backward(self, dY):  # (N, C)
        N, C, H, W = self.X_shape
        return np.broadcast_to(dY[:, :, None, None] / (H * W), self.X_shape).copy()  # (N, C, H, W)  a real array


CONV_LAYERS: dict[str, type] = {
    cls.__name__: cls for cls in (Conv2D, MaxPool2D, AvgPool2D, Flatten, Unflatten, GlobalAvgPool)
}
