"""numpynn serve against hostile web pages and hostile requests: Host names (DNS rebinding), cross-site requests,
the token, malformed requests of every kind (never a 500, never a traceback in the log), pictures decoded off the
event loop, a read-only models folder. All in-process, with FastAPI's TestClient."""
import asyncio
import io
import logging
import struct
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from numpynn.model import mlp
from numpynn.web import app as web_app
from numpynn.web.app import create_app
from numpynn.web.guard import host_allowed, host_names

from .conftest import make_mnist_dir
from .test_serve import QUICK, events, local_client, png, save, seven

URL = "http://127.0.0.1:8000"
ROUTES = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/docs"), ("GET", "/openapi.json"),
          ("GET", "/api/models"), ("POST", "/api/predict"), ("GET", "/api/weights?model=m&layer=1&unit=0"),
          ("GET", "/api/train"), ("POST", "/api/train"), ("POST", "/api/train/stop"), ("GET", "/api/train/events"),
          ("GET", "/no/such/page")]


@pytest.fixture
def app(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    save(models / "m.npz", mlp([784, 8, 10], rng=np.random.default_rng(0)))
    return create_app(models, data_dir=make_mnist_dir(tmp_path / "data", n_train=200, n_test=40))


@pytest.fixture
def client(app):
    with local_client(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def bare(app):
    """A client with no token: a script, or another web page."""
    with TestClient(app, base_url=URL, raise_server_exceptions=False) as client:
        yield client


# ---------------------------------------------------------------------------------------------------------
# Host: DNS rebinding

REBINDING = ["attacker.example", "attacker.example:8000", "localhost.attacker.example:8000", "127.0.0.1.nip.io",
             "evil.localhost", "localhost.", "LOCALHOST.example", "", "127.0.0.1:80x", "[::1", "[evil]:8000",
             "127.0.0.1:²", "xn--lcalhost-c6a:8000"]


@pytest.mark.parametrize("method, path", ROUTES)
def test_a_foreign_host_is_refused_on_every_route(client, method, path):
    for host in ("attacker.example:8000", "rebind.attacker.example"):
        response = client.request(method, path, headers={"Host": host}, json={})
        assert response.status_code == 421, (host, response.text)
        detail = response.json()["detail"]
        assert "not a name of this server" in detail and "\n" not in detail and "--allow-host" in detail
    assert client.get("/api/train").json()["state"] == "idle"  # no run was started


@pytest.mark.parametrize("host", REBINDING)
def test_rebinding_style_host_names_are_refused(client, host):
    assert client.get("/api/models", headers={"Host": host.encode()}).status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LocalHost", "[::1]:8000", "[::1]",
                                  "192.168.1.20:8000", "10.0.0.5"])
def test_this_machines_names_and_ip_addresses_are_answered(client, host):
    # An IP address cannot be rebound: a page at http://10.0.0.5/ is at that address, whatever DNS says.
    assert client.get("/api/models", headers={"Host": host}).status_code == 200


def test_host_names_follow_the_address_the_server_listens_on(monkeypatch):
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "MyBox")
    monkeypatch.setattr(socket, "getfqdn", lambda: "mybox.lan")
    assert host_names("127.0.0.1") == {"localhost"}
    assert host_names("0.0.0.0") == {"localhost", "mybox", "mybox.lan"}  # reached by the machine's name
    assert host_names("mybox.lan", ["Pi.Local."]) == {"localhost", "mybox.lan", "pi.local"}
    names = host_names("127.0.0.1", ["pi.local"])
    assert host_allowed("pi.local:8000", names) and not host_allowed("pi.local.evil:8000", names)


def test_models_reveal_no_path_of_the_server(client, app):
    text = client.get("/api/models").text
    assert str(app.state.models.folder) not in text and "/" not in text.replace("/api", "")


# ---------------------------------------------------------------------------------------------------------
# Other web pages: Origin, Sec-Fetch-Site, the token, content types

