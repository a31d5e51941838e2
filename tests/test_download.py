"""numpynn.data's downloads, against small HTTP servers on 127.0.0.1 serving generated files.

The data sets' checksums are swapped for those of the generated files (monkeypatching DATASETS), so the
real download code runs end to end: mirrors in turn, SHA-256 checks, atomic placement, cleanup.
"""
import dataclasses
import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from .conftest import random_mnist_arrays

import numpynn.data as data
from numpynn.data import DATASETS, DataError, cache_dir, download, load_mnist, load_raw

NAMES = dict(DATASETS["mnist"].files)                    # key -> canonical .gz name


def idx_bytes(array):
    """An IDX file (uint8) holding `array`."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def generate(seed=0, n_train=40, n_test=10):
    """A small data set: its arrays, and for each key the IDX content and the .gz file served."""
    arrays = random_mnist_arrays(seed, n_train, n_test)
    content = {key: idx_bytes(array) for key, array in arrays.items()}
    gz = {key: gzip.compress(c, mtime=0) for key, c in content.items()}
    return arrays, content, gz


def sha256(blobs):
    return {key: hashlib.sha256(blob).hexdigest() for key, blob in blobs.items()}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", self.server.lengths.get(self.path, str(len(body))))
        self.end_headers()
        # A cut transfer: promise the whole body, send half, and close (HTTP/1.0 closes after each reply).
        self.wfile.write(body[: len(body) // 2] if self.path in self.server.cut else body)

    def log_message(self, *args):                        # keep the test output quiet
        pass


@pytest.fixture
def serve():
    """serve({path: bytes}, cut=paths) starts a server on 127.0.0.1 and returns its base URL."""
    servers = []

    def start(files, cut=()):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.files, server.cut, server.requests = dict(files), set(cut), []
        server.lengths = {}  # path: the Content-Length header to send instead of the body's length
        # A short poll interval: shutdown() waits for it, 0.5 s by default, after every test.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh, not yet existing cache; no NUMPYNN_DATA; no proxy between us and 127.0.0.1."""
    monkeypatch.delenv("NUMPYNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def use(monkeypatch, dataset, mirrors, sha256_values):
    """Point `dataset` at these mirrors and checksums for the duration of the test."""
    spec = dataclasses.replace(DATASETS[dataset], mirrors=tuple(mirrors), sha256=dict(sha256_values))
    monkeypatch.setitem(DATASETS, dataset, spec)


def served(gz, prefix="/"):
    return {prefix + NAMES[key]: blob for key, blob in gz.items()}


def leftovers(tmp_path):
    """Every file and folder under the test's cache root (which did not exist before)."""
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(tmp_path)) for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------------------------------------------------

def test_download_into_the_cache_then_load(serve, monkeypatch, tmp_path):
    arrays, content, gz = generate()
    url, server = serve(served(gz, "/mnist/"))
    use(monkeypatch, "mnist", [url + "mnist"], sha256(content))   # no trailing slash: it is added
    x_train, y_train, x_test, y_test = load_raw(progress=False)
    np.testing.assert_array_equal(x_train, arrays["train_images"])
    np.testing.assert_array_equal(y_test, arrays["test_labels"])
    assert sorted(p.name for p in cache_dir().iterdir()) == sorted(NAMES.values())   # no temp files
    # The second time the cache is used, and the server is not asked again.
    n_requests = len(server.requests)
    splits = load_mnist(dev_size=10, progress=False)
    assert splits.X_train.shape == (30, 784) and len(server.requests) == n_requests


def test_download_function_with_progress_bar(serve, monkeypatch, tmp_path, capsys):
    _, content, gz = generate()
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", ["http://unused.invalid/"], sha256(content))
    dest = tmp_path / "somewhere" / "new"
    assert download("mnist", dest, mirrors=[url], progress=True) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(NAMES.values())
    assert (dest / NAMES["train_images"]).read_bytes() == gz["train_images"]   # stored as served, .gz
    assert NAMES["train_images"] in capsys.readouterr().err                     # tqdm writes to stderr


