"""One .npy array from an untrusted stream (a member of a model file), read without trusting it.

numpy.load believes the file: it accepts any dtype (structured ones, object arrays if allowed), parses up to
10 kB of header, and allocates whatever shape the header claims before it finds out that the data is not there.
read_array instead takes from the caller the shape and the dtypes it expects, and checks in this order:
- the magic string b"\\x93NUMPY" and a format version of 1, 2 or 3;
- a header of at most MAX_HEADER bytes, a Python dict literal (ast.literal_eval, the format's own way of
  reading it) with exactly the keys descr, fortran_order and shape;
- descr: one of the dtypes the caller allows, float32, float64, int64 in either byte order, or unicode text
  "U<n>" of at most max_chars characters; nothing structured, no objects, no bytes;
- shape: exactly the one the caller expects (None in it: any size there, bounded by the member's size, which
  the caller bounds); fortran_order: a bool (column-major data is read back as such);
- the data: exactly the bytes the shape needs, no more and no fewer than the member holds, read in chunks, so
  nothing is inflated beyond what the array needs.
Every problem raises NpyError, a ValueError with one line. Left out: memory mapping, pickles, and any dtype
numpynn does not write.
"""
from __future__ import annotations

import ast
import math
import re
import zipfile

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


MAX_RATIO = 1100  # deflate cannot inflate one byte into more than 1032: a member claiming more is lying
_ALLOWED_FLAGS = 0x0808 | 0x0006  # a data descriptor, UTF-8 names, and deflate's speed hints; nothing else


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """What is wrong with a zip member, from the archive's directory alone (nothing inflated yet), or None:
    encrypted, flags zipfile would stumble on, a compression method other than stored or deflated, or an
    uncompressed size that its compressed bytes cannot make."""
    if info.flag_bits & 0x1:
        return "is encrypted; numpynn never writes that"
    if info.flag_bits & ~_ALLOWED_FLAGS:  # patched data, strong encryption, ...: zipfile would raise
        return f"has zip flags {info.flag_bits:#x}; numpynn reads only plain stored or deflated members"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"uses compression method {info.compress_type}; numpynn reads only stored or deflated members"
    stored = info.compress_type == zipfile.ZIP_STORED
    if (stored and info.file_size != info.compress_size) or info.file_size > MAX_RATIO * info.compress_size + 64:
        return f"claims {info.file_size:,} bytes from {info.compress_size:,} compressed; the file is corrupt or hostile"
    return None


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
    if not _fits(header["shape"], shape):
        wanted = "x".join("N" if n is None else str(n) for n in shape) if None in shape else str(tuple(shape))
        raise NpyError(f"shape {_short(header['shape'])}; expected {wanted}")
    shape = header["shape"]
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


def _fits(claimed, shape) -> bool:
    return (isinstance(claimed, tuple) and len(claimed) == len(shape)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 and (want is None or n == want)
                    for n, want in zip(claimed, shape)))


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
        if dtype is not None and descr in (dtype.newbyteorder("<").str, dtype.newbyteorder(">").str):
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
