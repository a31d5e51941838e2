"""Your handwriting: the store of digits a user drew and labelled, a SQLite database beside the models.

One table, `examples`: for each digit the 28x28 input the network read (784 bytes, uint8, row by row: the
prepared picture times 255), the raw pad as a PNG, the label the user confirmed or corrected (0-9), the
digit the model answered, when (UTC, ISO 8601) and which model answered.

Why SQLite (Python's sqlite3): several tabs of the page, and `numpynn examples` in a terminal, may write at
the same moment, and the server may be killed at any time. Every change is one transaction (BEGIN IMMEDIATE:
writers take turns, waiting up to BUSY_TIMEOUT); the journal is a write-ahead log (WAL), so a kill -9 leaves
the last committed state and readers never wait for writers.

Trust: a file that is not a SQLite database (or not a regular file at all: a FIFO would block the reader
forever), or is damaged, raises ExamplesError (one line) and is never written to or replaced. Every row read is
checked against what numpynn stores, as the table's CHECK constraints say it, since another program may have
made or changed the file: a row outside them is a damaged file too. The schema's version is kept in PRAGMA user_version; a version this numpynn does not
know is refused. Sizes are bounded: every blob is checked before it is stored (and again by the table's CHECK
constraints), and the table holds at most MAX_EXAMPLES examples.

Left out: several users (one database per models folder), and any editing of a stored example but deleting it.
Paths are arguments: only the CLI and the web app know which folder.
"""
from __future__ import annotations

import contextlib
import datetime
import pathlib
import sqlite3
import stat

import numpy as np

