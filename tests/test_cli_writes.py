"""Writing can only fail early and quietly: every output folder is checked before work starts, a full disk or a
read-only folder is one line that says what to do (and where the last good checkpoint is), no command leaves
half a file behind, and leftovers of killed writers are cleaned up by the next write."""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from numpynn import serialize
from numpynn.atomic import OutputError
from numpynn.model import mlp

from .conftest import run_cli

FAST = ["--hidden", "8", "--epochs", "2", "--batch-size", "16", "--dev-size", "20", "--quiet"]


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("numpynn: error:") and "Traceback" not in err


@pytest.fixture
def model_file(tmp_path):
    return serialize.save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {})


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "seven.png"
    canvas = np.zeros((60, 60), np.uint8)
    canvas[10:14, 15:45] = 255
    canvas[14:50, 38:42] = 255
    Image.fromarray(canvas).save(path)
    return path


@pytest.mark.parametrize("flag", ["--out", "--checkpoint", "--plot"])
def test_train_refuses_a_read_only_output_before_loading_data(capsys, tmp_path, read_only_folder, flag):
    value = {"--out": read_only_folder / "m.npz", "--checkpoint": read_only_folder / "m.ckpt.npz",
             "--plot": read_only_folder}[flag]
    # --data names a folder that does not exist: the error must be about the output, found first
    code, out, err = run_cli(capsys, "train", "--data", tmp_path / "no-data", *FAST, flag, value,
                             *(["--out", tmp_path / "m.npz"] if flag != "--out" else []))
    assert code == 2 and one_line(err), err
    assert flag in err and str(read_only_folder) in err and "not writable" in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("flag", ["--out", "--checkpoint"])
@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_train_refuses_a_folder_or_pipe_named_as_its_output_file_before_training(capsys, tmp_path, flag, kind):
    """Found only when the file was written, the run would have trained in vain and left a checkpoint behind."""
    odd = tmp_path / "odd.npz"
    odd.mkdir() if kind == "folder" else os.mkfifo(odd)
    other = {"--out": ["--checkpoint", tmp_path / "c.npz"], "--checkpoint": ["--out", tmp_path / "m.npz"]}[flag]
    # --data names a folder that does not exist: the error must be about the output, found first
    code, out, err = run_cli(capsys, "train", "--data", tmp_path / "no-data", *FAST, flag, odd, *other)
    assert code == 2 and one_line(err) and f"{flag} {odd}: a folder or other non-regular file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.npz"]


def test_train_plot_inside_a_read_only_folder_is_refused(capsys, tmp_path, read_only_folder, tiny_mnist):
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "m.npz",
                           "--plot", read_only_folder / "plots")
    assert code == 2 and one_line(err) and "--plot" in err and "not writable" in err


def test_seed_plot_read_only(capsys, tmp_path, read_only_folder):
    code, out, err = run_cli(capsys, "seed", "--data", tmp_path / "no-data", "--plot", read_only_folder)
    assert code == 2 and one_line(err) and "--plot" in err and "Iteration" not in out


def test_predict_show_input_read_only(capsys, model_file, picture, read_only_folder):
    code, out, err = run_cli(capsys, "predict", model_file, picture, "--show-input", read_only_folder)
    assert code == 2 and one_line(err) and "--show-input" in err and "not writable" in err
    assert out == "" and list(read_only_folder.iterdir()) == []


def test_report_and_augment_preview_read_only(capsys, model_file, tmp_path, read_only_folder):
    code, _, err = run_cli(capsys, "report", model_file, "--data", tmp_path / "no-data", "--out", read_only_folder)
    assert code == 2 and one_line(err) and "--out" in err and "not writable" in err
    code, _, err = run_cli(capsys, "augment-preview", "--data", tmp_path / "no-data",
                           "--out", read_only_folder / "grid.png")
    assert code == 2 and one_line(err) and "--out" in err and "not writable" in err


