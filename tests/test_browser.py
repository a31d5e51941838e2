"""The page in a real headless Chromium (Debian's chromium package, driven by Playwright): draw digits with mouse
strokes and check what the network read, clear the pad, train a model in the Learn tab and draw with it.

The page as a first-time user meets it: a wide dense layer and a CNN's feature maps drawn large enough to
see and click, no empty strips, a plain line explaining each panel. The README's picture of the page,
docs/img/page-draw.png, is taken here when NUMPYNN_README_SCREENSHOT=1 is set (`make readme-screenshot`);
otherwise a test run leaves the checkout as it was.

A screenshot of each tab is saved in a temporary folder ($NUMPYNN_SCREENSHOTS if set, e.g. for a CI artifact);
the test prints where. In CI (CI set) a missing chromium or Playwright fails these tests: CI never passes by
skipping them. Playwright's own browser download is never used: executable_path points at Debian's chromium.
"""
import dataclasses
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
            assert page.locator("#bars li.top").count() == 0
            assert page.locator("#inside").get_attribute("data-blank") == "1"  # the layers stay, dark
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


@pytest.fixture(scope="module")
def wide_models(mnist_dir, tmp_path_factory):
    """A models folder holding the default mlp preset's network (784-800-10), trained for one epoch on 10,000
    images (about 15 s), and a small cnn (8 and 16 channels, then 64 units) left untrained: the page's layout
    depends on the shapes only."""
    folder = tmp_path_factory.mktemp("wide-models")
    config = make_config("mlp", epochs=1, warmup_epochs=0.0)
    assert config.hidden == (800,)
    splits = load_mnist(data_dir=mnist_dir, dev_size=config.dev_size, seed=config.seed, progress=False)
    splits = dataclasses.replace(splits, X_train=splits.X_train[:10_000], y_train=splits.y_train[:10_000])
    run = Run.start(config)
    fit(run, splits)
    _, accuracy = evaluate(run.model, splits.X_test, splits.y_test)
    serialize.save_model(folder / "mlp-800.npz", run.model, {"metrics": {"test_accuracy": accuracy}})
    cnn = Run.start(make_config("cnn", channels=(8, 16), hidden=(64,)))
    serialize.save_model(folder / "cnn-untrained.npz", cnn.model, {"metrics": {}})
    return folder


def boxes(page, selector):
    """The bounding boxes of the elements `selector` finds that are shown."""
    found = [page.locator(selector).nth(i).bounding_box() for i in range(page.locator(selector).count())]
    return [box for box in found if box is not None]


def layer_panel(page, i):
    return page.locator("#inside .layer").nth(i)


