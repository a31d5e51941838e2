"""Hostile model files and checkpoints, built by hand (zipfile and hand-written .npy headers): each is refused
by the loader with one line of ModelFileError, by every command with one line and exit 1, within bounded memory;
and a fuzz of valid files shows that nothing else ever escapes the loader."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpynn import serialize
from numpynn.conv import Conv2D, Flatten, GlobalAvgPool, MaxPool2D, Unflatten
from numpynn.layers import BatchNorm, Dense, Dropout, ReLU
from numpynn.model import Sequential, mlp
from numpynn.serialize import ModelFileError, load_checkpoint, load_model, save_model
from numpynn.train import Run, make_config

from .conftest import REPO, run_cli

MB = 1 << 20


# Building files by hand -------------------------------------------------------------------------------------

def npy(descr: str, shape, data: bytes = b"", fortran=False, text: str | None = None) -> bytes:
    """An .npy v1.0 member with a header we write ourselves (which may lie), then `data`."""
    text = text if text is not None else f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def header_npy(header: dict) -> bytes:
    text = json.dumps(header)
    return npy(f"<U{len(text)}", (), text.encode("utf-32-le"))


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def header_of(path) -> dict:
    return serialize.load(path)[1]


def with_header(path, out, **changes):
    """A copy of model file `path` whose JSON header has `changes` (None deletes a key)."""
    members = members_of(path)
    header = {**header_of(path), **changes}
    members["__header__.npy"] = header_npy({k: v for k, v in header.items() if v is not None})
    return write_zip(out, members)


def bomb_member(path, members: dict[str, bytes], name: str, npy_head: bytes, size: int):
    """`members` plus member `name`: npy_head and then `size` zero bytes, deflated (a few hundred kB)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for other, data in members.items():
            z.writestr(other, data)
        with z.open(name, "w", force_zip64=True) as f:
            f.write(npy_head)
            zeros = bytes(MB)
            for _ in range(size // MB):
                f.write(zeros)
    return path


def patch_central_directory(path, name: str, *, file_size=None, flag_bits=None):
    """Rewrite fields of `name`'s entry in the zip's central directory: what a lying archive declares."""
    data = bytearray(path.read_bytes())
    at = 0
    while True:
        at = data.find(b"PK\x01\x02", at + 1)
        length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + length] == name.encode():
            break
    if file_size is not None:
        struct.pack_into("<I", data, at + 24, file_size)
    if flag_bits is not None:
        struct.pack_into("<H", data, at + 8, flag_bits)
    path.write_bytes(bytes(data))
    return path


def cnn():
    """A small CNN as numpynn builds them: Unflatten, Conv2D, MaxPool2D, Flatten, then an MLP head."""
    rng = np.random.default_rng(0)
    return Sequential([Unflatten((1, 28, 28)), Conv2D(1, 2, 5, rng=rng), MaxPool2D(2), ReLU(), Flatten(),
                       Dense(288, 8, rng=rng), BatchNorm(8), ReLU(), Dropout(0.3, seed=5), Dense(8, 10, rng=rng)])


@pytest.fixture
def good(tmp_path):
    model = mlp([784, 16, 10], dropout=0.2, batchnorm=True, rng=np.random.default_rng(0))
    header = {"dataset": {"name": "mnist", "dev_size": 100, "split_seed": 0}, "metrics": {"test_accuracy": 0.5}}
    return save_model(tmp_path / "good.npz", model, header)


def checkpoint(path, model=None, optimizer="adam", steps=1, best=True):
    """A checkpoint as fit writes it, of `model` (default: the cnn above), after `steps` optimizer steps."""
    config = make_config("mlp", hidden=(8,), optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0,
                         patience=2 if best else 0)
    run = Run.start(config)
    if model is not None:
        run.model = model
    for _ in range(steps):
        run.optimizer.step(run.model.params(), [np.ones_like(p) * 1e-3 for p in run.model.params()])
    if best:
        run.best_state = run.model.state_dict()
    return serialize.save(path, run.checkpoint_arrays(), run.checkpoint_header())


@pytest.fixture
def good_checkpoint(tmp_path):
    return checkpoint(tmp_path / "good.ckpt.npz", cnn())


