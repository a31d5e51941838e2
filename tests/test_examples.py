"""examples/: each script runs as a user runs it, shortened by its environment variables, and learns."""
import os
import re
import subprocess
import sys

from .conftest import REPO


def test_train_mnist_example_learns_in_one_short_epoch(mnist_dir):
    """The one-screen MNIST script on 5,000 images for one epoch: above 85 % test accuracy in a few seconds
    (the full run, 20 epochs on 50,000 images, reaches 98.65 %)."""
    env = {**os.environ, "NUMPYNN_DATA": str(mnist_dir), "EPOCHS": "1", "TRAIN_IMAGES": "5000"}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "train_mnist.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("epoch 1/1: loss ") and len(lines) == 2
    assert float(re.fullmatch(r"test accuracy (\d+\.\d+)%", lines[-1]).group(1)) > 85


def test_train_mnist_example_stays_one_screen():
    assert len((REPO / "examples" / "train_mnist.py").read_text().splitlines()) <= 45