CROSS_SITE = [
    ("a form, no token", dict(data={"epochs": "3"}), 415),
    ("an empty form", dict(headers={"Content-Type": "application/x-www-form-urlencoded"}), 415),
    ("text/plain JSON", dict(content=b'{"epochs": 1}', headers={"Content-Type": "text/plain"}), 415),
    ("multipart", dict(files={"x": ("x", b"1")}), 415),
    ("JSON without the token", dict(json=QUICK), 403),
    ("JSON with a wrong token", dict(json=QUICK, headers={"X-Numpynn-Token": "guess"}), 403),
]


@pytest.mark.parametrize("name, request_kw, status", CROSS_SITE, ids=[c[0] for c in CROSS_SITE])
def test_starting_training_needs_json_and_the_token(bare, name, request_kw, status):
    response = bare.post("/api/train", **request_kw)
    assert response.status_code == status, response.text
    assert "\n" not in response.json()["detail"]
    assert bare.get("/api/train").json()["state"] == "idle"


def test_stopping_training_needs_the_token_and_no_form(client, bare, monkeypatch):
    import numpynn.train as loop

    real_fit = loop.fit  # the Learn tab's run goes through train.train_and_save, which calls fit

    def held_fit(run, splits, **hooks):  # the run lasts until it is stopped, however fast it would train
        deadline = time.monotonic() + 60
        while not hooks["should_stop"]() and time.monotonic() < deadline:
            time.sleep(0.01)
        return real_fit(run, splits, **hooks)

    monkeypatch.setattr(loop, "fit", held_fit)
    assert client.post("/api/train", json={**QUICK, "epochs": 20, "batch_size": 16}).status_code == 202
    for kw, status in [(dict(), 403), (dict(headers={"X-Numpynn-Token": "x" * 43}), 403),
                       (dict(content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415),
                       (dict(content=b"stop", headers={"Content-Type": "text/plain"}), 415)]:
        assert bare.post("/api/train/stop", **kw).status_code == status
    assert bare.get("/api/train").json()["running"]
    stop = client.post("/api/train/stop")  # empty, with the token: what the page sends
    assert stop.status_code == 200
    assert events(client)[-1]["state"] in ("stopped", "done")


@pytest.mark.parametrize("headers", [
    {"Origin": "https://attacker.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"},
    {"Origin": "http://localhost:8000"},  # the same server under another name is another origin
    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},  # same-site: another port on localhost
    {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "cross-site"},
], ids=lambda h: ", ".join(f"{k}: {v}" for k, v in h.items()))
def test_state_changes_from_other_web_pages_are_refused_even_with_the_token(client, headers):
    for path, kw in [("/api/train", dict(json=QUICK)), ("/api/train/stop", {}),
                     ("/api/predict", dict(json={"pixels": seven(28).tolist()}))]:
        response = client.post(path, headers=headers, **kw)
        assert response.status_code == 403, (path, response.text)
        assert "cannot change this server's state" in response.json()["detail"]
    assert client.get("/api/train").json()["state"] == "idle"


