"""The store of your handwriting (numpynn/examples_db.py): what it keeps, its bounds, several writers at once
(threads and processes), kill -9 in the middle of writing, and files it must refuse and leave alone."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from numpynn import examples_db
from numpynn.examples_db import MAX_PAD_BYTES, SCHEMA_VERSION, Examples, ExamplesError

from .conftest import REPO

INPUT = bytes(range(256)) * 3 + bytes(16)  # 784 bytes


def test_an_example_is_stored_whole_and_read_back(tmp_path):
    store = Examples(tmp_path / "models")  # the folder does not exist yet: the first write makes it
    assert not store.exists() and store.counts() == [0] * 10 and store.rows() == []
    first = store.add(INPUT, b"\x89PNG...", 3, 7, "m64")
    second = store.add(bytes(784), b"", 3, None, "m64")
    assert (first, second) == (1, 2)
    assert store.counts() == [0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    row = store.rows()[0]
    assert {k: row[k] for k in ("id", "label", "predicted", "model")} == {"id": 1, "label": 3, "predicted": 7,
                                                                          "model": "m64"}
    assert row["created"].endswith("+00:00")  # UTC
    images, labels = store.arrays()
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8 and images[0].tobytes() == INPUT
    assert labels.tolist() == [3, 3] and labels.dtype == np.uint8
    assert store.pad(1) == b"\x89PNG..." and store.pad(99) is None
    with sqlite3.connect(store.path) as db:  # the file is what the docs say it is
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_deleting_one_and_all(tmp_path):
    store = Examples(tmp_path)
    for label in range(4):
        store.add(INPUT, b"", label, label, "m")
    assert store.delete(2) is True and store.delete(2) is False
    assert [r["id"] for r in store.rows()] == [1, 3, 4]
    assert store.delete_all() == 3 and store.counts() == [0] * 10
    assert store.add(INPUT, b"", 1, 1, "m") == 5  # ids are never reused


@pytest.mark.parametrize("args, words", [
    ((bytes(783), b"", 1, 1, "m"), "784 bytes"),
    ((bytes(785), b"", 1, 1, "m"), "784 bytes"),
    (("x" * 784, b"", 1, 1, "m"), "784 bytes"),
    ((INPUT, bytes(MAX_PAD_BYTES + 1), 1, 1, "m"), "at most"),
    ((INPUT, b"", 10, 1, "m"), "label 10"),
    ((INPUT, b"", -1, 1, "m"), "label -1"),
    ((INPUT, b"", True, 1, "m"), "label True"),
    ((INPUT, b"", 1, 11, "m"), "predicted 11"),
    ((INPUT, b"", 1, 1, "m" * 201), "200 characters"),
])
def test_every_value_is_checked_before_it_is_stored(tmp_path, args, words):
    store = Examples(tmp_path)
    with pytest.raises(ExamplesError, match=words):
        store.add(*args)
    assert store.counts() == [0] * 10


def test_the_store_is_capped_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(examples_db, "MAX_EXAMPLES", 3)
    store = Examples(tmp_path)
    for _ in range(3):
        store.add(INPUT, b"", 1, 1, "m")
    with pytest.raises(ExamplesError, match=r"full \(3 examples\).*numpynn examples delete"):
        store.add(INPUT, b"", 1, 1, "m")
    assert sum(store.counts()) == 3


@pytest.mark.parametrize("content", [b"not a database at all, just text\n" * 20, b"\x00" * 4096,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_file_that_is_not_a_usable_database_is_refused_in_one_line_and_left_alone(tmp_path, content):
    path = tmp_path / "examples.sqlite"
    path.write_bytes(content)
    store = Examples(tmp_path)
    for work in (store.counts, store.rows, store.arrays, store.delete_all,
                 lambda: store.add(INPUT, b"", 1, 1, "m")):
        with pytest.raises(ExamplesError) as error:
            work()
        assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert path.read_bytes() == content  # never written to, never replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples.sqlite"]


def test_a_damaged_database_is_refused_and_left_alone(tmp_path):
    store = Examples(tmp_path)
    for label in range(10):
        store.add(INPUT, bytes(5000), label, label, "m")
    data = bytearray(store.path.read_bytes())
    data[4096:8192] = b"\xa5" * 4096  # a page of the table overwritten
    store.path.write_bytes(bytes(data))
    with pytest.raises(ExamplesError, match="not a usable examples database|malformed"):
        store.arrays()
    assert store.path.read_bytes() == bytes(data)


def test_an_unknown_schema_version_or_someone_elses_database_is_refused(tmp_path):
    store = Examples(tmp_path)
    store.add(INPUT, b"", 1, 1, "m")
    with sqlite3.connect(store.path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ExamplesError, match="version 99; this numpynn reads version 1"):
        store.counts()
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "examples.sqlite") as db:
        db.execute("CREATE TABLE accounts (name TEXT)")
    with pytest.raises(ExamplesError, match="something else .*accounts"):
        Examples(other).add(INPUT, b"", 1, 1, "m")


def test_threads_writing_at_once_lose_nothing(tmp_path):
    store = Examples(tmp_path)
    errors = []

    def write(label):
        try:
            for _ in range(25):
                store.add(INPUT, bytes(2000), label, label, f"thread {label}")
        except Exception as error:  # noqa: BLE001  (collected: the assertion shows it)
            errors.append(error)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts() == [25] * 8 + [0, 0]
    assert len({r["id"] for r in store.rows()}) == 200


WRITER = textwrap.dedent("""
    import sys
    from numpynn.examples_db import Examples
    store, label, n = Examples(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print("ready", flush=True)
    for i in range(n):
        store.add(bytes([label]) * 784, bytes(3000), label, None, "process")
""")


def _writers(folder, n_each, labels):
    return [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(k), str(n_each)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in labels]


def test_processes_writing_at_once_lose_nothing_and_the_schema_is_made_once(tmp_path):
    folder = tmp_path / "models"  # no file yet: four processes race to create it
    procs = _writers(folder, 30, range(4))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Examples(folder)
    assert store.counts() == [30] * 4 + [0] * 6
    images, labels = store.arrays()
    assert all((images[i] == labels[i]).all() for i in range(len(labels)))  # each input with its own label
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kill_9_in_the_middle_of_writing_leaves_every_committed_example(tmp_path):
    folder = tmp_path / "models"
    Examples(folder).add(INPUT, b"", 9, 9, "before")
    procs = _writers(folder, 100_000, (1, 2))  # they would write for minutes
    for p in procs:
        assert p.stdout.readline() == b"ready\n"
    deadline = time.monotonic() + 60
    while not all(Examples(folder).counts()[k] > 5 for k in (1, 2)):  # both are writing now
        assert time.monotonic() < deadline, "the writers did not write"
        time.sleep(0.05)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    store = Examples(folder)
    counts = store.counts()
    assert counts[9] == 1 and counts[1] > 0 and counts[2] > 0  # they had written, then died mid-stream
    images, labels = store.arrays()
    assert len(labels) == sum(counts)
    assert all((images[i] == labels[i]).all() for i in range(1, len(labels)))  # no half-written example
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.add(INPUT, b"", 0, 0, "after")  # and it takes new ones
    assert store.counts()[0] == 1


def crafted(folder, **values):
    """An examples.sqlite that passes every check of the file (SQLite, user_version 1, one table `examples`) but
    whose table has no CHECK constraints (another program made it), holding one good row and one with `values`."""
    folder.mkdir(exist_ok=True)
    with sqlite3.connect(folder / "examples.sqlite") as db:
        db.execute("CREATE TABLE examples (id INTEGER PRIMARY KEY AUTOINCREMENT, input BLOB, pad BLOB, label, "
                   "predicted, created, model)")
        good = dict(input=INPUT, pad=b"", label=1, predicted=1, created="2026-01-01T00:00:00+00:00", model="m")
        for row in (good, {**good, **values}):
            db.execute("INSERT INTO examples (input, pad, label, predicted, created, model) VALUES (?, ?, ?, ?, ?, ?)",
                       tuple(row.values()))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.close()
    return Examples(folder)


@pytest.mark.parametrize("column, value, reads", [
    ("label", 12, "counts rows arrays"), ("label", -1, "counts rows arrays"), ("label", "seven", "counts rows arrays"),
    ("label", 3.0, "counts rows arrays"), ("label", None, "counts rows arrays"), ("label", b"\x03", "rows arrays"),
    ("predicted", 10, "rows"), ("predicted", "7", "rows"),
    ("input", bytes(10), "arrays"), ("input", bytes(785), "arrays"), ("input", "x" * 784, "arrays"),
    ("input", None, "arrays"),
    ("pad", "a picture", "pad"), ("pad", bytes(MAX_PAD_BYTES + 1), "pad"), ("pad", 5, "pad"),
    ("created", "\x1b]0;pwned\x07", "rows"), ("created", "x" * 1000, "rows"), ("created", 2026, "rows"),
    ("model", "m" * 201, "rows"), ("model", "\x1b[2J", "rows"), ("model", None, "rows"),
])
def test_rows_outside_the_schemas_checks_are_a_damaged_file_in_one_line(tmp_path, column, value, reads):
    store = crafted(tmp_path / "models", **{column: value})
    before = store.path.read_bytes()
    for read in reads.split():
        work = (lambda: store.pad(2)) if read == "pad" else getattr(store, read)
        with pytest.raises(ExamplesError) as error:
            work()
        line = str(error.value)
        assert line.startswith(f"{store.path}: damaged: ") and column in line and "move it aside" in line, line
        assert "\n" not in line and "\x1b" not in line and len(line) < 400
    assert store.pad(1) == b""  # a good row still reads
    assert store.path.read_bytes() == before


def test_a_fifo_or_a_folder_in_the_files_place_is_refused_without_opening_it(tmp_path):
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    fifo.mkdir()
    os.mkfifo(fifo / "examples.sqlite")  # opening it for reading would wait for a writer forever
    (folder / "examples.sqlite").mkdir(parents=True)
    for place in (fifo, folder):
        store, errors = Examples(place), []

        def read_and_write():
            for work in (store.counts, store.rows, store.arrays, lambda: store.pad(1), store.delete_all,
                         lambda: store.add(INPUT, b"", 1, 1, "m")):
                try:
                    work()
                except ExamplesError as error:
                    errors.append(str(error))

        worker = threading.Thread(target=read_and_write, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), f"{place.name}: hangs"
        assert len(errors) == 6 and all("not a regular file" in e and "\n" not in e for e in errors), errors


@pytest.mark.parametrize("example_id", [0, -1, 2**63, 10**30, True, 1.0, "1"])
def test_an_id_out_of_sqlites_range_is_one_line(tmp_path, example_id):
    store = Examples(tmp_path)
    store.add(INPUT, b"", 1, 1, "m")
    for work in (store.delete, store.pad):
        with pytest.raises(ExamplesError, match="example id .*: use a number from 1 to 9223372036854775807"):
            work(example_id)
    assert store.counts()[1] == 1
