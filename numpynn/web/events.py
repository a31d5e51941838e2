"""A training run's events as server-sent events (text/event-stream), for GET /api/train/events.

Each event is one `id: N` and `data: {json}` block; a client that reconnects sends the last id it saw (the
Last-Event-ID header, or ?after=N) and gets only what came after it. The stream ends once the run has ended and
everything was sent.
"""
from __future__ import annotations

import asyncio
import json
import re

from fastapi import Request

from .answers import Invalid
from .learn import Trainer

MAX_EVENT_ID = 18  # digits in a Last-Event-ID: ids are counters, far below 10**18


def last_seen(header: str | None, after: int) -> int:
    """The id after which to send events: the Last-Event-ID header when there is one, else `after`."""
    if header is None:
        return after
    if not re.fullmatch(f"[0-9]{{1,{MAX_EVENT_ID}}}", header):
        raise Invalid("Last-Event-ID must be an event id (a whole number, as the stream sent); leave it out "
                      "to get every event")
    return int(header)


async def stream(trainer: Trainer, request: Request, last: int):
    """The events after id `last`, then new ones as they come, until the run has ended and all were sent."""
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