# Class 1: nothing is inflated before it is checked ----------------------------------------------------------

def zip_bomb(tmp_path, good):
    """An extra member, named like a model array, that inflates to 64 MB of zeros from about 64 kB."""
    return bomb_member(tmp_path / "bomb.npz", members_of(good), "model/9.W.npy", npy("<f4", (16 * MB,)), 64 * MB)


def header_bomb(tmp_path, good):
    """A header member that would inflate to 64 MB of text."""
    members = {k: v for k, v in members_of(good).items() if k != "__header__.npy"}
    return bomb_member(tmp_path / "hbomb.npz", members, "__header__.npy", npy(f"<U{16 * MB}", ()), 64 * MB)


def lying_sizes(tmp_path, good):
    """A real member whose central-directory entry declares 2 GB uncompressed for 50 kB."""
    path = write_zip(tmp_path / "liar.npz", members_of(good), zipfile.ZIP_DEFLATED)
    return patch_central_directory(path, "model/0.W.npy", file_size=2**31)


def test_a_zip_bomb_member_is_refused_from_the_directory(tmp_path, good):
    with pytest.raises(ModelFileError, match="unexpected model/9.W"):
        load_model(zip_bomb(tmp_path, good))


def test_a_header_bomb_is_refused_from_the_directory(tmp_path, good):
    with pytest.raises(ModelFileError, match="claims 67,108,86[0-9] bytes from|a header of 67,"):
        load_model(header_bomb(tmp_path, good))


def test_a_member_cannot_declare_more_than_deflate_can_make_or_its_array_needs(tmp_path, good):
    with pytest.raises(ModelFileError, match="model/0.W.npy claims 2,147,483,648 bytes from 4[0-9],[0-9]{3} compressed"):
        load_model(lying_sizes(tmp_path, good))
    path = patch_central_directory(lying_sizes(tmp_path, good), "model/0.W.npy", file_size=40 * MB)
    with pytest.raises(ModelFileError, match="model/0.W.npy claims 41,943,040 bytes; its array \\(784, 16\\) needs"):
        load_model(path)
    # A member of the right name but of a size its array does not need: refused before it is inflated.
    members = {k: v for k, v in members_of(good).items() if k != "model/0.b.npy"}
    path = bomb_member(tmp_path / "big-b.npz", members, "model/0.b.npy", npy("<f4", (16,)), 8 * MB)
    with pytest.raises(ModelFileError, match="model/0.b.npy claims .* its array \\(16,\\) needs at most"):
        load_model(path)


@pytest.mark.parametrize("flaw, message", [
    ("encrypted", "is encrypted"),
    ("bzip2", "compression method 12"),
    ("duplicate", "appears twice"),
    ("stranger", "unexpected member 'evil.pkl'"),
    ("no header", "no header"),
])
def test_the_zip_directory_is_checked_first(tmp_path, good, flaw, message):
    members = members_of(good)
    path = tmp_path / "flawed.npz"
    if flaw == "encrypted":
        patch_central_directory(write_zip(path, members), "model/0.W.npy", flag_bits=1)
    elif flaw == "bzip2":
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data, compress_type=zipfile.ZIP_BZIP2 if name == "model/0.W.npy" else None)
    elif flaw == "duplicate":
        with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
            z.writestr("model/0.W.npy", members["model/0.W.npy"])  # a second 0.W: which one would be used?
    elif flaw == "stranger":
        write_zip(path, {**members, "evil.pkl": b"cos\nsystem\n"})
    else:
        write_zip(path, {k: v for k, v in members.items() if k != "__header__.npy"})
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_the_web_registry_no_longer_lists_hostile_files(tmp_path, good):
    from numpynn.web.registry import Models

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "good.npz").write_bytes(good.read_bytes())
    zip_bomb(tmp_path, good).rename(folder / "bomb.npz")
    header_bomb(tmp_path, good).rename(folder / "hbomb.npz")
    models = Models(folder)
    models.refresh()
    assert models.names() == ["good"]
    assert sorted(s["file"] for s in models.skipped) == ["bomb.npz", "hbomb.npz"]


# Class 2: checkpoints are checked like model files, and more -------------------------------------------------

