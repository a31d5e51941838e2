"""Optimizers: one step equals its formula; schedules and clipping give their numbers; a saved state resumes
training bit for bit; bad hyperparameters are refused by name."""
import math

import numpy as np
import pytest

from numpynn.optim import SGD, Adam, AdamW, clip_grad_norm, constant, cosine, linear_warmup, make_schedule, step_decay


def theta0():
    return [np.array([1.0, -2.0, 0.5]), np.array([[0.25], [-1.0]])]


G1 = [np.array([0.5, 0.25, -1.0]), np.array([[2.0], [0.1]])]
G2 = [np.array([-0.3, 0.75, 0.2]), np.array([[-1.0], [0.4]])]


def run(opt, grads_per_step, **step_kwargs):
    params = theta0()
    for grads in grads_per_step:
        opt.step(params, grads, **step_kwargs)
    return params


def assert_params(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-14, atol=1e-15)


def test_sgd_step_is_theta_minus_lr_g():
    assert_params(run(SGD(lr=0.1), [G1]), [t - 0.1 * g for t, g in zip(theta0(), G1)])


def test_sgd_lr_passed_to_step_overrides_the_base_lr():
    assert_params(run(SGD(lr=0.1), [G1], lr=0.5), [t - 0.5 * g for t, g in zip(theta0(), G1)])


def test_sgd_weight_decay_adds_wd_theta_to_the_gradient():
    assert_params(run(SGD(lr=0.1, weight_decay=0.01), [G1]), [t - 0.1 * (g + 0.01 * t) for t, g in zip(theta0(), G1)])


def test_sgd_momentum_two_steps():
    # v1 = g1, theta1 = theta0 - lr v1;   v2 = mu v1 + g2, theta2 = theta1 - lr v2
    expected = [t - 0.1 * g1 - 0.1 * (0.9 * g1 + g2) for t, g1, g2 in zip(theta0(), G1, G2)]
    assert_params(run(SGD(lr=0.1, momentum=0.9), [G1, G2]), expected)


def test_sgd_nesterov_two_steps():
    # v1 = g1, theta1 = theta0 - lr (g1 + mu v1);   v2 = mu v1 + g2, theta2 = theta1 - lr (g2 + mu v2)
    expected = [t - 0.1 * (g1 + 0.9 * g1) - 0.1 * (g2 + 0.9 * (0.9 * g1 + g2)) for t, g1, g2 in zip(theta0(), G1, G2)]
    assert_params(run(SGD(lr=0.1, momentum=0.9, nesterov=True), [G1, G2]), expected)


