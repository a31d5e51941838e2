"""The page in a real headless Chromium (Debian's chromium package, driven by Playwright): draw digits with mouse
strokes and check what the network read, clear the pad, train a model in the Learn tab and draw with it.

A screenshot of each tab is saved in a temporary folder ($NUMPYNN_SCREENSHOTS if set, e.g. for a CI artifact);
the test prints where. In CI (CI set) a missing chromium or Playwright fails these tests: CI never passes by
skipping them. Playwright's own browser download is never used: executable_path points at Debian's chromium.
"""
import os
import pathlib
import socket
import tempfile
import threading
import time

import numpy as np
import pytest

from numpynn import serialize
from numpynn.data import load_mnist
from numpynn.train import Run, evaluate, fit, make_config

from .conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.mnist]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI needs it (see .ci/run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots():
    folder = pathlib.Path(os.environ.get("NUMPYNN_SCREENSHOTS") or tempfile.mkdtemp(prefix="numpynn-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def models(mnist_dir, tmp_path_factory):
    """A models folder holding one 784-64-10 network trained on real MNIST for two epochs (a few seconds)."""
    folder = tmp_path_factory.mktemp("models")
    config = make_config("seed", hidden=(64,), init="he", lr=3e-3, epochs=2, warmup_epochs=0.0)
    splits = load_mnist(data_dir=mnist_dir, dev_size=config.dev_size, seed=config.seed, progress=False)
    run = Run.start(config)
    fit(run, splits)
    _, accuracy = evaluate(run.model, splits.X_test, splits.y_test)
    assert accuracy > 0.94  # a network that reads MNIST: what the drawn digits are checked against
    serialize.save_model(folder / "mnist-64.npz", run.model, {"metrics": {"test_accuracy": accuracy}})
    return folder


class Server:
    """numpynn's app in the server `numpynn serve` runs (numpynn.web.server), on a free loopback port, in a thread
    of this process."""

    def __init__(self, app):
        from numpynn.web.server import make_server

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def page(browser):
    # bypass_csp: Playwright's wait_for_function evaluates its text as code, which the page's Content-Security-
    # Policy forbids; test_the_page_works_under_its_own_content_security_policy runs the page with it.
    page = browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
    yield page
    page.close()


# Strokes in the pad's own 280 x 280 coordinates, drawn as a person would, large and roughly centred.
STROKES = {
    7: [[(75, 65), (205, 65), (125, 225)]],
    0: [[(140, 50), (95, 80), (85, 140), (100, 205), (140, 230), (180, 205), (195, 140), (185, 80), (140, 50)]],
    3: [[(90, 65), (140, 45), (185, 75), (170, 120), (130, 135)], [(130, 135), (185, 160), (180, 215),
                                                                   (135, 235), (85, 215)]],
}


def draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=12)
        page.mouse.up()


def settled(page):
    """Wait until the page has asked the server about the latest drawing and shown the answer."""
    page.wait_for_function("document.body.dataset.predicting === '0'", timeout=10_000)
    verdict = page.locator("#verdict")
    return verdict.get_attribute("data-state"), verdict.get_attribute("data-digit"), verdict.inner_text()


def test_a_digit_drawn_with_the_mouse_is_read_and_clear_returns_to_draw_a_digit(page, models, shots, tmp_path):
    from numpynn.web.app import create_app

    with Server(create_app(models, data_dir=None)) as server:
        page.goto(server.url)
        page.wait_for_function("document.querySelector('#model').options.length === 1")
        assert settled(page)[0] == "blank" and page.locator("#verdict").inner_text() == "draw a digit"
        assert page.locator("#no-model").is_hidden()
        for digit, strokes in STROKES.items():
            draw(page, strokes)
            state, read, text = settled(page)
            assert (state, read) == ("digit", str(digit)), f"drew a {digit}, the page says: {text}"
            top = page.locator("#bars li.top span").first.inner_text()
            assert top == str(digit)  # the highlighted bar is the guess
            seen = page.evaluate("Array.from(document.querySelector('#seen').getContext('2d')"
                                 ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0)")
            rows, cols = np.nonzero(np.array(seen).reshape(28, 28))
            extent = (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
            assert max(extent) == 20 and min(extent) >= 8  # scaled into MNIST's 20x20 box, as prepare() does
            assert page.locator("#inside canvas").count() == 1
            if digit == 7:
                page.locator("#inside canvas").click(position={"x": 5, "y": 5})  # hidden unit 0
                page.wait_for_selector("#unit:not([hidden])")
                assert "unit 0" in page.locator("#unit-title").text_content()
                page.screenshot(path=shots / "draw-tab.png", full_page=True)
            page.click("#clear")
            state, read, text = settled(page)
            assert state == "blank" and read is None and text == "draw a digit"
            assert page.locator("#bars li.top").count() == 0 and page.locator("#inside canvas").count() == 0
        page.screenshot(path=shots / "draw-tab-cleared.png", full_page=True)


def test_the_learn_tab_trains_live_and_its_model_is_then_drawn_with(page, mnist_dir, shots, tmp_path):
    from numpynn.web.app import create_app

    with Server(create_app(tmp_path / "models", data_dir=mnist_dir)) as server:
        page.goto(server.url)
        page.wait_for_selector("#no-model:not([hidden])")  # no model yet: the page says how to get one
        assert "Learn tab" in page.locator("#no-model").inner_text()
        page.screenshot(path=shots / "draw-tab-no-model.png", full_page=True)
        page.click("#tab-learn")
        page.select_option("#preset", "seed")
        page.fill("#hidden", "32")
        page.fill("#epochs", "2")
        page.fill("#train_images", "20000")
        page.click("#start")
        page.wait_for_function("document.querySelector('#learn-status').innerText.startsWith('Finished')",
                               timeout=120_000)
        status = page.locator("#learn-status").inner_text()
        assert "test accuracy" in status and "Draw tab" in status
        assert page.locator("#epochs-table tbody tr").count() == 2
        assert page.locator("#stop").is_disabled() and page.locator("#start").is_enabled()
        page.screenshot(path=shots / "learn-tab.png", full_page=True)
        model = status.split("Saved as ")[1].split(";")[0]
        page.click("#tab-draw")
        assert page.locator("#model").input_value() == model and page.locator("#no-model").is_hidden()
        draw(page, STROKES[7])
        state, read, text = settled(page)
        assert state == "digit", text


def test_the_page_works_under_its_own_content_security_policy(browser, models):
    """The server forbids the page anything not from itself (no inline script, no eval, no other site); the page
    must still draw, predict and show an uploaded picture under that policy."""
    from numpynn.web.app import create_app

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    try:
        with Server(create_app(models, data_dir=None)) as server:
            page.goto(server.url)
            page.wait_for_selector("#model option", state="attached")
            draw(page, STROKES[7])
            deadline = time.monotonic() + 10
            while page.locator("#verdict").get_attribute("data-digit") != "7":
                assert time.monotonic() < deadline, page.locator("#verdict").inner_text()
                time.sleep(0.1)
            page.set_input_files("#upload", files=[{"name": "seven.jpg", "mimeType": "image/jpeg",
                                                    "buffer": (REPO / "docs" / "img" / "seven.jpg").read_bytes()}])
            deadline = time.monotonic() + 10
            while page.locator("#verdict").get_attribute("data-digit") != "7":
                assert time.monotonic() < deadline, page.locator("#verdict").inner_text()
                time.sleep(0.1)
    finally:
        page.close()
    assert refused == []