def test_a_newcomer_can_read_every_panel_and_the_page_has_no_empty_strips(page, wide_models, shots):
    from numpynn.web.app import create_app

    with Server(create_app(wide_models, data_dir=None)) as server:
        page.goto(server.url)
        page.wait_for_selector("#model option", state="attached")
        page.select_option("#model", "mlp-800")
        page.wait_for_selector("#inside .layer")
        # Before anything is drawn the layers are already there, dark, with their explanations.
        assert page.locator("#inside").get_attribute("data-blank") == "1"
        assert "Draw a digit to see which light up" in layer_panel(page, 0).locator(".explain").inner_text()

        draw(page, STROKES[7])
        state, read, text = settled(page)
        assert (state, read) == ("digit", "7"), text

        # A plain line under each panel: what it shows and what to try.
        for panel in [".pad-panel", ".seen-panel", ".bars-panel", "#unit-help"]:
            assert len(page.locator(f"{panel} .explain").inner_text()) > 40, panel
        explanation = layer_panel(page, 0).locator(".explain").inner_text()
        assert "800 units" in explanation and "784 pixels" in explanation and "ReLU" in explanation
        assert "of 800 units are lit for this drawing" in explanation

        # 800 units, each a cell at least 12 px wide on screen, the whole grid inside the window.
        grid = layer_panel(page, 0).locator("canvas")
        box, cols = grid.bounding_box(), int(grid.get_attribute("data-cols"))
        cell = box["width"] / cols
        assert cell >= 12, f"800 units drawn {cell:.1f} px wide"
        assert box["x"] + box["width"] <= page.viewport_size["width"]
        row, col = 10, cols - 3  # a cell far from the first, clicked in its middle, is the unit clicked
        grid.click(position={"x": (col + 0.4) * cell, "y": (row + 0.4) * cell})
        page.wait_for_selector("#unit:not([hidden])")
        assert f"unit {row * cols + col} " in page.locator("#unit-title").text_content()
        assert page.locator("#unit-help").is_hidden()

        # No empty strip beside the pad: its panel is as wide as the pad (plus its padding), and the top row
        # reaches as far right as the inside below it.
        pad, pad_panel = page.locator("#pad").bounding_box(), page.locator(".pad-panel").bounding_box()
        assert pad_panel["width"] - pad["width"] <= 32
        top, below = boxes(page, ".top > .panel"), page.locator(".below").bounding_box()
        assert abs(max(b["x"] + b["width"] for b in top) - (below["x"] + below["width"])) <= 2
        assert len({round(b["height"]) for b in top}) == 1  # the three panels end on one line
        # The lower half of the window is not left empty: panels cover at least 40 % of it.
        W, H = page.viewport_size["width"], page.viewport_size["height"]
        covered = sum(max(0, min(b["x"] + b["width"], W) - max(b["x"], 0)) *
                      max(0, min(b["y"] + b["height"], H) - max(b["y"], H / 2))
                      for b in boxes(page, "#inside .layer") + boxes(page, ".side .panel"))
        assert covered / (W * H / 2) >= 0.4, f"panels cover {covered / (W * H / 2):.0%} of the lower half"

        top = int(grid.get_attribute("data-top"))  # the README shows the weights of the most active unit
        grid.click(position={"x": (top % cols + 0.5) * cell, "y": (top // cols + 0.5) * cell})
        page.wait_for_function(f"document.querySelector('#unit-title').textContent.includes('unit {top} ')")
        page.screenshot(path=shots / "draw-tab-800.png", full_page=True)
        if os.environ.get("NUMPYNN_README_SCREENSHOT") == "1":  # the README's picture of the page, on request
            page.screenshot(path=REPO / "docs" / "img" / "page-draw.png", full_page=True)

        # A CNN: its first block's 12x12 maps are never drawn smaller than its second block's 4x4 maps.
        page.select_option("#model", "cnn-untrained")
        settled(page)
        page.wait_for_function("document.querySelectorAll('#inside .layer').length === 3")
        sides = []
        for i, shape in enumerate([[8, 12, 12], [16, 4, 4]]):
            maps = layer_panel(page, i).locator("canvas")
            assert f"{shape[0]} maps of {shape[1]}x{shape[2]}" in layer_panel(page, i).locator("h2").text_content()
            scale = maps.bounding_box()["width"] / int(maps.evaluate("c => c.width"))
            sides.append(int(maps.get_attribute("data-side")) * scale)
        assert sides[0] >= sides[1] and sides[1] >= 24, f"12x12 maps {sides[0]} px, 4x4 maps {sides[1]} px"
        assert "feature maps" in layer_panel(page, 0).locator(".explain").inner_text()
        page.screenshot(path=shots / "draw-tab-cnn.png", full_page=True)


def test_why_and_what_would_make_it_another_digit_are_drawn_over_what_the_network_saw(page, models):
    """Tick "Why?" and the page overlays the answer's gradient x input beside the 28x28 it read; choose a digit
    in "What would make it a" and the map becomes that digit's gradient, with a caption saying which."""
    from numpynn.web.app import create_app

    def heat():
        return page.evaluate("Array.from(document.querySelector('#why-map').getContext('2d')"
                             ".getImageData(0, 0, 28, 28).data)")

    with Server(create_app(models, data_dir=None)) as server:
        page.goto(server.url)
        page.wait_for_function("document.querySelector('#model').options.length === 1")
        draw(page, STROKES[7])
        assert settled(page)[:2] == ("digit", "7")
        assert page.locator("#why-map").is_hidden() and page.locator("#why-caption").is_hidden()
        page.locator("#why").check()
        page.wait_for_selector("#why-map:not([hidden])")
        settled(page)
        rgba = np.array(heat()).reshape(28, 28, 4).astype(int)
        red = (rgba[..., 0] > rgba[..., 2] + 60).sum()
        assert red > 10  # the strokes of the 7 raised its score
        assert "Why a 7" in page.locator("#why-caption").inner_text()
        page.locator("#toward").select_option("3")
        page.wait_for_function("document.querySelector('#why-caption').textContent.includes('it is a 3')")
        assert not np.array_equal(np.array(heat()), rgba.reshape(-1))  # another map: the gradient toward 3
        page.locator("#clear").click()
        assert page.locator("#why-map").is_hidden()


def test_a_dot_is_answered_not_sure_and_a_seven_is_not(page, models, tmp_path):
    """The model file's "not sure" rule reaches the page: a dot (which prepare() scales up to a filled disc,
    inkier than any digit) is answered "Not sure (maybe ...)", a 7 is read."""
    from numpynn.abstain import choose_rule
    from numpynn.data import load_mnist
    from numpynn.web.app import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    model, header = serialize.load_model(models / "mnist-64.npz")
    splits = load_mnist(dev_size=2000, seed=0, progress=False)
    rule = choose_rule(model.predict_proba(splits.X_dev), splits.X_dev)
    serialize.save_model(folder / "ruled.npz", model, {"metrics": header["metrics"], "not_sure": rule})
    with Server(create_app(folder, data_dir=None)) as server:
        page.goto(server.url)
        page.wait_for_function("document.querySelector('#model').options.length === 1")
        draw(page, [[(140, 140), (141, 141)]])
        state, _, text = settled(page)
        assert state == "unsure" and text.startswith("Not sure (maybe a "), text
        page.locator("#clear").click()
        draw(page, STROKES[7])
        assert settled(page)[:2] == ("digit", "7")
