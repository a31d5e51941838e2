"""numpynn.npyfile.read_array on hand-written .npy headers: refused in one NpyError line, never another error."""
import io

import numpy as np
import pytest

from numpynn.npyfile import FLOATS, NpyError, read_array


def npy(descr, shape, data=b"") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize("descr", ["|O", "<f4", "|u1", "[('a', '<i4')]", "<U0"])
def test_text_members_refuse_every_other_dtype(descr):
    # Where only text is allowed ({"str": None}), every other dtype is refused with NpyError (an object
    # dtype reached a None there and raised AttributeError).
    raw = npy(descr, ())
    with pytest.raises(NpyError):
        read_array(io.BytesIO(raw), len(raw), (), {"str": None}, 100)


def test_a_valid_float_array_reads_back():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = npy("<f4", (2, 3), a.tobytes())
    np.testing.assert_array_equal(read_array(io.BytesIO(raw), len(raw), (2, 3), FLOATS), a)
