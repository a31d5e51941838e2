"""Your handwriting, in a real headless Chromium (as tests/test_browser.py): draw digits, confirm or correct the
page's answer and see the count of stored examples grow, then fine-tune the model on them in the Learn tab
and read the accuracy on the held-out ones."""
import shutil

import numpy as np
import pytest

from numpynn.examples_db import Examples

from .test_browser import STROKES, Server, browser, draw, models, page, settled, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.mnist]


def shifted(strokes, dx, dy):
    return [[(x + dx, y + dy) for x, y in stroke] for stroke in strokes]


def test_draw_correct_store_then_fine_tune_on_my_examples(page, models, mnist_dir, shots, tmp_path):  # noqa: F811
    from numpynn.web.app import create_app

    folder = tmp_path / "models"
    shutil.copytree(models, folder)  # the 784-64-10 network trained on MNIST, in a folder of this test's own
    with Server(create_app(folder, data_dir=mnist_dir)) as server:
        page.goto(server.url)
        page.wait_for_function("document.querySelector('#model').options.length === 1")
        page.wait_for_selector("#examples-count[data-total='0']", state="attached")
        stored = 0
        for (digit, strokes), dx in [(d, dx) for dx in (-20, 0, 20) for d in STROKES.items()]:
            draw(page, shifted(strokes, dx, 0))
            state, read, _ = settled(page)
            assert state == "digit"
            if digit == 7 and dx == -20:
                page.click("#correct button[data-label='1']")  # correct the answer: "It's a 1"
                label = 1
            elif read == str(digit):
                page.click("#right")  # confirm it
                label = digit
            else:
                page.click(f"#correct button[data-label='{digit}']")
                label = digit
            stored += 1
            page.wait_for_selector(f"#examples-count[data-total='{stored}']", state="attached")
            assert f"Stored as a {label}" in page.locator("#yours-status").inner_text()
            if stored == 1:
                page.click("#right")  # the same drawing twice: refused, and the count stays
                page.wait_for_selector("#yours-error:not([hidden])")
                assert "stored already" in page.locator("#yours-error").inner_text()
                assert page.locator("#examples-count").get_attribute("data-total") == "1"
                page.click("#undo")  # Undo deletes it, and the drawing may then be stored again
                page.wait_for_selector("#examples-count[data-total='0']", state="attached")
                assert "deleted" in page.locator("#yours-status").inner_text() and page.locator("#undo").is_hidden()
                assert Examples(folder).counts() == [0] * 10
                page.click("#correct button[data-label='1']")
                page.wait_for_selector("#examples-count[data-total='1']", state="attached")
                page.screenshot(path=shots / "draw-tab-your-handwriting.png", full_page=True)
            page.click("#clear")
            settled(page)
        images, labels = Examples(folder).arrays()
        assert len(labels) == 9 and labels[0] == 1 and sorted(labels.tolist()) == [0, 0, 0, 1, 3, 3, 3, 7, 7]
        assert images.shape == (9, 28, 28) and all(np.count_nonzero(im) > 20 for im in images)

        page.click("#tab-learn")
        assert page.locator("#learn-examples").inner_text() == "9"
        page.select_option("#preset", "seed")
        page.select_option("#init_from", "mnist-64")
        assert page.locator("#hidden").input_value() == "64"  # the chosen model's network fills the form
        page.fill("#epochs", "1")
        page.fill("#train_images", "2000")
        page.check("#include_examples")
        page.click("#start")
        page.wait_for_function("document.querySelector('#learn-status').innerText.startsWith('Finished')",
                               timeout=120_000)
        held = page.locator("#held-out")
        assert held.is_visible()
        text = held.inner_text()
        assert text.startswith("Your held-out examples (2 of them, never trained on; the 7 others trained on, each 20 "
                               "times): ")
        assert "right before" in text and "right after" in text
        assert float(held.get_attribute("data-after")) in (0.0, 0.5, 1.0)
        page.screenshot(path=shots / "learn-tab-your-handwriting.png", full_page=True)