def test_checkpoints_round_trip_and_resume(good_checkpoint):
    arrays, header = load_checkpoint(good_checkpoint)
    run = Run.resume(arrays, header)
    assert run.optimizer.t == 1 and set(serialize.split(arrays, "best")) == set(run.model.state_dict())
    assert load_model(good_checkpoint)[1]["kind"] == "checkpoint"


@pytest.mark.parametrize("optimizer, steps, best", [("sgd", 1, False), ("sgd", 0, True), ("adam", 0, False)])
def test_checkpoints_without_optional_state_load(tmp_path, optimizer, steps, best):
    path = checkpoint(tmp_path / "c.npz", optimizer=optimizer, steps=steps, best=best)
    Run.resume(*load_checkpoint(path))


def huge_declared(tmp_path, D_out=60_000, kind="checkpoint"):
    """A 20 kB file declaring Dense 784 x D_out (47 M parameters, under the limit) whose arrays are not there."""
    header = {"format_version": 1, "kind": kind, "config": {}, "trainer": {},
              "architecture": [{"type": "Dense", "D_in": 784, "D_out": D_out, "init": "he"}]}
    return write_zip(tmp_path / "huge.ckpt.npz", {"__header__.npy": header_npy(header),
                                                  "model/0.b.npy": npy("<f4", (D_out,), bytes(20_000))})