@pytest.mark.parametrize("length", ["\u00b2", "12x", "-5", "99999999999999999999999999"])
def test_a_mirror_that_states_an_odd_length_is_read_to_its_end(serve, monkeypatch, tmp_path, length):
    """The length only sizes the progress bar: one that is not ASCII digits ('\u00b2' is a digit to str.isdigit)
    or is absurd shows no total, and the file is still read and checked."""
    _, content, gz = generate()
    url, server = serve(served(gz))
    server.lengths = {path: length for path in server.files}
    use(monkeypatch, "mnist", ["http://unused.invalid/"], sha256(content))
    dest = tmp_path / "new"
    assert download("mnist", dest, mirrors=[url], progress=True) == dest
    assert (dest / NAMES["train_images"]).read_bytes() == gz["train_images"]


def test_checksum_mismatch_leaves_nothing(serve, monkeypatch, tmp_path):
    _, content, gz = generate()
    url, _ = serve(served(gz))
    wrong = sha256(content) | {"test_labels": "0" * 64}
    use(monkeypatch, "mnist", [url], wrong)
    with pytest.raises(DataError) as info:
        load_raw(progress=False)
    message = str(info.value)
    assert message.startswith("MNIST data not found (") and "and the download failed (" in message
    assert NAMES["test_labels"] in message and "SHA-256 of the decompressed content" in message
    assert leftovers(tmp_path) == []                      # not even the cache folders it created


def test_failure_keeps_an_existing_folder_but_leaves_nothing_in_it(serve, monkeypatch, tmp_path):
    _, content, gz = generate()
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [url], sha256(content) | {"train_images": "0" * 64})
    dest = tmp_path / "mine"
    dest.mkdir()
    with pytest.raises(DataError, match="SHA-256"):
        download("mnist", dest, progress=False)
    assert dest.is_dir() and list(dest.iterdir()) == []


def test_first_mirror_down_second_works(serve, monkeypatch):
    arrays, content, gz = generate()
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [closed_port_url(), url], sha256(content))
    np.testing.assert_array_equal(load_raw(progress=False)[1], arrays["train_labels"])


def test_mirror_without_the_files_then_a_good_one(serve, monkeypatch):
    arrays, content, gz = generate()
    empty_url, _ = serve({})
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [empty_url, url], sha256(content))
    np.testing.assert_array_equal(load_raw(progress=False)[2], arrays["test_images"])


def test_mirror_serving_uncompressed_files_is_skipped(serve, monkeypatch):
    """The cache stores canonical .gz names, so a mirror serving raw bytes under them is not used."""
    arrays, content, gz = generate()
    raw_url, _ = serve(served(content))
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [raw_url, url], sha256(content))
    np.testing.assert_array_equal(load_raw(progress=False)[0], arrays["train_images"])
    assert all((cache_dir() / name).read_bytes()[:2] == b"\x1f\x8b" for name in NAMES.values())


def test_mirror_serving_something_else_is_reported(serve, monkeypatch):
    _, content, _ = generate()
    url, _ = serve({"/" + name: b"<html>Moved</html>" for name in NAMES.values()})
    use(monkeypatch, "mnist", ["http://unused.invalid/"], sha256(content))
    with pytest.raises(DataError, match=f"any mirror: {url}{NAMES['train_images']}: not a gzip file\\)"):
        load_raw(mirrors=url, progress=False)            # one URL as a plain string works too


