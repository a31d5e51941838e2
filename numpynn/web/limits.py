"""The request body limit: ASGI middleware that counts a body's bytes as they arrive, so a huge body is refused
with 413 before it is held in memory, whether or not it declared its length.
"""
from __future__ import annotations

import json

from fastapi import HTTPException

MAX_BODY = 2 * 1024 * 1024  # bytes in a request body; a 280x280 JSON array of 0..1 values is well under it


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
                raise HTTPException(413, too_large(self.limit))
            return message

        await self.app(scope, counted, send)


def too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit:,} bytes; send a smaller picture (a 28x28 or 280x280 array)"


async def _send_413(send, limit: int):
    body = json.dumps({"detail": too_large(limit)}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
