"""A digit from a request body: raw grey pixels, a JSON array of pixels, or an uploaded picture's bytes.

Each reader checks what it is given and raises Invalid (422) with one line that says what is wrong and how to
fix it. An uploaded picture is not decoded here: its bytes go to numpynn.images.prepare, which checks the size
its header claims against images.MAX_PIXELS before decoding anything. Which pictures are decoded on the event
loop and which in a worker thread is decided from the header (picture_size, INLINE_PIXELS, INLINE_FORMATS);
at most DECODERS pictures are decoded in worker threads at once.
"""
from __future__ import annotations

import io
import json

import numpy as np
import orjson
from fastapi import Request
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from ..images import FORMATS
from .answers import Invalid

SIDES = (28, 280)  # the square pixel arrays /api/predict takes: MNIST's size, and the page's canvas
INLINE_PIXELS = 200_000  # PNG pictures up to this size (the page's 280x280 pad) are prepared on the event loop
# The formats whose header's size is the size that decoding gives. Not ICO, whose header may claim 256x256 and
# hold a 13000x13000 PNG, nor multi-frame formats: pictures in other formats are decoded in a worker thread.
INLINE_FORMATS = ("PNG",)
# Pictures decoded at once in worker threads, for the whole server. A picture at images.MAX_PIXELS can take about
# 1 GB while it is decoded (measured: see there) and a 0.2 MB upload can claim that size, so without this bound the
# worker threads (40) could together ask for tens of GB. Two keep that under 2 GB and still let a second upload
# through while one is slow; the page's own pad PNG is decoded on the event loop and never waits here.
DECODERS = 2


def read_raw(body: bytes) -> np.ndarray:
    """Raw grey pixels, one byte each (0 black, 255 white), row by row -> uint8 (n, n), n in SIDES."""
    for side in SIDES:
        if len(body) == side * side:
            return np.frombuffer(body, np.uint8).reshape(side, side)   # (n, n), no copy
    raise Invalid(f"raw pixels: {len(body):,} bytes; send 784 (28x28) or 78,400 (280x280), one grey level "
                  f"(0-255) per pixel, row by row")


def read_pixels(value) -> np.ndarray:
    """A JSON array of rows -> float32 (n, n), n in SIDES, every value finite and in [0, 1]; Invalid otherwise."""
    wanted = "send 28 rows of 28 numbers, or 280 rows of 280 (values in [0, 1])"
    if not isinstance(value, list):
        raise Invalid(f"pixels must be a list of rows; {wanted}")
    try:
        a = np.array(value)  # numbers give an int or float array; strings, objects, null do not
    except (ValueError, TypeError, OverflowError):  # rows of different lengths
        raise Invalid(f"pixels has rows of different lengths; {wanted}") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] not in SIDES:
        raise Invalid(f"pixels has shape {list(a.shape)}; {wanted}")
    if a.dtype.kind not in "iuf":
        raise Invalid(f"pixels must be numbers, not {'true/false' if a.dtype.kind == 'b' else 'text or null'}; {wanted}")
    a = a.astype(np.float64)  # checked before float32, where a finite 1e300 would become infinite
    if not np.isfinite(a).all():
        raise Invalid("pixels hold NaN or infinite values; send finite numbers in [0, 1]")
    if a.min() < 0 or a.max() > 1:
        raise Invalid(f"pixel values run from {a.min():g} to {a.max():g}; they must lie in [0, 1] "
                      f"(0 black, 1 white): divide 0..255 values by 255")
    return a.astype(np.float32)


def picture_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) as the picture's header claims them, nothing decoded; (0, 0, "") if Pillow
    cannot read it."""
    try:
        with Image.open(io.BytesIO(data), formats=[f for f in FORMATS if f in Image.OPEN]) as probe:
            return (*probe.size, probe.format or "")
    except Exception:
        return 0, 0, ""  # not a picture Pillow reads: prepare names the problem in its own words


def decoded_inline(size: tuple[int, int, str]) -> bool:
    """Whether a picture of this claimed size and format is small and honest enough to decode on the event loop."""
    width, height, kind = size
    return width * height <= INLINE_PIXELS and kind in INLINE_FORMATS


def json_digit(body: bytes):
    """A JSON body {"pixels": [[...]], "model": NAME} -> (float32 (n, n) pixels, the model's name or None)."""
    try:
        data = orjson.loads(body)  # strict JSON, a few times faster than json.loads
    except orjson.JSONDecodeError:
        try:  # Python's json also reads NaN and Infinity, so that read_pixels can say what is wrong with them
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
            raise Invalid("the body is not valid JSON; send {\"pixels\": [[...], ...], \"model\": NAME}") from None
    if not isinstance(data, dict) or "pixels" not in data:
        raise Invalid("send a JSON object with \"pixels\": 28x28 or 280x280 numbers in [0, 1]")
    extra = sorted(set(data) - {"pixels", "model"})
    if extra:
        raise Invalid(f"unknown field {extra[0][:40]!r}: send only \"pixels\" and \"model\"")
    return read_pixels(data["pixels"]), model_name(data.get("model"))


async def form_digit(request: Request):
    """A multipart/form-data upload -> (the picture's bytes, undecoded; the model's name or None)."""
    try:
        form = await request.form(max_files=1, max_fields=1)
    except StarletteHTTPException as error:  # Starlette's, for a form it cannot parse; FastAPI's 413 from BodyLimit
        if error.status_code == 413:
            raise
        raise Invalid(f"the upload is not valid multipart/form-data ({_clipped(error.detail)}); send one file "
                      f"in the field 'image' and at most one field 'model'") from None
    except (MultiPartException, ValueError, KeyError) as error:  # what the parser raises outside an app
        raise Invalid(f"the upload is not valid multipart/form-data ({_clipped(str(error))}); send one file in "
                      f"the field 'image' and at most one field 'model'") from None
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise Invalid("send the picture as a file in the form field 'image'")
        return await image.read(), model_name(form.get("model"))  # the bytes: decoded by images.prepare
    finally:
        await form.close()  # a large upload is spooled to a temporary file: removed now


def _clipped(text: str) -> str:
    return " ".join(str(text).split())[:120]  # the parser's words, on one line and short


def model_name(value):
    """A model's name as the request gives it (query string, JSON or form field): None, or a short string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise Invalid("model must be a name from GET /api/models")
    return value
