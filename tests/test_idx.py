"""numpynn.idx on small generated files: the IDX reader (raw and gzip) and the mnist.npz reader, including hostile
files that must be refused before anything large is allocated.

Loading a data set from a folder, where data is looked for, and the splits are tested in test_data.py.
"""
import gzip
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpynn.idx import DataError, read_idx, read_npz

# IDX type code for each element type the format knows.
TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
TEN_MB = 10 * 2**20


def idx_bytes(array, *, type_code=None, shape=None, magic=b"\0\0"):
    """The bytes of an IDX file holding `array`; `type_code`, `shape` and `magic` override the header."""
    array = np.asarray(array)
    type_code = TYPE_CODES[array.dtype] if type_code is None else type_code
    shape = array.shape if shape is None else shape
    header = magic + bytes([type_code, len(shape)]) + b"".join(int(n).to_bytes(4, "big") for n in shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, *, gz=False, tail=b"", **header):
    """Write `array` as an IDX file at `path`, gzip-compressed if `gz`, with `tail` appended to the content."""
    content = idx_bytes(array, **header) + tail
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def raises_data_error(call, *args, match=None):
    """Run call(*args), expect a one-line DataError; return its message."""
    with pytest.raises(DataError, match=match) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def peak_memory_of(call, *args):
    """Peak traced memory while call(*args) runs (it is expected to raise DataError)."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            call(*args)
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------------------------------------
# read_idx

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((5, 3, 4)) * 100).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", array, gz=gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (2, 3, 4), (2, 1, 3, 2)])
def test_idx_dimensions_one_to_four(tmp_path, shape):
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", array, gz=True)), array)


def test_idx_compression_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw_named_gz = write_idx(tmp_path / "raw.gz", array)
    gz_named_raw = write_idx(tmp_path / "gz-idx1-ubyte", array, gz=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)


def test_idx_empty_array_is_fine(tmp_path):
    assert read_idx(write_idx(tmp_path / "a", np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path, gz):
    content = idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-100]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(content) if gz else content)
    message = raises_data_error(read_idx, path, match="truncated")
    assert str(path) in message and "10x28x28 uint8 (7840 bytes of data)" in message


def test_idx_gzip_cut_short(tmp_path):
    """A .gz cut in the middle (an interrupted copy): the stream and its trailer are both broken."""
    rng = np.random.default_rng(0)
    whole = gzip.compress(idx_bytes(rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    for keep in (len(whole) // 2, len(whole) - 3, 10, 1):
        path.write_bytes(whole[:keep])
        raises_data_error(read_idx, path, match="truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_trailing_bytes(tmp_path, gz):
    path = write_idx(tmp_path / "labels", np.arange(10, dtype=np.uint8), gz=gz, tail=b"garbage")
    raises_data_error(read_idx, path, match="trailing bytes|extra bytes")


def test_idx_garbage_after_the_gzip_stream(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))) + b"garbage!")
    raises_data_error(read_idx, path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_wrong_magic(tmp_path, gz):
    path = write_idx(tmp_path / "a", np.arange(10, dtype=np.uint8), gz=gz, magic=b"\x01\x00")
    raises_data_error(read_idx, path, match="not an IDX file")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_unknown_type_code(tmp_path, gz):
    path = write_idx(tmp_path / "a", np.arange(10, dtype=np.uint8), gz=gz, type_code=0x0A)
    raises_data_error(read_idx, path, match="unknown IDX type code 0x0a")


@pytest.mark.parametrize("shape", [(), (1, 1, 1, 1, 1)])
def test_idx_unreasonable_number_of_dimensions(tmp_path, shape):
    path = write_idx(tmp_path / "a", np.zeros(shape, np.uint8))
    raises_data_error(read_idx, path, match="dimensions")


@pytest.mark.parametrize("content", [b"", b"\0\0", b"\0\0\x08\x03\0\0"])
def test_idx_header_cut_off(tmp_path, content):
    path = tmp_path / "a"
    path.write_bytes(content)
    raises_data_error(read_idx, path, match="truncated")


def test_idx_not_gzip_after_all(tmp_path):
    """Starts with the gzip magic bytes but is not gzip."""
    path = tmp_path / "a.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    raises_data_error(read_idx, path)


def test_idx_missing_file(tmp_path):
    raises_data_error(read_idx, tmp_path / "nope", match="cannot open")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_absurd_header_fails_without_allocating(tmp_path, gz):
    """A header claiming 10**12 elements over a few bytes of data."""
    path = write_idx(tmp_path / "huge", np.zeros(64, np.uint8), gz=gz, shape=(10**6, 1000, 1000))
    peak, message = peak_memory_of(read_idx, path)
    assert peak < TEN_MB
    assert "1000000x1000x1000" in message


def test_idx_absurd_header_that_agrees_with_the_gzip_trailer(tmp_path):
    """The gzip trailer gives the length only mod 2**32; a header 4 GiB too large passes that check,
    so the reader must still grow its buffer with the data, not with the header's claim."""
    data = np.zeros(2**16, np.uint8)
    path = write_idx(tmp_path / "sneaky.gz", data, gz=True, shape=(2**16, 2**16 + 1))   # 4 GiB + 64 KiB
    peak, message = peak_memory_of(read_idx, path)
    assert peak < TEN_MB
    assert "truncated" in message and "holds 65536" in message


