"""A data set, from wherever its files are to the network's splits: found, or downloaded and verified; split.

What is here, in reading order:
- `cache_dir` and `find_data` decide which folder the data comes from: the `data_dir` argument (the CLI's
  `--data DIR`), then $NUMPYNN_DATA, then the cache, downloading into the cache as a last resort.
- `download` fetches the four files from public mirrors and checks their SHA-256.
- `load_raw` returns the uint8 arrays; `load_mnist` returns the float32 train/dev/test splits.
The files themselves are read by numpynn.idx (`read_idx`, `read_npz`), whose DataError this module raises too.

Limits, on purpose:
- Only the four-file MNIST layout is understood as a data set (MNIST, and Fashion-MNIST, which copies it):
  images (N, 28, 28) uint8 and labels (N,) uint8 in 0..9.
- Files found on disk are checked for structure (header, sizes, label range, matching counts), not against
  checksums: a copy supplied by hand may be wrapped in a different gzip, or be a deliberately small file.
  Only downloads are checked against the published SHA-256.
- Everything is read into memory: MNIST is 55 MB as uint8 and 220 MB as float32.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from .checks import require, whole_number
from .idx import GZIP_MAGIC, DataError, check_pair, read_idx, read_npz
from .shapes import DEV_SIZE  # training images held out as the dev set, unless a caller says otherwise

_CHUNK = 1 << 20  # bytes read from a download or a gzip stream at once


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
        total = whole_number(length, 0, 1 << 40)  # only for the bar: a missing or odd length shows none
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
        if f.read(2) != GZIP_MAGIC:
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
    check_pair(arrays["train_images"], arrays["train_labels"], found["train_images"], found["train_labels"])
    check_pair(arrays["test_images"], arrays["test_labels"], found["test_images"], found["test_labels"])
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




def split_order(n_train: int, seed: int) -> np.ndarray:
    """The shuffled order of the training images that load_mnist splits: the first dev_size are the dev set.
    (n_train,)"""
    return np.random.default_rng(seed).permutation(n_train)


def in_every_dev_set(splits: list[tuple[int, int]], n_train: int) -> np.ndarray:
    """Indices, sorted, of the training images that are in the dev set of every one of `splits`, each a
    (dev_size, seed) pair as load_mnist took them: images that no model trained on those splits has seen
    (numpynn ensemble calibrates on them). Empty for no splits."""
    common = None
    for dev_size, seed in splits:
        dev = split_order(n_train, seed)[:dev_size]  # (dev_size,)
        common = dev if common is None else np.intersect1d(common, dev)
    return np.sort(common) if common is not None else np.zeros(0, np.int64)


def load_mnist(dataset="mnist", data_dir=None, *, dev_size=DEV_SIZE, seed=0, download=True, mirrors=None,
               progress=True) -> Splits:
    """Train, dev and test splits of `dataset`, ready for the network.

    As the seed does: the 60,000 training images are shuffled (here with
    `np.random.default_rng(seed).permutation`, so the split is reproducible), the first `dev_size` of the
    shuffled order become the dev set and the rest the training set. The test set is never shuffled."""
    whole = not isinstance(dev_size, bool) and isinstance(dev_size, (int, np.integer))
    require(whole and dev_size >= 1, "dev_size", dev_size, "use a whole number, 1 or more")
    x_train, y_train, x_test, y_test = load_raw(dataset, data_dir, download=download, mirrors=mirrors,
                                                progress=progress)
    n_train = len(x_train)
    require(dev_size < n_train, "dev_size", dev_size, f"use fewer than the {n_train} training images")
    order = split_order(n_train, seed)  # (60000,)
    dev, train = order[:dev_size], order[dev_size:]
    return Splits(
        X_train=_features(x_train[train]), y_train=y_train[train].astype(np.int64),
        X_dev=_features(x_train[dev]), y_dev=y_train[dev].astype(np.int64),
        X_test=_features(x_test), y_test=y_test.astype(np.int64),
    )
