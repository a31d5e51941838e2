"""`numpynn examples` (list, delete, export as IDX) and `numpynn train --extra-data DIR --init-from MODEL`:
your examples read back by numpynn's own loader, trained on, and a held-out share scored before and after."""
import json

import numpy as np
import pytest

from numpynn import extra_data, serialize
from numpynn.examples_db import Examples
from numpynn.idx import read_idx

from .conftest import REPO, run_cli

DRAWN = np.load(REPO / "tests" / "fixtures" / "drawings.npz")  # digits drawn as on the page's pad


@pytest.fixture
def models(tmp_path):
    """A models folder whose store holds 20 drawn digits, two of each label."""
    folder = tmp_path / "models"
    store = Examples(folder)
    for i in range(0, 500, 25):
        store.add(DRAWN["digits"][i].tobytes(), b"", int(DRAWN["digit_labels"][i]), None, "m")
    return folder


def test_list_shows_every_example_and_the_counts(capsys, models):
    code, out, err = run_cli(capsys, "examples", "list", "--models", models)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 21 and lines[0].split()[:3] == ["1", "label", "0"]
    assert lines[-1] == f"20 examples in {models / 'examples.sqlite'}; per label 0-9: 2 2 2 2 2 2 2 2 2 2"
    code, out, _ = run_cli(capsys, "examples", "list", "--models", models, "--json")
    data = json.loads(out)
    assert data["counts"] == [2] * 10 and len(data["examples"]) == 20 and "input" not in data["examples"][0]


def test_export_writes_idx_files_that_numpynns_loader_reads(capsys, models, tmp_path):
    out_dir = tmp_path / "mine"
    code, out, err = run_cli(capsys, "examples", "export", out_dir, "--models", models)
    assert code == 0 and err == "" and f"--extra-data {out_dir}" in out
    images = read_idx(out_dir / "train-images-idx3-ubyte")
    labels = read_idx(out_dir / "train-labels-idx1-ubyte")
    assert images.shape == (20, 28, 28) and labels.tolist() == DRAWN["digit_labels"][::25].tolist()
    assert (images == DRAWN["digits"][::25]).all()
    back, back_labels = extra_data.read(out_dir)
    assert (back == images).all() and (back_labels == labels).all()
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_delete_one_and_all(capsys, models):
    assert run_cli(capsys, "examples", "delete", "3", "--models", models)[:2] == (0, "Deleted example 3\n")
    code, _, err = run_cli(capsys, "examples", "delete", "3", "--models", models)
    assert code == 1 and err == (f"numpynn: error: no example 3 in {models / 'examples.sqlite'} "
                                 f"(see `numpynn examples list`)\n")
    code, out, _ = run_cli(capsys, "examples", "delete", "--all", "--models", models)
    assert code == 0 and out.startswith("Deleted 19 examples")
    code, _, err = run_cli(capsys, "examples", "export", models.parent / "x", "--models", models)
    assert code == 1 and "no examples in" in err


@pytest.mark.parametrize("argv, code, words", [
    (("delete",), 2, "give one example's ID"),
    (("delete", "1", "--all"), 2, "give one example's ID"),
    (("delete", "abc"), 2, "ID 'abc': give a number"),
    (("delete", "²"), 2, "ID '²': give a number from 1 to 9223372036854775807"),  # str.isdigit() says yes
    (("delete", "٣"), 2, "ID '٣': give a number from 1 to"),
    (("delete", "１"), 2, "give a number from 1 to"),
    (("delete", "0"), 2, "ID '0': give a number from 1 to"),
    (("delete", "99999999999999999999999"), 2, "give a number from 1 to 9223372036854775807"),  # over SQLite's
    (("delete", "9" * 5000), 2, "give a number from 1 to"),  # over int()'s 4,300 digits too
    (("list", "--all"), 2, "--all goes with delete"),
    (("list", "7"), 2, "list takes no argument"),
    (("export",), 2, "export needs a folder"),
    (("frobnicate",), 2, "invalid choice"),
])
def test_bad_commands_are_one_line(capsys, models, argv, code, words):
    got, out, err = run_cli(capsys, "examples", *argv, "--models", models)
    assert got == code and words in err and err.count("\n") == 1 and err.startswith("numpynn: error: ")


def test_a_damaged_database_is_one_line_and_left_alone(capsys, tmp_path):
    (tmp_path / "examples.sqlite").write_bytes(b"garbage" * 100)
    for argv in (("list",), ("delete", "--all"), ("export", tmp_path / "out")):
        code, _, err = run_cli(capsys, "examples", *argv, "--models", tmp_path)
        assert code == 1 and "not a SQLite database" in err and err.count("\n") == 1
    assert (tmp_path / "examples.sqlite").read_bytes() == b"garbage" * 100


