"""Your handwriting, on the server: the routes that store the digits a user confirmed or corrected on the Draw
tab, count them and delete them. The store itself is numpynn.examples_db (examples.sqlite in the models folder).

    GET    /api/examples              how many are stored, per label
    POST   /api/examples              store one: {"pad": base64 of the pad's grey bytes, "label": 0-9, "model": NAME}
    DELETE /api/examples?id=N         delete one;  DELETE /api/examples?all=true  delete every one

The page sends the pad as it sends it for a prediction (280x280 grey bytes, base64 in the JSON); the server
prepares the 28x28 input itself (numpynn.images.prepare) and asks the named model for its answer, so what is
stored is what the network read and what it said, not what a client claims. POST and DELETE change state:
guard.py asks them for the page's token and a JSON body (or none), as it does for starting a training run.

Errors are one line of JSON, as everywhere: 422 for a bad body, 404 for an unknown model or example, 409 when
the database cannot take it (full, damaged, a version from a newer numpynn), saying so without the server's
paths (the server's log has the path).
"""
from __future__ import annotations

import base64
import binascii
import io
import sys

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ..examples_db import FILE_NAME, MAX_EXAMPLES, MAX_ID, Examples, ExamplesError
from ..images import ImageError, prepare
from .answers import Invalid, find_model
from .pictures import SIDES, read_raw

MAX_PAD_BASE64 = 4 * (max(SIDES) ** 2 + 2) // 3  # the base64 of a 280x280 pad, 104,536 characters


class NewExample(BaseModel):
    """One digit to store: the pad as the page sends it for a prediction, the right label, the model asked."""
    model_config = ConfigDict(extra="forbid", strict=True)
    pad: str = Field(max_length=MAX_PAD_BASE64, description="base64 of the pad's grey bytes: 784 (28x28) or 78,400 "
                                                            "(280x280), 0 black to 255 white, row by row")
    label: int = Field(ge=0, le=9, description="the digit it really is")
    model: str | None = Field(None, max_length=200, description="a name from GET /api/models (default: the first)")


def add_routes(app: FastAPI, models, examples: Examples, turns) -> None:
    """The three routes above, on `app`, storing into `examples`; the model's answer takes its turn with the
    predictions (turns.Turns)."""

    @app.get("/api/examples", summary="How many of your examples are stored, per label")
    def count_examples():
        return _counts(examples)

    @app.post("/api/examples", status_code=201, summary="Store a digit you drew, with its right label")
    async def add_example(example: NewExample):
        try:
            raw = base64.b64decode(example.pad, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("pad: not base64; send the pad's grey bytes as base64") from None
        try:
            grey = read_raw(raw)  # (n, n) uint8
        except Invalid as error:
            raise Invalid(f"pad: {error}") from None
        try:
            digit = prepare(grey)  # (28, 28) float32, as for a prediction
        except ImageError:
            raise Invalid("the pad is blank or unreadable: draw a digit first") from None
        entry = find_model(models, example.model)
        async with turns.take():
            predicted = int(entry.model.predict(digit.reshape(1, -1))[0])  # digit as (1, 784)
        stored = np.round(digit * 255).astype(np.uint8).tobytes()  # 784 bytes, as MNIST stores its digits

        def store():  # SQLite may wait for another writer: in a worker thread, never on the event loop
            example_id = _safely(examples, lambda: examples.add(stored, _png(grey), example.label, predicted,
                                                                entry.name))
            return {"id": example_id, "label": example.label, "predicted": predicted, "model": entry.name,
                    **_counts(examples)}

        return await run_in_threadpool(store)

    @app.delete("/api/examples", summary="Delete one of your examples (?id=N), or all of them (?all=true)")
    def delete_examples(id: int | None = Query(None, ge=1, le=MAX_ID), all: bool = False):
        if (id is None) == (not all):
            raise Invalid("give ?id=N to delete one example, or ?all=true to delete every one")
        if all:
            deleted = _safely(examples, examples.delete_all)
        elif _safely(examples, lambda: examples.delete(id)):
            deleted = 1
        else:
            raise HTTPException(404, f"no example {id}; GET /api/examples counts what is stored")
        return {"deleted": deleted, **_counts(examples)}


def _counts(examples: Examples) -> dict:
    counts = _safely(examples, examples.counts)
    return {"counts": counts, "total": sum(counts), "max": MAX_EXAMPLES}


def _safely(examples: Examples, work):
    """work(), with the database's ExamplesError as a 409 whose line names the file but not its folder."""
    try:
        return work()
    except ExamplesError as error:
        print(f"numpynn: {error}", file=sys.stderr)  # the full story, path included, for the server's user
        raise HTTPException(409, str(error).replace(str(examples.path), FILE_NAME)) from None


def _png(grey: np.ndarray) -> bytes:
    """The pad (n, n) uint8 as a greyscale PNG: the picture as drawn, kept beside the 28x28 for a later look."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
