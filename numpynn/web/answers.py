"""What the API sends back: JSON that holds NumPy arrays, and one error format for every client mistake.

Every error is {"detail": "<one line: what is wrong and how to fix it>"}: Invalid is answered 422, an unknown
model 404 (find_model), and anything unexpected 500 with the line INTERNAL, its traceback going to the server's
log only (`log`), never to the client.
"""
from __future__ import annotations

import logging

import numpy as np
import orjson
from fastapi import HTTPException
from fastapi.responses import Response

from .registry import Models

INTERNAL = "the server failed to answer this request; its log has the details"  # a 500's whole answer
log = logging.getLogger("numpynn.web")


class Invalid(Exception):
    """A request that is well-formed HTTP but not a valid digit or option: 422 with this one line."""


def find_model(models: Models, name):
    """The models' entry called `name` (None: the first), or HTTPException 404 with the models' own words."""
    try:
        return models.get(name)
    except KeyError as error:
        raise HTTPException(404, error.args[0]) from None


def rounded(a: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded, for short numbers in the answer: 0.123 rather than 0.12345678. Left in the array's own dtype
    (float32 for numpynn's models): orjson writes a float32 as the shortest text that reads back as that
    float32, so 0.123 stays 0.123 (written through float64 it would be 0.12300000339746475)."""
    return np.round(a, decimals)


def numpy_json(content: dict) -> Response:
    """An answer holding NumPy arrays, as JSON. orjson writes the arrays itself, about ten times faster than
    json.dumps writes the same numbers as Python lists: with 784 input pixels and a few hundred hidden values
    in every prediction, that was a fifth of the server's time under load. Arrays become nested lists, as
    tolist() would make them."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