def test_a_failed_final_save_names_the_last_good_checkpoint(capsys, tmp_path, tiny_mnist, monkeypatch):
    real_save = serialize.save

    def save(path, arrays, header):
        if header.get("kind") == "model":  # the checkpoints go through; the final model file hits a full disk
            def full(f):
                raise OSError(28, "No space left on device")
            from numpynn.atomic import write_atomically
            return write_atomically(path, full)
        return real_save(path, arrays, header)

    monkeypatch.setattr(serialize, "save", save)
    out_file = tmp_path / "m.npz"
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", out_file)
    checkpoint = tmp_path / "m.ckpt.npz"
    assert code == 1 and one_line(err), err
    assert "No space left on device" in err and f"--resume {checkpoint}" in err
    assert checkpoint.is_file() and not out_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file


def test_a_failed_checkpoint_is_one_line(capsys, tmp_path, tiny_mnist, monkeypatch):
    def save(path, arrays, header):
        raise OutputError(f"{path}: writing failed (No space left on device); nothing was written there")

    monkeypatch.setattr(serialize, "save", save)
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "m.npz")
    assert code == 1 and one_line(err), err
    assert "No space left on device" in err and "no checkpoint was written yet" in err


def test_a_real_full_disk(tmp_path, tiny_mnist):
    """On a 64 KB tmpfs (mounted in a private mount namespace: no privileges needed where user namespaces
    are allowed), `numpynn train` fills the disk with its checkpoint: one line, exit 1, no temp file."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("unshare -rm (a private mount namespace) is not available here")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=64k none {disk} && {sys.executable} -m numpynn train --data {tiny_mnist} "
              f"{' '.join(FAST)} --hidden 64 --out {disk}/m.npz; echo exit=$?; ls -a {disk}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])})
    assert "exit=1" in done.stdout, done.stdout + done.stderr
    assert one_line(done.stderr) and "No space left on device" in done.stderr, done.stderr
    assert ".tmp" not in done.stdout  # the listing of the full disk: no half-written file


def test_leftover_temp_files_of_killed_writers_are_removed(capsys, tmp_path, tiny_mnist):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".m.npz.{dead.pid}.0badc0ffee00.tmp"
    leftover.write_bytes(b"half a model")
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "m.npz")
    assert code == 0, err
    assert not leftover.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_unexpected_error_is_one_line(capsys, model_file, monkeypatch):
    from numpynn import cli

    def broken(args):
        raise TypeError("something numpynn did not expect")

    monkeypatch.setattr(cli, "cmd_info", broken)
    code, _, err = run_cli(capsys, "info", model_file)
    assert code == 1 and one_line(err) and "unexpected TypeError" in err and "NUMPYNN_DEBUG" in err
    monkeypatch.setenv("NUMPYNN_DEBUG", "1")
    with pytest.raises(TypeError):
        cli.main(["info", str(model_file)])


def test_serve_warns_at_start_when_the_models_folder_is_read_only(read_only_folder):
    server = subprocess.Popen([sys.executable, "-m", "numpynn", "serve", "--models", str(read_only_folder),
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1])})
    try:
        line = server.stderr.readline()  # the warning comes before the server runs
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert line.startswith("numpynn: warning: --models") and "not writable" in line and "Learn tab" in line


def test_serve_refuses_a_short_token(capsys, monkeypatch):
    monkeypatch.setenv("NUMPYNN_TOKEN", "guessable")
    code, _, err = run_cli(capsys, "serve", "--port", "0")
    assert code == 2 and one_line(err) and "$NUMPYNN_TOKEN" in err and "16" in err


def test_serve_makes_the_default_models_folder_on_first_use(tmp_path):
    """A fresh machine has no ~/.local/share/numpynn: serve makes its default folder, with no warning."""
    folder = tmp_path / "home" / "share" / "numpynn" / "models"
    server = subprocess.Popen([sys.executable, "-m", "numpynn", "serve", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "NUMPYNN_MODELS": str(folder),
                                   "PYTHONPATH": str(pathlib.Path(__file__).parents[1])})
    try:
        line = server.stderr.readline()  # the first thing serve says on stderr: the model it offers
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert folder.is_dir() and "warning" not in line and line.startswith("model: built-in"), line
