"""The MNIST file formats: IDX files (raw or gzip-compressed) and Keras' mnist.npz, read with checks.

What is here, in reading order:
- `read_idx` reads one IDX file and checks its header against the file's length before allocating anything.
- `read_npz` reads Keras' `mnist.npz` without unpickling anything, through numpynn.npyfile.
- `check_pair` checks that images and labels make an MNIST-style pair: (N, 28, 28) and (N,) uint8, labels 0..9.

Every problem raises DataError, whose one-line message names the file and the problem.

Limits, on purpose:
- `read_idx` reads any IDX file of 1 to 4 dimensions; `read_npz` and `check_pair` know only MNIST's shapes.
- A .gz made of several concatenated gzip members is refused: its trailer describes only the last member,
  and numpynn uses that trailer to reject lying headers early. Decompress such a file; raw IDX files work.
- Everything is read into memory. Where the files come from (folders, downloads, checksums) is numpynn.data's
  business, not this module's.
"""
from __future__ import annotations

import gzip
import math
import os
import pathlib
import zipfile
import zlib

import numpy as np

from . import npyfile


class DataError(Exception):
    """The data cannot be found, fetched or trusted. The message names the file or folder and the problem."""



# IDX type code (third byte of the magic number) -> the big-endian element type it stores.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_NDIM = 4
# The most read from a stream at once. A header can claim any size; reads never ask for more than this.
_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """Read one IDX file into an array of the stored type, in native byte order.

    IDX layout: two zero bytes, a type code, ndim; then ndim big-endian uint32 sizes; then the values,
    big-endian, row-major. Compression is detected from the gzip magic bytes, not the file name.
    The header is checked against the file's length before the data is allocated; a file that is shorter
    or longer than its header says raises DataError naming the file and the problem."""
    path = pathlib.Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open it ({e.strerror or e})") from None
    with f:
        if f.read(2) == GZIP_MAGIC:
            return _read_idx_gzip(f, path)
        f.seek(0)
        return _read_idx_raw(f, path)