def test_the_pages_own_requests_pass(client, app):
    own = {"Origin": URL, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/predict", json={"pixels": seven(28).tolist()}, headers=own).status_code == 200
    assert client.post("/api/train", json=QUICK, headers=own).status_code == 202
    assert events(client)[-1]["state"] == "done"


def test_predict_needs_no_token_from_scripts(bare):
    # curl and scripts send no Origin: predictions change nothing, so they need no token
    response = bare.post("/api/predict", json={"pixels": seven(28).tolist()})
    assert response.status_code == 200 and response.json()["model"] == "m"
    raw = bare.post("/api/predict", content=bytes(784), headers={"Content-Type": "application/octet-stream",
                                                                  "Sec-Fetch-Site": "none"})
    assert raw.status_code == 200


@pytest.mark.parametrize("name, values", [
    ("Host", ["attacker.example", "127.0.0.1:8000"]), ("Host", ["127.0.0.1:8000", "attacker.example"]),
    ("Host", ["127.0.0.1:8000", "127.0.0.1:8000"]),
    ("Origin", ["http://attacker.example", URL]), ("Origin", [URL, "http://attacker.example"]),
    ("Sec-Fetch-Site", ["cross-site", "same-origin"]), ("sec-fetch-site", ["same-origin", "none"]),
    ("Content-Type", ["text/plain", "application/json"]), ("X-Numpynn-Token", ["wrong", None]),
])
def test_a_request_that_repeats_a_header_the_guard_reads_is_refused(client, app, name, values):
    # With two, the guard would read the last (a dict) while the app reads the first: say no to both.
    values = [app.state.token if v is None else v for v in values]
    headers = [(k, v) for k, v in client.headers.items() if k.lower() not in ("host", name.lower())]
    if name != "Host":
        headers.append(("Host", "127.0.0.1:8000"))
    for method, path in (("GET", "/api/models"), ("POST", "/api/train"), ("POST", "/api/predict")):
        response = client.request(method, path, content=b"{}", headers=[*headers, *((name, v) for v in values)])
        assert response.status_code == 400, (method, path, response.text)
        assert response.json() == {"detail": f"the request has more than one {name.title()} header; send one"}
    assert client.get("/api/train").json()["state"] == "idle"


@pytest.mark.parametrize("toward", ["²", "¹", "٣", "１", "10", "-1", "a", "", " 3", "3 ", "9" * 5000])
def test_toward_is_one_ascii_digit(client, caplog, toward):
    # '²' and '٣' pass str.isdigit(); int() then refuses the first and reads the second as 3
    with caplog.at_level(logging.WARNING):
        response = client.post("/api/predict", params={"toward": toward}, content=bytes(784),
                               headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 422 and response.json()["detail"].endswith(": use a digit from 0 to 9")
    assert not caplog.records
    assert client.post("/api/predict?toward=3", json={"pixels": seven(28).tolist()}).json()["toward"]["digit"] == 3


def test_a_client_that_hangs_up_mid_body_is_no_error_of_the_server(app, caplog):
    """A prediction whose client disconnects after 100 of its 784 bytes: nothing answered, no traceback logged."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/octet-stream"),
                         (b"content-length", b"784")]}
    messages = iter([{"type": "http.request", "body": bytes(100), "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    with caplog.at_level(logging.DEBUG, logger="numpynn"):
        asyncio.run(app.build_middleware_stack()(scope, receive, send))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
    assert len(caplog.records) <= 1 and all("\n" not in r.getMessage() for r in caplog.records)
    assert not [m for m in sent if m.get("status", 0) >= 500]


def test_the_page_carries_the_token_and_keeps_out_of_other_sites_frames(client, app):
    page = client.get("/")
    assert f'<meta name="numpynn-token" content="{app.state.token}">' in page.text
    assert len(app.state.token) >= 40
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert create_app(app.state.models.folder).state.token != app.state.token  # a new one at every start
    assert create_app(app.state.models.folder, token="fixed").state.token == "fixed"  # $NUMPYNN_TOKEN


def test_docs_load_nothing_from_outside(client):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = client.get(path)
        assert "://" not in response.text.replace(URL, ""), path
    docs = client.get("/docs")
    assert docs.status_code == 200 and "POST /api/predict" in docs.text and "<script" not in docs.text
    assert client.get("/openapi.json").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Malformed requests: a 4xx with one line, never a 500

def multipart(parts: list[tuple[str, bytes, str | None]], boundary=b"b0undary") -> bytes:
    out = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--" + boundary + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


PAD = png(seven(280))
MULTIPART = {
    "image twice": (multipart([("image", PAD, "a.png"), ("image", PAD, "b.png")]), "boundary=b0undary"),
    "model twice": (multipart([("image", PAD, "a.png"), ("model", b"m", None), ("model", b"m", None)]),
                    "boundary=b0undary"),
    "5000 fields": (multipart([("image", PAD, "a.png")] + [(f"f{i}", b"x", None) for i in range(5000)]),
                    "boundary=b0undary"),
    "no boundary": (multipart([("image", PAD, "a.png")]), ""),
    "another boundary": (multipart([("image", PAD, "a.png")]), "boundary=other"),
    "broken body": (b"--b0undary\r\nContent-Disposition: form-data; name=\"image\"\r\n" + PAD[:50],
                    "boundary=b0undary"),
    "no headers": (b"--b0undary\r\n\r\n\r\n--b0undary--\r\n", "boundary=b0undary"),
    "garbage": (bytes(range(256)) * 20, "boundary=b0undary"),
    "empty": (b"", "boundary=b0undary"),
    "huge boundary": (b"--" + b"x" * 5000 + b"--", "boundary=" + "x" * 5000),
}


@pytest.mark.parametrize("case", MULTIPART)
def test_malformed_multipart_gets_422_not_500(client, caplog, case):
    body, parameters = MULTIPART[case]
    kind = "multipart/form-data" + (f"; {parameters}" if parameters else "")
    with caplog.at_level(logging.WARNING):
        response = client.post("/api/predict", content=body, headers={"Content-Type": kind})
    assert response.status_code == 422, response.text
    assert "\n" not in response.json()["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("value", ["²", "١٢", "12a", "-1", " 1", "1" * 19, "9" * 1000, "0x10", "1.0", ""])
def test_a_bad_last_event_id_gets_422(client, value):
    # sent byte for byte as latin-1 where it can be, as a raw client sends b"\xb2" (which str.isdigit() accepts)
    raw = value.encode("latin-1") if all(ord(c) < 256 for c in value) else value.encode()
    response = client.get("/api/train/events", headers={"Last-Event-ID": raw})
    assert response.status_code == 422 and "Last-Event-ID" in response.json()["detail"]


def test_a_good_last_event_id_is_used(client):
    assert client.post("/api/train", json=QUICK).status_code == 202
    seen = events(client)
    with client.stream("GET", "/api/train/events", headers={"Last-Event-ID": str(seen[-2]["id"])}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert len(lines) == 1


@pytest.mark.parametrize("query", ["after=99999999999999999999999", "after=-5", "after=x", "after=%00"])
def test_bad_event_queries_get_422(client, query):
    assert client.get(f"/api/train/events?{query}").status_code == 422


@pytest.mark.parametrize("query", ["layer=99999999999999999999&unit=0", "layer=1&unit=99999999999999999999",
                                   "layer=1&unit=0&model=" + "x" * 300, "layer=%ff&unit=0", "layer=1&layer=2&unit=0"])
def test_bad_weight_queries_get_4xx(client, query):
    response = client.get(f"/api/weights?model=m&{query}")
    assert 400 <= response.status_code < 500 and isinstance(response.json()["detail"], str)


METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"])
PATHS = st.sampled_from(["/", "/api/predict", "/api/models", "/api/weights", "/api/train", "/api/train/stop",
                         "/api/train/events", "/docs", "/openapi.json", "/static/app.js", "/static/../app.py",
                         "/static/%2e%2e/app.py", "/api/predict/", "//api/predict", "/api/%00"])
QUERIES = st.sampled_from(["", "?model=m", "?model=", "?model=%ff%fe", "?layer=1&unit=0&model=m", "?after=²",
                           "?after=1e9", "?model=" + "a" * 300, "?layer=-1", "?x=%", "?&&&=="])
KINDS = st.sampled_from(["application/json", "application/octet-stream", "multipart/form-data",
                         "multipart/form-data; boundary=b0undary", "multipart/form-data; boundary=",
                         "text/plain", "application/x-www-form-urlencoded", "", "image/png", "application/json; charset=utf-16",
                         "multipart/form-data; boundary=\"b0undary\"; charset=latin-1", "ü/ü"])
BODIES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from([b"", b"{}", b"null", b"[]", b'{"pixels": []}', b'{"pixels": [[0.5]]}', bytes(784),
                     b'{"pixels": "x", "model": 1}', b'{"epochs": 1e400}', b'{"hidden": [[[]]]}', PAD[:300]]),
    st.lists(st.tuples(st.sampled_from(["image", "model", "x", 'a"b', "ü"]),
                       st.sampled_from([PAD, b"", b"m", b"\xff" * 10, bytes(300)]),
                       st.sampled_from([None, "a.png", "", "../x"])), max_size=4).map(multipart),
)
HEADERS = st.dictionaries(st.sampled_from(["Last-Event-ID", "Origin", "Sec-Fetch-Site", "Accept", "Range",
                                           "Content-Encoding", "Transfer-Encoding", "Expect", "Cookie"]),
                          st.sampled_from(["", "²", "1", "null", "none", "same-origin", URL, "gzip", "chunked",
                                           "bytes=0-1", "100-continue", "\xe9" * 5, "a" * 2000]).map(str.encode),
                          max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, path=PATHS, query=QUERIES, kind=KINDS, body=BODIES, headers=HEADERS)
def test_no_malformed_request_gets_a_500_or_a_logged_error(client, caplog, method, path, query, kind, body, headers):
    if path == "/api/train" and method == "POST":
        path = "/api/train/stop"  # starting runs: the tests above; here nothing must start
    sent = {**headers, **({"Content-Type": kind.encode()} if kind else {})}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        if path == "/api/train/events" and method == "GET":
            with client.stream(method, path + query, headers=sent) as response:
                response.read()
        else:
            response = client.request(method, path + query, content=body, headers=sent)
    assert response.status_code < 500, (method, path, query, kind, body[:100], headers, response.text[:300])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]


# ---------------------------------------------------------------------------------------------------------
# Pictures: none decoded on the event loop unless its header's size is what decoding gives

def ico_with_png(inner_side: int) -> bytes:
    """An ICO whose directory claims one 256x256 picture but holds a PNG of inner_side x inner_side."""
    out = io.BytesIO()
    Image.new("L", (inner_side, inner_side), 0).save(out, format="PNG")
    data = out.getvalue()
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(data), 6 + 16)  # 0 means 256
    return struct.pack("<HHH", 0, 1, 1) + entry + data


@pytest.mark.parametrize("name, data, inline", [
    ("pad.png", PAD, True),
    ("lying.ico", ico_with_png(3000), False),
    ("photo.jpg", None, False),
    ("small.gif", None, False),
])
def test_only_small_pngs_are_decoded_on_the_event_loop(client, monkeypatch, name, data, inline):
    if data is None:
        out = io.BytesIO()
        Image.fromarray((seven(280) * 255).astype(np.uint8)).save(out, format=name.split(".")[1].replace("jpg", "jpeg"))
        data = out.getvalue()
    on_loop = []
    real = web_app.prepare

    def watched(picture):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread: no event loop runs there
            on_loop.append(False)
        return real(picture)

    monkeypatch.setattr(web_app, "prepare", watched)
    response = client.post("/api/predict", files={"image": (name, data, "image/x")})
    assert response.status_code in (200, 422), response.text
    assert on_loop in ([inline], [])  # [] : refused before decoding (a format numpynn no longer reads)


# ---------------------------------------------------------------------------------------------------------
# The models folder

def test_a_read_only_models_folder_refuses_a_run_before_it_starts(read_only_folder, tmp_path, capsys):
    app = create_app(read_only_folder, data_dir=make_mnist_dir(tmp_path / "data", n_train=100, n_test=20))
    with local_client(app) as client:
        response = client.post("/api/train", json=QUICK)
        assert response.status_code == 409 and "not writable" in response.json()["detail"]
        assert "--models" in response.json()["detail"] and str(read_only_folder) not in response.json()["detail"]
        assert client.get("/api/train").json()["state"] == "idle"
    assert str(read_only_folder) in capsys.readouterr().err  # the server's user learns which folder


def test_a_save_that_fails_at_the_end_says_so_in_one_line(client, app, monkeypatch):
    from numpynn.atomic import OutputError
    from numpynn.web import learn

    def full_disk(path, model, header):
        raise OutputError(f"{path}: writing failed (No space left on device); nothing was written there")

    monkeypatch.setattr(learn.serialize, "save_model", full_disk)
    assert client.post("/api/train", json=QUICK).status_code == 202
    last = events(client)[-1]
    assert last["state"] == "failed" and "could not be saved" in last["message"] and "\n" not in last["message"]
    assert str(app.state.models.folder) not in last["message"]