def checkpoint_flaws(tmp_path, good_checkpoint) -> dict:
    members = members_of(good_checkpoint)
    header = header_of(good_checkpoint)
    data = good_checkpoint.read_bytes()

    def rewrite(name, **changes):
        return with_header(good_checkpoint, tmp_path / f"{name}.ckpt.npz", **changes)

    def trainer(**changes):
        return {**header["trainer"], **changes}

    (tmp_path / "empty.ckpt.npz").write_bytes(b"")
    (tmp_path / "truncated.ckpt.npz").write_bytes(data[: len(data) // 2])
    wrong_m = {**members, "optimizer/m.0.npy": npy("<f4", (3,), bytes(12))}
    return {
        "empty": (tmp_path / "empty.ckpt.npz", "corrupt or truncated"),
        "truncated": (tmp_path / "truncated.ckpt.npz", "corrupt or truncated"),
        "future": (rewrite("future", format_version=2), "version 2 is not supported"),
        "huge": (huge_declared(tmp_path), "missing model/0.W, optimizer/t"),
        "enormous": (rewrite("enormous", architecture=[{"type": "Dense", "D_in": 10**6, "D_out": 10**6}]), "limit"),
        "model file": (save_model(tmp_path / "model.npz", cnn(), {}), "a model file, not a checkpoint"),
        "optimizer shape": (write_zip(tmp_path / "m.ckpt.npz", wrong_m), "optimizer/m.0.npy: shape \\(3,\\)"),
        "no trainer": (rewrite("notrainer", trainer=None), "trainer is not a JSON object"),
        "history": (rewrite("history", trainer=trainer(history={"epochs": 5, "best_epoch": 0, "stopped": ""})),
                    "training state .* does not fit"),
        "rng": (rewrite("rng", trainer=trainer(rng={"bit_generator": "PCG64", "state": 7})), "does not fit"),
        "epoch": (rewrite("epoch", trainer=trainer(epoch="two")), "does not fit"),
        "config": (rewrite("config", config={**header["config"], "lr": -1.0}), "does not fit.*lr"),
    }


def test_hostile_checkpoints_are_refused_in_one_line(tmp_path, good_checkpoint):
    for name, (path, message) in checkpoint_flaws(tmp_path, good_checkpoint).items():
        with pytest.raises(ModelFileError, match=message) as error:
            Run.resume(*load_checkpoint(path), source=str(path))
        assert "\n" not in str(error.value) and str(path) in str(error.value), name


def test_numpynn_train_resume_of_a_hostile_checkpoint_is_one_line(capsys, tmp_path, good_checkpoint, tiny_mnist):
    for name, (path, message) in checkpoint_flaws(tmp_path, good_checkpoint).items():
        code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, "--resume", path, "--quiet",
                                 "--out", tmp_path / "resumed.npz")
        assert code == 1 and err.count("\n") == 1 and err.startswith("numpynn: error: "), (name, err)
        assert "Traceback" not in err and str(path) in err, name
    assert not (tmp_path / "resumed.npz").exists()


# Class 3: hostile arrays and networks that cannot read digits -----------------------------------------------

def hostile_models(tmp_path, good) -> dict:
    members = members_of(good)
    W = members["model/0.W.npy"]

    def member(name, data, label):
        return write_zip(tmp_path / f"{label}.npz", {**members, name: data})

    def network(label, layers, **changes):
        return save_model(tmp_path / f"{label}.npz", Sequential(layers), changes)

    rng = np.random.default_rng(0)
    nan = mlp([784, 16, 10], dropout=0.2, batchnorm=True, rng=rng)
    nan.layers[0].params["W"][3, 3] = np.nan
    return {
        "10**15 elements": (member("model/0.W.npy", npy("<f4", (10**15,)), "huge"), "shape \\(1000000000000000,\\)"),
        "structured": (member("model/0.W.npy", npy([("a", "<f4")], (784, 16)), "structured"), "dtype \\[.*not allowed"),
        "object": (member("model/0.W.npy", npy("|O", (784, 16)), "object"), "dtype '\\|O' is not allowed"),
        "bytes": (member("model/0.W.npy", npy("|S4", (784, 16), bytes(4 * 784 * 16)), "bytes"), "not allowed"),
        "long text": (member("model/3.rng.npy", npy("<U100000", (), bytes(400_000)), "text"), "claims 400,128 bytes; its array \\(\\) needs at most 8,204"),
        "malformed npy": (member("model/0.W.npy", W[:10] + b"{'descr': '''<f4" + W[26:], "tokens"), "not a readable"),
        "bad magic": (member("model/0.W.npy", b"PK" + W[2:], "magic"), "bad magic"),
        "short data": (member("model/0.W.npy", W[:-4], "short"), "holds 50172 bytes of data"),
        "not finite": (save_model(tmp_path / "nan.npz", nan, {}), "NaN or infinite"),
        "dataset": (with_header(good, tmp_path / "ds.npz", dataset={"name": "cifar"}), "unknown dataset 'cifar'"),
        "dataset text": (with_header(good, tmp_path / "dst.npz", dataset="mnist"), "dataset is not a JSON object"),
        "metrics": (with_header(good, tmp_path / "me.npz", metrics={"test_accuracy": [1]}), "not a number"),
        "kind": (with_header(good, tmp_path / "kind.npz", kind="virus"), "kind is 'virus'"),
        "D_in": (save_model(tmp_path / "wide.npz", mlp([100, 4, 10]), {}), "does not take 784-pixel"),
        "3 classes": (save_model(tmp_path / "three.npz", mlp([784, 4, 3]), {}), "tells 3 classes apart"),
        "big pool": (network("pool", [Unflatten(), MaxPool2D(64), Flatten(), Dense(1, 10)]), "does not take 784"),
        "no Dense": (network("nodense", [ReLU()]), "does not end in a Dense"),
        "object dtype": (with_header(good, tmp_path / "odt.npz", architecture=[
            {"type": "Dense", "D_in": 784, "D_out": 10, "dtype": "object"}]), "dtype 'object'"),
        "string dtype": (with_header(good, tmp_path / "sdt.npz", architecture=[
            {"type": "Dense", "D_in": 784, "D_out": 10, "dtype": "<U8"}]), "dtype '<U8'"),
        "huge padding": (network("pad", [Unflatten(), Conv2D(1, 1, 1, padding=10**6), GlobalAvgPool(), Dense(1, 10)]),
                         "Conv2D layer would make 4,000,112,000,784 values"),  # a padded image of 16 TB
    }


def test_hostile_arrays_and_networks_are_refused_in_one_line(tmp_path, good):
    for name, (path, message) in hostile_models(tmp_path, good).items():
        with pytest.raises(ModelFileError, match=message) as error:
            load_model(path)
        assert "\n" not in str(error.value) and str(path) in str(error.value), name


def test_huge_padding_is_refused_before_the_convolution_runs(tmp_path, good):
    """The padding file above has no arrays for its Conv2D: with them, the image would still not be padded."""
    model = Sequential([Unflatten(), Conv2D(1, 1, 1, padding=2_000), Flatten(), Dense(4_028_004, 1)])
    with pytest.raises(ModelFileError, match="Conv2D layer would make 16,224,784 values"):
        serialize._check_digits("x.npz", model)


def test_fortran_ordered_and_big_endian_arrays_are_read_right(tmp_path, good):
    members = members_of(good)
    W = np.random.default_rng(0).standard_normal((784, 16)).astype(np.float32)
    members["model/0.W.npy"] = npy(">f4", (784, 16), W.T.astype(">f4").tobytes(), fortran=True)
    model, _ = load_model(write_zip(tmp_path / "f.npz", members))
    np.testing.assert_array_equal(model.layers[0].params["W"], W)


@pytest.mark.parametrize("command", ["info", "predict", "evaluate", "report", "export"])
def test_every_command_refuses_every_hostile_model_in_one_line(capsys, tmp_path, good, tiny_mnist, command):
    from PIL import Image

    picture = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(picture)
    files = {name: path for name, (path, _) in hostile_models(tmp_path, good).items()}
    files |= {"zip bomb": zip_bomb(tmp_path, good), "header bomb": header_bomb(tmp_path, good)}
    for name, path in files.items():
        extra = {"predict": [picture], "evaluate": ["--data", tiny_mnist],
                 "report": ["--data", tiny_mnist, "--out", tmp_path / "r"],
                 "export": ["--out", tmp_path / "m.onnx"]}.get(command, [])
        code, out, err = run_cli(capsys, command, path, *extra)
        assert code == 1 and err.count("\n") == 1 and err.startswith("numpynn: error: "), (name, err)
        assert "Traceback" not in err and out == "", name


# Bounded memory ---------------------------------------------------------------------------------------------

MEASURE = textwrap.dedent("""
    import resource, sys, tracemalloc
    from numpynn.serialize import ModelFileError, load_checkpoint, load_model
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()  # NumPy reports its array allocations to tracemalloc, Python objects are traced anyway
    try:
        (load_checkpoint if sys.argv[1].endswith(".ckpt.npz") else load_model)(sys.argv[1])
        print("loaded")
    except ModelFileError as error:
        print("refused")
    print(tracemalloc.get_traced_memory()[1], 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss))
""")


def measure(path, env) -> tuple[str, float, float]:
    """(verdict, peak traced allocation in MB, growth of the peak RSS in MB) of loading `path` in a fresh process.
    The RSS growth only shows what exceeds the imports' own peak; the traced peak shows every allocation."""
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, env=env,
                            check=True)
    verdict, traced, rss = result.stdout.split()
    return verdict, int(traced) / MB, int(rss) / MB