def test_a_database_with_a_row_numpynn_never_stores_is_one_line_and_export_writes_nothing(capsys, tmp_path):
    from .test_examples_db import crafted

    store = crafted(tmp_path / "models", label=12)
    for argv in (("list",), ("list", "--json"), ("export", tmp_path / "out")):
        code, out, err = run_cli(capsys, "examples", *argv, "--models", store.path.parent)
        assert code == 1 and "damaged: example 2's label is 12" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_failed_export_leaves_no_folder_behind(capsys, models, tmp_path, monkeypatch):
    from numpynn.atomic import OutputError

    written = []

    def fails_second(path, data):  # the images are written, then the disk is full
        if written:
            raise OutputError(f"{path}: could not be written (No space left on device)")
        written.append(path.write_bytes(data))
        return path

    monkeypatch.setattr(extra_data, "write_atomically", fails_second)
    code, _, err = run_cli(capsys, "examples", "export", tmp_path / "out", "--models", models)
    assert code != 0 and "No space left" in err and err.count("\n") == 1
    assert written and not (tmp_path / "out").exists()
    (tmp_path / "mine").mkdir()  # a folder that was there before is the user's: left, whatever it holds
    written.clear()
    run_cli(capsys, "examples", "export", tmp_path / "mine", "--models", models)
    assert (tmp_path / "mine").is_dir()


@pytest.mark.parametrize("command", [("examples", "list"), ("serve",)])
def test_models_naming_a_file_says_it_is_a_file(capsys, tmp_path, command):
    (tmp_path / "m.npz").write_bytes(b"x")
    code, _, err = run_cli(capsys, *command, "--models", tmp_path / "m.npz")
    assert code == 2 and "a file, not a folder; give the folder" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, *command, "--models", tmp_path / "nothing")
    assert code == 2 and "no such folder" in err


def test_the_held_out_split_is_a_fifth_at_least_one_and_fixed_by_the_seed():
    for n in (2, 3, 5, 10, 101):
        train, held = extra_data.split_held_out(n, seed=0)
        assert len(held) == max(1, round(0.2 * n)) and sorted([*train, *held]) == list(range(n))
        assert (extra_data.split_held_out(n, seed=0)[1] == held).all()
    assert len(extra_data.split_held_out(1, 0)[1]) == 0
    assert not (extra_data.split_held_out(100, 0)[1] == extra_data.split_held_out(100, 1)[1]).all()


def test_your_examples_times_their_repeat_are_checked_against_max_added_before_any_copy(monkeypatch):
    """The copies are float32 in memory: n examples x repeat is bounded by one limit, for the CLI and the page."""
    from numpynn.data import Splits

    images, labels = DRAWN["digits"][:50], DRAWN["digit_labels"][:50]
    extra = extra_data.Extra.of(images, labels, seed=0)  # 40 to train on, 10 held out
    assert extra.most_repeats() == extra_data.MAX_REPEAT  # the real limit leaves a few examples alone
    monkeypatch.setattr(extra_data, "MAX_ADDED", 400)
    assert extra.most_repeats() == 10
    splits = Splits(np.zeros((5, 784), np.float32), np.zeros(5, np.int64), None, None, None, None)
    assert len(extra.added_to(splits, 10).y_train) == 5 + 400
    for repeat in (11, 1000, 0, True, 2.0):
        with pytest.raises(ValueError, match=f"repeat = {repeat!r} is out of range: use a whole number from 1 to 10"):
            extra.added_to(splits, repeat)
    monkeypatch.setattr(extra_data, "MAX_ADDED", 10)  # fewer than the examples: each may still be added once
    assert extra.most_repeats() == 1


