"""MNIST on disk: read the files, find them, download them, split them.

What is here, in reading order:
- `read_idx` reads one IDX file (gzip-compressed or raw) and checks its header against the file's length
  before allocating anything; `read_npz` reads Keras' `mnist.npz` without unpickling anything.
- `cache_dir` and `find_data` decide which folder the data comes from: the `data_dir` argument (the CLI's
  `--data DIR`), then $NUMPYNN_DATA, then the cache, downloading into the cache as a last resort.
- `download` fetches the four files from public mirrors and checks their SHA-256.
- `load_raw` returns the uint8 arrays; `load_mnist` returns the float32 train/dev/test splits.

Limits, on purpose:
- Only the four-file MNIST layout is understood as a data set (MNIST, and Fashion-MNIST, which copies it):
  images (N, 28, 28) uint8 and labels (N,) uint8 in 0..9. `read_idx` reads any IDX file of 1 to 4 dimensions.
- Files found on disk are checked for structure (header, sizes, label range, matching counts), not against
  checksums: a copy supplied by hand may be wrapped in a different gzip, or be a deliberately small file.
  Only downloads are checked against the published SHA-256.
- A .gz made of several concatenated gzip members is refused: its trailer describes only the last member,
  and numpynn uses that trailer to reject lying headers early. Decompress such a file; raw IDX files work.
- Everything is read into memory: MNIST is 55 MB as uint8 and 220 MB as float32.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from . import npyfile


class DataError(Exception):
    """The data cannot be found, fetched or trusted. The message names the file or folder and the problem."""


# ---------------------------------------------------------------------------------------------------------
# The data sets

@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set lives and how to recognise its files.

    files:     canonical .gz name for each of 'train_images', 'train_labels', 'test_images', 'test_labels'
    sha256:    published SHA-256 for each key, of the decompressed content when sha256_of == "content",
               or of the .gz file itself when sha256_of == "gz" (see the Fashion-MNIST entry for why)
    mirrors:   base URLs, tried in order; a file's URL is base + its canonical name
    npz:       a one-file alternative accepted in a folder (Keras' mnist.npz), or None
    """
    name: str
    title: str                    # how messages name it
    files: dict[str, str]
    sha256: dict[str, str]
    mirrors: tuple[str, ...]
    sha256_of: str = "content"
    npz: str | None = None


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        files=dict(_IDX_FILES),
        # The published SHA-256 of the official decompressed files. Checking the content rather than the .gz
        # bytes lets a mirror re-compress the files without failing the check.
        sha256={
            "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        npz="mnist.npz",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        files=dict(_IDX_FILES),
        # No published SHA-256 of the *decompressed* Fashion-MNIST files could be found, so these are of the
        # .gz files, as listed by TensorFlow Datasets (url_checksums/fashion_mnist.txt, for the S3 mirror)
        # and by Keras (keras/src/datasets/fashion_mnist.py, for its Google Storage copy): the two agree,
        # so both mirrors serve the same bytes. A mirror that re-compressed the files would fail this check.
        sha256={
            "train_images": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train_labels": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "test_images": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "test_labels": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        sha256_of="gz",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            # Keras keeps the four canonical names directly in this folder (no fashion-mnist/ level).
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
    ),
}


def _spec(dataset: str) -> DatasetSpec:
    # Looked up at call time, so a test can swap an entry (other checksums, a local mirror).
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}") from None


# ---------------------------------------------------------------------------------------------------------
# Reading IDX and npz files

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
_GZIP_MAGIC = b"\x1f\x8b"


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
        if f.read(2) == _GZIP_MAGIC:
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
    _check_pair(arrays["x_train"], arrays["y_train"], f"{path} [x_train]", f"{path} [y_train]")
    _check_pair(arrays["x_test"], arrays["y_test"], f"{path} [x_test]", f"{path} [y_test]")
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


def _check_pair(images, labels, images_name, labels_name):
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


# ---------------------------------------------------------------------------------------------------------
# Finding the files

def cache_dir(dataset="mnist") -> pathlib.Path:
    """$XDG_CACHE_HOME/numpynn/<dataset>, or ~/.cache/numpynn/<dataset>. Nothing is created here."""
    spec = _spec(dataset)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative path in this variable is invalid and must be ignored.
    root = pathlib.Path(xdg) if os.path.isabs(xdg) else pathlib.Path.home() / ".cache"
    return root / "numpynn" / spec.name