def adam_by_hand(grads_per_step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, l2=0.0, decoupled=0.0):
    """Adam written out step by step, with the bias corrections 1 - beta**t."""
    params = theta0()
    m = [np.zeros_like(t) for t in params]
    v = [np.zeros_like(t) for t in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            params[i] = params[i] * (1 - lr * decoupled)
            g = g + l2 * params[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g**2
            params[i] = params[i] - lr * (m[i] / (1 - beta1**t)) / (np.sqrt(v[i] / (1 - beta2**t)) + eps)
    return params


def test_adam_first_step_moves_each_weight_by_about_lr():
    # At t = 1 the bias corrections make m_hat = g and v_hat = g**2: the step is lr * g / (|g| + eps).
    params = run(Adam(lr=0.01), [G1])
    assert_params(params, [t - 0.01 * g / (np.abs(g) + 1e-8) for t, g in zip(theta0(), G1)])


def test_adam_two_steps_with_bias_correction():
    assert_params(run(Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6), [G1, G2]),
                  adam_by_hand([G1, G2], lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6))


def test_adam_weight_decay_is_l2_in_the_gradient():
    assert_params(run(Adam(lr=0.01, weight_decay=0.1), [G1, G2]), adam_by_hand([G1, G2], lr=0.01, l2=0.1))


def test_adamw_decay_is_decoupled():
    # theta *= 1 - lr * wd, then the Adam step with the plain gradient
    assert_params(run(AdamW(lr=0.01, weight_decay=0.1), [G1, G2]), adam_by_hand([G1, G2], lr=0.01, decoupled=0.1))
    assert AdamW().weight_decay == 1e-2


def test_schedules_at_a_few_steps():
    assert [constant(0.1)(t) for t in (0, 5, 10**6)] == [0.1, 0.1, 0.1]
    assert [step_decay(0.1, 10, 0.5)(t) for t in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert [cosine(1.0, 100)(t) for t in (0, 50, 100, 150)] == pytest.approx([1, 0.5, 0, 0])
    assert cosine(1.0, 100, lr_min=0.1)(50) == pytest.approx(0.55)
    assert [linear_warmup(4, constant(1.0))(t) for t in (0, 1, 3, 4, 100)] == pytest.approx([0.25, 0.5, 1, 1, 1])
    assert [linear_warmup(2, step_decay(1.0, 3))(t) for t in (0, 1, 2, 4, 5)] == pytest.approx([0.5, 1, 1, 1, 0.1])


def test_make_schedule_composes_warmup_with_the_schedule_after_it():
    schedule = make_schedule("cosine", 1.0, total_steps=110, warmup_steps=10)
    assert [schedule(t) for t in (0, 9, 10, 60, 110)] == pytest.approx([0.1, 1, 1, 0.5, 0])
    assert make_schedule("constant", 0.3, 50)(49) == 0.3
    assert make_schedule("step", 1.0, 100, step_size=20, gamma=0.5)(45) == 0.25


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = [np.array([3.0, 0.0]), np.array([[0.0], [4.0]])]  # global norm sqrt(9 + 16) = 5
    clipped, norm = clip_grad_norm(grads, max_norm=10)
    assert norm == 5 and all(c is g for c, g in zip(clipped, grads))


def test_clip_grad_norm_scales_all_gradients_together():
    grads = [np.array([3.0, 0.0], np.float32), np.array([[0.0], [4.0]], np.float32)]
    clipped, norm = clip_grad_norm(grads, max_norm=1.0)
    assert norm == 5
    np.testing.assert_allclose(clipped[0], [0.6, 0], rtol=1e-6)
    np.testing.assert_allclose(clipped[1], [[0], [0.8]], rtol=1e-6)
    assert clipped[0].dtype == np.float32
    np.testing.assert_array_equal(grads[0], [3, 0])  # gradients are values: the inputs are not changed


def test_clip_grad_norm_reports_a_non_finite_norm_and_leaves_the_gradients_for_the_caller():
    grads = [np.array([np.inf, 1.0])]
    clipped, norm = clip_grad_norm(grads, 1.0)
    assert math.isinf(norm) and clipped[0] is grads[0]


def toy_gradients(params, step):
    """Gradients that depend on the weights and on the step, like real ones."""
    noise = np.random.default_rng(step)
    return [(0.3 * theta + noise.standard_normal(theta.shape)).astype(theta.dtype) for theta in params]


@pytest.mark.parametrize(
    "make",
    [lambda: SGD(0.1), lambda: SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), lambda: Adam(1e-2),
     lambda: AdamW(1e-2)],
)
def test_a_saved_optimizer_state_resumes_training_bit_for_bit(make, tmp_path):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]
    first = make()
    for step in range(3):
        first.step(params, toy_gradients(params, step))
    np.savez(tmp_path / "opt.npz", **first.state_dict())
    saved_params = [theta.copy() for theta in params]
    for step in range(3, 6):
        first.step(params, toy_gradients(params, step))

    resumed = make()
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as state:
        resumed.load_state_dict(state)
    assert resumed.t == 3
    for step in range(3, 6):
        resumed.step(saved_params, toy_gradients(saved_params, step))
    for a, b in zip(params, saved_params):
        np.testing.assert_array_equal(a, b)


def test_state_dict_holds_the_step_count_and_one_buffer_per_parameter():
    opt = Adam()
    opt.step(theta0(), G1)
    state = opt.state_dict()
    assert sorted(state) == ["m.0", "m.1", "t", "v.0", "v.1"] and state["t"] == 1
    assert SGD(0.1).state_dict() == {"t": 0}


