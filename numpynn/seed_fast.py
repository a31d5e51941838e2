"""The seed's gradient descent, computed faster: the same iterations as seed.gradient_descent, to float32 rounding.

numpynn/seed.py is the textbook: one loop, forward -> backward -> update on the whole (784, m) matrix. This
module runs the same algorithm (same initial weights, same full-batch gradient, same update, same printed
lines) and changes only how the gradient is computed. `numpynn seed` uses it; `numpynn seed --plain` does not.
It reuses seed.py's functions (init_params, ReLU, derivative_ReLU, softmax, one_hot, cross_entropy,
update_params) and adds four tricks, each exact in real arithmetic; docs/seed-fast.md derives them and
benchmarks/seed_speed.py measures what each buys:

1. Blocks. The gradient of a mean over m images is the sum of each block's gradient taken with the full m,
   so the training set is cut into blocks of `block` images and their gradients are added up.
2. Dropped zero pixels. A pixel that is 0 in every image of a block adds exactly 0 to that block's Z1 and
   dW1, so each block keeps only the pixels it uses (W1's other columns only ever meet zeros there).
   Sorting the images by the bounding box of their ink first puts similar outlines together: blocks of
   512 MNIST images keep about 361 of the 784 pixels.
3. Cache. A block is small enough to stay in the CPU cache between its forward and backward pass, so X is
   read from memory about once per iteration instead of twice.
4. Orientation. W1 X is computed as (X^T W1^T)^T and dZ1 X^T as (X dZ1^T)^T, on blocks stored image by
   image (Fortran order): the same dot products, walked through memory in the order OpenBLAS runs fastest.
5. Threads. The blocks' gradients are independent, so `threads` threads each sum every threads-th block and
   the partial sums are added at the end. NumPy's products release the GIL, so the threads run on all cores.
   Each block's products are too small (10 x 361 x 512) for BLAS's own threads to pay for waking: run it
   with BLAS limited to one thread (the CLI does, with threadpoolctl), one thread per core.

In floating point the blocks change the order in which terms are added, so the weights agree with the plain
loop's up to rounding, not bit for bit (tests/test_seed.py checks both).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numpy as np

from .seed import (
    Params,
    SeedConfig,
    cross_entropy,
    derivative_ReLU,
    init_params,
    one_hot,
    ReLU,
    softmax,
    update_params,
)
from .shapes import SIDE


class Block(NamedTuple):
    pixels: np.ndarray  # (D_b,)  indices of the pixels that are non-zero in at least one image of the block
    X: np.ndarray  # (D_b, n)  the block's images, those pixels only, stored image by image (Fortran order)
    y: np.ndarray  # (n,)      their labels


def ink_order(X):
    """The images' indices sorted by where their ink starts: top row, then left column, then right column.
    Digits of similar outline, which share their empty pixels, end up next to each other."""
    ink = (X != 0).reshape(SIDE, SIDE, -1)  # (28, 28, m)  column layout: pixel (row, col) per image
    rows, cols = ink.any(axis=1), ink.any(axis=0)  # (28, m) each
    top, left, right = rows.argmax(axis=0), cols.argmax(axis=0), 27 - cols[::-1].argmax(axis=0)  # (m,) each
    return np.lexsort((right, left, top))  # (m,)  sorted by top, then left, then right


def pack_blocks(X, y, block: int = SeedConfig.block) -> list[Block]:
    """Tricks 1 and 2: cut the training set, in ink_order, into blocks of `block` images, each keeping only the
    pixels it uses. Done once, before training."""
    order = ink_order(X)  # (m,)
    blocks = []
    for start in range(0, y.size, block):
        images = order[start : start + block]  # (n,)
        X_b = X[:, images]  # (D, n)
        pixels = np.flatnonzero((X_b != 0).any(axis=1))  # (D_b,)
        blocks.append(Block(pixels, np.asfortranarray(X_b[pixels]), y[images]))  # trick 4: image by image
    return blocks


def block_forward(X_b, W1_b, b1, W2, b2):
    """seed.forward_propagation on one block, with W1 X written as (X^T W1^T)^T (trick 4)."""
    Z1 = (X_b.T @ W1_b.T).T + b1  # (H, n)  = W1_b X_b + b1
    A1 = ReLU(Z1)  # (H, n)
    Z2 = W2 @ A1 + b2  # (K, n)
    A2 = softmax(Z2)  # (K, n)
    return Z1, A1, Z2, A2


def block_backward(X_b, y_b, Z1, A1, W2, A2, m: int):
    """seed.backward_propagation on one block, divided by the full training set's m (trick 1), with
    dZ1 X^T written as (X dZ1^T)^T (trick 4)."""
    dZ2 = A2 - one_hot(y_b, A2.shape[0])  # (K, n)
    dW2 = dZ2 @ A1.T / m  # (K, H)
    db2 = dZ2.sum(axis=1, keepdims=True) / m  # (K, 1)
    dZ1 = (W2.T @ dZ2) * derivative_ReLU(Z1)  # (H, n)
    dW1_b = (X_b @ dZ1.T).T / m  # (H, D_b)  = dZ1 X_b^T / m
    db1 = dZ1.sum(axis=1, keepdims=True) / m  # (H, 1)
    return dW1_b, db1, dW2, db2


def gradients(blocks: list[Block], params: Params, m: int, with_loss: bool = False, threads: int = 1, pool=None):
    """The full-batch gradient (dW1, db1, dW2, db2): the sum of every block's gradient, each taken with the
    full m. Each block runs forward and backward back to back, so it is still in cache (trick 3).
    threads T > 1, with pool a ThreadPoolExecutor of T threads (trick 5): thread t sums blocks t, t + T,
    t + 2T, ... and the T partial sums are added in order, so a given T always gives the same numbers.
    Returns (grads, loss): the mean loss over all m images if asked, else None."""
    if threads > 1:
        parts = list(pool.map(lambda t: block_sums(blocks[t::threads], params, m, with_loss), range(threads)))
        grads, loss_sum = parts[0]
        for part_grads, part_loss in parts[1:]:
            grads = Params(*(total + part for total, part in zip(grads, part_grads)))
            loss_sum += part_loss
        return grads, (loss_sum / m if with_loss else None)
    grads, loss_sum = block_sums(blocks, params, m, with_loss)
    return grads, (loss_sum / m if with_loss else None)


def block_sums(blocks: list[Block], params: Params, m: int, with_loss: bool = False):
    """(the sum of the blocks' gradients, the sum of their losses times their sizes): gradients' loop."""
    W1, b1, W2, b2 = params
    dW1, db1, dW2, db2 = (np.zeros_like(theta) for theta in params)
    loss_sum = 0.0
    for pixels, X_b, y_b in blocks:
        Z1, A1, Z2, A2 = block_forward(X_b, W1[:, pixels], b1, W2, b2)  # trick 2: W1's columns for these pixels
        dW1_b, db1_b, dW2_b, db2_b = block_backward(X_b, y_b, Z1, A1, W2, A2, m)
        dW1[:, pixels] += dW1_b  # pixels are distinct, so this fancy-indexed += adds every entry once
        db1 += db1_b
        dW2 += dW2_b
        db2 += db2_b
        if with_loss:
            loss_sum += cross_entropy(Z2, y_b) * y_b.size  # the block's mean loss, weighted by its size
    return Params(dW1, db1, dW2, db2), loss_sum


def gradient_descent(
    X,
    y,
    iterations: int,
    alpha: float,
    *,
    params: Params | None = None,
    rng: np.random.Generator | None = None,
    hidden: int = SeedConfig.hidden,
    print_every: int = SeedConfig.print_every,
    block: int = SeedConfig.block,
    threads: int = 1,
    log: Callable[[str], None] | None = print,
):
    """seed.gradient_descent with the gradient computed by `gradients` over packed blocks. Same arguments plus
    `block` and `threads` (trick 5: limit BLAS to one thread around it, or the threads fight over the cores),
    same printed lines, same return value: (params, losses)."""
    if params is None:
        params = init_params(rng if rng is not None else np.random.default_rng(0), hidden, X.dtype)
    blocks = pack_blocks(X, y, block)
    losses = {}
    with ThreadPoolExecutor(threads) as pool:
        for i in range(iterations):
            record = print_every > 0 and i % print_every == 0
            grads, loss = gradients(blocks, params, y.size, with_loss=record, threads=threads, pool=pool)
            params = update_params(params, grads, alpha)
            if record:
                losses[i] = loss
                if log is not None:
                    log(f"Iteration {i}: Loss = {losses[i]:.4f}")
    return params, losses
