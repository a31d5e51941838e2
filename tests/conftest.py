"""Shared fixtures: where the real MNIST files are, and tiny generated MNIST folders for fast tests."""
import gzip
import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
    """The folder with the real MNIST files: $NUMPYNN_DATA, else ../shared/mnist beside the checkout.

    Locally a missing folder skips the test. In CI (CI set) it fails: CI must never pass by skipping."""
    candidates = [os.environ.get("NUMPYNN_DATA"), REPO.parent / "shared" / "mnist"]
    for folder in filter(None, candidates):
        folder = pathlib.Path(folder)
        if all((folder / f"{name}.gz").exists() or (folder / name).exists() for name in MNIST_FILES):
            return folder
    message = f"real MNIST not found (looked in $NUMPYNN_DATA and {REPO.parent / 'shared' / 'mnist'})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI needs it")
    pytest.skip(message)


def random_mnist_arrays(seed=0, n_train=100, n_test=30) -> dict[str, np.ndarray]:
    """Random uint8 images and labels with MNIST's shapes, keyed train_images, train_labels, test_images,
    test_labels (numpynn.data's keys)."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx(path: pathlib.Path, array: np.ndarray, compress: bool = True) -> pathlib.Path:
    """Write `array` (uint8) as an IDX file: 0, 0, type code 0x08, ndim, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist_dir(folder: pathlib.Path, n_train: int = 120, n_test: int = 40, seed: int = 0) -> pathlib.Path:
    """A folder holding four small, valid MNIST-format files: random 'digits' whose ink position depends on the
    label, so a network can learn something from them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10  # every class present
        rng.shuffle(labels)
        images = np.zeros((n, 28, 28), np.uint8)
        for k in range(10):
            rows = labels == k
            images[rows, 2 + 2 * k : 6 + 2 * k, 4:24] = rng.integers(100, 256, (rows.sum(), 4, 20))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder


@pytest.fixture
def tiny_mnist(tmp_path) -> pathlib.Path:
    return make_mnist_dir(tmp_path / "tiny")


def run_cli(capsys, *argv):
    """Run `numpynn ARGV...` in this process: (exit code, stdout, stderr). argparse's own errors exit through
    SystemExit, whose code is returned like main()'s."""
    from numpynn.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written into, for this user: chmod 0555, and as root (who ignores permissions,
    as in CI) also the immutable attribute (chattr +i). Skips only where neither makes the folder read-only."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        immutable = True
    try:
        if _writable(folder):
            pytest.skip("cannot make a read-only folder here (root, and chattr +i is not supported)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def _writable(folder: pathlib.Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True
