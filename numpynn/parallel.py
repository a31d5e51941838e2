"""Data-parallel training on threads: with `threads` = T > 1, fit() cuts every mini-batch into T slices and runs
the forward and backward pass of all of them at once, one thread each, through T replicas of the model.

    with DataParallel(model, threads=2, D=784) as step, step.blas_per_thread():  # one BLAS thread per slice
        loss, Z, grads = step(X_batch, y_batch, K, label_smoothing)   # forward, loss and backward
        optimizer.step(model.params(), grads, lr)   # one step, as always: only the optimizer changes weights

Why it is faster. BLAS already spreads one matrix product over every core, but NumPy runs everything else on one
core: im2col and col2im, pooling, ReLU, the copies. In the cnn preset that is about a third of a step, and the
other core waits through it. With one slice per core, every core works through the whole step, products
included (each with single-threaded BLAS): one epoch of the cnn preset took 12.3 s instead of 14.4 s on 2
cores (benchmarks/cnn_speed.py). NumPy releases the GIL inside its loops and products, so threads suffice.
Where BLAS does nearly all the work (a 784-800-10 MLP), one thread is faster.

Why it computes the same thing. The loss is a mean over the batch, so its gradient is a sum over the images: the
gradient of the whole batch is the sum of the slices' gradients, each slice's weighted by its share of the
batch, n_t / N (the loss of slice t is a mean over its own n_t images). The sum is taken in a fixed order,
so a run is deterministic for a given T and resumes bit for bit; next to T = 1 only float32 rounding differs,
because the products add in another order. Dropout draws the very masks one thread would: the model's own
Dropout layers draw the uniform numbers for the whole batch, from their own generators, and each replica's
Dropout uses its slice's rows of them.

Left out on purpose: BatchNorm (its statistics are over the batch, and each slice would normalise by its own:
a different method, so TrainConfig refuses threads > 1 with it), and processes (threads share the weights for
free; processes would copy them every step).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .checks import require
from .layers import BatchNorm, Dropout
from .losses import softmax_cross_entropy
from .model import Sequential


class SliceOfBatch:
    """Stands in for a replica Dropout layer's generator: random() returns this replica's rows of the uniform
    numbers that the model's own Dropout drew for the whole batch (Dropout.forward calls rng.random(X.shape))."""

    def __init__(self):
        self.U = None  # (n_t, ...) float32, set before every forward

    def random(self, shape, dtype=np.float32):
        assert self.U is not None and self.U.shape == tuple(shape) and self.U.dtype == dtype
        return self.U


class DataParallel:
    """One step's forward and backward on `threads` slices of the batch at once; see the module's docstring."""

    def __init__(self, model: Sequential, threads: int, D: int):
        require(isinstance(threads, int) and threads >= 2, "threads", threads, "use 2 or more (1 needs no replicas)")
        require(not any(isinstance(layer, BatchNorm) for layer in model.layers), "threads", threads,
                "BatchNorm normalises by the whole batch's statistics: use threads = 1 with batchnorm")
        self.model, self.threads = model, threads
        # Each Dropout layer's input, per image (e.g. (256,)): the shape of the numbers it draws for a batch.
        # activations() runs in inference mode, which draws nothing.
        outputs = model.activations(np.zeros((1, D), np.float32))
        inputs = [(D,)] + [output.shape[1:] for output in outputs[:-1]]
        self.dropouts = [(i, layer, inputs[i]) for i, layer in enumerate(model.layers) if isinstance(layer, Dropout)]
        self.replicas = [self._replica() for _ in range(threads)]
        self.pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="numpynn-slice")  # slice 0 runs here

    def _replica(self) -> Sequential:
        """The model's layers again, sharing its parameter arrays (the same dicts: an optimizer step or a
        load_state_dict changes both), with caches of their own."""
        replica = Sequential.from_spec(self.model.spec())
        for layer, own in zip(replica.layers, self.model.layers):
            layer.params, layer.buffers = own.params, own.buffers
            if isinstance(layer, Dropout):
                layer.rng = SliceOfBatch()
        return replica

    def __call__(self, X, y, K: int, label_smoothing: float = 0.0):
        """X (N, D), y (N,) -> (loss, Z (N, K), grads in the order of model.params()): what one thread's
        forward, loss and backward give for the whole batch, up to float32 rounding."""
        N = len(y)
        bounds = [N * t // self.threads for t in range(self.threads + 1)]  # slice t: rows bounds[t] to bounds[t+1]
        slices = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        for i, own, shape in self.dropouts:  # the masks one thread would draw, in the same order
            U = own.rng.random((N, *shape), dtype=np.float32)  # (N, ...)
            for replica, (a, b) in zip(self.replicas, slices):
                replica.layers[i].rng.U = U[a:b]

        errors = np.geterr()  # NumPy's floating-point error settings are per thread: the caller's apply to all

        def run(t):
            (a, b), replica = slices[t], self.replicas[t]
            with np.errstate(**errors):
                Z_t = replica.forward(X[a:b], train=True)  # (n_t, K)
                loss_t, dZ_t = softmax_cross_entropy(Z_t, y[a:b], K, label_smoothing)  # a mean over the slice
                share = (b - a) / N  # a Python float, so dZ_t stays float32
                replica.backward(dZ_t * share, need_dX=False)  # its part of the whole batch's mean
            return loss_t * share, Z_t, replica.grads()

        futures = [self.pool.submit(run, t) for t in range(1, len(slices))]
        results = [run(0)] + [future.result() for future in futures]
        loss = sum(result[0] for result in results)
        Z = np.concatenate([result[1] for result in results])  # (N, K)
        grads = [sum(parts) for parts in zip(*(result[2] for result in results))]  # slice 0's + slice 1's + ...
        return loss, Z, grads

    def blas_per_thread(self):
        """A context in which BLAS runs each product on the calling thread alone: the slices are the
        parallelism, and BLAS threads on top of them would only fight over the same cores."""
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown()
