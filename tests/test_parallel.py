"""Data-parallel training on threads (numpynn/parallel.py, --threads): the same gradients as one thread, the same
dropout masks, deterministic and resumable runs, BLAS limits that are given back, and clear refusals."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from numpynn import serialize
from numpynn.layers import BatchNorm, Dense, ReLU
from numpynn.losses import softmax_cross_entropy
from numpynn.model import Sequential, mlp
from numpynn.parallel import DataParallel
from numpynn.train import Run, TrainingDiverged, fit, make_config

from .test_train import SMALL, Crash, blobs, crash_at_epoch, square_blobs, train


def whole_batch(model, X, y, K):
    """One thread's forward, loss and backward, as fit() runs them with threads = 1."""
    Z = model.forward(X, train=True)
    loss, dZ = softmax_cross_entropy(Z, y, K)
    model.backward(dZ, need_dX=False)
    return loss, Z, model.grads()


@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_the_slices_add_up_to_the_whole_batch(architecture, threads):
    """Loss, logits and every gradient equal one thread's, up to float32 rounding, and stay float32, also when
    the batch does not split evenly (50 rows in 3 or 5 slices) and with dropout on."""
    data = square_blobs(n=75, side=8)
    config = make_config(architecture=architecture, channels=(3,), hidden=(12,), dropout=0.4, threads=threads)
    serial = Run.start(config, D=64, K=3).model
    sliced = Run.start(config, D=64, K=3).model  # the same seed: the same weights and dropout generators
    X, y = data.X_train[:50], data.y_train[:50]
    loss, Z, grads = whole_batch(serial, X, y, 3)
    with DataParallel(sliced, threads, D=64) as step:
        loss_t, Z_t, grads_t = step(X, y, 3)
    assert loss_t == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(Z_t, Z, rtol=1e-5, atol=1e-6)
    assert len(grads_t) == len(grads)
    for g_t, g in zip(grads_t, grads):
        assert g_t.dtype == np.float32 and g_t.shape == g.shape
        np.testing.assert_allclose(g_t, g, rtol=1e-4, atol=1e-6)


def test_dropout_masks_are_the_ones_one_thread_draws():
    """Each replica's Dropout uses its rows of the masks the model's own Dropout drew for the whole batch."""
    model = mlp([6, 40, 2], dropout=0.5, rng=np.random.default_rng(0))
    twin = mlp([6, 40, 2], dropout=0.5, rng=np.random.default_rng(0))
    X = np.random.default_rng(1).random((9, 6), dtype=np.float32)
    twin.forward(X, train=True)
    with DataParallel(model, 2, D=6) as step:
        step(X, np.zeros(9, dtype=np.int64), 2)
        masks = np.concatenate([replica.layers[2].M for replica in step.replicas])  # rows 0-3, then 4-8
    np.testing.assert_array_equal(masks, twin.layers[2].M)
    assert (masks == 0).any() and (masks != 0).any()
    # The model's own generator moved on exactly as one thread's would have.
    assert model.layers[2].rng.bit_generator.state == twin.layers[2].rng.bit_generator.state


def test_replicas_share_the_weights_and_keep_their_own_caches():
    model = Sequential([Dense(4, 5, rng=np.random.default_rng(0)), ReLU(), Dense(5, 2, rng=np.random.default_rng(1))])
    with DataParallel(model, 2, D=4) as step:
        model.params()[0] += 1.0  # what an optimizer step does: in place
        X = np.ones((3, 4), np.float32)
        for replica in step.replicas:
            assert replica.layers[0].params["W"] is model.layers[0].params["W"]
            np.testing.assert_array_equal(replica.forward(X, train=False), model.forward(X, train=False))
        step(np.ones((8, 4), np.float32), np.zeros(8, dtype=np.int64), 2)
        assert step.replicas[0].layers[0].X is not step.replicas[1].layers[0].X
        assert len(step.replicas[0].layers[0].X) == len(step.replicas[1].layers[0].X) == 4


def test_threads_train_like_one_thread_and_are_deterministic():
    data = blobs()
    options = {**SMALL, "lr": 0.01, "dropout": 0.3, "optimizer": "adam"}
    one = train(make_config(**options), data)[0]
    two = train(make_config(**options, threads=2), data)[0]
    again = train(make_config(**options, threads=2), data)[0]
    for p, q, r in zip(one.model.params(), two.model.params(), again.model.params()):
        np.testing.assert_array_equal(q, r)  # deterministic for a given number of threads
        np.testing.assert_allclose(q, p, rtol=1e-3, atol=1e-4)  # and the same training as one thread
    assert two.history.epochs[-1]["dev_accuracy"] == pytest.approx(one.history.epochs[-1]["dev_accuracy"], abs=0.02)


def test_a_crashed_threaded_run_resumes_bit_for_bit(tmp_path):
    data = square_blobs()
    config = make_config(**SMALL, architecture="cnn", channels=(2,), dropout=0.3, threads=2)
    straight = train(config, data)[0]
    with pytest.raises(Crash):
        train(config, data, checkpoint=tmp_path / "c.npz", progress=crash_at_epoch(3))
    resumed = Run.resume(*serialize.load(tmp_path / "c.npz"))
    assert resumed.config.threads == 2
    fit(resumed, data)
    for p, q in zip(straight.model.params(), resumed.model.params()):
        np.testing.assert_array_equal(p, q)


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.filterwarnings("error")  # fit() silences overflow warnings before its own message, on every thread
def test_blas_threads_are_given_back_after_training_and_after_a_failure():
    before = blas_threads()
    data = blobs()
    train(make_config(**SMALL, threads=2), data)
    assert blas_threads() == before
    with pytest.raises(TrainingDiverged):
        train(make_config(**{**SMALL, "lr": 1e6}, schedule="constant", threads=2), data)
    assert blas_threads() == before


def test_inside_a_step_blas_runs_on_one_thread_per_slice():
    model = mlp([4, 8, 2], rng=np.random.default_rng(0))
    with DataParallel(model, 2, D=4) as step, step.blas_per_thread():
        seen = step.pool.submit(blas_threads).result()
        assert blas_threads() == seen and set(seen) == {1}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"threads": 0}, "threads = 0 is out of range: use 1"),
        ({"threads": 1000}, "threads = 1000 is out of range"),
        ({"threads": 2.0}, "threads.*wrong type"),
        ({"threads": 2, "batchnorm": True}, "threads > 1 does not work with batchnorm"),
    ],
)
def test_bad_thread_counts_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config("mlp", **overrides)


def test_data_parallel_refuses_one_thread_and_batchnorm():
    with pytest.raises(ValueError, match="threads = 1 is out of range"):
        DataParallel(mlp([4, 8, 2]), 1, D=4)
    with pytest.raises(ValueError, match="BatchNorm"):
        DataParallel(Sequential([Dense(4, 3), BatchNorm(3), ReLU(), Dense(3, 2)]), 2, D=4)


def test_the_cnn_preset_trains_on_two_threads():
    assert make_config("cnn").threads == 2 and make_config("mlp").threads == 1


def test_a_checkpoint_from_before_threads_existed_resumes_on_one_thread(tmp_path):
    """The cnn preset now trains on 2 threads; a run saved before --threads existed had 1, and must go on with 1."""
    data = square_blobs(n=90, side=16)
    config = make_config("cnn", channels=(2, 3), hidden=(8,), epochs=2, batch_size=30, threads=1)
    train(config, data, checkpoint=tmp_path / "c.npz")
    arrays, header = serialize.load(tmp_path / "c.npz")
    del header["config"]["threads"]
    assert Run.resume(arrays, header).config.threads == 1