def test_loading_the_worst_files_stays_within_bounded_memory(tmp_path, good, good_checkpoint):
    """Each file in a fresh process: its peak resident memory may grow by at most 50 MB over what the imports
    take, whatever the file declares (64 MB bombs, a 47 M-parameter architecture without arrays, 10**15
    elements, a member declaring 40 MB of a few hundred bytes)."""
    hostile = hostile_models(tmp_path, good)
    files = {"zip bomb": zip_bomb(tmp_path, good), "header bomb": header_bomb(tmp_path, good),
             "huge architecture": huge_declared(tmp_path), "lying sizes": lying_sizes(tmp_path, good),
             "10**15 elements": hostile["10**15 elements"][0], "huge padding": hostile["huge padding"][0]}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peaks = {}
    for name, path in files.items():
        verdict, traced, rss = measure(path, env)
        assert verdict == "refused", name
        peaks[name] = (round(traced, 2), round(rss, 2))
    print("peak traced allocation, peak RSS growth (MB):", peaks)
    assert max(max(peak) for peak in peaks.values()) < 50, peaks
    # The measurement does see a load, and a valid model costs about its size once (the network is built
    # around the arrays read from the file: no initial weights drawn, no copies): at most twice, plus 2 MB.
    verdict, traced, rss = measure(save_model(tmp_path / "control.npz", mlp([784, 2000, 10]), {}), env)
    print("valid 6.3 MB model: peak traced allocation, peak RSS growth (MB):", round(traced, 2), round(rss, 2))
    assert verdict == "loaded" and 6.3 < traced < 2 * 6.3 + 2


# The fuzz: valid files, damaged at random, give a model or a ModelFileError, nothing else -------------------

