"""Whom the server obeys: requests made to its own names, and, for anything that changes state, from its own page.

The server runs on the user's machine, and every web page the user visits can send it requests: a page can
POST a form to http://127.0.0.1:8000/api/train, and a page whose name an attacker points at 127.0.0.1 (DNS
rebinding) can even read the answers. The Guard middleware stops both, before any other code sees a request:

1. Host. Every request (HTTP or WebSocket) must name the server as a client on this machine would: an IP
   address (an address cannot be rebound: a page at http://1.2.3.4/ stays at 1.2.3.4), `localhost`, or a name
   the user allowed (--host NAME, --allow-host NAME, and this machine's hostname when the server listens on the
   network). A rebinding page sends its own name, and gets 421.
2. Origin. A request that may change state (any method but GET and HEAD) must come from the page's own origin:
   an Origin header, when there is one, must be http://<the Host header>, and Sec-Fetch-Site, when there is one,
   must be same-origin or none (a typed URL, curl). Other web pages get 403. Browsers send both headers on
   every cross-origin POST; scripts and curl send neither, and pass.
3. The token, on the routes that start and stop training and that store or delete your examples: the header
   X-Numpynn-Token must hold this server's secret, drawn at random when it starts and written into the page it serves (a meta tag the page's script
   reads), and the body must be JSON (an empty body too for stop). A web page cannot send that header to
   another origin without asking first (a CORS preflight), and this server never says yes; a form or a
   text/plain body, which a page can send without asking, is refused with 415.
A request that repeats a header these checks read (Host, Origin, Sec-Fetch-Site, Content-Type, the token) gets
400 before any of them: with two, one part of the server could read one and another part the other.

POST /api/predict changes nothing on the server, so it needs no token: curl and scripts use it as they are, and
a browser's cross-site request to it is refused by check 2. Scripts that start training read the token from
the line `numpynn serve` prints, or set it with $NUMPYNN_TOKEN.

Left out: accounts and TLS. The token keeps other web pages out; it is not a password (anyone who can load the
page gets it), so a server listening on the network is open to that network, as `numpynn serve` warns.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import socket

from ..checks import whole_number

TOKEN_HEADER = "x-numpynn-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# The routes that need the token, and the content types their bodies may have ("" = no body).
TOKEN_ROUTES = {"/api/train": ("application/json",), "/api/train/stop": ("application/json", ""),
                "/api/examples": ("application/json", "")}  # POST a JSON example; DELETE with no body
# The headers the checks read: a request that repeats one of them is refused (400), whatever the values.
CHECKED = frozenset({b"host", b"origin", b"sec-fetch-site", b"content-type", TOKEN_HEADER.encode()})


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def host_names(bind_host: str = "127.0.0.1", allowed=()) -> frozenset[str]:
    """The names, besides IP addresses, that a request's Host header may carry.

    bind_host: the address or name the server listens on (--host); allowed: more names (--allow-host).
    Listening on a network address, the server is reached by this machine's own name too."""
    names = {"localhost", *(name.lower().rstrip(".") for name in allowed)}
    try:
        listening_on_network = not ipaddress.ip_address(bind_host).is_loopback
    except ValueError:  # a name, such as localhost or mybox.lan: the user chose it
        names.add(bind_host.lower())
        listening_on_network = False
    if listening_on_network:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def host_allowed(value: str, names: frozenset[str]) -> bool:
    """Whether a Host header ('name', 'name:port', 'v4:port', '[v6]:port') names this server."""
    if value.startswith("["):  # an IPv6 address
        address, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and _is_port(port[1:]))):
            return False
        return _is_address(address)
    name, colon, port = value.partition(":")
    if colon and not _is_port(port):
        return False
    return name.lower() in names or _is_address(name)


def _is_port(text: str) -> bool:
    return whole_number(text, 0, 65535) is not None  # ASCII digits only: not '８０' or '²'


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: the three checks above, in that order. It sits outside every other middleware (FastPredict
    answers /api/predict on its own), and costs a few microseconds a request."""

    def __init__(self, app, names: frozenset[str], token: str):
        self.app, self.names, self.token = app, names, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):  # lifespan
            return await self.app(scope, receive, send)
        headers, repeated = _single_headers(scope["headers"])
        if repeated:  # which one would count? Servers and proxies disagree, so none does (RFC 9110, 5.3)
            return await _refuse(scope, send, 400, f"the request has more than one {repeated} header; send one")
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.names):
            return await _refuse(scope, send, 421, _wrong_host(host))
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            problem = self._foreign(headers, scope.get("scheme", "http"), host)
            if problem:
                return await _refuse(scope, send, 403, problem)
            kinds = TOKEN_ROUTES.get(scope["path"])
            if kinds is not None:
                status, problem = self._unauthorised(headers, kinds)
                if problem:
                    return await _refuse(scope, send, status, problem)
        await self.app(scope, receive, send)

    def _foreign(self, headers, scheme: str, host: str) -> str | None:
        origin = headers.get(b"origin")
        if origin is not None and origin.decode("latin-1").lower() != f"{scheme}://{host}".lower():
            return (f"a request from another web page ({_shown(origin.decode('latin-1'))}) cannot change this "
                    f"server's state; use the page at {scheme}://{host}/")
        site = headers.get(b"sec-fetch-site")
        if site is not None and site not in (b"same-origin", b"none"):
            return (f"a {_shown(site.decode('latin-1'))} request cannot change this server's state; use the page "
                    f"at {scheme}://{host}/")
        return None

    def _unauthorised(self, headers, kinds) -> tuple[int, str | None]:
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        if kind not in kinds:
            wanted = " or ".join(f"Content-Type: {k}" if k else "no body" for k in kinds)
            return 415, f"content type {_shown(kind or 'none')}: send {wanted}"
        given = headers.get(TOKEN_HEADER.encode())
        if given is None:
            return 403, ("this route needs the header X-Numpynn-Token: the token `numpynn serve` printed at its "
                         "start (or $NUMPYNN_TOKEN)")
        if not secrets.compare_digest(given, self.token):
            return 403, ("X-Numpynn-Token does not match this server's token; use the one `numpynn serve` printed "
                         "at its start (it changes at every start unless $NUMPYNN_TOKEN sets it)")
        return 200, None


def _single_headers(raw) -> tuple[dict, str | None]:
    """The request's headers as a dict (name -> value), and the name of a header that CHECKED holds and the
    request repeats (None if none does). A dict alone keeps the last of a repeated header, while the app behind
    reads the first: `Host: evil.com` then `Host: 127.0.0.1` would pass here and mean evil.com there."""
    headers = {}
    for name, value in raw:  # ASGI gives the names in lower case
        if name in headers and name in CHECKED:
            return headers, name.decode("latin-1").title()  # Host, Sec-Fetch-Site, X-Numpynn-Token
        headers[name] = value
    return headers, None


def _wrong_host(host: str) -> str:
    if not host:
        return "the request has no Host header; send Host: 127.0.0.1:PORT (or localhost:PORT)"
    return (f"Host {_shown(host)} is not a name of this server; open it by its address (e.g. 127.0.0.1) or by "
            f"localhost, or start numpynn serve with --allow-host NAME")


def _shown(text: str) -> str:
    return repr(text[:80])  # quoted and escaped: what a client sent never reaches a log or a page raw


async def _refuse(scope, send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":  # refused before the handshake: the client sees 403
        return await send({"type": "websocket.close", "code": 1008})
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
