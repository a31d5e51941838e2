"""Model files: one .npz per model, plain arrays plus a JSON header, never pickle.

A model file holds
- `__header__`: a 0-d unicode array with JSON: the format version, the architecture (`Sequential.spec()`),
  the softmax's temperature (`Sequential.temperature`, 1 unless calibrated; files without it mean 1),
  the preprocessing, the training config, the dataset, the metrics and the numpynn version;
- `model/<name>`: every entry of `Sequential.state_dict()` (weights, BatchNorm statistics), each Dropout
  generator's state as JSON text in a 0-d string array (`encode_state`; `load` decodes it);
- for an ensemble (ensemble.py), no architecture or model/ of its own but "members" in the header, a list of
  1 to MAX_ENSEMBLE objects each with its architecture and temperature, "shift" (its test-time shifts in
  pixels, 0 for none; files without it mean 0; one member needs a shift), and each member's arrays under
  `member<m>/model/<name>`; checks 3 to 6 below apply to every member, and MAX_PARAMETERS to all together;
- for a checkpoint, also `optimizer/<name>` arrays (the step count, the optimizer's moments) and, with early
  stopping, `best/<name>` (the best epoch's model); the trainer's state (epoch, shuffling RNG, history) is in
  the header. With them training can continue exactly where it stopped.

Saving writes a temporary file beside the target and renames it, so a crash never leaves half a model behind.

Loading trusts nothing in the file, and decompresses nothing before it knows how much it may. `load` checks,
in this order, each failure one line of ModelFileError naming the file:
1. the file is a zip archive; its central directory (read, not inflated) has at most MAX_MEMBERS members, each
   with a unique name of the form `__header__.npy`, `model/<i>.<name>.npy`, `member<m>/model/<i>.<name>.npy`, `optimizer/<name>.npy` or
   `best/<i>.<name>.npy`, not encrypted, stored or deflated, no larger inflated than deflate can make it
   (npyfile.member_problem), and the compressed sizes fit in the file;
2. the header member: at most MAX_HEADER_BYTES, a 0-d unicode .npy array (npyfile.read_array) of JSON
   holding an object;
3. the format version (FORMAT_VERSION), then the architecture: a list of known layers whose sizes are
   integers and whose float dtypes are float32 or float64, with at most MAX_PARAMETERS parameters; from it, the
   exact name, shape and dtype of every array the file must hold (`_layer_state`: no model is built yet);
4. the kind ("model" or "checkpoint") and the fields the interfaces print or use: dataset (a known one),
   metrics (numbers or text), preprocessing and config (objects), the temperature (a number in
   [calibrate.T_MIN, calibrate.T_MAX]), the "not sure" rule (numbers in [0, 1], abstain.choose_rule), and for
   a checkpoint the config and trainer objects;
5. the members are exactly the expected ones (optimizer buffers and best/ either all there or none), and each
   member's declared size is what its array needs, so a member cannot claim more memory than the architecture;
6. each array: its .npy header parsed with bounds (npyfile.read_array), its dtype and shape the expected ones,
   its data exactly that long and its CRC right, every float finite;
7. when the header has `weights_sha256` (the built-in model has), the arrays hash to it (`weights_sha256`).
Memory is thus bounded by what the architecture needs (itself bounded by MAX_PARAMETERS) and by what the file
really holds: about the arrays' size, once, plus a 1 MB read buffer.

`load_model` and `load_checkpoint` then check each Dropout generator's state (one NumPy's generator takes exactly
as written: model.check_generator_state), build the network and run one zero image through it in inference
mode: it must map 784 pixels (the datasets of numpynn.data) to 10 finite logits through a last Dense layer,
and its convolutions must stay under MAX_ACTIVATIONS values per image. So every interface (CLI, web page,
train --resume) gets a network it can use, or one line saying why not.

Left out: the training config's values and the trainer's generator states are checked by train.Run.resume
(which knows them); the metrics' meaning; signatures: weights_sha256 finds a changed or damaged file, but
whoever changes the weights can change the header too (and a file can still hold weights that predict badly).
"""
from __future__ import annotations

import hashlib
import json
import math
import pathlib
import re
import zipfile
import zlib