def _valid_files(folder):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    return [
        save_model(folder / "mlp.npz", mlp([784, 16, 10], dropout=0.2, batchnorm=True, rng=rng), {}).read_bytes(),
        save_model(folder / "cnn.npz", cnn(), {"dataset": {"name": "mnist"}}).read_bytes(),
        checkpoint(folder / "c.ckpt.npz", cnn()).read_bytes(),
    ]


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    return _valid_files(tmp_path_factory.mktemp("valid"))


damage = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("npy header"), st.integers(0, 10**9), st.sampled_from(
        [b"'<f4'", b"'|O'", b"[('a', '<f4')]", b"(10**15,)", b"True", b"'<U99999999'", b"{", b"'''", b"(-1,)"])),
    st.tuples(st.just("directory"), st.integers(0, 10**9), st.integers(0, 2**32 - 1)),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), damages=st.lists(damage, min_size=1, max_size=3))
def test_fuzz_damaged_files_load_or_raise_model_file_error(tmp_path, valid_files, which, damages):
    data = bytearray(valid_files[which])
    for kind, at, value in damages:
        at %= len(data) + 1
        if kind == "byte" and at < len(data):
            data[at] = value
        elif kind == "truncate":
            del data[at:]
        elif kind == "npy header":  # put a hostile value in place of some descr or shape in an npy header
            start = data.find(b"'descr': ", at)
            if start >= 0:
                data[start + 9 : start + 9 + len(value)] = value
        elif kind == "directory":  # a 4-byte field of some central-directory entry: sizes, offsets, flags
            start = data.find(b"PK\x01\x02", at)
            if start >= 0:
                field = start + (8, 10, 16, 20, 24, 28, 42)[value % 7]
                data[field : field + 4] = struct.pack("<I", value)[: len(data[field : field + 4])]
    path = tmp_path / ("f.ckpt.npz" if which == 2 else "f.npz")
    path.write_bytes(bytes(data))
    try:
        if which == 2:
            arrays, header = load_checkpoint(path)
            Run.resume(arrays, header, source=str(path))
        else:
            model, _ = load_model(path)
            assert model.predict_proba(np.zeros((2, 784), np.float32)).shape == (2, 10)
    except ModelFileError as error:
        assert "\n" not in str(error)


def test_the_expected_state_mirrors_the_layers(tmp_path):
    """serialize._layer_state describes each layer's saved arrays without building it: it must agree with
    Sequential.state_dict for every layer type (names, order, shapes)."""
    model = cnn()
    state = serialize._model_state("x", model.spec())
    assert [(name, shape) for name, ((shape, _, _), _) in state.items()] == \
        [(name, value.shape) for name, value in serialize.encode_state(model.state_dict()).items()]
    trainable = [name for name, (_, is_param) in state.items() if is_param]
    assert trainable == model.param_names()


def test_weights_that_overflow_on_a_bright_image_are_refused(tmp_path):
    # Every weight finite, a blank image fine (the biases are 0), but 784 white pixels times 1e30 times 1e30
    # overflow float32: predict would print "nan%". Refused at load, with the reason.
    model = mlp([784, 8, 10])
    for layer in (model.layers[0], model.layers[2]):
        layer.params["W"][...] = 1e30
    path = save_model(tmp_path / "overflow.npz", model, {})
    with pytest.raises(ModelFileError, match="NaN or infinite scores.*overflow"):
        load_model(path)


# Generator states a file may lie about ----------------------------------------------------------------------

def generator_states() -> dict:
    """Dropout generator states (the JSON text of model/<i>.rng) that NumPy's PCG64 cannot take as written:
    numbers too large for its 128-bit or 64-bit fields (NumPy raises OverflowError), negative, fractional, of the
    wrong type, an unknown key it would drop, or another kind of generator."""
    state = np.random.default_rng(0).bit_generator.state
    return {
        "huge state": {**state, "state": {"state": 10**100, "inc": 1}},
        "huge inc": {**state, "state": {"state": 1, "inc": 2**128}},
        "negative": {**state, "state": {"state": -1, "inc": 1}},
        "uinteger 2**64": {**state, "uinteger": 2**64},
        "huge float": {**state, "state": {"state": 1e300, "inc": 1}},
        "fraction": {**state, "state": {"state": 1.5, "inc": 1}},
        "text": {**state, "state": {"state": "5", "inc": 1}},
        "extra key": {**state, "extra": 1},
        "other generator": {**state, "bit_generator": "MT19937"},
    }