FILE_NAME = "examples.sqlite"  # in the models folder
SCHEMA_VERSION = 1  # PRAGMA user_version; 0 is a new, empty database
MAX_EXAMPLES = 100_000  # about 100 MB of pads at most; far more than anyone draws by hand
INPUT_BYTES = 28 * 28  # the prepared digit, one byte a pixel
MAX_PAD_BYTES = 256 * 1024  # a 280x280 grey PNG is at most about 80 KB
MAX_MODEL_NAME = 200  # as the server's model names
MAX_CREATED = 40  # characters of the time stored, 2026-01-31T12:00:00+00:00
MAX_ID = 2**63 - 1  # SQLite's largest integer; ids count up from 1
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another one's transaction to end
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS examples (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a delete
    input     BLOB    NOT NULL CHECK (length(input) = {INPUT_BYTES}),
    pad       BLOB    NOT NULL CHECK (length(pad) <= {MAX_PAD_BYTES}),
    label     INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),
    predicted INTEGER          CHECK (predicted IS NULL OR predicted BETWEEN 0 AND 9),
    created   TEXT    NOT NULL,
    model     TEXT    NOT NULL CHECK (length(model) <= {MAX_MODEL_NAME})
)"""


class ExamplesError(Exception):
    """The database cannot be used, or an example cannot be stored: one line, naming the file or the value."""


def database_path(models_folder) -> pathlib.Path:
    return pathlib.Path(models_folder) / FILE_NAME


class Examples:
    """The examples database of one models folder. Each method opens its own connection, so an instance may be
    shared by threads (the server's) and several processes may use the same file."""

    def __init__(self, models_folder):
        self.path = database_path(models_folder)

    def exists(self) -> bool:
        return self.path.exists()

    # ---------------------------------------------------------------------------------------------------
    # Writing

    def add(self, input28: bytes, pad_png: bytes, label: int, predicted: int | None, model: str) -> int:
        """Store one example; returns its id. ExamplesError when a value is out of bounds or the store is full."""
        _check_example(input28, pad_png, label, predicted, model)
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        with self._transaction() as db:
            (n,) = db.execute("SELECT count(*) FROM examples").fetchone()
            if n >= MAX_EXAMPLES:
                raise ExamplesError(f"{self.path}: the store is full ({MAX_EXAMPLES:,} examples); delete some "
                                    f"with `numpynn examples delete ID` (or --all) first")
            cursor = db.execute("INSERT INTO examples (input, pad, label, predicted, created, model) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (bytes(input28), bytes(pad_png), label, predicted,
                                                               created, model))
            return int(cursor.lastrowid)

    def delete(self, example_id: int) -> bool:
        """Delete one example; False if there was none with that id."""
        _check_id(example_id)
        if not self.exists():
            return False
        with self._transaction() as db:
            return db.execute("DELETE FROM examples WHERE id = ?", (int(example_id),)).rowcount > 0

    def delete_all(self) -> int:
        """Delete every example; returns how many there were. The file itself stays (empty)."""
        if not self.exists():
            return 0
        with self._transaction() as db:
            return db.execute("DELETE FROM examples").rowcount

    # ---------------------------------------------------------------------------------------------------
    # Reading

    def counts(self) -> list[int]:
        """How many examples carry each label 0..9."""
        counts = [0] * 10
        if self.exists():
            with self._transaction(write=False) as db:
                for label, n in db.execute("SELECT label, count(*) FROM examples GROUP BY label") if db else ():
                    self._check_row({"label": label})
                    counts[label] = n
        return counts

    def rows(self, limit: int = MAX_EXAMPLES) -> list[dict]:
        """Every example without its pictures, oldest first: id, label, predicted, created, model."""
        if not self.exists():
            return []
        with self._transaction(write=False) as db:
            if db is None:
                return []
            cursor = db.execute("SELECT id, label, predicted, created, model FROM examples ORDER BY id LIMIT ?",
                                (limit,))
            names = [d[0] for d in cursor.description]
            return [self._check_row(dict(zip(names, row))) for row in cursor]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and labels, oldest first: images uint8 (N, 28, 28), labels uint8 (N,) (MNIST's layout)."""
        if not self.exists():
            return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT id, input, label FROM examples ORDER BY id").fetchall() if db else []
        for example_id, input28, label in rows:  # before the bytes are joined and reshaped
            self._check_row({"id": example_id, "input": input28, "label": label})
        rows = [row[1:] for row in rows]
        images = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(len(rows), 28, 28)  # (N, 28, 28)
        labels = np.array([r[1] for r in rows], np.uint8)                                           # (N,)
        return images, labels

    def pad(self, example_id: int) -> bytes | None:
        """The raw pad of one example, as the PNG stored (None if there is no such example)."""
        _check_id(example_id)
        if not self.exists():
            return None
        with self._transaction(write=False) as db:
            row = db.execute("SELECT pad FROM examples WHERE id = ?", (int(example_id),)).fetchone() if db else None
        return None if row is None else self._check_row({"id": example_id, "pad": row[0]})["pad"]

    def _check_row(self, row: dict) -> dict:
        """The row, if each of its columns holds what numpynn stores there (STORED); else ExamplesError saying
        the file is damaged."""
        for column, value in row.items():
            ok, what = STORED[column]
            if not ok(value):
                which = f"example {row['id']}'s" if column != "id" and "id" in row else "an example's"
                raise ExamplesError(f"{self.path}: damaged: {which} {column} is {_shown(value)}, not {what}; it "
                                    f"is left as it is: move it aside to start a new one")
        return row

    # ---------------------------------------------------------------------------------------------------
    # The connection

    @contextlib.contextmanager
    def _transaction(self, write: bool = True):
        """A connection inside one transaction: committed when the block ends, rolled back if it raises.
        Writers start with BEGIN IMMEDIATE (they take the write lock at once, waiting their turn up to
        BUSY_TIMEOUT), so two writers never both read a count and then both insert; a writer makes the table
        if the file is new. A reader of a file with no table yet gets None instead of a connection."""
        self._check_file(create=write)
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as error:
            raise ExamplesError(f"{self.path}: cannot be opened ({error}); check the folder's permissions") from None
        try:
            try:
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
                if write:
                    db.execute("PRAGMA journal_mode = WAL")  # persistent; a no-op once the file is in WAL mode
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield db if self._check_schema(db, write) else None
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise ExamplesError(f"{self.path}: busy for over {BUSY_TIMEOUT:g} s (another program holds it); "
                                    f"try again") from None
            raise ExamplesError(f"{self.path}: {error}; the file is left as it is") from None
        except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
            raise ExamplesError(f"{self.path}: not a usable examples database ({error}); it is left as it is: "
                                f"move it aside to start a new one") from None
        finally:
            db.close()

    def _check_file(self, create: bool) -> None:
        """Refuse a file that is not SQLite before sqlite3 touches it (SQLite itself would refuse to use it too,
        but this says so in numpynn's words and never opens it for writing)."""
        try:
            if not stat.S_ISREG(self.path.stat().st_mode):  # before open(): opening a FIFO waits for a writer
                raise ExamplesError(f"{self.path}: not a regular file (a folder, a FIFO or a device); it is left "
                                    f"as it is: move it aside to start a new one")
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            if not create:
                raise ExamplesError(f"{self.path}: no examples database yet") from None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ExamplesError(f"{self.path.parent}: cannot create the models folder ({error.strerror})") \
                    from None
            return
        except OSError as error:
            raise ExamplesError(f"{self.path}: cannot be read ({error.strerror})") from None
        if head and head != SQLITE_MAGIC:  # an empty file is a database that was created and never written
            raise ExamplesError(f"{self.path}: not a SQLite database (it starts with {head[:8]!r}); it is left as "
                                f"it is: move it aside to start a new one")

    def _check_schema(self, db: sqlite3.Connection, create: bool) -> bool:
        """Whether the table is there (made now if `create`); ExamplesError for a version or tables not ours."""
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return True
        if version != 0:
            raise ExamplesError(f"{self.path}: examples database version {version}; this numpynn reads version "
                                f"{SCHEMA_VERSION} (a newer numpynn made it?); it is left as it is")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        if tables:
            raise ExamplesError(f"{self.path}: a SQLite database of something else (tables {', '.join(tables[:5])});"
                                f" it is left as it is: move it aside to start a new one")
        if not create:  # a reader of a new, empty file: nothing stored yet
            return False
        db.execute(SCHEMA)  # inside the writer's transaction: two processes creating it at once cannot clash
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return True


def _check_example(input28, pad_png, label, predicted, model) -> None:
    """Every value's type and size, before anything is stored."""
    if not isinstance(input28, (bytes, bytearray)) or len(input28) != INPUT_BYTES:
        raise ExamplesError(f"the input must be {INPUT_BYTES} bytes (28x28, one byte a pixel)")
    if not isinstance(pad_png, (bytes, bytearray)) or len(pad_png) > MAX_PAD_BYTES:
        raise ExamplesError(f"the pad's picture must be at most {MAX_PAD_BYTES:,} bytes")
    if not _is_digit(label):
        raise ExamplesError(f"label {label!r}: use a digit from 0 to 9")
    if predicted is not None and not _is_digit(predicted):
        raise ExamplesError(f"predicted {predicted!r}: use a digit from 0 to 9, or none")
    if not isinstance(model, str) or len(model) > MAX_MODEL_NAME:
        raise ExamplesError(f"the model's name must be text of at most {MAX_MODEL_NAME} characters")


def _is_digit(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value <= 9


def _check_id(example_id) -> None:
    if not (isinstance(example_id, (int, np.integer)) and not isinstance(example_id, bool)
            and 1 <= example_id <= MAX_ID):
        raise ExamplesError(f"example id {_shown(example_id)}: use a number from 1 to {MAX_ID} (see `numpynn "
                            f"examples list`)")


def _is_text(value, longest: int) -> bool:
    return isinstance(value, str) and len(value) <= longest and value.isprintable()  # printed by `examples list`


def _shown(value) -> str:
    if isinstance(value, bytes):
        return f"{len(value):,} bytes"
    return repr(value)[:40]  # quoted and short: a value read from a file never reaches a terminal raw


# What each column read must hold (the CHECK constraints of SCHEMA, and the types sqlite3 returns for them).
STORED = {
    "id": (lambda v: isinstance(v, int) and 1 <= v <= MAX_ID, f"a number from 1 to {MAX_ID}"),
    "input": (lambda v: isinstance(v, bytes) and len(v) == INPUT_BYTES, f"{INPUT_BYTES} bytes (28x28)"),
    "pad": (lambda v: isinstance(v, bytes) and len(v) <= MAX_PAD_BYTES, f"at most {MAX_PAD_BYTES:,} bytes"),
    "label": (_is_digit, "a digit from 0 to 9"),
    "predicted": (lambda v: v is None or _is_digit(v), "a digit from 0 to 9 or none"),
    "created": (lambda v: _is_text(v, MAX_CREATED), f"printable text of at most {MAX_CREATED} characters"),
    "model": (lambda v: _is_text(v, MAX_MODEL_NAME), f"printable text of at most {MAX_MODEL_NAME} characters"),
}

