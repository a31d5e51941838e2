"""numpynn serve as a real process, attacked with raw sockets: half-sent requests are dropped within the header
timeout, the connection cap holds while normal requests still get in, oversized headers are refused; and on
Ctrl-C or SIGTERM the server waits for a training run's model to be saved."""
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from numpynn.model import mlp
from numpynn.web.server import HEADER_TIMEOUT, MAX_CONNECTIONS, MAX_HEADER_BYTES

from .conftest import REPO, make_mnist_dir
from .test_serve import save

# The command itself, optionally with a slow model save (seconds): serialize.save_model sleeps first.
SERVE = """
import sys, time
from numpynn import serialize
real = serialize.save_model
def slow(*args, **kwargs):
    time.sleep(float(sys.argv[1]))
    return real(*args, **kwargs)
serialize.save_model = slow
from numpynn.cli import main
sys.exit(main(sys.argv[2:]))
"""


class Serve:
    """`numpynn serve ARGS --port 0` in its own process: its url, port and token, from the lines it prints."""

    def __init__(self, *args, slow_save=0.0):
        self.process = subprocess.Popen([sys.executable, "-c", SERVE, str(slow_save), "serve", *map(str, args),
                                         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=REPO)
        line = self.process.stdout.readline()
        assert " on http://" in line, self.process.stderr.read()
        self.url = line.split(" on ")[1].split()[0]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        self.token = self.process.stdout.readline().split("X-Numpynn-Token: ")[1].strip()

    def request(self, path, body=None):
        """GET path, or with a body, POST it as JSON with the token, as the page does."""
        headers = {"Content-Type": "application/json", "X-Numpynn-Token": self.token} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=headers)
        return json.loads(urllib.request.urlopen(request, timeout=10).read())

    def stop(self, sig=signal.SIGINT, timeout=15):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.stderr.read()


@pytest.fixture
def server(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    save(models / "m.npz", mlp([784, 8, 10], rng=np.random.default_rng(0)))
    serve = Serve("--models", models)
    yield serve
    stderr = serve.stop()
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr


def half_sent(port, n):
    """n connections, each with half a request's headers sent and never finished."""
    sockets = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(s)
    return sockets


def closed(s, wait) -> bool:
    """Whether the server closed this connection (after answering it or not) within `wait` seconds."""
    s.settimeout(wait)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_half_sent_requests_are_dropped_within_the_header_timeout(server):
    attack = half_sent(server.port, 40)
    started = time.monotonic()
    assert server.request("/api/models")["default"] == "cnn-affine (built-in)"  # a normal request meanwhile
    answers = []
    for s in attack:
        assert closed(s, HEADER_TIMEOUT + 3 - (time.monotonic() - started)), "a half-sent request was kept"
        s.close()
    assert time.monotonic() - started < HEADER_TIMEOUT + 3
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    s.settimeout(HEADER_TIMEOUT + 3)
    answers.append(s.recv(65536))
    s.close()
    assert answers[0].startswith(b"HTTP/1.1 408") and b"did not arrive within" in answers[0]


def test_the_connection_cap_holds_and_normal_requests_still_get_in(server):
    attack = half_sent(server.port, MAX_CONNECTIONS + 40)
    time.sleep(0.5)
    dropped = sum(closed(s, 0.05) for s in attack)
    assert dropped >= 40  # the longest-waiting ones made room: at most MAX_CONNECTIONS are kept
    for _ in range(5):  # while the attack holds every other connection
        assert server.request("/api/models")["default"] == "cnn-affine (built-in)"
    for s in attack:
        s.close()


def test_oversized_headers_get_431(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        for _ in range(MAX_HEADER_BYTES // 1000 + 5):
            s.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_stopping_the_server_waits_for_the_training_runs_model_to_be_saved(tmp_path, sig):
    data = make_mnist_dir(tmp_path / "data", n_train=400, n_test=40)
    models = tmp_path / "models"
    models.mkdir()
    slow = 9.0  # longer than the 5 s the server used to wait, plus its 3 s for open connections
    serve = Serve("--models", models, "--data", data, slow_save=slow)
    try:
        options = {"preset": "seed", "hidden": [8], "epochs": 20, "batch_size": 16, "dev_size": 20}
        assert serve.request("/api/train", options)["state"] == "loading"
        deadline = time.monotonic() + 30
        while serve.request("/api/train")["state"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        started = time.monotonic()
        stderr = serve.stop(sig, timeout=60)
    assert time.monotonic() - started >= slow - 1
    assert "stopping the training run and saving its model (waiting up to 60 s" in stderr
    saved = list(models.glob("seed-*.npz"))
    assert len(saved) == 1 and f"model is saved as {saved[0]}" in stderr
    assert serve.process.returncode in (0, 130, -sig) and "Traceback" not in stderr, stderr


def test_listen_binds_and_listens_or_raises_and_leaves_nothing_open():
    from numpynn.web.server import listen

    sock = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # listening: the system queues it
            pass
        with pytest.raises(OSError) as busy:                           # the port is taken now
            listen("127.0.0.1", port)
        assert not isinstance(busy.value, socket.gaierror)
    finally:
        sock.close()
    with pytest.raises(socket.gaierror):
        listen("no-such-host.invalid", 0)
