"""The `numpynn` command as a user meets it: output format, --json, determinism, and one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from numpynn import seed as S
from numpynn.cli import main

TINY = ["--iterations", "30", "--alpha", "0.5", "--dev-size", "20"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_prints_the_seeds_lines_and_a_json_summary(capsys, tiny_mnist):
    code, out, err = run(capsys, "seed", "--data", str(tiny_mnist), *TINY, "--json")
    lines = out.splitlines()
    assert code == 0, err
    assert [line.split(":")[0] for line in lines[:3]] == ["Iteration 0", "Iteration 10", "Iteration 20"]
    assert lines[-4].startswith("Train Accuracy: ") and lines[-4].endswith("%")
    assert lines[-3].startswith("Dev Accuracy: ")
    assert lines[-2].startswith("Test Accuracy: ")
    summary = json.loads(lines[-1])
    for key in ("train_accuracy", "dev_accuracy", "test_accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["seconds"] > 0
    assert f"{100 * summary['test_accuracy']:.2f}%" in lines[-2]
    assert summary["config"]["alpha"] == 0.5


def test_quiet_drops_the_loss_lines(capsys, tiny_mnist):
    code, out, _ = run(capsys, "seed", "--data", str(tiny_mnist), *TINY, "--quiet")
    assert code == 0
    assert "Iteration" not in out
    assert out.splitlines()[0].startswith("Train Accuracy: ")


def test_the_same_seed_gives_identical_output_and_weights(capsys, tiny_mnist):
    outputs = [run(capsys, "seed", "--data", str(tiny_mnist), *TINY, "--seed", "7")[1] for _ in range(2)]
    assert outputs[0] == outputs[1]
    other = run(capsys, "seed", "--data", str(tiny_mnist), *TINY, "--seed", "8")[1]
    assert other != outputs[0]

    rng = np.random.default_rng(0)
    X, y = rng.random((784, 64), dtype=np.float32), np.arange(64) % 10
    runs = [S.gradient_descent(X, y, 20, 0.1, rng=np.random.default_rng(5), log=None)[0] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "argv, code, needle",
    [
        (["seed", "--alpha", "-1"], 2, "--alpha"),
        (["seed", "--alpha", "nan"], 2, "--alpha"),
        (["seed", "--iterations", "many"], 2, "--iterations"),
        (["seed", "--hidden", "0"], 2, "--hidden"),
        (["seed", "--dev-size", "5000"], 2, "dev"),  # the tiny set has 120 training images
        (["seed", "--dataset", "cifar"], 2, "--dataset"),
        (["seed", "--no-such-flag"], 2, "--no-such-flag"),
        (["frobnicate"], 2, "frobnicate"),
    ],
)
def test_bad_flags_get_one_line_errors(capsys, tiny_mnist, argv, code, needle):
    argv = argv + (["--data", str(tiny_mnist)] if argv[0] == "seed" else [])
    try:
        got = main(argv)
    except SystemExit as exit:  # argparse exits by itself
        got = exit.code
    _, err = capsys.readouterr()
    assert got == code
    assert err.startswith("numpynn: error: ") and err.count("\n") == 1, err
    assert needle in err


def test_bad_data_gets_a_one_line_error_and_exit_1(capsys, tiny_mnist):
    labels = tiny_mnist / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])  # a truncated download
    code, out, err = run(capsys, "seed", "--data", str(tiny_mnist), *TINY)
    assert code == 1
    assert err.startswith("numpynn: error: ") and "train-labels-idx1-ubyte.gz" in err
    assert "Traceback" not in err and "Train Accuracy" not in out


def test_python_dash_m_and_the_console_script_agree(tiny_mnist):
    """A real process, as a user runs it: an error exits non-zero with no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "numpynn", "seed", "--data", str(tiny_mnist / "missing"), "--iterations", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("numpynn: error: ") and "Traceback" not in result.stderr
    version = subprocess.run([sys.executable, "-m", "numpynn", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("numpynn ")


@pytest.mark.parametrize("what", ["model", "picture", "config"])
@pytest.mark.parametrize("kind", ["pipe", "folder", "device"])
def test_a_pipe_a_folder_or_a_device_where_a_file_belongs_is_one_line(capsys, tmp_path, what, kind):
    """A named pipe with no writer would block open() forever; a device could be read forever."""
    import os

    from numpynn import serialize
    from numpynn.model import mlp

    from .conftest import run_cli

    odd = {"pipe": tmp_path / "odd", "folder": tmp_path, "device": "/dev/zero"}[kind]
    if kind == "pipe":
        os.mkfifo(odd)
    model = serialize.save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {})
    argv = {"model": ["info", odd], "picture": ["predict", model, odd], "config": ["train", "--config", odd]}[what]
    code, out, err = run_cli(capsys, *argv)
    assert code in (1, 2) and err.count("\n") == 1 and err.startswith("numpynn: error:"), err
    assert "not a regular file" in err or (kind == "folder" and "folder" in err), err