def _spellings(gz_name):
    """The names a file may have in a folder: canonical .gz, decompressed, and the dotted spelling."""
    raw = gz_name[: -len(".gz")]                          # train-images-idx3-ubyte
    return gz_name, raw, raw.replace("-idx", ".idx")     # ..., train-images.idx3-ubyte


def _locate(folder: pathlib.Path, spec: DatasetSpec):
    """(what, None) if `folder` has the data, `what` being {key: path} of the four IDX files or the .npz
    path; otherwise (None, why the folder cannot be used)."""
    if not folder.exists():
        return None, "does not exist"
    if not folder.is_dir():
        return None, "is not a folder"
    found, missing = {}, []
    for key, gz_name in spec.files.items():
        present = [folder / name for name in _spellings(gz_name) if (folder / name).is_file()]
        if present:
            found[key] = present[0]
        else:
            missing.append(gz_name)
    if not missing:
        return found, None
    if spec.npz and (folder / spec.npz).is_file():
        return folder / spec.npz, None
    if found:
        return None, f"missing {', '.join(missing)} (or decompressed)"
    return None, f"no {spec.title} files there"


def find_data(dataset="mnist", data_dir=None, *, download=True, mirrors=None, progress=True) -> pathlib.Path:
    """The folder that holds `dataset`'s files, looking in order at `data_dir`, $NUMPYNN_DATA, the cache.

    A folder qualifies if it has the four files (canonical .gz names, or decompressed) or, for MNIST,
    mnist.npz. A `data_dir` that does not qualify is an error at once: the user asked for that folder, and
    quietly reading or downloading another copy would surprise them. A $NUMPYNN_DATA that does not qualify
    is passed over with a warning. When no place qualifies and `download` is true, the files are downloaded
    into the cache; otherwise one single-line DataError says where numpynn looked and how to supply the
    files by hand."""
    spec = _spec(dataset)
    names = ", ".join(spec.files.values())
    npz_too = f", or Keras' {spec.npz}" if spec.npz else ""
    by_hand = (f"put the four {spec.title} files ({names}; decompressed is fine{npz_too}) into a folder DIR "
               f"and pass --data DIR or set NUMPYNN_DATA=DIR")
    if data_dir is not None:
        found, why_not = _locate(pathlib.Path(data_dir), spec)
        if not found:
            raise DataError(f"{data_dir}: {why_not}; {by_hand}")
        return pathlib.Path(data_dir)

    places = []                                           # (folder, how it was named)
    if os.environ.get("NUMPYNN_DATA"):
        places.append((pathlib.Path(os.environ["NUMPYNN_DATA"]), "$NUMPYNN_DATA"))
    cache = cache_dir(spec.name)
    places.append((cache, "the cache"))

    passed_over = []                                      # "folder (origin): why not", in order
    for folder, origin in places:
        found, why_not = _locate(folder, spec)
        if found:
            _warn_passed_over(passed_over, folder)        # only $NUMPYNN_DATA can be passed over
            return folder
        passed_over.append(f"{folder} ({origin}: {why_not})")

    looked = "looked in " + " and ".join(passed_over)
    if not download:
        raise DataError(f"{spec.title} data not found ({looked}; downloading is turned off); {by_hand}")
    try:
        _download(spec, cache, mirrors, progress, timeout=30)
    except DataError as e:
        raise DataError(f"{spec.title} data not found ({looked}) and the download failed ({e}); "
                        f"to supply the files by hand, {by_hand}") from None
    _warn_passed_over(passed_over[:-1], cache)
    return cache


def _warn_passed_over(lines, used):
    # A folder the user named explicitly was not used: say so, since a typo there would otherwise go unseen.
    for line in lines:
        warnings.warn(f"{line}; using {used} instead", stacklevel=3)


# ---------------------------------------------------------------------------------------------------------
# Downloading

