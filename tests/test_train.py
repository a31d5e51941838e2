"""The training loop: config and presets, determinism, early stopping, divergence, checkpoints and resume."""
import inspect
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from numpynn import serialize
from numpynn.train import PRESETS, History, Run, TrainConfig, TrainingDiverged, evaluate, fit, make_config


def blobs(n=600, D=20, K=3, seed=0):
    """K Gaussian blobs in D dimensions, split 2:1 into train and dev: easy, but not instantly."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((K, D)) * 1.5
    y = rng.integers(0, K, n)
    X = (centres[y] + rng.standard_normal((n, D))).astype(np.float32)
    cut = 2 * n // 3
    return SimpleNamespace(X_train=X[:cut], y_train=y[:cut], X_dev=X[cut:], y_dev=y[cut:])


SMALL = dict(hidden=(16,), epochs=4, batch_size=32, lr=0.05)


def train(config, data, **kwargs):
    run = Run.start(config, D=data.X_train.shape[1], K=int(data.y_train.max()) + 1)
    history = fit(run, data, **kwargs)
    return run, history


def test_presets_only_change_what_they_name():
    for name, changes in PRESETS.items():
        assert make_config(name) == TrainConfig(preset=name, **changes)
    seed = make_config("seed")
    assert seed.hidden == (10,) and seed.init == "seed" and seed.optimizer == "adam"
    assert seed.momentum == TrainConfig.momentum  # untouched by the preset
    assert make_config("seed", lr=0.01).lr == 0.01  # an override beats the preset
    assert set(PRESETS) >= {"mlp", "seed"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (0,)}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": "ten"}, "epochs.*wrong type"),
        ({"lr": True}, "lr.*wrong type"),
        ({"learning_rate": 0.1}, "learning_rate is not a training option"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov"),
    ],
)
def test_bad_options_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config("mlp", **overrides)


def test_adam_hyperparameters_reach_the_optimizer():
    from numpynn.train import build_optimizer

    adam = build_optimizer(make_config(optimizer="adamw", beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01))
    assert (type(adam).__name__, adam.betas, adam.eps, adam.weight_decay) == ("AdamW", (0.8, 0.99), 1e-6, 0.01)


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset = 'huge' is out of range: choose one of mlp, cnn, cnn-fast, seed"):
        make_config("huge")


def test_training_learns_and_keeps_a_history():
    data = blobs()
    run, history = train(make_config(**SMALL), data)
    assert isinstance(history, History) and history.stopped == "completed"
    assert [row["epoch"] for row in history.epochs] == [1, 2, 3, 4]
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert evaluate(run.model, data.X_dev, data.y_dev)[1] > 0.9
    assert run.step == 4 * int(np.ceil(400 / 32))


def test_the_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    data = blobs()
    config = make_config(**SMALL, dropout=0.2)
    a, b = train(config, data)[0], train(config, data)[0]
    c = train(replace(config, seed=1), data)[0]
    for p, q in zip(a.model.params(), b.model.params()):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(a.model.params(), c.model.params()))


def test_early_stopping_restores_the_best_epoch():
    data = blobs(n=300)
    # A learning rate that overshoots after a good start: dev accuracy peaks early, then falls.
    config = make_config(**{**SMALL, "epochs": 30, "lr": 0.5}, schedule="constant", patience=3, momentum=0.95)
    run, history = train(config, data)
    best = history.best_epoch
    assert history.stopped in ("early stopping", "completed")
    assert history.epochs[best - 1]["dev_accuracy"] == max(history.column("dev_accuracy"))
    assert evaluate(run.model, data.X_dev, data.y_dev)[1] == history.epochs[best - 1]["dev_accuracy"]
    if history.stopped == "early stopping":
        assert len(history.epochs) == best + 3


def test_a_diverging_run_stops_with_a_clear_message():
    data = blobs()
    config = make_config(**{**SMALL, "lr": 1e6}, schedule="constant")  # each step overshoots a million-fold
    with pytest.raises(TrainingDiverged, match=r"became (inf|nan) at epoch 1, step \d+.*lower learning rate"):
        train(config, data)


def test_without_a_dev_set_training_still_runs():
    data = blobs()
    data.X_dev = data.y_dev = None
    run, history = train(make_config(**SMALL, patience=2), data)
    assert history.stopped == "completed" and history.epochs[-1]["dev_accuracy"] is None


class Crash(Exception):
    pass


def crash_at_epoch(n):
    """A progress factory that dies as epoch n starts, like a process killed after epoch n - 1."""

    def progress(epoch, n_batches):
        if epoch == n:
            raise Crash
        return None

    return progress


def test_a_crashed_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    """4 epochs straight == 2 epochs, a crash in the third, then a resume (with dropout, Adam, warm-up, cosine)."""
    data = blobs()
    config = make_config(**{**SMALL, "lr": 0.01}, dropout=0.3, optimizer="adam", warmup_epochs=1)
    straight = train(config, data)[0]
    with pytest.raises(Crash):
        train(config, data, checkpoint=tmp_path / "c.npz", progress=crash_at_epoch(3))
    arrays, header = serialize.load(tmp_path / "c.npz")
    assert header["trainer"]["epoch"] == 2
    resumed = Run.resume(arrays, header)
    fit(resumed, data)
    assert resumed.epoch == 4 and [row["epoch"] for row in resumed.history.epochs] == [1, 2, 3, 4]
    for p, q in zip(straight.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(p, q)
    assert resumed.optimizer.t == straight.optimizer.t


def test_extending_a_finished_run_equals_the_longer_run_when_the_schedule_does_not_depend_on_its_length(tmp_path):
    data = blobs()
    config = make_config(**SMALL, schedule="constant", dropout=0.2)
    straight = train(config, data)[0]
    train(replace(config, epochs=2), data, checkpoint=tmp_path / "c.npz")
    resumed = Run.resume(*serialize.load(tmp_path / "c.npz"), epochs=4)
    fit(resumed, data)
    for p, q in zip(straight.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(p, q)


def test_callbacks_see_every_batch_and_epoch_and_should_stop_ends_the_run():
    data = blobs()
    batches, epochs = [], []
    run, history = train(make_config(**SMALL), data, on_batch=lambda r, loss, acc: batches.append((r.step, loss, acc)),
                         on_epoch=lambda r, row: epochs.append(row))
    assert [b[0] for b in batches] == list(range(1, run.step + 1))
    assert all(0 <= acc <= 1 and np.isfinite(loss) for _, loss, acc in batches)
    assert epochs == history.epochs
    # A stop request after the 5th step ends the run there, as Ctrl-C would.
    stopper = []
    run, history = train(make_config(**SMALL), data, should_stop=lambda: len(stopper) >= 5,
                         on_batch=lambda r, loss, acc: stopper.append(1))
    assert run.step == 5 and history.stopped == "interrupted" and history.epochs == []



# --- augmentation (numpynn/augment.py) in the loop ------------------------------------------------------------

def square_blobs(n=240, side=6, K=3, seed=0):
    """blobs() as square images of pixels in [0, 1], which augmentation needs."""
    data = blobs(n=n, D=side * side, K=K, seed=seed)
    for name in ("X_train", "X_dev"):
        setattr(data, name, (1 / (1 + np.exp(-getattr(data, name)))).astype(np.float32))
    return data


AUGMENTED = [dict(augment="affine"), dict(augment="elastic", augment_sigma=1.5, augment_alpha=8.0)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"augment": "mirror"}, "augment = 'mirror' is out of range: use one of none, affine, elastic"),
        ({"augment_shift": -1.0}, "augment_shift"),
        ({"augment_rotation": 181.0}, "augment_rotation"),
        ({"augment_rotation": float("nan")}, "augment_rotation"),
        ({"augment_scale": 1.0}, "augment_scale"),
        ({"augment_shear": 61.0}, "augment_shear"),
        ({"augment_alpha": float("inf")}, "augment_alpha"),
        ({"augment_sigma": 0.0}, "augment_sigma"),
        ({"augment_sigma": "4"}, "augment_sigma.*wrong type"),
    ],
)
def test_bad_augmentation_options_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config("mlp", **overrides)


@pytest.mark.parametrize("augmentation", AUGMENTED, ids=["affine", "elastic"])
def test_every_training_batch_is_augmented_and_the_dev_set_never(augmentation, monkeypatch):
    import numpynn.config as config_module

    data = square_blobs()
    seen = []
    real = {"affine": config_module.affine, "elastic": config_module.elastic}[augmentation["augment"]]

    def spy(X, rng, **params):
        out = real(X, rng, **params)
        seen.append((X.copy(), out))
        return out

    monkeypatch.setattr(config_module, augmentation["augment"], spy)
    run, history = train(make_config(**SMALL, **augmentation), data)
    # Every batch of every epoch went through it, and only training rows did: 4 epochs x 160 images.
    assert sum(len(X) for X, _ in seen) == 4 * len(data.y_train) and len(seen) == run.step
    assert all(any(np.array_equal(x, row) for row in data.X_train) for X, _ in seen[:3] for x in X)
    assert all(not np.array_equal(X, out) for X, out in seen)  # really changed
    # The dev score in the history is the plain dev set's.
    assert history.epochs[-1]["dev_accuracy"] == evaluate(run.model, data.X_dev, data.y_dev)[1]


@pytest.mark.parametrize("augmentation", AUGMENTED, ids=["affine", "elastic"])
def test_an_augmented_run_is_deterministic_and_differs_from_a_plain_one(augmentation):
    data = square_blobs()
    config = make_config(**SMALL, **augmentation)
    a, b = train(config, data)[0], train(config, data)[0]
    plain = train(make_config(**SMALL), data)[0]
    for p, q in zip(a.model.params(), b.model.params()):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(a.model.params(), plain.model.params()))


@pytest.mark.parametrize("augmentation", AUGMENTED, ids=["affine", "elastic"])
def test_a_crashed_augmented_run_resumes_bit_for_bit(tmp_path, augmentation):
    """As the test above: 4 epochs straight == 2 epochs, a crash, a resume; the augmentation's generator is in
    the checkpoint, so the resumed epochs draw the same transforms the straight run drew."""
    data = square_blobs()
    config = make_config(**SMALL, **augmentation, dropout=0.2)
    straight = train(config, data)[0]
    with pytest.raises(Crash):
        train(config, data, checkpoint=tmp_path / "c.npz", progress=crash_at_epoch(3))
    arrays, header = serialize.load(tmp_path / "c.npz")
    assert header["trainer"]["epoch"] == 2 and "augment_rng" in header["trainer"]
    resumed = Run.resume(arrays, header)
    assert resumed.augment_rng.bit_generator.state == header["trainer"]["augment_rng"]
    fit(resumed, data)
    for p, q in zip(straight.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(p, q)
    # Without the saved generator state (a fresh stream instead), the resumed run would differ.
    del header["trainer"]["augment_rng"]
    fresh = Run.resume(arrays, header)
    fit(fresh, data)
    assert any(not np.array_equal(p, q) for p, q in zip(straight.model.params(), fresh.model.params()))


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("augmentation", AUGMENTED, ids=["affine", "elastic"])
def test_augmentation_works_with_every_preset(preset, augmentation):
    """Each preset as it is (its own architecture, mlp or cnn), shortened to one small epoch on 16 x 16 images
    (the cnn preset's two valid 5x5 convolutions and pools take 16 down to 1 pixel)."""
    data = square_blobs(n=60, side=16)
    config = make_config(preset, **augmentation, epochs=1, warmup_epochs=0.0, batch_size=20)
    run, history = train(config, data)
    assert history.stopped == "completed" and run.step == 2
    assert np.isfinite(history.epochs[0]["train_loss"])


def test_both_architectures_train_with_augmentation():
    data = square_blobs(n=60, side=8)
    for architecture in ("mlp", "cnn"):
        config = make_config(architecture=architecture, channels=(2,), augment="elastic", epochs=1, hidden=(8,))
        assert train(config, data)[1].stopped == "completed"


def test_augmentation_refuses_images_that_are_not_square():
    with pytest.raises(ValueError, match="augment = 'affine' is out of range: augmentation needs square images; "
                                         "20 inputs are not"):
        Run.start(make_config(**SMALL, augment="affine"), D=20, K=3)


@pytest.mark.parametrize("config, applies_to, does_not", [
    ({"architecture": "mlp", "optimizer": "sgd", "momentum": 0.0, "schedule": "cosine", "augment": "none"},
     ["hidden", "lr", "momentum", "augment", "threads"],
     ["channels", "padding", "beta1", "eps", "nesterov", "gamma", "step_epochs", "augment_shift", "augment_alpha"]),
    ({"architecture": "cnn", "optimizer": "adam", "schedule": "step", "augment": "elastic"},
     ["channels", "padding", "beta1", "beta2", "eps", "gamma", "step_epochs", "augment_alpha", "augment_sigma"],
     ["momentum", "nesterov", "augment_shift", "augment_rotation"]),
    ({"optimizer": "sgd", "momentum": 0.9, "augment": "affine"}, ["nesterov", "augment_shear"], ["augment_sigma"]),
])
def test_which_options_apply(config, applies_to, does_not):
    from numpynn.train import applies

    assert all(applies(name, config) for name in applies_to)
    assert not any(applies(name, config) for name in does_not)


def test_adamw_without_a_weight_decay_gets_adamws_own_default():
    """--optimizer adamw alone decays as AdamW does (0.01, PyTorch's default), not as Adam (0): a decay that
    nobody gave, neither the defaults, a preset, a config file nor a flag, is the optimizer's own."""
    from numpynn.optim import AdamW
    from numpynn.train import build_optimizer

    adamw = make_config(optimizer="adamw")
    assert adamw.weight_decay == 0.01 == inspect.signature(AdamW).parameters["weight_decay"].default
    assert build_optimizer(adamw).weight_decay == 0.01
    assert make_config("cnn", optimizer="adamw").weight_decay == 0.01  # a preset's optimizer changed by a flag
    assert make_config(optimizer="adamw", weight_decay=0.0).weight_decay == 0.0  # given: kept, even 0
    assert make_config(optimizer="adam").weight_decay == make_config("mlp").weight_decay == 0.0
    assert TrainConfig(optimizer="adamw").weight_decay == 0.01  # built directly, too


def test_the_warmup_help_says_what_the_schedule_does():
    """Of W warm-up steps, step t runs at lr * (t + 1) / W: the first at lr / W, not at 0."""
    from numpynn.optim import make_schedule

    help_text = TrainConfig.__dataclass_fields__["warmup_epochs"].metadata["help"]
    assert "from 0" not in help_text and "lr / W" in help_text
    schedule = make_schedule("constant", 0.8, total_steps=10, warmup_steps=4)
    assert [schedule(t) for t in range(5)] == [0.2, 0.4, 0.6000000000000001, 0.8, 0.8]


def test_the_schedule_sets_the_optimizers_rate_and_the_step_uses_it():
    """The optimizer's lr is the one each step uses: fit sets it from the schedule before every step, and the
    History's lr is the optimizer's at the epoch's end."""
    from numpynn.optim import make_schedule

    data = blobs()
    config = make_config(**SMALL, warmup_epochs=1.0)
    run = Run.start(config, D=20, K=3)
    seen, real_step = [], run.optimizer.step

    def step(params, grads, *args, **kwargs):
        seen.append((args, kwargs, run.optimizer.lr))
        return real_step(params, grads, *args, **kwargs)

    run.optimizer.step = step
    history = fit(run, data)
    batches = int(np.ceil(400 / 32))
    schedule = make_schedule("cosine", config.lr, total_steps=4 * batches, warmup_steps=batches)
    assert all(args == () and kwargs == {} for args, kwargs, _ in seen)  # no rate passed around the optimizer
    assert [lr for _, _, lr in seen] == [schedule(t) for t in range(4 * batches)]
    assert history.column("lr") == [schedule(t) for t in range(batches - 1, 4 * batches, batches)]


# Options from a file or a JSON body: any TOML or JSON value may arrive, and each is one OptionError ---------------

@pytest.mark.parametrize("preset, overrides, words", [
    (["mlp"], {}, "preset = ['mlp'] is out of range: choose one of"),
    ({"a": 1}, {}, "preset = {'a': 1} is out of range"),
    ("mlp", {"lr": 10**400}, "lr = a number of about 401 digits is out of range: use a number a float can hold"),
    ("mlp", {"dropout": -10**309}, "dropout = a number of about 310 digits is out of range"),
    ("mlp", {"epochs": 2**63}, "epochs = 9223372036854775808 is out of range: use a whole number below 2**63"),
    ("mlp", {"seed": 10**30}, "seed = a number of about 31 digits is out of range"),
    ("mlp", {"hidden": [16, 10**30]}, "hidden = (16, 1000000000000000000000000000000) is out of range: use whole"),
    ("mlp", {"lr": 1e308}, "lr = 1e+308 is out of range: use a number above 0 and at most 1e+06"),
])
def test_make_config_refuses_values_no_type_check_caught_with_one_option_error(preset, overrides, words):
    from numpynn.checks import OptionError

    with pytest.raises(OptionError) as caught:
        make_config(preset, **overrides)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_read_toml_says_what_is_wrong_with_a_file_in_one_line(tmp_path):
    from numpynn.config import TomlFileError, read_toml

    (tmp_path / "ok.toml").write_text("[train]\nlr = 0.1\n")
    assert read_toml(tmp_path / "ok.toml") == {"train": {"lr": 0.1}}
    cases = {"missing.toml": (None, "no such file"), "folder": (None, "not a regular file"),
             "bad.toml": (b"lr = = 1\n", "not a valid TOML file"), "latin.toml": (b"\xe9 = 1\n", "not UTF-8 text"),
             "deep.toml": (b"a = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
             "digits.toml": (b"a = 1" + b"0" * 5000, "not a valid TOML file")}
    (tmp_path / "folder").mkdir()
    for name, (text, words) in cases.items():
        if text is not None:
            (tmp_path / name).write_bytes(text)
        with pytest.raises(TomlFileError, match=words) as caught:
            read_toml(tmp_path / name)
        assert "\n" not in str(caught.value)
