"""numpynn train / evaluate / predict / info as a user runs them, including a real SIGKILL and a real Ctrl-C."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from numpynn import serialize

from .conftest import make_mnist_dir, run_cli

FAST = ["--hidden", "32", "--epochs", "3", "--batch-size", "16", "--dev-size", "20", "--quiet"]


run = run_cli  # (exit code, stdout, stderr) of `numpynn ARGV...`, from conftest


@pytest.fixture
def trained(tmp_path, tiny_mnist, capsys):
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--data", tiny_mnist, *FAST, "--out", model, "--json")
    assert code == 0, err
    return model, json.loads(out.splitlines()[-1])


def test_train_writes_a_model_metrics_and_checkpoint_and_prints_accuracy(trained, tmp_path):
    model, summary = trained
    assert {"dev_accuracy", "test_accuracy", "seconds", "train_seconds", "load_seconds"} <= set(summary)
    assert 0 < summary["load_seconds"] < summary["seconds"] and 0 < summary["train_seconds"] < summary["seconds"]
    assert 0 <= summary["test_accuracy"] <= 1 and summary["epochs"] == 3
    metrics = json.loads((tmp_path / "m.metrics.json").read_text())
    assert len(metrics["history"]["epochs"]) == 3
    _, header = serialize.load(tmp_path / "m.ckpt.npz")
    assert header["kind"] == "checkpoint" and header["trainer"]["epoch"] == 3
    _, header = serialize.load(model)
    assert header["config"]["hidden"] == [32] and header["metrics"]["test_accuracy"] == summary["test_accuracy"]
    assert header["numpynn_version"] and header["preprocessing"]["flatten"] == 784


def test_a_toml_config_file_sits_between_the_preset_and_the_flags(tmp_path, tiny_mnist, capsys):
    (tmp_path / "c.toml").write_text('preset = "seed"\nlr = 0.02\nepochs = 2\nhidden = [8]\nwarmup_epochs = 0\n')
    code, _, err = run(capsys, "train", "--data", tiny_mnist, "--config", tmp_path / "c.toml", "--epochs", "1",
                       "--dev-size", "20", "--quiet", "--out", tmp_path / "m.npz")
    assert code == 0, err
    config = serialize.load(tmp_path / "m.npz")[1]["config"]
    assert (config["preset"], config["lr"], config["epochs"], config["hidden"]) == ("seed", 0.02, 1, [8])
    assert config["optimizer"] == "adam"  # from the preset


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--lr", "-0.1"], "--lr"),
        (["--hidden", "800,x"], "--hidden"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--dropout", "1.5"], "--dropout"),
        (["--epochs", "0"], "--epochs"),
        (["--beta2", "1.5"], "--beta2"),
        (["--architecture", "cnn", "--init", "seed"], "init"),
        (["--channels", "0"], "--channels"),
        (["--eps", "0"], "--eps"),
        (["--threads", "0"], "--threads"),
        (["--threads", "2", "--batchnorm"], "batchnorm"),
        (["--preset", "seed", "--epochs", "1"], "--warmup-epochs"),  # the preset warms up for 1 epoch
        (["--preset", "giant"], "--preset"),
        (["--out", "model.pkl"], ".npz"),
        (["--out", "/no/such/dir/m.npz"], "no such folder"),
        (["--config", "/no/such.toml"], "--config"),
        (["--resume", "ckpt.npz", "--lr", "0.1"], "only --epochs"),
    ],
)
def test_bad_train_flags_get_one_line_errors(capsys, tiny_mnist, argv, needle):
    code, out, err = run(capsys, "train", "--data", tiny_mnist, "--quiet", *argv)
    assert code == 2, err
    assert err.startswith("numpynn: error: ") and err.count("\n") == 1 and needle in err


def test_a_bad_toml_file_is_refused(tmp_path, tiny_mnist, capsys):
    (tmp_path / "bad.toml").write_text("lr = = 3\n")
    (tmp_path / "typo.toml").write_text("learning_rate = 0.1\n")
    assert "not a valid TOML" in run(capsys, "train", "--config", tmp_path / "bad.toml")[2]
    code, _, err = run(capsys, "train", "--data", tiny_mnist, "--config", tmp_path / "typo.toml")
    assert code == 2 and "learning_rate is not a training option" in err


@pytest.mark.parametrize("text, words", [
    (b"train = 5\n", "train must be a section, [train], not a value"),
    (b"\xff = 1\n", "not UTF-8 text"),
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"lr = 1" + b"0" * 5000 + b"\n", "not a valid TOML file"),  # more digits than Python converts
    (b"# padding\n" * 200_000, "larger than 1,000,000 bytes"),
    (b'preset = ["mlp"]\n', "preset = ['mlp'] is out of range"),
    (b'preset = {a = 1}\n', "preset = {'a': 1} is out of range"),
    (b"lr = 1" + b"0" * 400 + b"\n", "lr = a number of about 401 digits is out of range"),
    (b"epochs = 1" + b"0" * 30 + b"\n", "use a whole number below 2**63"),
    (b"hidden = [1" + b"0" * 30 + b"]\n", "use whole numbers below 2**63"),
    (b"lr = 1e308\n", "at most 1e+06"),
    (b"lr = inf\n", "at most 1e+06"),
])
def test_a_hostile_toml_file_is_one_line_saying_what_is_wrong(tmp_path, capsys, text, words):
    """Every one of these once reached the catch-all ("unexpected ... a bug in numpynn")."""
    (tmp_path / "c.toml").write_bytes(text)
    code, _, err = run(capsys, "train", "--data", tmp_path / "no-data", "--config", tmp_path / "c.toml",
                       "--out", tmp_path / "m.npz")
    assert code == 2 and err.startswith("numpynn: error: ") and err.count("\n") == 1, err
    assert words in err and "unexpected" not in err, err
    assert err.startswith(f"numpynn: error: --config {tmp_path / 'c.toml'}: "), err  # the file, not a flag, is named


def test_a_bad_value_is_named_where_the_user_gave_it_the_file_or_the_flag(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("epochs = 0\n")
    argv = ["train", "--data", tmp_path / "no-data", "--out", tmp_path / "m.npz", "--config", tmp_path / "c.toml"]
    err = run(capsys, *argv)[2]
    assert err.startswith(f"numpynn: error: --config {tmp_path / 'c.toml'}: epochs = 0"), err
    err = run(capsys, *argv, "--epochs", "-1")[2]  # the typed flag wins over the file, and is what is wrong
    assert err.startswith("numpynn: error: --epochs = -1"), err


@pytest.mark.parametrize("lr", ["1e308", "1e7", "inf", "nan", "0"])
def test_a_learning_rate_that_is_not_a_sensible_number_is_refused_before_training(tmp_path, capsys, lr):
    code, _, err = run(capsys, "train", "--data", tmp_path / "no-data", "--lr", lr, "--out", tmp_path / "m.npz")
    assert code == 2 and err.startswith("numpynn: error: --lr = ") and err.count("\n") == 1, err
    assert "at most 1e+06" in err


@pytest.mark.parametrize("out", ["", ".", "/"])
def test_an_out_with_no_file_name_is_one_line(tmp_path, capsys, out):
    code, _, err = run(capsys, "train", "--data", tmp_path / "no-data", "--out", out)
    assert code == 2 and "model and checkpoint files end in .npz" in err and err.count("\n") == 1, err


def test_resume_with_a_bad_epochs_blames_the_flag_not_the_checkpoint(trained, tmp_path, capsys):
    checkpoint = tmp_path / "m.ckpt.npz"
    for epochs in ("0", "-3"):
        code, _, err = run(capsys, "train", "--resume", checkpoint, "--epochs", epochs, "--out", tmp_path / "r.npz")
        assert code == 2 and err.startswith(f"numpynn: error: --epochs {epochs}: epochs = ") and err.count("\n") == 1
        assert str(checkpoint) not in err and not (tmp_path / "r.npz").exists()


def test_a_cnn_trains_saves_and_predicts_like_an_mlp(tmp_path, tiny_mnist, capsys):
    model = tmp_path / "cnn.npz"
    code, out, err = run(capsys, "train", "--data", tiny_mnist, "--preset", "cnn", "--channels", "2,4",
                         "--hidden", "8", "--epochs", "2", "--batch-size", "16", "--dev-size", "20", "--quiet",
                         "--out", model, "--json")
    assert code == 0, err
    assert 0 <= json.loads(out.splitlines()[-1])["test_accuracy"] <= 1
    code, out, _ = run(capsys, "info", model)
    assert code == 0 and "Unflatten(shape=[1, 28, 28]) -> Conv2D(" in out and "MaxPool2D" in out
    assert "channels=[2, 4]" in out and "padding=valid" in out and "beta1=0.9" in out and "momentum=" not in out
    code, out, err = run(capsys, "evaluate", model, "--data", tiny_mnist, "--json")
    assert code == 0 and np.array(json.loads(out)["confusion"]).sum() == 40, err
    code, out, err = run(capsys, "predict", model, digit_picture(tmp_path / "seven.png"), "--json")
    assert code == 0 and len(json.loads(out)[0]["probabilities"]) == 10, err


def test_evaluate_prints_scores_and_json(trained, tiny_mnist, capsys):
    model, summary = trained
    code, out, err = run(capsys, "evaluate", model, "--data", tiny_mnist, "--json")
    assert code == 0, err
    result = json.loads(out)
    C = np.array(result["confusion"])
    assert C.shape == (10, 10) and C.sum() == 40
    assert result["accuracy"] == pytest.approx(np.trace(C) / 40) == pytest.approx(summary["test_accuracy"])
    assert len(result["per_class"]) == 10 and {"precision", "recall", "f1"} <= set(result["per_class"][0])
    code, out, _ = run(capsys, "evaluate", model, "--data", tiny_mnist)
    assert code == 0 and out.startswith("Accuracy: ") and "confusion matrix" in out


def digit_picture(path, ink="black", paper="white", size=(300, 200)):
    image = Image.new("RGB", size, paper)
    ImageDraw.Draw(image).line([(120, 40), (180, 40), (140, 170)], fill=ink, width=14)  # a "7"
    image.save(path)
    return path


def test_predict_reads_pictures_and_shows_what_the_network_saw(trained, tmp_path, capsys):
    model, _ = trained
    a = digit_picture(tmp_path / "a.png")
    b = digit_picture(tmp_path / "b.jpg", ink="white", paper="black")
    code, out, err = run(capsys, "predict", model, a, b, "--json", "--show-input", tmp_path)
    assert code == 0, err
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(a), str(b)]
    for r in results:
        assert 0 <= r["digit"] <= 9 and len(r["probabilities"]) == 10
        assert sum(r["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert Image.open(r["input"]).size == (224, 224)
    code, out, _ = run(capsys, "predict", model, a)
    assert code == 0 and out.startswith(f"{a}: ")


def test_predict_refuses_blank_and_unreadable_pictures(trained, tmp_path, capsys):
    model, _ = trained
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not a picture")
    for name, needle in (("blank.png", "blank"), ("notes.png", "notes.png"), ("missing.png", "missing.png")):
        code, out, err = run(capsys, "predict", model, tmp_path / name)
        assert code == 1 and err.startswith("numpynn: error: ") and needle in err and err.count("\n") == 1


def test_info_prints_the_header(trained, capsys):
    model, _ = trained
    code, out, _ = run(capsys, "info", model)
    assert code == 0 and "Dense(D_in=784, D_out=32" in out and "parameters: 25,450" in out
    config = next(line for line in out.splitlines() if line.startswith("config: "))
    for name in ("channels", "padding", "beta1", "beta2", "eps", "step_epochs", "gamma", "augment_shift"):
        assert f" {name}=" not in config, f"{name} does not apply to an MLP trained with SGD and no augmentation"
    assert "hidden=[32]" in config and "momentum=0.9" in config and "augment=none" in config
    code, out, _ = run(capsys, "info", model, "--json")
    assert json.loads(out)["architecture"][0]["type"] == "Dense"


@pytest.mark.parametrize("command", ["evaluate", "predict", "info"])
def test_commands_refuse_a_corrupt_model_file(tmp_path, tiny_mnist, capsys, command):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    extra = {"evaluate": ["--data", tiny_mnist], "predict": [tmp_path / "x.png"], "info": []}[command]
    code, _, err = run(capsys, command, tmp_path / "bad.npz", *extra)
    assert code == 1 and "corrupt or truncated" in err and err.count("\n") == 1


def numpynn(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "numpynn", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def checkpoint_epoch(path):
    try:
        return serialize.load(path)[1]["trainer"]["epoch"]
    except (serialize.ModelFileError, KeyError):
        return 0


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory):
    """Enough images that an epoch lasts a good fraction of a second, so a kill lands mid-epoch."""
    return make_mnist_dir(tmp_path_factory.mktemp("slow"), n_train=12000, n_test=100)


# About half a second per epoch here: long enough for a kill to land inside one.
SLOW = ["--hidden", "800", "--epochs", "4", "--batch-size", "32", "--dev-size", "500", "--quiet", "--dropout", "0.1"]


def test_resume_after_sigkill_mid_epoch_is_bit_identical_to_a_straight_run(tmp_path, slow_data):
    straight = numpynn("train", "--data", slow_data, *SLOW, "--out", tmp_path / "straight.npz")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed = numpynn("train", "--data", slow_data, *SLOW, "--out", tmp_path / "killed.npz")
    ckpt = tmp_path / "killed.ckpt.npz"
    deadline = time.monotonic() + 300
    while checkpoint_epoch(ckpt) < 2 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # a few batches into epoch 3
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint_epoch(ckpt) == 2, "the kill must land in epoch 3"
    assert not (tmp_path / "killed.npz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written temp files

    resumed = numpynn("train", "--resume", ckpt, "--data", slow_data, "--quiet", "--out", tmp_path / "resumed.npz")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a = serialize.split(serialize.load(tmp_path / "straight.npz")[0], "model")
    b = serialize.split(serialize.load(tmp_path / "resumed.npz")[0], "model")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_ctrl_c_keeps_the_model_trained_so_far(tmp_path, slow_data):
    process = numpynn("train", "--data", slow_data, *SLOW, "--out", tmp_path / "m.npz")
    deadline = time.monotonic() + 300
    while checkpoint_epoch(tmp_path / "m.ckpt.npz") < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Interrupted after 1 full epochs" in out and "Test Accuracy: " in out
    assert "Traceback" not in err
    assert serialize.load(tmp_path / "m.npz")[1]["metrics"]["stopped"] == "interrupted"


def test_train_help_shows_what_runs_without_a_preset_and_what_each_preset_changes(capsys, monkeypatch):
    """Without --preset the mlp preset runs, so its values are the defaults the help shows (lr 0.1, not the
    config class's 0.05); the other presets' changes follow, e.g. the cnn preset's two threads."""
    monkeypatch.setenv("COLUMNS", "300")  # one help line per flag
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("--")}
    assert "(default: 0.1; --preset cnn: 0.001; --preset cnn-fast: 0.002; --preset seed: 0.003)" in lines["--lr"]
    assert "(default: 1; --preset cnn: 2; --preset cnn-fast: 2)" in lines["--threads"]
    assert "(default: 800; --preset cnn: 256; --preset cnn-fast: 128; --preset seed: 10)" in lines["--hidden"]
    assert lines["--momentum"].endswith("(default: 0.9)")  # no preset changes it