def download(dataset, dest, *, mirrors=None, progress=True, timeout=30) -> pathlib.Path:
    """Download `dataset`'s four files into folder `dest` as their canonical .gz names; return `dest`.

    Each file is tried on each mirror in turn (`mirrors` replaces the data set's list) and checked against
    its published SHA-256. All four go to temporary files in `dest` and are moved into place only after all
    four are verified, so a failure or an interrupt (Ctrl-C included) leaves no partial or temporary file,
    and removes the folders this call created."""
    return _download(_spec(dataset), pathlib.Path(dest), mirrors, progress, timeout)


def _download(spec, dest, mirrors, progress, timeout):
    if mirrors is None:
        mirrors = spec.mirrors
    elif isinstance(mirrors, str):                        # one URL, not a sequence of one-letter URLs
        mirrors = [mirrors]
    bases = [base if base.endswith("/") else base + "/" for base in mirrors]
    if not bases:
        raise DataError(f"no mirrors to download {spec.title} from")
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; cannot download into it")
    created = _make_folders(dest)
    verified = {}                                         # key -> temporary file, checked
    try:
        for key in spec.files:
            verified[key] = _fetch_verified(spec, key, bases, dest, progress, timeout)
        for key, tmp in list(verified.items()):
            os.replace(tmp, dest / spec.files[key])      # atomic: a reader sees no file or the whole file
            del verified[key]
    except BaseException:
        # An interrupt between two os.replace calls can leave some verified files in place: they are
        # complete and correct, so they are kept (and then the folder too).
        for tmp in verified.values():
            _remove(tmp)
        for folder in reversed(created):
            try:
                folder.rmdir()                            # only succeeds if empty
            except OSError:
                break
        raise
    return dest


def _make_folders(dest: pathlib.Path):
    """mkdir -p that returns the folders it created, outermost first, so a failure can remove them."""
    missing = []
    folder = dest
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
            created.append(folder)
        except FileExistsError:                           # made by someone else meanwhile: not ours to remove
            pass
        except OSError as e:
            for made in reversed(created):
                made.rmdir()
            raise DataError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
    return created


# What a bad mirror can raise; anything else (KeyboardInterrupt, a bug) is not a reason to try the next one.
_MIRROR_ERRORS = (DataError, OSError, http.client.HTTPException, ValueError)


def _fetch_verified(spec, key, bases, dest, progress, timeout):
    """Download one file into a temporary file in `dest`, from the first mirror that serves it correctly."""
    name = spec.files[key]
    failures = []
    for base in bases:
        url = base + name
        try:
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
        except OSError as e:                              # the folder itself is the problem, not the mirror
            raise DataError(f"{dest}: cannot write there ({e.strerror or e})") from None
        tmp = pathlib.Path(tmp)
        done = False
        try:
            with os.fdopen(fd, "wb") as out:
                gz_sha256 = _transfer(url, out, name, progress, timeout)
            _verify(spec, key, tmp, gz_sha256)
            done = True
            return tmp
        except _MIRROR_ERRORS as e:
            failures.append(f"{url}: {_reason(e, timeout)}")
        finally:
            if not done:
                _remove(tmp)
    raise DataError(f"could not download {name} from any mirror: " + "; ".join(failures))


def _transfer(url, out, name, progress, timeout):
    """Copy `url` into the open file `out`, with a progress bar. Returns the SHA-256 of the bytes received."""
    from tqdm import tqdm                                 # only downloading needs it

    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        with tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                  disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns an early end of a Content-Length body as a normal end (for compatibility), so the
    # count is checked here; the checksum would catch it too, with a less helpful message.
    if total is not None and received != total:
        raise DataError(f"transfer cut off after {received} of {total} bytes")
    return digest.hexdigest()


def _verify(spec, key, path, gz_sha256):
    expected = spec.sha256[key]
    if spec.sha256_of == "gz":
        actual, what = gz_sha256, "the .gz file"
    else:
        actual, what = _gunzip_sha256(path), "the decompressed content"
    if actual != expected:
        raise DataError(f"SHA-256 of {what} is {actual}, expected {expected}")


def _gunzip_sha256(path):
    """SHA-256 of a gzip file's decompressed content. The file must be gzip: it is stored under a .gz name,
    and a mirror that answers with something else (an error page, say) is not to be trusted."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if f.read(2) != _GZIP_MAGIC:
            raise DataError("not a gzip file")
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except EOFError:
            raise DataError("the gzip stream ends early (truncated)") from None
        except (OSError, zlib.error) as e:
            raise DataError(f"corrupt gzip data ({e})") from None
    return digest.hexdigest()


def _reason(error, timeout):
    """A short, plain reason for a failed mirror."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, Exception) else error
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout} s"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------------------
# Loading and splitting

