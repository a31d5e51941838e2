"""The web app behind `numpynn serve`, assembled: its middleware and its routes (the page, predictions, training).

    GET  /                    the page (numpynn/web/static/); /static/* its CSS and JavaScript
    GET  /api/models          the models to choose from, by name, with their hidden layers
    POST /api/predict         a digit -> probabilities, the 28x28 the network saw, every hidden layer's output
    GET  /api/weights         a hidden unit's incoming weights (?model=NAME&layer=I&unit=J)
    GET  /api/train           the training run's state and the page's limits
    POST /api/train           start a run (one at a time: a second start gets 409)
    POST /api/train/stop      stop it; the model trained so far is saved
    GET  /api/train/events    the run's events as server-sent events (text/event-stream)
    GET  /api/examples        your examples (digits confirmed or corrected on the page): how many, per label
    POST /api/examples        store one; DELETE /api/examples?id=N (or ?all=true) deletes (web/examples.py)
    GET  /docs                the API, as one plain page made from /openapi.json (nothing from a CDN)

A digit arrives as raw grey pixels (application/octet-stream: 28x28 or 280x280 bytes, what the page's drawing
pad sends), as JSON {"pixels": 28x28 or 280x280 numbers in [0, 1], "model": NAME}, or as a picture uploaded as
multipart/form-data (field `image`, optional field `model`); `?model=NAME` works for all three. Every way, the
digit is prepared by numpynn.images.prepare, the function `numpynn predict` uses, so the page shows exactly
what the network read.
A picture with no ink is answered {"blank": true, "message": "draw a digit"}, never with a guess.

Every request is checked before work is done on it: first by guard.Guard (a Host header that is not this
server's gets 421; a state change asked by another web page 403; starting or stopping training without the
page's token 403, with a body that is not JSON 415), then a body over limits.MAX_BODY bytes gets 413 before it
is read whole, anything malformed 422 (multipart and headers included), an unknown model 404, each with
{"detail": "<one line: what is wrong and how to fix it>"}. No client input gets a 500: a 500 means a bug in the
server; it is logged with its traceback on the server's side only.

POST /api/predict is answered by the FastPredict middleware (fastpredict.py), ahead of FastAPI's routing, for
speed; its route is declared like the others, for /docs.

This module assembles the app and holds its routes. What they use lives beside it, one concern a module:
limits.py (the body limit), pictures.py (a digit from a request body), turns.py (predictions take turns),
fastpredict.py, answers.py (JSON with arrays, the error format), openapi.py (/docs), events.py (server-sent
events), blas.py (BLAS threads), guard.py, registry.py, inside.py, learn.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import pathlib
from html import escape

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ConfigDict, create_model

from .. import __version__
from ..abstain import apply_rule
from ..checks import whole_number
from ..examples_db import Examples
from ..images import ImageError, prepare
from .answers import INTERNAL, Invalid, find_model, log, numpy_json, rounded
from .events import MAX_EVENT_ID, last_seen, stream
from .examples import add_routes as add_example_routes
from .fastpredict import FastPredict
from .guard import Guard, host_names, new_token
from .learn import MAX_SECONDS, OPTIONS, Busy, NotWritable, Trainer
from .limits import MAX_BODY, BodyLimit
from .openapi import PREDICT_BODY, api_page
from .pictures import DECODERS, decoded_inline, form_digit, json_digit, model_name, picture_size, read_raw
from .registry import Models, default_models_dir
from .turns import Turns

STATIC = pathlib.Path(__file__).parent / "static"


async def answer_predict(request: Request, models: Models, turns: Turns, decoding: asyncio.Semaphore) -> Response:
    """The prediction for one request, or Invalid (422) or HTTPException (404, 413, 415) with one line.

    Written for speed as much as for reading: a page that is drawn on asks several times a second, and the
    server answers everyone from one event loop. The small jobs (raw pixels, a JSON array, a small picture) run
    right here; an uploaded picture is decoded in a worker thread unless it is a small PNG (its header's size is
    then the size decoding gives: checked before anything is decoded), at most DECODERS at once (`decoding`)."""
    model = model_name(request.query_params.get("model"))
    why, toward = explain_options(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/octet-stream":
        pixels, name = read_raw(await request.body()), model
    elif kind == "application/json":
        pixels, name = json_digit(await request.body())
        name = name or model
    elif kind == "multipart/form-data":
        pixels, name = await form_digit(request)
        name = name or model
    else:
        raise HTTPException(415, f"content type {kind or 'none'!r}: send application/octet-stream (raw grey "
                                 f"pixels), application/json {{\"pixels\": [[...]]}} or multipart/form-data "
                                 f"with an 'image' file")
    entry = find_model(models, name)
    size = None if isinstance(pixels, np.ndarray) else picture_size(pixels)  # an uploaded picture's bytes
    try:
        digit = None
        if size is not None and not decoded_inline(size):
            async with decoding:  # bounds the memory that decoding uploads takes (pictures.DECODERS)
                digit = await run_in_threadpool(prepare, pixels)  # in a thread, while others take their turns
        async with turns.take():
            if digit is None:
                digit = prepare(pixels)  # (28, 28) float32
            P, hidden = entry.inside.run(digit)
            layers = [{**info, "values": rounded(h.reshape(-1), 3)}
                      for info, h in zip(entry.inside.layers, hidden)]
            unsure = bool(apply_rule(entry.header.get("not_sure"), P[None], digit.reshape(1, -1))[0])
            answer = {"model": entry.name, "blank": False, "digit": int(P.argmax()), "not_sure": unsure,
                      "probabilities": rounded(P, 6), "input": rounded(digit, 3), "layers": layers}
            if why:  # gradient x input for the answer: the engine's backward pass to the pixels
                answer["why"] = rounded(entry.inside.why(digit.reshape(-1), int(P.argmax())), 5)
            if toward is not None:
                answer["toward"] = {"digit": toward, "map": rounded(entry.inside.toward(digit.reshape(-1), toward), 5)}
            return numpy_json(answer)
    except ImageError as error:
        return _blank_or_422(error, entry.name)


def explain_options(query) -> tuple[bool, int | None]:
    """?why=1 asks for the answer's saliency, ?toward=K (0-9) for where ink would make it a K. Invalid (422)
    for anything else."""
    why, toward = query.get("why", "0"), query.get("toward")
    if why not in ("0", "1"):
        raise Invalid(f"why={why[:20]!r}: use why=1 for the saliency map, or leave it out")
    if toward is None:
        return why == "1", None
    digit = whole_number(toward, 0, 9) if len(toward) == 1 else None  # ASCII 0-9 only: not '²'
    if digit is None:
        raise Invalid(f"toward={toward[:20]!r}: use a digit from 0 to 9")
    return why == "1", digit


def _blank_or_422(error: ImageError, model: str):
    if ": is blank:" in str(error):  # no ink: the page says so instead of guessing
        return JSONResponse({"model": model, "blank": True, "message": "draw a digit"})
    raise Invalid(str(error))


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


# A training run's options, made from learn.OPTIONS (their ranges are checked there; GET /api/train lists them).
# Every one is optional: left out, it keeps the preset's value.
TrainOptions = create_model("TrainOptions", __config__=ConfigDict(extra="forbid", strict=True),
                            __doc__="A training run's options; every one left out keeps the preset's value. "
                                    "Ranges: GET /api/train.",
                            **{name: (kind | None, None) for name, (kind, _) in OPTIONS.items()})


def create_app(models_dir=None, model=None, data_dir=None, dataset: str = "mnist",
               max_seconds: float = MAX_SECONDS, hosts: frozenset[str] | None = None,
               token: str | None = None, builtin=None) -> FastAPI:
    """The app. models_dir: the models folder (default: default_models_dir()); model: a model file listed
    first; data_dir and dataset: where the Learn tab's runs find MNIST (as --data and --dataset).
    hosts: the names its Host header may carry besides IP addresses (default: guard.host_names(), localhost);
    token: the secret that starting and stopping training need (default: a new random one; app.state.token);
    builtin: the built-in model's file (numpynn.models.builtin_path()), listed after `model` (default: none)."""
    models = Models(models_dir if models_dir is not None else default_models_dir(), model, builtin)
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
    turns, decoding = Turns(), asyncio.Semaphore(DECODERS)

    def answer(request: Request):
        return answer_predict(request, models, turns, decoding)

    app.add_middleware(FastPredict, answer=answer)
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
        # Declared here for /docs. Requests are answered before they reach it, by FastPredict (fastpredict.py),
        # with the same answer_predict.
        return await answer(request)

    @app.get("/api/weights", summary="A hidden unit's incoming weights")
    async def weights(model: str = Query(max_length=200), layer: int = Query(ge=0, le=1000),
                      unit: int = Query(ge=0, le=1_000_000)):
        entry = find_model(models, model)
        try:
            W, shape = entry.inside.weights(layer, unit)
        except ValueError as error:
            raise Invalid(str(error)) from None
        return numpy_json({"model": entry.name, "layer": layer, "unit": unit, "shape": shape,
                           "values": rounded(W.reshape(-1), 4)})

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
        last = last_seen(request.headers.get("last-event-id"), after)
        return StreamingResponse(stream(trainer, request, last), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    add_example_routes(app, models, Examples(models.folder), turns)
    return app