def test_adamw_alone_decays_by_its_own_default_and_the_help_says_so(capsys, monkeypatch):
    """Defaults < preset < --config < flags, and a weight decay none of them gives is the optimizer's own."""
    from numpynn.cli import build_parser
    from numpynn.commands.train import train_config

    monkeypatch.setenv("COLUMNS", "300")  # one help line per flag
    out = run(capsys, "train", "--help")[1]
    line = next(line for line in out.splitlines() if line.strip().startswith("--weight-decay"))
    assert "0.01 for adamw" in line and "(default: unset)" in line
    for argv, decay in [(["--optimizer", "adamw"], 0.01), (["--optimizer", "adamw", "--weight-decay", "0"], 0.0),
                        (["--preset", "cnn", "--optimizer", "adamw"], 0.01), ([], 0.0), (["--optimizer", "adam"], 0.0)]:
        assert train_config(build_parser().parse_args(["train", *argv])).weight_decay == decay, argv


def test_a_closed_pipe_ends_the_command_quietly(trained):
    """`numpynn info m.npz | head -0`: the reader has gone before numpynn writes; no error line, exit 141."""
    model, _ = trained
    process = subprocess.Popen([sys.executable, "-m", "numpynn", "info", str(model)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # the reader goes away at once
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141 and err == b""


def test_a_diverged_run_with_its_progress_bar_prints_the_error_on_a_line_of_its_own(tmp_path, tiny_mnist, capsys):
    # the largest lr (optim.MAX_LR) with a decay that multiplies every weight by -999,999 at each step
    code, _, err = run(capsys, "train", "--data", tiny_mnist, "--hidden", "32", "--epochs", "1", "--batch-size",
                       "16", "--dev-size", "20", "--lr", "1e6", "--weight-decay", "1", "--out", tmp_path / "m.npz")
    assert code == 1
    line = [line for line in err.split("\n") if "numpynn: error:" in line][0]
    assert line.split("\r")[-1].startswith("numpynn: error: the loss became"), repr(line[-300:])


# ---------------------------------------------------------------------------------------------------------
# info prints the file's text with its control characters escaped

def test_info_escapes_control_characters_from_the_header(tmp_path, capsys):
    from numpynn import serialize
    from numpynn.model import mlp

    hostile = "0.1.0\x1b[2J\x1b[31mFAKE\nnumpynn: all good\x1b]0;title\x07\r\u202e\t"
    path = serialize.save_model(tmp_path / "m.npz", mlp([784, 8, 10]), {
        "numpynn_version": hostile, "metrics": {"note": hostile, hostile: 1},
        "preprocessing": {"input": hostile}, "config": {"preset": hostile}})
    code, out, err = run(capsys, "info", path)
    assert code == 0 and err == ""
    assert all(line.isprintable() for line in out.splitlines()) and "\r" not in out
    assert "0.1.0\\x1b[2J\\x1b[31mFAKE\\nnumpynn: all good\\x1b]0;title\\x07\\r\\u202e\\t" in out
    code, out, _ = run(capsys, "info", path, "--json")  # JSON escapes them itself, and keeps the text exact
    assert code == 0 and "\x1b" not in out and json.loads(out)["numpynn_version"] == hostile


def test_calibrate_names_the_model_whose_header_asks_for_an_impossible_dev_set(trained, tmp_path, capsys, tiny_mnist):
    """A header's dev_size the data cannot give (as large as the training set, or 10**30): one line naming the file."""
    model, _ = trained
    arrays, header = serialize.load(model)
    for dev_size in (10**30, 10**6):
        serialize.save(tmp_path / "bad.npz", arrays, {**header, "dataset": {**header["dataset"], "dev_size": dev_size}})
        code, _, err = run(capsys, "calibrate", tmp_path / "bad.npz", "--data", tiny_mnist)
        assert code == 1 and err.startswith(f"numpynn: error: {tmp_path / 'bad.npz'}: its header's dataset.dev_size"), err
        assert len(err.strip().splitlines()) == 1 and "unexpected" not in err
