"""One .npy array from an untrusted stream (a member of a model file), read without trusting it.

numpy.load believes the file: it accepts any dtype (structured ones, object arrays if allowed), parses up to
10 kB of header, and allocates whatever shape the header claims before it finds out that the data is not there.
read_array instead takes from the caller the shape and the dtypes it expects, and checks in this order:
- the magic string b"\\x93NUMPY" and a format version of 1, 2 or 3;
- a header of at most MAX_HEADER bytes, a Python dict literal (ast.literal_eval, the format's own way of
  reading it) with exactly the keys descr, fortran_order and shape;
- descr: one of the dtypes the caller allows, float32, float64, int64 in either byte order, or unicode text
  "U<n>" of at most max_chars characters; nothing structured, no objects, no bytes;
- shape: exactly the one the caller expects; fortran_order: a bool (column-major data is read back as such);
- the data: exactly the bytes the shape needs, no more and no fewer than the member holds, read in chunks, so
  nothing is inflated beyond what the array needs.
Every problem raises NpyError, a ValueError with one line. Left out: memory mapping, pickles, and any dtype
numpynn does not write.
"""
from __future__ import annotations

import ast
import math
import re

import numpy as np

MAGIC = b"\x93NUMPY"
MAX_HEADER = 4096  # bytes; numpy writes 118 to 246, padded to a multiple of 64
PREFIX = len(MAGIC) + 2 + 4  # magic, version, and the header length (2 bytes in version 1, 4 in 2 and 3)
CHUNK = 1 << 20  # bytes read at a time: the only copy beside the array itself

# The dtypes numpynn writes: weights and optimizer buffers in float32 or float64, the optimizer's step count
# as int64, and JSON text (the header, each Dropout's generator state) as a 0-d unicode array.
FLOATS = {"float32": np.dtype("float32"), "float64": np.dtype("float64")}
INTEGERS = {"int64": np.dtype("int64")}
_TEXT = re.compile(r"[<>=|]?U([0-9]{1,9})")


class NpyError(ValueError):
    """A member is not an .npy array of the expected dtype and shape."""


def read_array(f, size: int, shape: tuple[int, ...], dtypes: dict[str, np.dtype], max_chars: int = 0):
    """The array in stream f (size bytes long in all), if it has this shape and one of these dtypes (names ->
    dtype; "str" allows unicode text of at most max_chars characters). Returned in native byte order."""
    start = _read_exactly(f, PREFIX - 2)
    if start[: len(MAGIC)] != MAGIC:
        raise NpyError("not an .npy array (bad magic string)")
    major = start[len(MAGIC)]
    if major == 1:
        length_bytes = start[-2:]
    elif major in (2, 3):
        length_bytes = start[-2:] + _read_exactly(f, 2)
    else:
        raise NpyError(f".npy format version {major} is unknown (numpy writes 1, 2 or 3)")
    header_length = int.from_bytes(length_bytes, "little")
    if header_length > MAX_HEADER:
        raise NpyError(f"an .npy header of {header_length} bytes; numpynn's are under {MAX_HEADER}")
    try:
        text = _read_exactly(f, header_length).decode("utf8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):  # TokenError is a SyntaxError
        raise NpyError("the .npy header is not a readable dict") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise NpyError("the .npy header must hold exactly descr, fortran_order and shape")
    dtype = _dtype(header["descr"], dtypes, max_chars)
    if header["shape"] != tuple(shape) or not isinstance(header["shape"], tuple):
        raise NpyError(f"shape {_short(header['shape'])}; the architecture needs {tuple(shape)}")
    if not isinstance(header["fortran_order"], bool):
        raise NpyError("fortran_order must be True or False")
    nbytes = math.prod(shape) * dtype.itemsize
    held = size - (len(MAGIC) + 2 + len(length_bytes) + header_length)  # the bytes after the header
    if held != nbytes:
        raise NpyError(f"holds {held} bytes of data; {tuple(shape)} of {dtype.name} takes {nbytes}")
    data = bytearray(nbytes)
    view = memoryview(data)
    for at in range(0, nbytes, CHUNK):
        view[at : at + CHUNK] = _read_exactly(f, min(CHUNK, nbytes - at))
    array = np.frombuffer(data, dtype)
    array = array.reshape(shape[::-1]).T if header["fortran_order"] else array.reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _dtype(descr, dtypes: dict[str, np.dtype], max_chars: int) -> np.dtype:
    """The dtype a descr names, if it is one of `dtypes` (either byte order) or allowed text; else NpyError."""
    if not isinstance(descr, str):  # a list here would be a structured dtype
        raise NpyError(f"dtype {_short(descr)} is not allowed in a model file")
    text = _TEXT.fullmatch(descr)
    if text and "str" in dtypes:
        if not 1 <= int(text.group(1)) <= max_chars:
            raise NpyError(f"text of {int(text.group(1))} characters; at most {max_chars} are allowed here")
        return np.dtype(descr)
    for dtype in dtypes.values():
        if descr in (dtype.newbyteorder("<").str, dtype.newbyteorder(">").str):
            return np.dtype(descr)
    raise NpyError(f"dtype {_short(descr)} is not allowed here (expected {' or '.join(dtypes)})")


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise NpyError("the array ends early (truncated)")
    return data


def _short(value) -> str:
    """A value from the file, cut so that an error message stays one short line."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