def _read_idx_header(stream, path):
    """Parse and check the magic number and sizes. Returns (dtype, shape, header length in bytes)."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: {len(magic)} bytes, too short for an IDX header; the file is truncated")
    if magic[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX file (magic number {magic.hex()} should start with 0000)")
    type_code, ndim = magic[2], magic[3]
    if type_code not in _IDX_DTYPES:
        known = " ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{type_code:02x} (known: {known})")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{path}: header says {ndim} dimensions; numpynn reads 1 to {_MAX_NDIM}")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path}: the header's {ndim} sizes are cut off; the file is truncated")
    shape = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(ndim))
    return _IDX_DTYPES[type_code], shape, 4 + 4 * ndim


def _describe(shape, dtype, n_bytes):
    return f"{'x'.join(map(str, shape))} {dtype.name} ({n_bytes} bytes of data)"


def _to_array(buffer, dtype, shape):
    # The buffer holds exactly the data bytes; view them as big-endian values, then convert to native order
    # (a no-op for the one-byte types MNIST uses).
    return np.frombuffer(buffer, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _read_idx_raw(f, path):
    dtype, shape, header_len = _read_idx_header(f, path)
    n_bytes = math.prod(shape) * dtype.itemsize           # Python ints: no overflow, however absurd
    held = os.fstat(f.fileno()).st_size - header_len      # data bytes the file really has
    if held < n_bytes:
        raise DataError(f"{path}: header says {_describe(shape, dtype, n_bytes)} but the file holds {held}; "
                        f"the file is truncated — download it again")
    if held > n_bytes:
        raise DataError(f"{path}: header says {_describe(shape, dtype, n_bytes)} but the file holds {held}; "
                        f"{held - n_bytes} trailing bytes after the data")
    data = bytearray(n_bytes)                             # safe now: the file really has this many bytes
    if f.readinto(data) != n_bytes:
        raise DataError(f"{path}: the file changed while it was being read")
    return _to_array(data, dtype, shape)


def _read_idx_gzip(f, path):
    file_size = os.fstat(f.fileno()).st_size
    if file_size < 18:                                    # 10-byte gzip header + 8-byte trailer
        raise DataError(f"{path}: {file_size} bytes, too short to be a gzip file; the file is truncated")
    # The trailer's last 4 bytes (ISIZE) give the decompressed length mod 2**32: a free check that catches
    # truncated files and lying headers before anything is decompressed or allocated.
    f.seek(-4, os.SEEK_END)
    isize = int.from_bytes(f.read(4), "little")
    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            dtype, shape, header_len = _read_idx_header(stream, path)
            n_bytes = math.prod(shape) * dtype.itemsize
            described = _describe(shape, dtype, n_bytes)
            if (header_len + n_bytes) % 2**32 != isize:
                raise DataError(f"{path}: header says {described} but the gzip trailer records {isize} bytes "
                                f"of content, header included; the file is truncated, has extra bytes or is "
                                f"corrupt — download it again")
            # ISIZE agrees only modulo 4 GiB, so the header can still overstate the data by multiples of
            # 4 GiB. Grow the buffer with the data that really arrives, never by what the header claims,
            # and ask for one byte past the end to notice data that goes on too long.
            data = bytearray()
            while chunk := stream.read(min(_CHUNK, n_bytes - len(data) + 1)):
                data += chunk
                if len(data) > n_bytes:
                    raise DataError(f"{path}: header says {described} but the decompressed data goes on "
                                    f"past that; trailing bytes after the data")
    except EOFError:
        raise DataError(f"{path}: the gzip stream ends early; the file is truncated — download it again") \
            from None
    except (OSError, zlib.error) as e:                    # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt gzip data ({e}) — download it again") from None
    if len(data) < n_bytes:
        raise DataError(f"{path}: header says {described} but the file holds {len(data)}; "
                        f"the file is truncated — download it again")
    return _to_array(data, dtype, shape)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


MAX_IMAGES = 1_000_000  # images per split in an .npz (MNIST has 60,000): bounds what a file can make us allocate


def read_npz(path):
    """Read Keras' mnist.npz: returns (x_train, y_train, x_test, y_test), checked like the IDX files.

    Read without np.load, which believes the file: the archive's directory is checked first (nothing
    inflated yet: no encrypted members, no sizes that compression cannot make, none past MAX_IMAGES images),
    then each array by npyfile.read_array: uint8 only (no pickles, no objects, no structured dtypes), the
    shape N x 28 x 28 or N, and exactly the bytes that shape needs."""
    path = pathlib.Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError):
        with open(path, "rb") as f:
            single = f.read(len(npyfile.MAGIC)) == npyfile.MAGIC
        if single:
            raise DataError(f"{path}: a single .npy array, not an .npz archive with {', '.join(_NPZ_KEYS)}") from None
        raise DataError(f"{path}: cannot read it as an .npz archive (not a zip file, or cut short)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open it ({e.strerror or e})") from None
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        missing = [key for key in _NPZ_KEYS if key not in members]
        if missing:
            found = ", ".join(sorted(members)[:10]) or "nothing"
            raise DataError(f"{path}: missing {', '.join(missing)} (found: {found})")
        arrays = {key: _read_npz_member(path, archive, members[key], key) for key in _NPZ_KEYS}
    check_pair(arrays["x_train"], arrays["y_train"], f"{path} [x_train]", f"{path} [y_train]")
    check_pair(arrays["x_test"], arrays["y_test"], f"{path} [x_test]", f"{path} [y_test]")
    return tuple(arrays[key] for key in _NPZ_KEYS)


def _read_npz_member(path, archive, info, key) -> np.ndarray:
    shape = (None, 28, 28) if key.startswith("x") else (None,)  # images, or labels
    most = npyfile.PREFIX + npyfile.MAX_HEADER + MAX_IMAGES * math.prod(shape[1:])
    problem = npyfile.member_problem(info)
    if problem is None and info.file_size > most:
        problem = f"claims {info.file_size:,} bytes; {MAX_IMAGES:,} images take at most {most:,}"
    if problem:
        raise DataError(f"{path} [{key}]: the member {problem}")
    try:
        with archive.open(info) as f:
            return npyfile.read_array(f, info.file_size, shape, {"uint8": np.dtype(np.uint8)})
    except npyfile.NpyError as e:
        raise DataError(f"{path} [{key}]: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        raise DataError(f"{path} [{key}]: corrupt ({' '.join(str(e).split()) or type(e).__name__})") from None


def check_pair(images, labels, images_name, labels_name):
    """Images (N, 28, 28) uint8 and labels (N,) uint8 in 0..9, with the same N."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        shape = "x".join(map(str, images.shape))
        raise DataError(f"{images_name}: images should be Nx28x28 uint8, found {shape} {images.dtype}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        shape = "x".join(map(str, labels.shape))
        raise DataError(f"{labels_name}: labels should be N uint8, found {shape} {labels.dtype}")
    if len(labels) != len(images):
        raise DataError(f"{labels_name}: {len(labels)} labels for the {len(images)} images in {images_name}")
    if labels.size and labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise DataError(f"{labels_name}: label {labels[i]} at index {i} is outside 0..9")


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array of 1 to 4 dimensions as an IDX file's bytes (what read_idx reads back): the magic
    (two zero bytes, 0x08 for unsigned bytes, ndim), each size as a big-endian uint32, then the values."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= _MAX_NDIM:
        raise ValueError(f"IDX files written here hold uint8 arrays of 1 to {_MAX_NDIM} dimensions, not "
                         f"{array.dtype} of {array.ndim}")
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()
