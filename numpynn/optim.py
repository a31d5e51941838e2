"""Changing the weights, the only code that does: optimizers, learning-rate schedules and gradient clipping.

    opt = Adam(lr=1e-3)
    opt.step(model.params(), model.grads(), lr=schedule(t))   # updates the arrays in place

An optimizer keeps one buffer per parameter (momentum, Adam's moments), made at the first step and matched
to the parameters by position, so pass the same list, in the same order, every step. state_dict() holds the
step count and those buffers as plain arrays, so a run can be saved to .npz and resumed bit for bit.

Left out on purpose: per-parameter groups and per-layer learning rates, excluding biases from weight decay
(it applies to every array you pass), RMSprop and friends, and schedules beyond the four below.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .checks import require

# Adam's and AdamW's defaults, Kingma & Ba's (and PyTorch's): the training config reads them from here.
ADAM_BETAS = (0.9, 0.999)  # decay of the running means of the gradient and of its square
ADAM_EPS = 1e-8  # added to the root of the second moment, so no step divides by 0
# The largest learning rate accepted. No run learns anything near it (one diverges at far less, and says so);
# the cap keeps every schedule's arithmetic finite (cosine's (1 + cos) * lr overflows near float's 1.8e308).
MAX_LR = 1e6


def check_lr(lr: float) -> None:
    """The one range check of a base learning rate, for the optimizers and the schedules."""
    require(np.isfinite(lr) and 0 < lr <= MAX_LR, "lr", lr,
            f"use a number above 0 and at most {MAX_LR:g}, e.g. 0.1 for SGD, 1e-3 for Adam")


class Optimizer:
    """What SGD and Adam share: hyperparameter checks, the step count t, per-parameter buffers and their state."""

    buffers: tuple[str, ...] = ()  # names of the per-parameter buffers, e.g. ("m", "v")

    def __init__(self, lr: float, weight_decay: float):
        check_lr(lr)
        require(np.isfinite(weight_decay) and weight_decay >= 0, "weight_decay", weight_decay,
                "use 0 (off) or a small positive number, e.g. 5e-4")
        self.lr, self.weight_decay = lr, weight_decay
        self.t = 0  # steps taken so far
        self.state: dict[str, list[np.ndarray]] = {name: [] for name in self.buffers}

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float | None = None) -> None:
        """One update of every parameter, in place. lr, if given, replaces the base lr for this step (schedules)."""
        lr = self.lr if lr is None else lr
        require(np.isfinite(lr) and lr >= 0, "lr", lr, "a schedule must give a finite lr of 0 or more")
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients; pass matching lists")
        for name in self.buffers:
            if not self.state[name]:
                self.state[name] = [np.zeros_like(theta) for theta in params]  # buffers start at 0
            buffers = self.state[name]
            if len(buffers) != len(params) or any(b.shape != theta.shape for b, theta in zip(buffers, params)):
                raise ValueError(f"this optimizer's {name!r} buffers do not fit these parameters: pass the same list")
        self.t += 1
        for i, (theta, dtheta) in enumerate(zip(params, grads)):
            self.update(theta, dtheta, lr, *(self.state[name][i] for name in self.buffers))

    def state_dict(self) -> dict:
        """{"t": steps taken, "<buffer>.<i>": that buffer for parameter i}: numbers and arrays, fit for np.savez."""
        state = {"t": self.t}
        for name in self.buffers:
            state.update({f"{name}.{i}": buffer.copy() for i, buffer in enumerate(self.state[name])})
        return state

    def load_state_dict(self, state) -> None:
        """Take the step count and buffers from a state_dict (or an np.load of one) of the same optimizer."""
        n = sum(key.startswith(f"{self.buffers[0]}.") for key in state) if self.buffers else 0
        expected = {"t"} | {f"{name}.{i}" for name in self.buffers for i in range(n)}
        if set(state) != expected:
            raise ValueError(f"optimizer state does not fit {type(self).__name__}: missing "
                             f"{sorted(expected - set(state))}, unexpected {sorted(set(state) - expected)}")
        self.t = int(state["t"])
        self.state = {name: [np.array(state[f"{name}.{i}"]) for i in range(n)] for name in self.buffers}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (PyTorch's convention) and L2 weight decay:
        g = dtheta + weight_decay * theta
        v = momentum * v + g                            (v starts at 0)
        theta -= lr * v      or, with Nesterov,   theta -= lr * (g + momentum * v)
    With momentum = 0 and no decay this is the seed's update, theta -= lr * dtheta."""

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        require(0 <= momentum < 1, "momentum", momentum, "use a number in [0, 1), e.g. 0.9")
        require(not nesterov or momentum > 0, "nesterov", nesterov, "Nesterov needs momentum above 0, e.g. 0.9")
        self.momentum, self.nesterov = momentum, nesterov
        self.buffers = ("v",) if momentum else ()  # plain SGD keeps no state but the step count
        super().__init__(lr, weight_decay)

    def update(self, theta, g, lr, v=None):
        if self.weight_decay:
            g = g + self.weight_decay * theta
        if self.momentum:
            v *= self.momentum  # v lives across steps, so it is updated in place
            v += g
            g = g + self.momentum * v if self.nesterov else v
        theta -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with L2 weight decay added to the gradient:
        g = dtheta + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g**2        (both start at 0)
        m_hat = m / (1 - beta1**t)               v_hat = v / (1 - beta2**t)     (undo the early pull toward 0)
        theta -= lr * m_hat / (sqrt(v_hat) + eps)"""

    buffers = ("m", "v")
    decoupled = False  # AdamW: apply the decay to theta directly instead of through g

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        require(len(betas) == 2 and all(0 <= beta < 1 for beta in betas), "betas", betas,
                "use two numbers in [0, 1), e.g. (0.9, 0.999)")
        require(np.isfinite(eps) and eps > 0, "eps", eps, "use a small positive number, e.g. 1e-8")
        self.betas, self.eps = tuple(betas), eps

    def update(self, theta, g, lr, m, v):
        beta1, beta2 = self.betas
        if self.weight_decay and self.decoupled:
            theta *= 1 - lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * theta
        m *= beta1  # m and v live across steps, so they are updated in place
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        m_hat = m / (1 - beta1**self.t)
        v_hat = v / (1 - beta2**self.t)
        theta -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
        theta *= 1 - lr * weight_decay,   then the Adam step above with g = dtheta
    With L2 in g (plain Adam) the decay is divided by sqrt(v_hat) like the rest of the gradient, so weights with
    large gradients are barely decayed; decoupled, every weight shrinks by the same fraction."""

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS,
                 weight_decay: float = 1e-2):
        super().__init__(lr, betas, eps, weight_decay)