import numpy as np

from .atomic import write_atomically
from .calibrate import T_MAX, T_MIN
from . import shapes
from .npyfile import FLOATS, INTEGERS, MAX_HEADER as MAX_NPY_HEADER, NpyError, member_problem, read_array

FORMAT_VERSION = 1
MAX_PARAMETERS = 50_000_000  # a sanity bound on what a header may ask us to allocate (about 200 MB in float32)
MAX_HEADER_BYTES = 1 << 20  # the JSON header: about 250 000 characters, room for a history of 1500 epochs
MAX_RNG_CHARS = 1024  # a generator state in JSON (PCG64's is about 170 characters)
MAX_MEMBERS = 10_000  # arrays in one file: a model of 1000 layers with its optimizer state has fewer
MAX_ACTIVATIONS = 4_000_000  # values one convolution may make for one image (the cnn preset's largest: 51 200)
_HEADER = "__header__"
MAX_ENSEMBLE = 100  # members of one ensemble file (Ciresan et al.'s committee had 35)
_MEMBER = re.compile(r"(?:(?:member[0-9]{1,3}/)?model|best)/[0-9]{1,6}\.[A-Za-z_]{1,20}"
                     r"|optimizer/[a-z]{1,4}(?:\.[0-9]{1,7})?")
_OPTIMIZER_BUFFERS = ("m", "v")  # every buffer name numpynn's optimizers keep (optim.SGD: v; Adam: m and v)


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
    for name, array in encode_state(arrays).items():
        if array.dtype == object:  # would need pickle to load: refuse to write it at all
            raise ModelFileError(f"{name}: object arrays cannot go in a model file")
        payload[name] = array
    return write_atomically(path, lambda f: np.savez(f, **payload))


def encode_state(state: dict) -> dict[str, np.ndarray]:
    """A state_dict as arrays an .npz holds without pickle: a generator's state (a dict, see
    Sequential.state_dict) becomes its JSON text in a 0-d string array; everything else is an array already."""
    return {name: np.array(json.dumps(value)) if isinstance(value, dict) else np.asarray(value)
            for name, value in state.items()}


def decode_state(arrays) -> dict:
    """The inverse of encode_state: each 0-d string array (a generator's state in JSON) back to its dict.
    A ValueError naming the entry if one is not JSON text of an object."""
    state = {}
    for name in arrays:
        value = arrays[name]
        if value.dtype.kind == "U":
            try:
                value = json.loads(str(value))
            except (ValueError, RecursionError):
                raise ValueError(f"the entry {name!r} is not a generator state in JSON") from None
            if not isinstance(value, dict):
                raise ValueError(f"the entry {name!r} is not a generator state (a JSON object)")
        state[name] = value
    return state


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read an .npz written by `save`: (arrays, header), after every check of the module docstring (1 to 6).
    The arrays are named as saved ("model/0.W", ...) and have the shapes and dtypes the architecture implies."""
    path = pathlib.Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():  # a pipe or a device would be read forever
        raise ModelFileError(f"{path}: not a regular file (a folder, a pipe or a device); name a model .npz file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _check_directory(path, archive.infolist())
            header = _read_header(path, archive, members)
            expected = _expected_arrays(path, header)
            _check_members(path, members, expected)
            arrays = {name: _read_member(path, archive, members[name], *expected[name]) for name in expected}
        _check_sha256(path, header, arrays)
        arrays = decode_state(arrays)  # the generator states, JSON text in the file, as the dicts of state_dict
    except ModelFileError:
        raise
    except PermissionError:
        raise ModelFileError(f"{path}: no permission to read it; check the file's permissions") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise ModelFileError(f"{path}: corrupt or truncated model file ({type(error).__name__}: "
                             f"{_one_line(error)})") from None
    return arrays, header


def _check_directory(path, infos) -> dict[str, zipfile.ZipInfo]:
    """Check 1: the zip's central directory, before a byte is inflated. Returns array name -> its entry."""
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: {len(infos)} members; a numpynn model file has at most {MAX_MEMBERS}")
    members, compressed = {}, 0
    for info in infos:
        name = info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename
        if not (name == _HEADER or _MEMBER.fullmatch(name)) or not info.filename.endswith(".npy"):
            raise ModelFileError(f"{path}: unexpected member {_short(info.filename)}; not a numpynn model file")
        if name in members:
            raise ModelFileError(f"{path}: the member {info.filename} appears twice; the file is corrupt")
        problem = member_problem(info)
        if problem:
            raise ModelFileError(f"{path}: the member {info.filename} {problem}")
        compressed += info.compress_size
        members[name] = info
    if compressed > path.stat().st_size:
        raise ModelFileError(f"{path}: corrupt or truncated model file (its members claim more bytes than it has)")
    if _HEADER not in members:
        raise ModelFileError(f"{path}: not a numpynn model file (no header)")
    return members


