"""The web app behind `numpynn serve`: the page, the prediction API, the training API.

    GET  /                    the page (numpynn/web/static/); /static/* its CSS and JavaScript
    GET  /api/models          the models to choose from, by name, with their hidden layers
    POST /api/predict         a digit -> probabilities, the 28x28 the network saw, every hidden layer's output
    GET  /api/weights         a hidden unit's incoming weights (?model=NAME&layer=I&unit=J)
    GET  /api/train           the training run's state and the page's limits
    POST /api/train           start a run (one at a time: a second start gets 409)
    POST /api/train/stop      stop it; the model trained so far is saved
    GET  /api/train/events    the run's events as server-sent events (text/event-stream)
    GET  /docs                the API, as one plain page made from /openapi.json (nothing from a CDN)

A digit arrives as raw grey pixels (application/octet-stream: 28x28 or 280x280 bytes, what the page's drawing
pad sends), as JSON {"pixels": 28x28 or 280x280 numbers in [0, 1], "model": NAME}, or as a picture uploaded as
multipart/form-data (field `image`, optional field `model`); `?model=NAME` works for all three. Every way, the
digit is prepared by numpynn.images.prepare, the function `numpynn predict` uses, so the page shows exactly
what the network read.
A picture with no ink is answered {"blank": true, "message": "draw a digit"}, never with a guess.

Every request is checked before work is done on it: first by guard.Guard (a Host header that is not this
server's gets 421; a state change asked by another web page 403; starting or stopping training without the
page's token 403, with a body that is not JSON 415), then a body over MAX_BODY bytes gets 413 before it is read
whole, anything malformed 422 (multipart and headers included), an unknown model 404, each with {"detail": "<one
line: what is wrong and how to fix it>"}. No client input gets a 500: a 500 means a bug in the server; it is
logged with its traceback on the server's side only.

POST /api/predict is answered by the FastPredict middleware, ahead of FastAPI's routing (for speed: see there);
its route is declared like the others, for /docs.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import pathlib
import re
import time
from html import escape

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from .. import __version__
from ..images import FORMATS, ImageError, prepare
from .guard import Guard, host_names, new_token
from .learn import MAX_SECONDS, Busy, NotWritable, Trainer
from .registry import Models, default_models_dir

MAX_BODY = 2 * 1024 * 1024  # bytes in a request body; a 280x280 JSON array of 0..1 values is well under it
MAX_UPLOAD_PIXELS = 4_000_000  # an uploaded picture's width x height: a small PNG can claim a huge picture
INLINE_PIXELS = 200_000  # PNG pictures up to this size (the page's 280x280 pad) are prepared on the event loop
# The formats whose header's size is the size that decoding gives. Not ICO, whose header may claim 256x256 and
# hold a 13000x13000 PNG, nor multi-frame formats: pictures in other formats are decoded in a worker thread.
INLINE_FORMATS = ("PNG",)
MAX_EVENT_ID = 18  # digits in a Last-Event-ID: ids are counters, far below 10**18
SLICE = 0.002  # seconds of predictions before the event loop looks for new requests (see Turns)
SIDES = (28, 280)  # the square pixel arrays /api/predict takes: MNIST's size, and the page's canvas
STATIC = pathlib.Path(__file__).parent / "static"
INTERNAL = "the server failed to answer this request; its log has the details"  # a 500's whole answer
log = logging.getLogger("numpynn.web")


class Invalid(Exception):
    """A request that is well-formed HTTP but not a valid digit or option: 422 with this one line."""


# ---------------------------------------------------------------------------------------------------------
# The body limit, as ASGI middleware: it counts bytes as they arrive, so a huge body is refused before it is
# held in memory, whether or not it declared its length.

class BodyLimit:
    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _send_413(send, self.limit)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # raised inside the app's read: its exception handler answers 413
                raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit:,} bytes; send a smaller picture (a 28x28 or 280x280 array)"


async def _send_413(send, limit: int):
    body = json.dumps({"detail": _too_large(limit)}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------------------
# Reading a digit

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
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise Invalid("pixels hold NaN or infinite values; send finite numbers in [0, 1]")
    if a.min() < 0 or a.max() > 1:
        raise Invalid(f"pixel values run from {a.min():g} to {a.max():g}; they must lie in [0, 1] "
                      f"(0 black, 1 white): divide 0..255 values by 255")
    return a


def picture_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) as the picture's header claims them, nothing decoded; (0, 0, "") if Pillow
    cannot read it."""
    try:
        with Image.open(io.BytesIO(data), formats=[f for f in FORMATS if f in Image.OPEN]) as probe:
            return (*probe.size, probe.format or "")
    except Exception:
        return 0, 0, ""  # not a picture Pillow reads: prepare names the problem in its own words