def test_train_refuses_too_many_copies_of_your_examples_before_loading_mnist(capsys, models, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    run_cli(capsys, "examples", "export", mine, "--models", models)  # 20 examples: 16 to train on
    monkeypatch.setattr(extra_data, "MAX_ADDED", 100)
    for repeat in (["--extra-repeat", "7"], []):  # the default, 20, too
        code, out, err = run_cli(capsys, "train", "--data", tmp_path / "no-data", *TINY, "--out", tmp_path / "m.npz",
                                 "--extra-data", mine, *repeat)
        assert code == 2 and err.count("\n") == 1 and out == "", err
        assert err.startswith(f"numpynn: error: --extra-repeat {repeat[1] if repeat else 20}: use a whole number "
                              "from 1 to 6 (16 examples; at most 100 images are added in all)"), err


TINY = ("--preset", "seed", "--hidden", "16", "--epochs", "2", "--dev-size", "20", "--batch-size", "16", "--quiet")


def test_train_with_extra_data_from_a_model_reports_the_held_out_accuracy_before_and_after(capsys, models,
                                                                                             tiny_mnist, tmp_path):
    mine = tmp_path / "mine"
    run_cli(capsys, "examples", "export", mine, "--models", models)
    start = tmp_path / "start.npz"
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", start)
    assert code == 0, err
    out_model = tmp_path / "tuned.npz"
    code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", out_model, "--init-from", start,
                             "--extra-data", mine)
    assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("Your examples"))
    assert line.startswith("Your examples: 16 trained on (each 20 times), 4 held out; accuracy on the held-out ones ")
    assert line.endswith("(before -> after)") and "% -> " in line
    metrics = json.loads((tmp_path / "tuned.metrics.json").read_text())
    scores = metrics["your_examples"]
    assert scores["train"] == 16 and scores["held_out"] == 4 and scores["repeat"] == 20
    assert metrics["history"]["epochs"][0]["train_accuracy"] is not None
    # the numbers are the models' own: the start model and the saved one, on the 4 held out (seed 0's split)
    X, y = extra_data.features(DRAWN["digits"][::25]), DRAWN["digit_labels"][::25]
    _, held = extra_data.split_held_out(20, seed=0)
    for key, path in (("held_out_accuracy_before", start), ("held_out_accuracy_after", out_model)):
        model, _ = serialize.load_model(path)
        assert scores[key] == pytest.approx(np.mean(model.predict(X[held]) == y[held]))
    # from fresh weights there is no "before": a network that learned nothing yet says nothing about you
    code, out, _ = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", tmp_path / "fresh.npz",
                           "--extra-data", mine, "--extra-repeat", "1")
    line = next(l for l in out.splitlines() if l.startswith("Your examples"))
    assert code == 0 and "->" not in line and "before" not in line and "(each once)" in line
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", tmp_path / "x.npz",
                           "--extra-data", mine, "--extra-repeat", "0")
    assert code == 2 and err == "numpynn: error: --extra-repeat 0: use 1 to 1000\n"
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", tmp_path / "y.npz",
                           "--extra-repeat", "5")
    assert code == 2 and "--extra-repeat goes with --extra-data" in err


def test_init_from_copies_the_weights_and_refuses_another_network(capsys, tiny_mnist, tmp_path):
    start = tmp_path / "start.npz"
    run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", start)
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY[:2], "--hidden", "8", *TINY[4:],
                           "--out", tmp_path / "b.npz", "--init-from", start)
    assert code == 1 and err == (f"numpynn: error: --init-from {start}: its network (weights 784x16, 16x10) is not "
                                 f"this run's (weights 784x8, 8x10); choose the same preset and widths as the model "
                                 f"was trained with\n")
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, "--quiet", "--out", tmp_path / "c.npz",
                           "--init-from", start, "--resume", tmp_path / "start.ckpt.npz")
    assert code == 2 and "--init-from and --resume" in err
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", tmp_path / "d.npz", "--init-from",
                           tmp_path / "start.ckpt.npz")
    assert code == 1 and "a checkpoint, not a model file" in err
    # zero epochs of training would leave the weights as they were: one epoch at a tiny rate stays close
    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY[:4], "--epochs", "1", *TINY[6:],
                           "--lr", "1e-9", "--warmup-epochs", "0", "--out", tmp_path / "e.npz", "--init-from", start)
    assert code == 0, err
    a, _ = serialize.load_model(start)
    b, _ = serialize.load_model(tmp_path / "e.npz")
    assert np.allclose(a.state_dict()["0.W"], b.state_dict()["0.W"], atol=1e-5)


@pytest.mark.parametrize("make, words", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "train-images-idx3-ubyte: missing"),
    (lambda d: (d.mkdir(), (d / "train-images-idx3-ubyte").write_bytes(b"x"),
                (d / "train-labels-idx1-ubyte").write_bytes(b"y")), "train-images-idx3-ubyte"),
])
def test_bad_extra_data_is_one_line_before_any_training(capsys, tiny_mnist, tmp_path, make, words):
    folder = tmp_path / "mine"
    make(folder)
    code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, *TINY, "--out", tmp_path / "m.npz",
                             "--extra-data", folder)
    assert code == 1 and words in err and err.count("\n") == 1 and out == ""