def test_all_mirrors_down_says_where_it_looked(monkeypatch, tmp_path):
    _, content, _ = generate()
    mirrors = [closed_port_url(), closed_port_url()]
    use(monkeypatch, "mnist", mirrors, sha256(content))
    monkeypatch.setenv("NUMPYNN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as info:
        load_mnist(progress=False)
    message = str(info.value)
    assert "\n" not in message                           # one line, however many places and mirrors
    assert message.startswith("MNIST data not found (looked in ")
    assert f"{tmp_path / 'nowhere'} ($NUMPYNN_DATA: does not exist)" in message
    assert f"{cache_dir()} (the cache: does not exist)" in message
    for mirror in mirrors:
        assert f"{mirror}{NAMES['train_images']}: connection refused" in message
    assert message.endswith("pass --data DIR or set NUMPYNN_DATA=DIR")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("then_a_good_mirror", [False, True])
def test_transfer_cut_off_halfway(serve, monkeypatch, tmp_path, then_a_good_mirror):
    arrays, content, gz = generate()
    cut_url, _ = serve(served(gz), cut={"/" + NAMES["train_labels"]})
    mirrors = [cut_url]
    if then_a_good_mirror:
        mirrors.append(serve(served(gz))[0])
    use(monkeypatch, "mnist", mirrors, sha256(content))
    if then_a_good_mirror:
        np.testing.assert_array_equal(load_raw(progress=False)[1], arrays["train_labels"])
        return
    with pytest.raises(DataError, match=f"{NAMES['train_labels']}: transfer cut off after "
                                        f"{len(gz['train_labels']) // 2} of {len(gz['train_labels'])} bytes"):
        load_raw(progress=False)
    assert leftovers(tmp_path) == []


def test_interrupt_leaves_nothing(serve, monkeypatch, tmp_path):
    """Ctrl-C in the middle of the third file: the two verified temp files and the partial one all go."""
    _, content, gz = generate()
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [url], sha256(content))
    real_transfer, calls = data._transfer, []

    def interrupted(url, out, *args):
        calls.append(url)
        if len(calls) == 3:
            out.write(b"half a file")
            raise KeyboardInterrupt
        return real_transfer(url, out, *args)

    monkeypatch.setattr(data, "_transfer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_raw(progress=False)
    assert leftovers(tmp_path) == []


def test_silent_mirror_times_out(monkeypatch, tmp_path):
    """A server that accepts the connection and never answers."""
    _, content, _ = generate()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        use(monkeypatch, "mnist", [url], sha256(content))
        with pytest.raises(DataError, match="no answer within 0.2 s"):
            download("mnist", tmp_path / "d", progress=False, timeout=0.2)
    assert not (tmp_path / "d").exists()


def test_download_errors_about_the_destination_or_dataset(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="not a folder"):
        download("mnist", tmp_path / "file", progress=False)
    with pytest.raises(DataError, match="unknown dataset 'kmnist'; known: fashion-mnist, mnist"):
        download("kmnist", tmp_path / "d")


def test_offline_means_no_download(serve, monkeypatch):
    _, content, gz = generate()
    url, server = serve(served(gz))
    use(monkeypatch, "mnist", [url], sha256(content))
    with pytest.raises(DataError, match="downloading is turned off"):
        load_raw(download=False)
    assert server.requests == []


# ---------------------------------------------------------------------------------------------------------
# Fashion-MNIST: its own mirrors and cache folder, and checksums of the .gz files (see DATASETS)

def test_fashion_mnist_download(serve, monkeypatch):
    arrays, _, gz = generate(seed=3)
    url, _ = serve(served(gz, "/fashion/"))
    use(monkeypatch, "fashion-mnist", [url + "fashion/"], sha256(gz))
    splits = load_mnist("fashion-mnist", dev_size=5, progress=False)
    np.testing.assert_array_equal(splits.y_test, arrays["test_labels"])
    assert cache_dir("fashion-mnist").name == "fashion-mnist"
    assert sorted(p.name for p in cache_dir("fashion-mnist").iterdir()) == sorted(NAMES.values())
    assert not cache_dir("mnist").exists()


def test_fashion_mnist_checks_the_gz_bytes(serve, monkeypatch, tmp_path):
    """Same content, wrapped in another gzip: the published .gz checksums refuse it."""
    _, content, gz = generate(seed=3)
    rewrapped = {key: gzip.compress(c, mtime=12345) for key, c in content.items()}
    url, _ = serve(served(rewrapped))
    use(monkeypatch, "fashion-mnist", [url], sha256(gz))
    with pytest.raises(DataError, match="SHA-256 of the .gz file"):
        load_raw("fashion-mnist", progress=False)
    assert leftovers(tmp_path) == []


def test_named_folder_without_files_is_reported_when_the_download_is_used(serve, monkeypatch, tmp_path):
    _, content, gz = generate()
    url, _ = serve(served(gz))
    use(monkeypatch, "mnist", [url], sha256(content))
    monkeypatch.setenv("NUMPYNN_DATA", str(tmp_path / "typo"))
    with pytest.warns(UserWarning, match=r"typo \(\$NUMPYNN_DATA: does not exist\); using .*cache"):
        assert data.find_data(progress=False) == cache_dir()