def _read_header(path, archive, members) -> dict:
    """Check 2: the JSON header, from a member of at most MAX_HEADER_BYTES."""
    info = members[_HEADER]
    if info.file_size > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: a header of {info.file_size:,} bytes; numpynn's are under "
                             f"{MAX_HEADER_BYTES:,}; the file is corrupt or hostile")
    text = str(_read_member(path, archive, info, (), {"str": None}, MAX_HEADER_BYTES // 4))
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; deep nesting a RecursionError
        raise ModelFileError(f"{path}: corrupt model file (the header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object")
    return header


def _expected_arrays(path, header) -> dict[str, tuple]:
    """Checks 3 and 4: the version, the architecture and the kind, then what the file must hold:
    array name -> (shape, allowed dtypes, max characters of text)."""
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ModelFileError(
            f"{path}: model format version {_short(version)} is not supported (this numpynn reads version "
            f"{FORMAT_VERSION}); use the numpynn version that wrote it, or retrain"
        )
    if "members" in header:  # an ensemble: each member's arrays under member<m>/model/
        return _ensemble_arrays(path, header)
    state = _model_state(path, header.get("architecture"))
    _check_fields(path, header)
    expected = {f"model/{name}": spec for name, (spec, _) in state.items()}
    if header["kind"] == "checkpoint":
        expected |= {f"best/{name}": spec for name, (spec, _) in state.items()}
        expected["optimizer/t"] = ((), INTEGERS, 0)
        params = [spec for spec, trainable in state.values() if trainable]  # in the order of model.params()
        for buffer in _OPTIMIZER_BUFFERS:
            expected |= {f"optimizer/{buffer}.{i}": spec for i, spec in enumerate(params)}
    return expected


def _ensemble_arrays(path, header) -> dict[str, tuple]:
    """Checks 3 and 4 for an ensemble (ensemble.py): the kind is "model", there is no architecture of its own,
    and "members" is a list of 1 to MAX_ENSEMBLE objects (Ensemble, when built, asks for two unless there are
    test-time shifts), each with an architecture and a temperature checked as
    a single model's are; MAX_PARAMETERS bounds all the members together."""
    members = header["members"]
    if header.get("kind") != "model" or "architecture" in header:
        raise ModelFileError(f"{path}: an ensemble's header has kind \"model\" and no architecture of its own "
                             "(each member has one)")
    if not (isinstance(members, list) and 1 <= len(members) <= MAX_ENSEMBLE
            and all(isinstance(member, dict) for member in members)):
        raise ModelFileError(f"{path}: the header's members are not a list of 1 to {MAX_ENSEMBLE} objects")
    _check_fields(path, header)
    expected, total = {}, 0
    for m, member in enumerate(members):
        where = f"{path} (member {m + 1})"
        state = _model_state(where, member.get("architecture"))
        _check_fields(where, {**member, "kind": "model"})  # its temperature, metrics and the rest
        total += sum(math.prod(spec[0]) for spec, _ in state.values())
        expected |= {f"member{m}/model/{name}": spec for name, (spec, _) in state.items()}
    if total > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: the members ask for {total:,} parameters together, more than numpynn's "
                             f"limit of {MAX_PARAMETERS:,}; the file is corrupt or not meant for numpynn")
    return expected


def _check_members(path, members, expected) -> None:
    """Check 5: the members are the arrays the architecture implies, and none claims more than its array needs.
    What a checkpoint may leave out: best/ (without early stopping) and an optimizer buffer (plain SGD has none,
    and none exist before the first step), each as a whole."""
    names = members.keys() - {_HEADER}
    for prefix in ["best/", *(f"optimizer/{buffer}." for buffer in _OPTIMIZER_BUFFERS)]:
        if not any(name.startswith(prefix) for name in names):
            for name in [name for name in expected if name.startswith(prefix)]:
                del expected[name]
    missing, extra = sorted(expected.keys() - names), sorted(names - expected.keys())
    if missing or extra:
        raise ModelFileError(f"{path}: the arrays do not match the architecture (missing {_few(missing)}, "
                             f"unexpected {_few(extra)})")
    for name, (shape, dtypes, max_chars) in expected.items():
        itemsize = max([4 * max_chars] + [dtype.itemsize for dtype in dtypes.values() if dtype is not None])
        most = 12 + MAX_NPY_HEADER + math.prod(shape) * itemsize  # magic, version, length, header, data
        if members[name].file_size > most:
            raise ModelFileError(f"{path}: the member {name}.npy claims {members[name].file_size:,} bytes; its array "
                                 f"{shape} needs at most {most:,}; the file is corrupt or hostile")


def _read_member(path, archive, info, shape, dtypes, max_chars=0) -> np.ndarray:
    """Check 6: one array, read within its member's declared size; floats must be finite."""
    try:
        with archive.open(info) as f:
            array = read_array(f, info.file_size, shape, dtypes, max_chars)
    except NpyError as error:
        raise ModelFileError(f"{path}: the member {info.filename}: {error}") from None
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFileError(f"{path}: the member {info.filename} holds NaN or infinite values; the model "
                             "diverged or the file is damaged: retrain, or use an earlier file")
    return array


def weights_sha256(arrays: dict[str, np.ndarray]) -> str:
    """The SHA-256 of a file's arrays as stored (every member but the header), as 64 hex digits. For each array,
    in the order of the names' code points: the name in UTF-8, a NUL byte, the dtype as NumPy writes it in
    little-endian (`<f4`, `<U176`, ...), a NUL byte, the shape as decimal integers joined by commas ("" for a
    0-d array), a NUL byte, then the values in C order, little-endian. Name, dtype and shape are hashed so that
    the same bytes cannot be read as other arrays. A generator's state given as a dict is hashed as the JSON text
    a model file stores it as (a 0-d string array)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        a = np.array(json.dumps(value)) if isinstance(value, dict) else np.asarray(value)
        a = a.astype(a.dtype.newbyteorder("<"), order="C", copy=False)  # (ascontiguousarray makes 0-d 1-d)
        digest.update(f"{name}\0{a.dtype.str}\0{','.join(map(str, a.shape))}\0".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _check_sha256(path, header, arrays) -> None:
    """Check 7: the arrays are those the header's weights_sha256 names, if it names any."""
    if "weights_sha256" not in header:
        return
    expected, actual = header["weights_sha256"], weights_sha256(arrays)
    if expected != actual:
        raise ModelFileError(f"{path}: the weights do not match the header's weights_sha256 (they hash to "
                             f"{actual[:12]}..., the header says {expected[:12]}...); the file was changed "
                             "or damaged after it was written: reinstall numpynn, or use the file's original")


def split(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix/`, with the prefix removed."""
    cut = len(prefix) + 1
    return {name[cut:]: a for name, a in arrays.items() if name.startswith(prefix + "/")}


def join(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": a for name, a in arrays.items()}


def save_model(path, model, header: dict) -> pathlib.Path:
    """A model file: the model's arrays under model/ and a header describing it (see the module docstring)."""
    return save(path, join("model", model.state_dict()),
                {"kind": "model", "architecture": model.spec(), "temperature": model.temperature, **header})


def load_model(path):
    """(model, header) from a model file, an ensemble file or a checkpoint: `load`, then the network is built
    and must map 784 pixels to 10 classes (see `_check_digits`). For an ensemble, each member is built and
    checked so, and the model is an ensemble.Ensemble of them (which checks their number and the shift)."""
    arrays, header = load(path)
    if "members" in header:
        from .ensemble import Ensemble

        members = [_build(f"{path} (member {m + 1})", member, split(arrays, f"member{m}/model"))
                   for m, member in enumerate(header["members"])]
        try:
            ensemble = Ensemble(members, shift=header.get("shift", 0))
        except ValueError as error:  # OptionError: a shift out of range, one member without one
            raise ModelFileError(f"{path}: the header's ensemble is invalid ({error})") from None
        ensemble.temperature = float(header.get("temperature", 1.0))  # checked by _check_fields
        return ensemble, header
    return _build(path, header, split(arrays, "model")), header


def save_ensemble(path, ensemble, members: list[dict], header: dict) -> pathlib.Path:
    """An ensemble file: member m's arrays under member<m>/model/, and a header whose "members" list gives each
    member's architecture and temperature, with `members[m]`'s entries (its file name, its metrics)."""
    check_ensemble_size(path, len(ensemble.members), ensemble.n_params())  # never write what load refuses
    arrays, described = {}, []
    for m, (model, about) in enumerate(zip(ensemble.members, members)):
        arrays |= join(f"member{m}/model", model.state_dict())
        described.append({**about, "architecture": model.spec(), "temperature": model.temperature})
    return save(path, arrays, {"kind": "model", **header, "temperature": ensemble.temperature,
                               "shift": ensemble.shift, "members": described})


def check_ensemble_size(where, members: int, parameters: int) -> None:
    """ModelFileError naming `where` unless an ensemble of `members` models with `parameters` parameters in all
    fits one ensemble file: at most MAX_ENSEMBLE members and MAX_PARAMETERS parameters, the limits that
    reading one checks. `numpynn ensemble` asks before it loads or scores anything; save_ensemble again."""
    if members > MAX_ENSEMBLE:
        raise ModelFileError(f"{where}: an ensemble of {members} models; an ensemble file holds at most "
                             f"{MAX_ENSEMBLE} (numpynn's limit): choose {MAX_ENSEMBLE} or fewer")
    if parameters > MAX_PARAMETERS:
        raise ModelFileError(f"{where}: the members have {parameters:,} parameters together, more than numpynn's "
                             f"limit of {MAX_PARAMETERS:,} for one file: choose fewer or smaller models")


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, header) of a checkpoint, for train.Run.resume: `load`, the kind, and the network checked as in
    load_model (Run.resume then checks the config and the trainer's state, which train.py knows)."""
    arrays, header = load(path)
    if header["kind"] != "checkpoint":
        raise ModelFileError(f"{path}: a model file, not a checkpoint; resume from the .ckpt.npz file "
                             "that training wrote beside it")
    _build(path, header, split(arrays, "model"))
    return arrays, header


def _build(path, header, state):
    """The network of the header with the file's weights, checked on one zero image."""
    from .model import Sequential, check_generator_state  # the format needs no math until a model is built

    for name in [name for name in state if name.endswith(".rng")]:  # Dropout's, from default_rng: PCG64
        try:
            check_generator_state(f"the Dropout state {name!r}", state[name])
        except ValueError as error:
            raise ModelFileError(f"{path}: {error}; the file is damaged: retrain, or use an earlier file") from None
    try:
        model = Sequential.from_spec(header["architecture"], state=state)  # the file's weights, none drawn
    except (KeyError, TypeError, ValueError) as error:  # an option a layer refuses, e.g. p = 2 for Dropout
        raise ModelFileError(f"{path}: the architecture in the header is invalid ({_one_line(error)})") from None
    model.temperature = float(header.get("temperature", 1.0))  # checked by _check_fields
    _check_digits(path, model)
    return model


def _check_digits(path, model) -> None:
    """Two images in inference mode, all black and all white (the ends of the pixel range), must come out as
    10 finite logits each from a last Dense layer: a wrong D_in, a pool larger than the image, 3 classes, no
    Dense layer, or weights so large that a bright image overflows fail here, not in a command. Each
    convolution's work is bounded first, since the header, not the file's size, decides it."""
    X = np.zeros((2, shapes.D), np.float32)  # (2, 784)
    X[1] = 1
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as one line
            for layer in model.layers:
                if type(layer).__name__ == "Conv2D" and X.ndim == 4:
                    _check_convolution(path, layer, X.shape)
                X = layer.forward(X, train=False)
    except ModelFileError:
        raise
    except (ValueError, TypeError, IndexError, MemoryError) as error:
        raise ModelFileError(f"{path}: the network does not take {shapes.D}-pixel images ({_one_line(error)})") from None
    if type(model.layers[-1]).__name__ != "Dense":
        raise ModelFileError(f"{path}: the network does not end in a Dense layer giving the class scores; "
                             "it is not a numpynn classifier")
    if X.shape != (2, shapes.K):
        raise ModelFileError(f"{path}: the network tells {X.shape[-1]} classes apart; numpynn's datasets have "
                             f"{shapes.K}")
    if not np.isfinite(X).all():
        raise ModelFileError(f"{path}: the network gives NaN or infinite scores for a black or a white image; its weights "
                             "overflow or the file is damaged: retrain, or use an earlier file")


def _check_convolution(path, layer, shape) -> None:
    """The padded image, the columns of im2col and the output of one Conv2D for one image, before it runs."""
    _, C_in, H_in, W_in = shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    H_out, W_out = (H_in + 2 * p - k) // s + 1, (W_in + 2 * p - k) // s + 1
    work = max(C_in * (H_in + 2 * p) * (W_in + 2 * p), C_in * k * k * H_out * W_out, layer.C_out * H_out * W_out)
    if work > MAX_ACTIVATIONS:
        raise ModelFileError(f"{path}: a Conv2D layer would make {work:,} values for one image, more than "
                             f"numpynn's limit of {MAX_ACTIVATIONS:,}; the file is corrupt or not meant for numpynn")


def _model_state(path, spec) -> dict[str, tuple[tuple, bool]]:
    """Check 3: "<i>.<name>" -> ((shape, dtypes, max characters), trainable) for every array of the model's
    state_dict, in its order, from the architecture alone: nothing is allocated, so a header that declares
    a huge network costs nothing. Refuses an architecture of more than MAX_PARAMETERS parameters."""
    if not isinstance(spec, list) or not spec or not all(isinstance(layer, dict) for layer in spec):
        raise ModelFileError(f"{path}: the header has no valid architecture (a list of layers)")
    state, total = {}, 0
    for i, layer in enumerate(spec):
        for name, entry in _layer_state(path, layer).items():
            state[f"{i}.{name}"] = entry
            total += math.prod(entry[0][0])
    if total > MAX_PARAMETERS:
        raise ModelFileError(
            f"{path}: the architecture asks for {total:,} parameters, more than numpynn's limit of "
            f"{MAX_PARAMETERS:,}; the file is corrupt or not meant for numpynn"
        )
    return state


def _layer_state(path, layer: dict) -> dict[str, tuple[tuple, bool]]:
    """name -> ((shape, dtypes, max characters), trainable) of what one layer saves: its params in the order
    of layer.params (the optimizer's buffers follow it), its buffers, a Dropout's generator state. This mirrors
    layers.py and conv.py; a test compares it with Sequential.state_dict for every layer type."""
    from .model import LAYERS

    kind = layer.get("type")
    if kind not in LAYERS:
        raise ModelFileError(f"{path}: the architecture in the header is invalid (unknown layer type "
                             f"{_short(kind)}; numpynn has {', '.join(LAYERS)})")
    sizes = {key: layer[key] for key in ("D_in", "D_out", "D", "C_in", "C_out", "kernel") if key in layer}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes.values()):
        raise ModelFileError(f"{path}: the architecture has a non-integer size in {_short(layer)}")
    if any(v < 1 for v in sizes.values()):
        raise ModelFileError(f"{path}: the architecture has a negative or zero size in {_short(layer)}")
    dtype = layer.get("dtype", "float32")
    if kind in ("Dense", "Conv2D", "BatchNorm") and dtype not in FLOATS:
        raise ModelFileError(f"{path}: the architecture asks for dtype {_short(dtype)} in {kind}; numpynn "
                             f"uses {' or '.join(FLOATS)}")
    floats = {dtype: FLOATS.get(dtype)}
    try:
        if kind == "Dense":
            return {"W": (((sizes["D_in"], sizes["D_out"]), floats, 0), True),
                    "b": (((sizes["D_out"],), floats, 0), True)}
        if kind == "Conv2D":
            C_in, C_out, k = sizes["C_in"], sizes["C_out"], sizes["kernel"]
            return {"W": (((C_out, C_in, k, k), floats, 0), True), "b": (((C_out,), floats, 0), True)}
        if kind == "BatchNorm":
            vector = ((sizes["D"],), floats, 0)
            return {"gamma": (vector, True), "beta": (vector, True),
                    "running_mean": (vector, False), "running_var": (vector, False)}
    except KeyError as error:
        raise ModelFileError(f"{path}: the architecture has no size {error} in {_short(layer)}") from None
    if kind == "Dropout":
        return {"rng": (((), {"str": None}, MAX_RNG_CHARS), False)}
    return {}  # activations, pooling, reshapes: nothing saved


def _check_fields(path, header) -> None:
    """Check 4: the kind, and the header fields that the interfaces print or use, so none of them meets a
    surprise (info prints each of dataset, preprocessing, metrics and config as key=value pairs)."""
    from .data import DATASETS

    kind = header.get("kind")
    if kind not in ("model", "checkpoint"):
        raise ModelFileError(f"{path}: the header's kind is {_short(kind)}; numpynn writes \"model\" or "
                             "\"checkpoint\"")
    needed = ("config", "trainer") if kind == "checkpoint" else ()
    for key in ("dataset", "preprocessing", "metrics", "config", "trainer", "history"):
        if (key in header or key in needed) and not isinstance(header.get(key), dict):
            raise ModelFileError(f"{path}: the header's {key} is not a JSON object")
    if "dataset" in header and header["dataset"].get("name") not in DATASETS:
        raise ModelFileError(f"{path}: the header names an unknown dataset {_short(header['dataset'].get('name'))}; "
                             f"numpynn knows {', '.join(sorted(DATASETS))}")
    for name, value in header.get("metrics", {}).items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is None or isinstance(value, str) or (number and math.isfinite(value))):
            raise ModelFileError(f"{path}: the header's metric {_short(name)} is {_short(value)}, not a number")
    T = header.get("temperature", 1.0)
    if isinstance(T, bool) or not isinstance(T, (int, float)) or not T_MIN <= T <= T_MAX:  # NaN fails too
        raise ModelFileError(f"{path}: the header's temperature is {_short(T)}; it must be a number from "
                             f"{T_MIN:g} to {T_MAX:g} (1 when not calibrated)")
    rule = header.get("not_sure")
    if rule is not None and not (isinstance(rule, dict) and all(
            isinstance(rule.get(key), (int, float)) and not isinstance(rule.get(key), bool)
            and 0 <= rule[key] <= 1 for key in ("threshold", "ink_limit"))):  # NaN fails too
        raise ModelFileError(f"{path}: the header's not_sure rule is {_short(rule)}; it must hold a threshold "
                             "and an ink_limit, each a number from 0 to 1")
    sha256 = header.get("weights_sha256", "0" * 64)
    if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ModelFileError(f"{path}: the header's weights_sha256 is {_short(sha256)}, not 64 hex digits")
    if not isinstance(header.get("numpynn_version", ""), str):
        raise ModelFileError(f"{path}: the header's numpynn_version is not text")


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else "none"


def _short(value) -> str:
    """A value from the file, cut so that an error message stays one short line."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(error) -> str:
    text = printable(error)  # an error may quote the file's text (an unexpected keyword, say)
    return text if len(text) <= 200 else text[:197] + "..."


def printable(value) -> str:
    """str(value), safe to print on a terminal: every character that is not printable (control characters such
    as ESC or a newline, format characters such as a right-to-left override) is written as its escape, \\x1b,
    \\n or \\u202e. Text read from a file (a header's version, metrics or config) goes through this before it is
    printed, so a file cannot move the cursor, clear the screen or fake a line of output."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