# Schedules: functions of the step t = 0, 1, 2, ... (the number of updates done so far) giving that step's lr.

def constant(lr: float) -> Callable[[int], float]:
    return lambda t: lr


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Callable[[int], float]:
    """lr * gamma ** floor(t / step_size): multiply by gamma every step_size steps."""
    return lambda t: lr * gamma ** (t // step_size)


def cosine(lr: float, total_steps: int, lr_min: float = 0.0) -> Callable[[int], float]:
    """lr_min + (lr - lr_min) * (1 + cos(pi * t / total_steps)) / 2: from lr down to lr_min, then lr_min."""
    return lambda t: lr_min + (lr - lr_min) * (1 + math.cos(math.pi * min(t, total_steps) / total_steps)) / 2


def linear_warmup(warmup_steps: int, then: Callable[[int], float]) -> Callable[[int], float]:
    """then(0) * (t + 1) / warmup_steps for the first warmup_steps steps, then then(t - warmup_steps):
    the schedule `then` starts when the warm-up ends."""
    return lambda t: then(0) * (t + 1) / warmup_steps if t < warmup_steps else then(t - warmup_steps)


SCHEDULES = ("constant", "step", "cosine")


def make_schedule(name: str, lr: float, total_steps: int, warmup_steps: int = 0, step_size: int = 1000,
                  gamma: float = 0.1, lr_min: float = 0.0) -> Callable[[int], float]:
    """The lr at step t for a run of total_steps updates: "constant", "step" (step_decay) or "cosine" (which
    spans the steps after the warm-up), preceded by warmup_steps of linear warm-up if warmup_steps > 0."""
    require(name in SCHEDULES, "schedule", name, f"use one of {', '.join(SCHEDULES)}")
    check_lr(lr)
    require(total_steps >= 1, "total_steps", total_steps, "use 1 or more")
    require(0 <= warmup_steps < total_steps, "warmup_steps", warmup_steps, f"use 0 up to {total_steps - 1}")
    require(step_size >= 1, "step_size", step_size, "use 1 or more")
    require(0 < gamma <= 1, "gamma", gamma, "use a number in (0, 1], e.g. 0.1")
    require(0 <= lr_min <= lr, "lr_min", lr_min, f"use a number from 0 up to lr = {lr}")
    if name == "constant":
        schedule = constant(lr)
    elif name == "step":
        schedule = step_decay(lr, step_size, gamma)
    else:
        schedule = cosine(lr, total_steps - warmup_steps, lr_min)
    return linear_warmup(warmup_steps, schedule) if warmup_steps else schedule


def clip_grad_norm(grads: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale all gradients together so their global L2 norm, sqrt(sum of every squared entry), is at most
    max_norm. Returns (grads, norm before clipping): new arrays if scaled, the same arrays if not."""
    require(max_norm > 0, "max_norm", max_norm, "use a number above 0, e.g. 1.0")
    # Squares summed in float64: in float32 a gradient of norm above ~1e19 would overflow to inf.
    norm = math.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for g in grads))
    if norm <= max_norm or not math.isfinite(norm):  # not finite: left as they are, for the caller to report
        return list(grads), norm
    scale = max_norm / norm
    return [g * scale for g in grads], norm
