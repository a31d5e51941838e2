"""Model files: one .npz per model, plain arrays plus a JSON header, never pickle.

A model file holds
- `__header__`: a 0-d unicode array with JSON: the format version, the architecture (`Sequential.spec()`),
  the preprocessing, the training config, the dataset, the metrics and the numpynn version;
- `model/<name>`: every array of `Sequential.state_dict()` (weights, BatchNorm statistics, dropout RNG);
- for a checkpoint, also `optimizer/<name>` and `trainer/<name>` arrays (optimizer moments, the shuffling
  RNG, the epoch) so that training can continue exactly where it stopped.

Loading trusts nothing in the file: np.load runs with allow_pickle=False, the header must parse and carry a
known format version, the architecture must describe known layers of sane size *before* anything is built,
and every array must have the shape the architecture implies. Any problem raises ModelFileError with one line
naming the file and the problem. Saving writes a temporary file beside the target and renames it, so a crash
never leaves half a model behind.
"""
from __future__ import annotations

import json
import math
import pathlib
import zipfile

import numpy as np

from .atomic import write_atomically

FORMAT_VERSION = 1
MAX_PARAMETERS = 50_000_000  # a sanity bound on what a header may ask us to allocate (about 200 MB in float32)
_HEADER = "__header__"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, of an unknown version, or does not match its own header."""


def save(path, arrays: dict[str, np.ndarray], header: dict) -> pathlib.Path:
    """Write `arrays` and the JSON `header` to `path` (an .npz) atomically: temp file, then rename."""
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ModelFileError(f"{path}: model files end in .npz; choose a name like model.npz")
    if not path.parent.is_dir():
        raise ModelFileError(f"{path.parent}: no such folder; create it first or choose another path")
    payload = {_HEADER: np.array(json.dumps({"format_version": FORMAT_VERSION, **header}))}
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:  # would need pickle to load: refuse to write it at all
            raise ModelFileError(f"{name}: object arrays cannot go in a model file")
        payload[name] = np.asarray(array)
    return write_atomically(path, lambda f: np.savez(f, **payload))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read an .npz written by `save`: (arrays, header). Checks the container and the header, not shapes."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # np.load would otherwise try other formats, pickle among them
        raise ModelFileError(f"{path}: corrupt or truncated model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise ModelFileError(f"{path}: not a numpynn model file (no header)")
            header = json.loads(str(npz[_HEADER][()]))
            arrays = {name: npz[name] for name in npz.files if name != _HEADER}
    except ModelFileError:
        raise
    except ValueError as error:  # allow_pickle=False refusing an object array, a bad array header, ...
        raise ModelFileError(f"{path}: refused: {error}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: corrupt or truncated model file ({type(error).__name__}: {error})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version!r} is not supported (this numpynn reads version "
            f"{FORMAT_VERSION}); use the numpynn version that wrote it, or retrain"
        )
    return arrays, header


def split(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix/`, with the prefix removed."""
    cut = len(prefix) + 1
    return {name[cut:]: a for name, a in arrays.items() if name.startswith(prefix + "/")}


def join(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": a for name, a in arrays.items()}


def save_model(path, model, header: dict) -> pathlib.Path:
    """A model file: the model's arrays under model/ and a header describing it (see the module docstring)."""
    return save(path, join("model", model.state_dict()), {"kind": "model", "architecture": model.spec(), **header})


def load_model(path):
    """(model, header) from a model file or a checkpoint. The architecture is checked before anything is
    built, and every array against the shape the architecture implies."""
    from .model import Sequential  # the file format does not need the math until a model is built

    arrays, header = load(path)
    spec = header.get("architecture")
    _check_architecture(path, spec)
    try:
        model = Sequential.from_spec(spec)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the architecture in the header is invalid ({error})") from None
    try:
        model.load_state_dict(split(arrays, "model"))
    except (KeyError, ValueError) as error:
        raise ModelFileError(f"{path}: the arrays do not match the architecture ({error})") from None
    return model, header


def _check_architecture(path, spec) -> None:
    """The header's architecture must be a list of layer descriptions of sane size: a file must not be able
    to make us allocate gigabytes before the shape checks run."""
    if not isinstance(spec, list) or not spec or not all(isinstance(layer, dict) for layer in spec):
        raise ModelFileError(f"{path}: the header has no valid architecture (a list of layers)")
    total = 0
    for layer in spec:
        sizes = [layer.get(key) for key in ("D_in", "D_out", "D", "C_in", "C_out", "kernel") if key in layer]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            raise ModelFileError(f"{path}: the architecture has a non-integer size in {layer}")
        if any(v < 0 for v in sizes):
            raise ModelFileError(f"{path}: the architecture has a negative size in {layer}")
        if "kernel" in layer:
            sizes.append(layer["kernel"])  # a Conv2D's W is C_out x C_in x kernel x kernel
        total += math.prod(sizes) + sum(sizes)  # W and b (Dense, Conv2D); a BatchNorm's four vectors, roughly
    if total > MAX_PARAMETERS:
        raise ModelFileError(
            f"{path}: the architecture asks for {total:,} parameters, more than numpynn's limit of "
            f"{MAX_PARAMETERS:,}; the file is corrupt or not meant for numpynn"
        )