def read_upload(data: bytes, size: tuple[int, int, str]) -> np.ndarray:
    """An uploaded picture's bytes, and its claimed size -> the prepared (28, 28)."""
    width, height, _ = size
    if width * height > MAX_UPLOAD_PIXELS:
        raise Invalid(f"the picture is {width}x{height} pixels, over the page's limit of {MAX_UPLOAD_PIXELS:,}; "
                      f"scale it down")
    return prepare(data)


# ---------------------------------------------------------------------------------------------------------
# POST /api/predict

class Turns:
    """Predictions take turns at the CPU work, first come, first served.

    Why: the event loop runs all the requests that are ready in one round, then looks for new ones. A request
    that arrives just after it looked waits for that whole round, and then for its place in the next: under
    load (16 clients) that happened to a few requests in a hundred, at twice the median latency, so p99 was
    2.2 times p50. Here the work waits on an asyncio.Lock, which wakes its waiters in the order they came, and
    every SLICE seconds a turn ends by letting the loop look for new requests, which queue behind those
    already waiting. Measured back to back: p99 14-19 ms instead of 20-24, at the same throughput."""

    def __init__(self, slice_s: float = SLICE):
        self.lock, self.slice_s, self.next_look = asyncio.Lock(), slice_s, 0.0

    @contextlib.asynccontextmanager
    async def take(self):
        async with self.lock:
            yield
            if time.perf_counter() >= self.next_look:
                await asyncio.sleep(0)  # the loop takes in new requests now; they wait behind the queue
                self.next_look = time.perf_counter() + self.slice_s


async def answer_predict(request: Request, models: Models, turns: Turns) -> Response:
    """The prediction for one request, or Invalid (422) or HTTPException (404, 413, 415) with one line.

    Written for speed as much as for reading: a page that is drawn on asks several times a second, and the
    server answers everyone from one event loop. The small jobs (raw pixels, a JSON array, a small picture) run
    right here; an uploaded picture is decoded in a worker thread unless it is a small PNG (its header's size is
    then the size decoding gives: checked before anything is decoded)."""
    model = _model_name(request.query_params.get("model"))
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/octet-stream":
        pixels, name = read_raw(await request.body()), model
    elif kind == "application/json":
        pixels, name = _json_digit(await request.body())
        name = name or model
    elif kind == "multipart/form-data":
        pixels, name = await _form_digit(request)
        name = name or model
    else:
        raise HTTPException(415, f"content type {kind or 'none'!r}: send application/octet-stream (raw grey "
                                 f"pixels), application/json {{\"pixels\": [[...]]}} or multipart/form-data "
                                 f"with an 'image' file")
    entry = _entry(models, name)
    size = None if isinstance(pixels, np.ndarray) else picture_size(pixels)  # an uploaded picture's bytes
    try:
        digit = None
        if size is not None and (size[0] * size[1] > INLINE_PIXELS or size[2] not in INLINE_FORMATS):
            # in a thread, while others take their turns
            digit = await run_in_threadpool(read_upload, pixels, size)
        async with turns.take():
            if digit is None:
                digit = prepare(pixels) if size is None else read_upload(pixels, size)  # (28, 28) float32
            P, hidden = entry.inside.run(digit)
            layers = [{**info, "values": _rounded(h.reshape(-1), 3)}
                      for info, h in zip(entry.inside.layers, hidden)]
            return _json({"model": entry.name, "blank": False, "digit": int(P.argmax()),
                          "probabilities": _rounded(P, 6), "input": _rounded(digit, 3), "layers": layers})
    except ImageError as error:
        return _blank_or_422(error, entry.name)


