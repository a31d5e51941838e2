"""Files written whole or not at all (bytes or JSON), with their folder checked before work starts.

Every file numpynn writes (model files, checkpoints, metrics, figures, pictures) goes through `write_atomically`
(JSON through `write_json_atomically`):
the bytes go to a temporary file beside the target, are flushed to disk, and only then does a rename give them
the target's name. A reader never sees half a file, and a crash or a full disk leaves the old file intact.

A process killed in the middle of a write (kill -9, a power cut) leaves its temporary file behind. Temporary
names carry the writer's process id, `.model.npz.<pid>.<random>.tmp`, so the next write into that folder can
tell a leftover (its process is gone) from a write in progress (its process is alive) and removes only leftovers.

Left out: locking. Two processes writing the same name at once each write a whole file; the last rename wins.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
from typing import BinaryIO, Callable

_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")  # .<target name>.<pid>.<random>.tmp


class OutputError(OSError):
    """A folder numpynn was asked to write into cannot take the file (missing, not a folder, read-only, full).
    Its message is one line that names the path and says what to do."""


def check_folder(folder, what: str, may_create: bool = False) -> pathlib.Path:
    """The folder, after checking that numpynn may write files into it, before any work is done.

    what: how the user named it, e.g. "--plot plots" or "--out runs/model.npz" (the file that goes there) or
    "the models folder /srv/models", so that the error says which one; each message starts with it.
    may_create: the folder may be missing if its parent is a writable folder; nothing is created here (the
    caller makes it when it first writes), so a command that fails later leaves nothing behind."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what}: {folder} exists and is not a folder; give a folder's path")
    target = folder
    if not folder.exists():
        if not may_create:
            raise OutputError(f"{what}: {folder}: no such folder; create it first or choose another path")
        target = folder.parent
        if not target.is_dir():
            raise OutputError(f"{what}: {target} does not exist; create it first or choose another path")
    probe = target / f".numpynn-probe.{os.getpid()}.{os.urandom(6).hex()}.tmp"  # the one sure test is to try
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as error:
        raise OutputError(f"{what}: the folder {target} is not writable ({_reason(error)}); choose another "
                          f"folder or fix its permissions") from None
    return folder


def write_atomically(path, write: Callable[[BinaryIO], None] | bytes) -> pathlib.Path:
    """`path` gets what `write(file)` writes (or the bytes given) whole, or keeps what it had.

    The temporary file is flushed and fsync'ed before the rename, so the name never points at bytes that are
    not yet on disk. Any failure removes the temporary file and raises OutputError (one line) for a system
    error such as a full disk or a read-only folder; other exceptions pass through unchanged."""
    path = pathlib.Path(path)
    folder = path.parent
    remove_leftovers(folder)
    tmp = folder / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for any new file
    except OSError as error:
        raise OutputError(f"{path}: cannot write into {folder} ({_reason(error)}); choose another folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, (bytes, bytearray, memoryview)):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, OutputError):
            raise OutputError(f"{path}: writing failed ({_reason(error)}); nothing was written there") from None
        raise
    return path


def write_json_atomically(path, data) -> pathlib.Path:
    """`path` gets `data` as indented JSON (one space a level), whole, or keeps what it had."""
    return write_atomically(path, json.dumps(data, indent=1).encode())


def remove_leftovers(folder) -> list[pathlib.Path]:
    """Remove the temporary files that numpynn writers killed mid-write left in `folder` (their process is
    gone); a temporary file whose process still runs is a write in progress and stays. Returns what it removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed  # the write itself will say what is wrong with the folder
    for name in names:
        match = _TEMP.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            (pathlib.Path(folder) / name).unlink()
            removed.append(pathlib.Path(folder) / name)
        except OSError:
            pass  # read-only folder, or removed by another writer just now: not ours to report
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of ours may be writing it right now
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, and is another user's
    except (ProcessLookupError, OverflowError, ValueError):
        return False  # gone, or a number no process can have
    return True


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__