def load_raw(dataset="mnist", data_dir=None, *, download=True, mirrors=None, progress=True):
    """(x_train, y_train, x_test, y_test) as found on disk: uint8 (N, 28, 28) images, uint8 (N,) labels.

    For MNIST: (60000, 28, 28), (60000,), (10000, 28, 28), (10000,). See `find_data` for where it looks."""
    spec = _spec(dataset)
    folder = find_data(spec.name, data_dir, download=download, mirrors=mirrors, progress=progress)
    found, why_not = _locate(folder, spec)
    if found is None:                                     # the folder changed since find_data looked
        raise DataError(f"{folder}: {why_not}")
    if isinstance(found, pathlib.Path):
        return read_npz(found)
    arrays = {key: read_idx(path) for key, path in found.items()}
    _check_pair(arrays["train_images"], arrays["train_labels"], found["train_images"], found["train_labels"])
    _check_pair(arrays["test_images"], arrays["test_labels"], found["test_images"], found["test_labels"])
    _refuse_other_dataset(spec, arrays["train_labels"], found["train_labels"])
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def _refuse_other_dataset(spec, labels, labels_path):
    """Fashion-MNIST uses MNIST's file names, so a folder of one is easily taken for the other (through a
    global NUMPYNN_DATA, say). Another data set's published content checksum of its training labels
    catches its real files, at the cost of hashing 60 kB. Only MNIST publishes content checksums, so only
    MNIST files passed as Fashion-MNIST are caught, not the reverse."""
    others = {other.sha256["train_labels"]: other.title for other in DATASETS.values()
              if other.name != spec.name and other.sha256_of == "content"}
    # The labels file's content, rebuilt from the checked array: header (uint8, 1 dimension, N), then data.
    content = bytes([0, 0, 0x08, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes()
    title = others.get(hashlib.sha256(content).hexdigest())
    if title:
        raise DataError(f"{labels_path}: these are the {title} training labels, not {spec.title}'s; "
                        f"point numpynn at a folder of {spec.title} files")


@dataclass(frozen=True)
class Splits:
    """The three splits the network uses. X: float32 (N, 784) C-contiguous in [0, 1]; y: int64 (N,) in 0..9."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_dev: np.ndarray
    y_dev: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def __repr__(self):
        shapes = ", ".join(f"{name}={getattr(self, name).shape}" for name in self.__dataclass_fields__)
        return f"Splits({shapes})"


def _features(images):
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1], as the seed does: flatten, divide by 255."""
    X = images.reshape(len(images), -1).astype(np.float32)   # (N, 784), a fresh C-contiguous copy
    X /= np.float32(255)                                       # in place: no second (N, 784) array
    return X


def load_mnist(dataset="mnist", data_dir=None, *, dev_size=10_000, seed=0, download=True, mirrors=None,
               progress=True) -> Splits:
    """Train, dev and test splits of `dataset`, ready for the network.

    As the seed does: the 60,000 training images are shuffled (here with
    `np.random.default_rng(seed).permutation`, so the split is reproducible), the first `dev_size` of the
    shuffled order become the dev set and the rest the training set. The test set is never shuffled."""
    if isinstance(dev_size, bool) or not isinstance(dev_size, (int, np.integer)) or dev_size <= 0:
        raise ValueError(f"dev_size must be a positive integer, got {dev_size!r}")
    x_train, y_train, x_test, y_test = load_raw(dataset, data_dir, download=download, mirrors=mirrors,
                                                progress=progress)
    n_train = len(x_train)
    if dev_size >= n_train:
        raise ValueError(f"dev_size must be less than the {n_train} training images, got {dev_size}")
    order = np.random.default_rng(seed).permutation(n_train)  # (60000,)
    dev, train = order[:dev_size], order[dev_size:]
    return Splits(
        X_train=_features(x_train[train]), y_train=y_train[train].astype(np.int64),
        X_dev=_features(x_train[dev]), y_dev=y_train[dev].astype(np.int64),
        X_test=_features(x_test), y_test=y_test.astype(np.int64),
    )