def with_generator_state(good, path, state):
    """A copy of the `good` model file whose Dropout (layer 3) generator state is `state`."""
    members = members_of(good)
    text = json.dumps(state)
    members["model/3.rng.npy"] = npy(f"<U{len(text)}", (), text.encode("utf-32-le"))
    return write_zip(path, members)


def test_generator_states_numpy_cannot_take_are_refused_in_one_line(tmp_path, good):
    for name, state in generator_states().items():
        path = with_generator_state(good, tmp_path / "bad.npz", state)
        with pytest.raises(ModelFileError, match="the Dropout state '3.rng' is not a generator state") as error:
            load_model(path)
        assert "\n" not in str(error.value) and str(path) in str(error.value), name
    # the state as saved still loads, and draws the same masks
    model, _ = load_model(with_generator_state(good, tmp_path / "same.npz", load_model(good)[0].state_dict()["3.rng"]))
    assert model.layers[3].rng.random() == load_model(good)[0].layers[3].rng.random()


def test_every_command_and_the_page_refuse_a_bad_generator_state(capsys, tmp_path, good):
    from numpynn.web.registry import Models

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "good.npz").write_bytes(good.read_bytes())
    for i, state in enumerate(generator_states().values()):
        path = with_generator_state(good, folder / f"bad{i}.npz", state)
        code, out, err = run_cli(capsys, "info", path)
        assert code == 1 and err.count("\n") == 1 and "not a generator state" in err and out == "", err
    models = Models(folder)
    models.refresh()  # a bad file in the models folder is skipped with its reason, as other bad files are
    assert models.names() == ["good"] and len(models.skipped) == len(generator_states())
    assert all("not a generator state" in skipped["reason"] for skipped in models.skipped)


def test_hostile_checkpoint_numbers_are_refused_in_one_line(tmp_path, good_checkpoint, capsys, tiny_mnist):
    """Integers too large for a float or a generator's field, in the trainer's state or the config."""
    header = header_of(good_checkpoint)
    trainer, config = header["trainer"], header["config"]
    flaws = {
        "rng huge": {"trainer": {**trainer, "rng": {**trainer["rng"], "state": {"state": 10**100, "inc": 1}}}},
        "rng negative": {"trainer": {**trainer, "rng": {**trainer["rng"], "state": {"state": -1, "inc": 1}}}},
        "augment_rng fraction": {"trainer": {**trainer, "augment_rng": {**trainer["rng"],
                                                                          "state": {"state": 1.5, "inc": 1}}}},
        "best_accuracy huge": {"trainer": {**trainer, "best_accuracy": 10**400}},
        "best_accuracy text": {"trainer": {**trainer, "best_accuracy": "0.5"}},
        "lr huge": {"config": {**config, "lr": 10**400}},
    }
    for name, changes in flaws.items():
        path = with_header(good_checkpoint, tmp_path / "bad.ckpt.npz", **changes)
        with pytest.raises(ModelFileError, match="in the header does not fit") as error:
            Run.resume(*load_checkpoint(path), source=str(path))
        assert "\n" not in str(error.value) and str(path) in str(error.value), name
        code, out, err = run_cli(capsys, "train", "--data", tiny_mnist, "--resume", path, "--quiet",
                                 "--out", tmp_path / "resumed.npz")
        assert code == 1 and err.count("\n") == 1 and "does not fit" in err and "unexpected" not in err, (name, err)
    assert not (tmp_path / "resumed.npz").exists()


def test_text_quoted_from_a_file_in_an_error_is_printable(tmp_path, good):
    """An architecture with an unknown option: the layer's TypeError quotes it; the message escapes it."""
    header = header_of(good)
    layers = [{**header["architecture"][0], "\x1b[2J\nfake": 1}, *header["architecture"][1:]]
    path = with_header(good, tmp_path / "esc.npz", architecture=layers)
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert str(error.value).isprintable() and "\\x1b[2J\\nfake" in str(error.value)
