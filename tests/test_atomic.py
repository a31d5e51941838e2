"""numpynn.atomic: whole files or none, leftovers of killed writers cleaned, folders checked before work."""
import os
import subprocess
import sys

import pytest

from numpynn.atomic import OutputError, check_folder, remove_leftovers, write_atomically

def test_write_atomically_writes_bytes_or_callable(tmp_path):
    write_atomically(tmp_path / "a.bin", b"hello")
    write_atomically(tmp_path / "b.bin", lambda f: f.write(b"world"))
    assert (tmp_path / "a.bin").read_bytes() == b"hello"
    assert (tmp_path / "b.bin").read_bytes() == b"world"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no temp file left


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.npz"
    target.write_bytes(b"old")

    def half(f):
        f.write(b"half")
        raise RuntimeError("stopped mid-write")

    with pytest.raises(RuntimeError):
        write_atomically(target, half)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_an_os_error_becomes_one_line_output_error(tmp_path):
    def full(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device") as caught:
        write_atomically(tmp_path / "m.npz", full)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(OutputError, match="cannot write into"):
        write_atomically(tmp_path / "nope" / "m.npz", b"x")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has this id now (reuse within the test is vanishingly unlikely)


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".model.npz.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".model.npz.{os.getppid()}.def456.tmp"  # our parent is alive
    ours = tmp_path / f".model.npz.{os.getpid()}.0a0b0c.tmp"  # maybe another thread of ours, mid-write
    other = tmp_path / ".notes.tmp"  # not a numpynn temp name
    for path in (dead, live, ours, other):
        path.write_bytes(b"partial")
    write_atomically(tmp_path / "model.npz", b"new")
    assert not dead.exists()
    assert live.exists() and ours.exists() and other.exists()
    assert remove_leftovers(tmp_path) == []


def test_check_folder(tmp_path):
    assert check_folder(tmp_path, f"--out {tmp_path}") == tmp_path
    assert check_folder(tmp_path / "new", "--plot", may_create=True) == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checked, not made: a command that fails later leaves nothing
    with pytest.raises(OutputError, match="--plot: .*no such folder"):
        check_folder(tmp_path / "new", "--plot")
    with pytest.raises(OutputError, match="--out: .*does not exist"):
        check_folder(tmp_path / "a" / "b", "--out", may_create=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_folder(tmp_path / "file", "--out")


def test_check_folder_refuses_a_read_only_folder(read_only_folder):
    with pytest.raises(OutputError, match="--out: .*not writable"):
        check_folder(read_only_folder, "--out")
    with pytest.raises(OutputError, match="--plot: .*not writable"):
        check_folder(read_only_folder / "plots", "--plot", may_create=True)


def test_write_into_a_read_only_folder_is_one_line(read_only_folder):
    with pytest.raises(OutputError, match="cannot write into"):
        write_atomically(read_only_folder / "m.npz", b"x")
    assert list(read_only_folder.iterdir()) == []


def test_write_json_atomically_writes_indented_json_whole(tmp_path):
    import json

    from numpynn.atomic import write_json_atomically

    path = tmp_path / "m.metrics.json"
    assert write_json_atomically(path, {"accuracy": 0.5, "history": [1, 2]}) == path
    assert path.read_text() == '{\n "accuracy": 0.5,\n "history": [\n  1,\n  2\n ]\n}'
    with pytest.raises(TypeError):  # not JSON: the old file stays, and no temporary file is left
        write_json_atomically(path, {"bad": object()})
    assert json.loads(path.read_text())["accuracy"] == 0.5 and os.listdir(tmp_path) == ["m.metrics.json"]