# ---------------------------------------------------------------------------------------------------------
# read_npz

def npz_arrays(n_train=20, n_test=10):
    rng = np.random.default_rng(2)
    return dict(x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                y_train=rng.integers(0, 10, n_train, dtype=np.uint8),
                x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
                y_test=rng.integers(0, 10, n_test, dtype=np.uint8))


def test_npz_good(tmp_path):
    arrays = npz_arrays()
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    for got, key in zip(read_npz(tmp_path / "mnist.npz"), ["x_train", "y_train", "x_test", "y_test"]):
        np.testing.assert_array_equal(got, arrays[key])


def test_npz_object_array_is_refused(tmp_path):
    arrays = npz_arrays()
    arrays["y_test"] = np.array([object()] * 10, dtype=object)
    np.savez(tmp_path / "mnist.npz", **arrays)
    raises_data_error(read_npz, tmp_path / "mnist.npz", match=r"\[y_test\]: dtype '\|O' is not allowed")


def test_npz_missing_key(tmp_path):
    arrays = npz_arrays()
    del arrays["x_test"]
    np.savez(tmp_path / "mnist.npz", **arrays)
    raises_data_error(read_npz, tmp_path / "mnist.npz", match="missing x_test")


def test_npz_wrong_shape(tmp_path):
    arrays = npz_arrays()
    arrays["x_train"] = arrays["x_train"].reshape(20, 784)
    np.savez(tmp_path / "mnist.npz", **arrays)
    raises_data_error(read_npz, tmp_path / "mnist.npz", match=r"\[x_train\].*Nx28x28")


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken"])
def test_npz_not_an_archive(tmp_path, content):
    (tmp_path / "mnist.npz").write_bytes(content)
    raises_data_error(read_npz, tmp_path / "mnist.npz")


def test_npz_single_array_file(tmp_path):
    np.save(tmp_path / "mnist.npy", np.zeros(3))
    raises_data_error(read_npz, tmp_path / "mnist.npy", match="not an .npz archive")


# Hostile .npz files: refused from the zip directory or the .npy header, before anything large is allocated.

def _npz_with(tmp_path, key: str, member: bytes, compress=zipfile.ZIP_STORED):
    """mnist.npz with valid arrays, except `key`, whose .npy member is `member` (bytes as given)."""
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w", compress) as archive:
        for name, array in npz_arrays().items():
            if name == key:
                archive.writestr(f"{name}.npy", member)
            else:
                buffer = io.BytesIO()
                np.save(buffer, array)
                archive.writestr(f"{name}.npy", buffer.getvalue())
    return path


def _npy(descr: str, shape, data: bytes = b"") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize("member, match", [
    (_npy("|u1", (10**15, 28, 28)), r"\[x_train\]: holds 0 bytes of data"),          # 10^15 images claimed
    (_npy("[('a', '<i4')]", (20, 28, 28)), r"\[x_train\]: dtype"),                    # structured
    (_npy("<f8", (20, 28, 28), bytes(20 * 784 * 8)), r"\[x_train\]: dtype '<f8' is not allowed"),
    (_npy("|u1", (20, 784), bytes(20 * 784)), r"\[x_train\]: shape \(20, 784\); expected Nx28x28"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': '|u1',\n", r"\[x_train\]: .*header"),        # malformed header
    (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100, r"\[x_train\]: .*header of 65535 bytes"),
    (b"", r"\[x_train\]"),
])
def test_npz_hostile_members_are_one_line(tmp_path, member, match):
    raises_data_error(read_npz, _npz_with(tmp_path, "x_train", member), match=match)


def test_npz_bombs_and_encrypted_members_are_refused_from_the_directory(tmp_path):
    # A member that inflates to more than MAX_IMAGES images: refused by its declared size, never inflated.
    from numpynn.idx import MAX_IMAGES

    too_many = _npy("|u1", (MAX_IMAGES + 10, 28, 28), bytes((MAX_IMAGES + 10) * 784))
    path = _npz_with(tmp_path, "x_train", too_many, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2_000_000  # about 800 MB of zeros, deflated
    raises_data_error(read_npz, path, match=r"\[x_train\]: the member claims .* bytes; 1,000,000 images")
    # The encryption flag, set by hand in both headers of the y_test member.
    path = _npz_with(tmp_path, "y_test", _npy("|u1", (10,), bytes(10)))
    raw = bytearray(path.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.rfind(signature)
        raw[start + flag_at] |= 1
    path.write_bytes(bytes(raw))
    raises_data_error(read_npz, path, match=r"\[y_test\]: the member is encrypted")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                                   max_size=4))
def test_npz_fuzz_damaged_archives_read_or_raise_data_error(tmp_path, cut, flips):
    buffer = io.BytesIO()
    np.savez(buffer, **npz_arrays())
    raw = bytearray(buffer.getvalue())
    for at, value in flips:
        raw[at % len(raw)] ^= value
    (tmp_path / "mnist.npz").write_bytes(bytes(raw[: len(raw) - cut % len(raw)] if cut % 3 == 0 else raw))
    try:
        read_npz(tmp_path / "mnist.npz")
    except DataError as error:
        assert "\n" not in str(error)
