"""The HTTP server under `numpynn serve`: the listening socket and uvicorn, with the limits a server that hostile
clients can reach needs, and a shutdown that lets a Learn-tab run save its model.

`listen` binds the socket before anything else starts, so a busy port or an unknown host is one clear error
at once; `make_server` wraps the app, and `.run(sockets=[sock])` serves it on that socket.

uvicorn waits as long as a client likes for a request's headers, and keeps every connection it is offered: 3000
clients that each sent half a request held 3000 connections for a minute. Here:
- a client has HEADER_TIMEOUT seconds from its connection (or from the first byte of its next request on a kept-
  alive connection) to send the request's headers whole, and at most MAX_HEADER_BYTES of them; otherwise the
  connection is closed (with 408 or 431 if it had sent part of a request);
- at most MAX_CONNECTIONS connections are kept: one more makes room by closing the connection that has waited
  longest for headers (a half-sent request, or an idle keep-alive one), so a normal client still gets in while
  an attacker holds the rest; if every connection is busy with a request, the newcomer is closed.
On Ctrl-C or SIGTERM a training run going on is stopped (after its current batch: fit asks should_stop after
every batch) and the server waits, up to learn.SAVE_WAIT seconds, for its model to be scored and saved, saying so.
A second Ctrl-C quits at once.

Left out: a time limit on reading a request's body (the body limit and the connection cap bound what a slow
body can hold), HTTP/2, TLS.
"""
from __future__ import annotations

import asyncio
import json
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .learn import SAVE_WAIT

HEADER_TIMEOUT = 5.0  # seconds to send a request's headers; a browser sends them in one packet
MAX_HEADER_BYTES = 64 * 1024  # a request's line and headers; the page's are under 1 KiB
MAX_CONNECTIONS = 64  # open at once; a browser opens at most 6 per server, the load benchmark 16
KEEP_ALIVE = 5  # seconds an idle kept-alive connection stays open (uvicorn's default)
GRACEFUL = 3  # seconds open connections get to finish their answers when the server stops
BACKLOG = 2048  # connections the system queues before uvicorn accepts them


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one) and listening, for make_server(app).run(sockets=[sock]).

    Listening already, a client of the address printed at start waits until uvicorn runs, rather than being
    refused. Raises socket.gaierror when `host` is not an address of this machine, OSError when the address
    cannot be bound (a port in use, say); nothing is left open then."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the header timeout, the header size limit and the connection cap."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading_headers = True  # waiting for (the rest of) a request's headers
        self.waiting_since = 0.0  # when it began waiting: the longest waiter makes room first
        self.header_bytes = 0
        self.header_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.waiting_since = self.loop.time()
        self.header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)
        if len(self.connections) > MAX_CONNECTIONS:
            self._make_room()

    def _make_room(self) -> None:
        waiting = [c for c in self.connections if c is not self and getattr(c, "reading_headers", False)
                   and not c.transport.is_closing()]
        if waiting:
            min(waiting, key=lambda c: c.waiting_since).transport.close()
        else:  # every connection is answering a request: this one waits for none of them
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.reading_headers and self.header_timer is None:  # the next request on a kept-alive connection
            self.header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)
        super().data_received(data)
        if self.reading_headers and not self.transport.is_closing():  # this data did not end the headers
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self._answer(431, f"the request's headers are over {MAX_HEADER_BYTES:,} bytes; send fewer")

    def on_headers_complete(self) -> None:
        self.reading_headers, self.header_bytes = False, 0
        self._cancel_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # a pipelined request's headers have been read already
        super().on_response_complete()
        if not queued:
            self.reading_headers, self.waiting_since = True, self.loop.time()

    def connection_lost(self, exc) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _cancel_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.reading_headers or self.transport.is_closing():
            return
        if self.header_bytes:
            self._answer(408, f"the request's headers did not arrive within {HEADER_TIMEOUT:g} s; send them whole")
        else:
            self.transport.close()  # nothing sent: a connection opened ahead of need, closed as keep-alive ones are

    def _answer(self, status: int, detail: str) -> None:
        """An answer written straight to the connection, which then closes: no request is running on it."""
        body = json.dumps({"detail": detail}).encode()
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: "
                             f"{len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, whose shutdown first stops the Learn tab's run and waits for its model to be saved."""

    def __init__(self, config: uvicorn.Config, trainer, say=print):
        super().__init__(config)
        self.trainer, self.say = trainer, say

    async def shutdown(self, sockets=None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the run saves
        if self.trainer.running:
            self.trainer.stop_for_shutdown()
            self.say(f"numpynn: stopping the training run and saving its model (waiting up to {SAVE_WAIT:g} s; "
                     f"Ctrl-C again quits without it)")
            deadline = asyncio.get_running_loop().time() + SAVE_WAIT
            while self.trainer.running and not self.force_exit and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)  # the loop goes on: the page's event stream gets the run's last events
            self.say(f"numpynn: {self.trainer.outcome()}")
        await super().shutdown(sockets)


def make_server(app, say=print) -> Server:
    """The server for `app` (from create_app), with numpynn's limits; run it with .run(sockets=[sock])."""
    config = uvicorn.Config(app, http=GuardedHttp, ws="none", log_level="warning", access_log=False,
                            timeout_keep_alive=KEEP_ALIVE, timeout_graceful_shutdown=GRACEFUL)
    return Server(config, app.state.trainer, say)