def test_load_state_dict_refuses_a_state_from_another_optimizer():
    adam = Adam()
    adam.step(theta0(), G1)
    with pytest.raises(ValueError, match=r"unexpected \[.m\.0.\]"):
        SGD(0.1, momentum=0.9).load_state_dict({"t": 1, "v.0": np.zeros(3), "m.0": np.zeros(3)})
    with pytest.raises(ValueError, match="missing"):
        Adam().load_state_dict({key: value for key, value in adam.state_dict().items() if key != "v.1"})


def test_step_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="gradients"):
        SGD(0.1).step(theta0(), G1[:1])
    opt = SGD(0.1, momentum=0.5)
    opt.step(theta0(), G1)
    with pytest.raises(ValueError, match="buffers do not fit"):
        opt.step(theta0()[:1], G1[:1])


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: SGD(lr=0), "lr"),
        (lambda: SGD(lr=float("nan")), "lr"),
        (lambda: SGD(lr=float("inf")), "lr"),
        (lambda: SGD(0.1, momentum=1.0), "momentum"),
        (lambda: SGD(0.1, momentum=-0.5), "momentum"),
        (lambda: SGD(0.1, nesterov=True), "nesterov"),
        (lambda: SGD(0.1, weight_decay=-1e-4), "weight_decay"),
        (lambda: Adam(lr=-1e-3), "lr"),
        (lambda: Adam(betas=(0.9, 1.0)), "betas"),
        (lambda: Adam(betas=(-0.1, 0.999)), "betas"),
        (lambda: Adam(eps=0), "eps"),
        (lambda: Adam(eps=float("inf")), "eps"),
        (lambda: SGD(0.1, weight_decay=float("inf")), "weight_decay"),
        (lambda: AdamW(weight_decay=float("nan")), "weight_decay"),
        (lambda: AdamW(weight_decay=-0.01), "weight_decay"),
        (lambda: SGD(0.1).step(theta0(), G1, lr=-1.0), "lr"),
        (lambda: clip_grad_norm(G1, 0), "max_norm"),
        (lambda: make_schedule("linear", 0.1, 100), "schedule"),
        (lambda: make_schedule("cosine", 0.1, 100, warmup_steps=100), "warmup_steps"),
        (lambda: make_schedule("step", 0.1, 100, step_size=0), "step_size"),
        (lambda: make_schedule("step", 0.1, 100, gamma=0), "gamma"),
        (lambda: make_schedule("cosine", 0.1, 100, lr_min=0.2), "lr_min"),
    ],
)
def test_bad_hyperparameters_raise_a_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=name) as info:
        make()
    assert "\n" not in str(info.value)  # one line


def test_adams_defaults_are_written_once_and_both_optimizers_use_them():
    import inspect

    from numpynn import optim

    assert optim.ADAM_BETAS == (0.9, 0.999) and optim.ADAM_EPS == 1e-8
    for cls in (Adam, AdamW):
        parameters = inspect.signature(cls).parameters
        assert parameters["betas"].default is optim.ADAM_BETAS and parameters["eps"].default is optim.ADAM_EPS
        opt = cls()
        assert opt.betas == optim.ADAM_BETAS and opt.eps == optim.ADAM_EPS


def test_a_learning_rate_is_checked_in_one_place_finite_above_0_and_at_most_max_lr():
    """Above MAX_LR no run learns; near float's limit cosine's (1 + cos) * lr would overflow to inf mid-run."""
    from numpynn.optim import MAX_LR

    for lr in (0.0, -0.1, math.inf, math.nan, MAX_LR * 1.01, 1e308):
        for make in (lambda: SGD(lr), lambda: Adam(lr), lambda: make_schedule("cosine", lr, total_steps=10)):
            with pytest.raises(ValueError, match=r"lr = .* is out of range: use a number above 0 and at most 1e\+06"):
                make()
    schedule = make_schedule("cosine", MAX_LR, total_steps=10, warmup_steps=2)
    assert all(math.isfinite(schedule(t)) for t in range(12)) and schedule(2) == MAX_LR
