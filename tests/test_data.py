"""numpynn.data on small generated files: loading a data set from a folder, where data is looked for, and the
splits.

The file readers are tested in test_idx.py, downloads in test_download.py. The real MNIST files are used only by
the tests marked `mnist`.
"""
import gzip
import hashlib

import numpy as np
import pytest

from .conftest import random_mnist_arrays
from .test_idx import npz_arrays, raises_data_error, write_idx

from numpynn.data import DATASETS, Splits, cache_dir, find_data, load_mnist, load_raw
from numpynn.idx import DataError

NAMES = {key: name for key, name in DATASETS["mnist"].files.items()}   # key -> canonical .gz name


def make_dataset(folder, *, n_train=100, n_test=30, seed=0, spelling="gz"):
    """Write a small MNIST-like data set into `folder`; return its arrays (x_train, y_train, x_test, y_test).

    spelling: "gz" canonical .gz names, "raw" decompressed names, "dotted" the train-images.idx3-ubyte form."""
    arrays = random_mnist_arrays(seed, n_train, n_test)
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        name = NAMES[key]
        if spelling != "gz":
            name = name[:-3]
        if spelling == "dotted":
            name = name.replace("-idx", ".idx")
        write_idx(folder / name, array, gz=spelling == "gz")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


@pytest.fixture(autouse=True)
def isolated_places(tmp_path, monkeypatch):
    """No test may see the developer's NUMPYNN_DATA or cache, or reach a network."""
    monkeypatch.delenv("NUMPYNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ---------------------------------------------------------------------------------------------------------
# Checks made when loading a data set from a folder

def test_load_raw_from_canonical_gz_files(tmp_path):
    arrays = make_dataset(tmp_path / "d")
    out = load_raw(data_dir=tmp_path / "d", download=False)
    for got, want in zip(out, arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("spelling", ["raw", "dotted"])
def test_load_raw_from_decompressed_files(tmp_path, spelling):
    arrays = make_dataset(tmp_path / "d", spelling=spelling)
    for got, want in zip(load_raw(data_dir=tmp_path / "d", download=False), arrays):
        np.testing.assert_array_equal(got, want)


def test_labels_out_of_range(tmp_path):
    make_dataset(tmp_path)
    labels = np.zeros(100, np.uint8)
    labels[42] = 10
    write_idx(tmp_path / NAMES["train_labels"], labels, gz=True)
    message = raises_data_error(load_raw, "mnist", tmp_path, match="outside 0..9")
    assert NAMES["train_labels"] in message and "index 42" in message


def test_image_and_label_counts_disagree(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / NAMES["test_labels"], np.zeros(29, np.uint8), gz=True)
    message = raises_data_error(load_raw, "mnist", tmp_path, match="29 labels for the 30 images")
    assert NAMES["test_labels"] in message


@pytest.mark.parametrize("images", [np.zeros((5, 28, 27), np.uint8), np.zeros((5, 784), np.uint8),
                                    np.zeros((5, 28, 28), np.float32)])
def test_images_must_be_n_by_28_by_28_uint8(tmp_path, images):
    make_dataset(tmp_path, n_test=5)
    write_idx(tmp_path / NAMES["test_images"], images, gz=True)
    message = raises_data_error(load_raw, "mnist", tmp_path, match="Nx28x28 uint8")
    assert NAMES["test_images"] in message


def test_broken_file_in_folder_is_named(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / NAMES["train_images"]
    path.write_bytes(path.read_bytes()[:-50])
    message = raises_data_error(load_raw, "mnist", tmp_path)
    assert str(path) in message


def test_folder_with_mnist_npz(tmp_path):
    arrays = npz_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    x_train, *_ = load_raw(data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(x_train, arrays["x_train"])


def test_fashion_mnist_does_not_take_mnist_npz(tmp_path):
    np.savez(tmp_path / "mnist.npz", **npz_arrays())
    with pytest.raises(DataError, match="no Fashion-MNIST files"):
        load_raw("fashion-mnist", tmp_path, download=False)


# ---------------------------------------------------------------------------------------------------------
# Where the data is looked for

def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "numpynn" / "mnist"
    assert cache_dir("fashion-mnist") == tmp_path / "numpynn" / "fashion-mnist"


@pytest.mark.parametrize("xdg", [None, "", "relative/path"])
def test_cache_dir_default(tmp_path, monkeypatch, xdg):
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert cache_dir() == tmp_path / ".cache" / "numpynn" / "mnist"


@pytest.mark.parametrize("call", [cache_dir, find_data, load_raw, load_mnist])
def test_unknown_dataset(call):
    message = raises_data_error(call, "emnist")
    assert "fashion-mnist" in message and "mnist" in message


@pytest.fixture
def three_places(tmp_path, monkeypatch):
    """A data set in each of an argument folder, the NUMPYNN_DATA folder and the cache, told apart by seed."""
    arg, env = tmp_path / "arg", tmp_path / "env"
    make_dataset(arg, seed=1)
    make_dataset(env, seed=2)
    make_dataset(cache_dir(), seed=3)
    monkeypatch.setenv("NUMPYNN_DATA", str(env))
    return arg, env, cache_dir()


def test_argument_beats_env_beats_cache(three_places, monkeypatch):
    arg, env, cache = three_places
    assert find_data(data_dir=arg, download=False) == arg
    assert find_data(download=False) == env
    monkeypatch.delenv("NUMPYNN_DATA")
    assert find_data(download=False) == cache
    # and the arrays really come from there
    np.testing.assert_array_equal(load_raw(data_dir=arg, download=False)[1], make_dataset(arg, seed=1)[1])


def test_a_data_folder_that_lacks_the_files_is_an_error_not_a_fallback(three_places, tmp_path):
    arg, env, cache = three_places
    with pytest.raises(DataError, match=r"typo: does not exist; put the four MNIST files .* --data DIR"):
        find_data(data_dir=tmp_path / "typo")
    (arg / NAMES["test_labels"]).unlink()
    with pytest.raises(DataError, match=f"missing {NAMES['test_labels']}") as error:
        find_data(data_dir=arg)
    assert "\n" not in str(error.value)


def test_a_numpynn_data_folder_that_lacks_the_files_is_passed_over_with_a_warning(three_places, monkeypatch):
    arg, env, cache = three_places
    monkeypatch.setenv("NUMPYNN_DATA", str(env / "typo"))
    with pytest.warns(UserWarning, match=r"\$NUMPYNN_DATA: does not exist\); using .*cache"):
        assert find_data(download=False) == cache


def test_nothing_found_offline_says_where_it_looked_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYNN_DATA", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    with pytest.raises(DataError) as info:
        find_data(download=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("MNIST data not found (looked in ")
    assert f"{tmp_path / 'env'} ($NUMPYNN_DATA: no MNIST files there)" in message
    assert f"{cache_dir()} (the cache: does not exist)" in message
    assert "downloading is turned off" in message
    assert "--data DIR" in message and "NUMPYNN_DATA" in message and "t10k-labels-idx1-ubyte.gz" in message


def test_a_data_path_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match="file: is not a folder; put the four MNIST files"):
        find_data(data_dir=tmp_path / "file")


def test_fashion_mnist_from_a_folder(tmp_path):
    arrays = make_dataset(tmp_path / "fashion", seed=7)
    splits = load_mnist("fashion-mnist", tmp_path / "fashion", dev_size=10, download=False)
    assert splits.X_train.shape == (90, 784)
    np.testing.assert_array_equal(splits.y_test, arrays[3])


# ---------------------------------------------------------------------------------------------------------
# Splits

@pytest.fixture
def small_data(tmp_path):
    return tmp_path / "d", make_dataset(tmp_path / "d", n_train=100, n_test=30)


def test_splits_shapes_dtypes_range(small_data):
    folder, _ = small_data
    splits = load_mnist(data_dir=folder, dev_size=20, download=False)
    assert isinstance(splits, Splits)
    for X, y, n in [(splits.X_train, splits.y_train, 80), (splits.X_dev, splits.y_dev, 20),
                    (splits.X_test, splits.y_test, 30)]:
        assert X.shape == (n, 784) and X.dtype == np.float32 and X.flags.c_contiguous
        assert y.shape == (n,) and y.dtype == np.int64
        assert 0.0 <= X.min() and X.max() <= 1.0
        assert set(np.unique(y)) <= set(range(10))
    assert "X_train=(80, 784)" in repr(splits)


def test_splits_are_the_shuffled_training_set(small_data):
    """Dev is the first dev_size of default_rng(seed).permutation, train the rest, pixels divided by 255."""
    folder, (x_train, y_train, _, _) = small_data
    splits = load_mnist(data_dir=folder, dev_size=20, seed=5, download=False)
    order = np.random.default_rng(5).permutation(100)
    expected = x_train.reshape(100, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(splits.X_dev, expected[order[:20]])
    np.testing.assert_array_equal(splits.X_train, expected[order[20:]])
    np.testing.assert_array_equal(splits.y_train, y_train[order[20:]])


def test_same_seed_same_split_other_seed_other_split(small_data):
    folder, _ = small_data
    a, b, c = (load_mnist(data_dir=folder, dev_size=20, seed=s, download=False) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_dev, b.y_dev)
    assert not np.array_equal(a.X_dev, c.X_dev)


def test_test_set_is_untouched(small_data):
    folder, (_, _, x_test, y_test) = small_data
    for seed in (0, 1):
        splits = load_mnist(data_dir=folder, dev_size=20, seed=seed, download=False)
        np.testing.assert_array_equal(splits.X_test, x_test.reshape(30, 784) / np.float32(255))
        np.testing.assert_array_equal(splits.y_test, y_test)


@pytest.mark.parametrize("dev_size", [0, -1, 100, 101, 10_000, 2.5, True, "10"])
def test_dev_size_is_validated(small_data, dev_size):
    folder, _ = small_data
    with pytest.raises(ValueError, match="dev_size"):
        load_mnist(data_dir=folder, dev_size=dev_size, download=False)


# ---------------------------------------------------------------------------------------------------------
# The real files, from conftest's `mnist_dir` (session-scoped, so it sees NUMPYNN_DATA before the autouse
# fixture above hides it from the code under test)

@pytest.mark.mnist
def test_real_files_match_the_published_checksums(mnist_dir):
    """Guards the constants in DATASETS against a typo: the decompressed content of each real file."""
    for key, name in NAMES.items():
        path = mnist_dir / name if (mnist_dir / name).exists() else mnist_dir / name[:-3]
        content = path.read_bytes()
        if content[:2] == b"\x1f\x8b":
            content = gzip.decompress(content)
        assert hashlib.sha256(content).hexdigest() == DATASETS["mnist"].sha256[key], name


@pytest.mark.mnist
def test_real_mnist_splits(mnist_dir):
    splits = load_mnist(data_dir=mnist_dir, download=False)
    assert splits.X_train.shape == (50_000, 784) and splits.X_dev.shape == (10_000, 784)
    assert splits.X_test.shape == (10_000, 784) and splits.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    pixels = np.concatenate([splits.X_train, splits.X_dev])
    assert abs(pixels.mean() - 0.1307) < 1e-4 and abs(pixels.std() - 0.3081) < 1e-4


@pytest.mark.mnist
def test_real_mnist_files_are_not_taken_for_fashion_mnist(mnist_dir):
    message = raises_data_error(load_raw, "fashion-mnist", mnist_dir, match="MNIST training labels")
    assert NAMES["train_labels"] in message


def test_in_every_dev_set_is_the_images_no_split_trained_on():
    """The images in the dev set of every (dev_size, seed) split: exactly those load_mnist would hold out of
    every one of them, checked against a plain set intersection."""
    from numpynn.data import in_every_dev_set, split_order

    splits = [(300, 0), (500, 1), (400, 7)]
    expected = set(range(1000))
    for size, seed in splits:
        expected &= set(split_order(1000, seed)[:size].tolist())
    got = in_every_dev_set(splits, 1000)
    assert got.tolist() == sorted(expected) and len(expected) > 0
    assert in_every_dev_set([(300, 0)], 1000).tolist() == sorted(split_order(1000, 0)[:300].tolist())
    assert in_every_dev_set([], 1000).size == 0