class FastPredict:
    """ASGI middleware that answers POST /api/predict itself, with answer_predict, and passes every other
    request on to FastAPI.

    Why: FastAPI's routing, its dependency resolution and its exception and exit-stack middleware cost about
    85 us a prediction (measured in-process on the page's 280x280 pad: 425 us through the FastAPI route, 340 us
    through FastPredict), an eighth of the server's time per request under load. The answers are the ones
    FastAPI's route and exception handlers give: 422 for Invalid, the HTTPException's status, and 500, logged
    here, for anything else. The route stays declared in the app, so /docs describes it."""

    def __init__(self, app, models: Models, turns: Turns):
        self.app, self.models, self.turns = app, models, turns

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/api/predict" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        try:
            response = await answer_predict(request, self.models, self.turns)
        except Invalid as error:
            response = JSONResponse({"detail": str(error)}, 422)
        except StarletteHTTPException as error:  # FastAPI's HTTPException is one too
            response = JSONResponse({"detail": error.detail}, error.status_code)
        except Exception:  # the traceback goes to the server's log, never to the client
            log.exception("error while answering POST /api/predict")
            response = JSONResponse({"detail": INTERNAL}, 500)
        await response(scope, receive, send)


# ---------------------------------------------------------------------------------------------------------
# The app

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {
        "type": "string", "format": "binary", "description": "raw grey pixels, one byte each (0 black, 255 "
        "white), row by row: 784 bytes (28x28) or 78,400 (280x280); the model goes in the query string"}},
    "application/json": {"schema": {
        "type": "object", "required": ["pixels"], "additionalProperties": False,
        "properties": {
            "pixels": {"type": "array", "description": "28 rows of 28, or 280 rows of 280, numbers in [0, 1] "
                       "(0 black, 1 white; ink dark on light or light on dark)",
                       "items": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}},
            "model": {"type": "string", "description": "a name from GET /api/models (default: the first)"}}}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary",
                                 "description": "a picture of one digit: PNG, JPEG, BMP, GIF, TIFF, WebP"},
                       "model": {"type": "string"}}}}}}}


# The page and /docs: only this server's own files, and never inside another site's frame (a framed page could
# be clicked on by a hostile site). The pad's uploaded picture is shown from a blob: URL.
PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                           "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"}
TOKEN_TAG = '<meta name="numpynn-token" content="">'


def _with_token(index: str, token: str) -> bytes:
    """The page, with the server's token in its meta tag: the page's script sends it when it starts or stops
    training (guard.py says why)."""
    assert TOKEN_TAG in index, f"index.html lost its {TOKEN_TAG}"
    return index.replace(TOKEN_TAG, f'<meta name="numpynn-token" content="{escape(token)}">').encode()


def api_page(schema: dict) -> str:
    """/docs: the routes of the OpenAPI schema as one plain page, with no script (Swagger UI would come from a
    CDN); /openapi.json has the whole schema, for tools."""
    rows = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            params = ", ".join(p["name"] for p in operation.get("parameters", []))
            body = ", ".join(operation.get("requestBody", {}).get("content", {}))
            rows.append(f"<tr><td><code>{method.upper()} {escape(path)}</code></td>"
                        f"<td>{escape(operation.get('summary', ''))}</td><td>{escape(params)}</td>"
                        f"<td>{escape(body)}</td></tr>")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>numpynn API</title>"
            f"<link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main><h1>numpynn API</h1>"
            f"<p>{escape(schema['info'].get('description', ''))} The whole schema: <a href=\"/openapi.json\">"
            f"/openapi.json</a>.</p><table class=\"epochs\"><thead><tr><th>route</th><th>what</th>"
            f"<th>query</th><th>body</th></tr></thead><tbody>{''.join(rows)}</tbody></table></main></body></html>")


class TrainOptions(BaseModel):
    """A training run's options; every one left out keeps the preset's value. Ranges: GET /api/train."""

    model_config = ConfigDict(extra="forbid", strict=True)
    preset: str | None = None
    hidden: list[int] | None = None
    channels: list[int] | None = None
    optimizer: str | None = None
    lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    train_images: int | None = None
    dev_size: int | None = None
    seed: int | None = None


def create_app(models_dir=None, model=None, data_dir=None, dataset: str = "mnist",
               max_seconds: float = MAX_SECONDS, hosts: frozenset[str] | None = None,
               token: str | None = None) -> FastAPI:
    """The app. models_dir: the models folder (default: default_models_dir()); model: a model file listed
    first; data_dir and dataset: where the Learn tab's runs find MNIST (as --data and --dataset).
    hosts: the names its Host header may carry besides IP addresses (default: guard.host_names(), localhost);
    token: the secret that starting and stopping training need (default: a new random one; app.state.token)."""
    models = Models(models_dir if models_dir is not None else default_models_dir(), model)
    models.refresh()
    trainer = Trainer(models, data_dir, dataset, max_seconds)
    token = token or new_token()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        trainer.close()  # a run going when the server stops is stopped and saved

    app = FastAPI(title="numpynn", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Draw a digit and watch the network read it, or watch a network learn.")
    app.state.models, app.state.trainer, app.state.token = models, trainer, token
    turns = Turns()
    app.add_middleware(FastPredict, models=models, turns=turns)
    app.add_middleware(BodyLimit, limit=MAX_BODY)  # outside FastPredict: it also limits predictions
    app.add_middleware(Guard, names=hosts if hosts is not None else host_names(), token=token)  # the outermost
    index = _with_token((STATIC / "index.html").read_text(encoding="utf-8"), token)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
        return JSONResponse({"detail": f"{where or 'the request'}: {first.get('msg', 'is invalid')}"}, 422)

    @app.exception_handler(Invalid)
    async def invalid_digit(request, error):
        return JSONResponse({"detail": str(error)}, 422)

    @app.exception_handler(Exception)
    async def internal(request, error):  # the traceback goes to the server's log, never to the client
        log.exception("error while answering %s %s", request.method, request.url.path)
        return JSONResponse({"detail": INTERNAL}, 500)

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(index, headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return HTMLResponse(api_page(app.openapi()), headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models", summary="The models to choose from")
    async def list_models():
        entries = await run_in_threadpool(models.refresh)  # may load new files: off the event loop
        return {"models": [entry.describe() for entry in entries],
                "default": entries[0].name if entries else None,
                "skipped": models.skipped}  # no folder: the server's paths are its user's business

    @app.post("/api/predict", summary="Read a digit", openapi_extra=PREDICT_BODY)
    async def predict(request: Request, model: str | None = Query(None, max_length=200,
                                                                  description="a name from GET /api/models")):
        # Declared here for /docs. Requests are answered before they reach it, by FastPredict (see there),
        # with the same answer_predict.
        return await answer_predict(request, models, turns)

    @app.get("/api/weights", summary="A hidden unit's incoming weights")
    async def weights(model: str = Query(max_length=200), layer: int = Query(ge=0, le=1000),
                      unit: int = Query(ge=0, le=1_000_000)):
        entry = _entry(models, model)
        try:
            W, shape = entry.inside.weights(layer, unit)
        except ValueError as error:
            raise Invalid(str(error)) from None
        return _json({"model": entry.name, "layer": layer, "unit": unit, "shape": shape,
                      "values": _rounded(W.reshape(-1), 4)})

    @app.get("/api/train", summary="The training run's state, and the limits of a page run")
    async def train_status():
        return trainer.status()

    @app.post("/api/train", status_code=202, summary="Start a training run")
    async def train_start(options: TrainOptions | None = None):
        values = options.model_dump(exclude_unset=True) if options is not None else {}
        try:
            return trainer.start(values)
        except (Busy, NotWritable) as error:
            raise HTTPException(409, str(error)) from None
        except ValueError as error:
            raise Invalid(str(error)) from None

    @app.post("/api/train/stop", summary="Stop the training run (its model is saved)")
    async def train_stop():
        try:
            return trainer.stop()
        except Busy as error:
            raise HTTPException(409, str(error)) from None

    @app.get("/api/train/events", summary="The run's events, as server-sent events")
    async def train_events(request: Request, after: int = Query(-1, ge=-1, le=10**MAX_EVENT_ID)):
        """Every event of the latest run after id `after` (or the Last-Event-ID header), then new ones as they
        come; the stream ends once the run has ended and everything was sent."""
        header = request.headers.get("last-event-id")
        if header is not None and not re.fullmatch(f"[0-9]{{1,{MAX_EVENT_ID}}}", header):
            raise Invalid("Last-Event-ID must be an event id (a whole number, as the stream sent); leave it out "
                          "to get every event")
        last = int(header) if header is not None else after
        return StreamingResponse(_stream(trainer, request, last), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def one_blas_thread(app: FastAPI) -> None:
    """Run this process's BLAS on one thread, except while a Learn-tab run trains (it gets them all back).

    One digit's products are far too small to gain from threads, and when the cores are busy, waiting for
    BLAS's threads costs more than the product itself: 784x800 for one digit measured 12 ms with two threads
    on a loaded 2-core machine, 0.07 ms with one. `numpynn serve` calls this, from the thread that then runs
    the event loop: OpenBLAS takes a new thread count only from that thread (one set from another thread is
    ignored), so the run's end hands the change back to the event loop."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    threadpool_limits(1, user_api="blas")  # for the whole process, until a run asks for more
    loops = []

    def on_start():  # in POST /api/train's handler, on the event loop's thread
        loops[:] = [asyncio.get_running_loop()]
        threadpool_limits(threads, user_api="blas")

    def on_end():  # in the run's thread
        loops[0].call_soon_threadsafe(threadpool_limits, 1, "blas")

    app.state.trainer.on_start, app.state.trainer.on_end = on_start, on_end


def _rounded(a: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded, for short numbers in the answer: 0.123 rather than 0.12345678. Left in the array's own dtype
    (float32 for numpynn's models): orjson writes a float32 as the shortest text that reads back as that
    float32, so 0.123 stays 0.123 (written through float64 it would be 0.12300000339746475)."""
    return np.round(a, decimals)


def _json(content: dict) -> Response:
    """An answer holding NumPy arrays, as JSON. orjson writes the arrays itself, about ten times faster than
    json.dumps writes the same numbers as Python lists: with 784 input pixels and a few hundred hidden values
    in every prediction, that was a fifth of the server's time under load. Arrays become nested lists, as
    tolist() would make them."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _json_digit(body: bytes):
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
    return read_pixels(data["pixels"]), _model_name(data.get("model"))


async def _form_digit(request: Request):
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
        return await image.read(), _model_name(form.get("model"))  # the bytes: decoded by read_upload
    finally:
        await form.close()  # a large upload is spooled to a temporary file: removed now


def _clipped(text: str) -> str:
    return " ".join(str(text).split())[:120]  # the parser's words, on one line and short


def _model_name(value):
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise Invalid("model must be a name from GET /api/models")
    return value


def _entry(models: Models, name):
    try:
        return models.get(name)
    except KeyError as error:
        raise HTTPException(404, error.args[0]) from None


def _blank_or_422(error: ImageError, model: str):
    if ": is blank:" in str(error):  # no ink: the page says so instead of guessing
        return JSONResponse({"model": model, "blank": True, "message": "draw a digit"})
    raise Invalid(str(error))


async def _stream(trainer: Trainer, request: Request, last: int):
    idle = 0.0
    while True:
        running = trainer.running  # read before the events: a run that ends now has emitted its last one
        events = trainer.events_after(last)
        for event in events:
            yield f"id: {event['id']}\ndata: {json.dumps(event)}\n\n"
            last = event["id"]
        if not events and not running:
            return
        idle = 0.0 if events else idle + 0.2
        if idle >= 15:  # a comment line now and then keeps proxies from closing a quiet stream
            yield ": still training\n\n"
            idle = 0.0
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.2)
