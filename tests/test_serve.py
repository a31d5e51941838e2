"""numpynn serve: the API with FastAPI's TestClient (good and bad inputs, training runs), and the command itself."""
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fastapi.testclient import TestClient

import numpynn.train as loop
from numpynn import serialize
from numpynn.images import MAX_PIXELS, prepare
from numpynn.model import mlp
from numpynn.train import Run, build_model, make_config
from numpynn.web import learn
from numpynn.web.app import create_app
from numpynn.web.limits import MAX_BODY

from .conftest import REPO, make_mnist_dir
from .test_images import png_header_claiming


def local_client(app, **kw):
    """A TestClient that asks as the page does: Host 127.0.0.1 (TestClient's own 'testserver' is not a name the
    server answers to) and the server's token, which the page reads from its meta tag."""
    return TestClient(app, base_url="http://127.0.0.1:8000", headers={"X-Numpynn-Token": app.state.token}, **kw)


def save(path, model, **header):
    serialize.save_model(path, model, {"metrics": {"test_accuracy": 0.5}, **header})
    return path


@pytest.fixture
def folder(tmp_path):
    """A models folder with a 784-16-10 MLP, a small CNN, a checkpoint and a corrupt file."""
    models = tmp_path / "models"
    models.mkdir()
    save(models / "mlp.npz", mlp([784, 16, 10], rng=np.random.default_rng(0)))
    cnn = build_model(make_config("cnn", channels=(2, 3), hidden=(8,)), np.random.default_rng(1))
    save(models / "cnn.npz", cnn)
    run = Run.start(make_config("seed", hidden=(4,)))
    serialize.save(models / "m.ckpt.npz", run.checkpoint_arrays(), run.checkpoint_header())
    (models / "broken.npz").write_bytes(b"not a zip file")
    return models


@pytest.fixture
def client(folder):
    with local_client(create_app(folder), raise_server_exceptions=False) as client:
        yield client


def seven(side=280):
    """A '7' drawn with a brush, white on black, as the page's pad draws it: (side, side) floats in [0, 1]."""
    picture = Image.new("L", (side, side), 0)
    s = side / 280
    ImageDraw.Draw(picture).line([(70 * s, 60 * s), (210 * s, 60 * s), (120 * s, 230 * s)], fill=255,
                                 width=max(1, round(18 * s)), joint="curve")
    return np.asarray(picture, np.float32) / 255


def png(array01) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.rint(array01 * 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def post_json(client, body, **kw):
    return client.post("/api/predict", content=body if isinstance(body, (bytes, str)) else json.dumps(body),
                       headers={"Content-Type": "application/json"}, **kw)


# ---------------------------------------------------------------------------------------------------------
# The page and the model list

def test_the_page_and_its_assets_are_served_with_nothing_from_outside(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas id=\"pad\"" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 1000
        assert "://" not in response.text  # no CDN, no font service: the page works offline
    assert "://" not in page.text
    assert client.get("/docs").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]


def test_models_lists_model_files_and_says_why_others_were_skipped(client, folder):
    data = client.get("/api/models").json()
    assert [m["name"] for m in data["models"]] == ["cnn", "mlp"]  # sorted; the checkpoint is not listed
    assert data["default"] == "cnn" and "folder" not in data  # the server's paths are not the client's business
    mlp_entry = data["models"][1]
    assert mlp_entry["parameters"] == 784 * 16 + 16 + 16 * 10 + 10 and mlp_entry["test_accuracy"] == 0.5
    assert mlp_entry["layers"] == [{"index": 1, "name": "hidden 1: ReLU, 16 units", "kind": "units",
                                    "shape": [16], "weights": True}]
    assert [s["file"] for s in data["skipped"]] == ["broken.npz"]
    assert str(folder) not in data["skipped"][0]["reason"]  # the file's name, not the server's paths


def test_a_model_file_given_on_the_command_line_comes_first(folder, tmp_path):
    pinned = save(tmp_path / "mine.npz", mlp([784, 8, 10], rng=np.random.default_rng(2)))
    with local_client(create_app(folder, pinned)) as client:
        data = client.get("/api/models").json()
    assert [m["name"] for m in data["models"]] == ["mine", "cnn", "mlp"] and data["default"] == "mine"


def test_new_and_removed_model_files_show_up_on_the_next_listing(client, folder):
    save(folder / "later.npz", mlp([784, 4, 10]))
    (folder / "cnn.npz").unlink()
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["later", "mlp"]


def test_with_no_model_the_server_still_starts_and_says_how_to_get_one(tmp_path):
    with local_client(create_app(tmp_path / "nothing-here")) as client:
        assert client.get("/").status_code == 200
        data = client.get("/api/models").json()
        assert data["models"] == [] and data["default"] is None
        response = post_json(client, {"pixels": seven(28).tolist()})
    assert response.status_code == 404 and "Learn tab" in response.json()["detail"]


# ---------------------------------------------------------------------------------------------------------
# Predictions

def test_predict_json_28_and_280_gives_probabilities_the_prepared_input_and_hidden_layers(client, folder):
    model, _ = serialize.load_model(folder / "mlp.npz")
    for side in (28, 280):
        pixels = seven(side)
        response = post_json(client, {"pixels": pixels.tolist(), "model": "mlp"})
        assert response.status_code == 200, response.text
        answer = response.json()
        digit = prepare(pixels)  # numpynn predict's own preparation
        np.testing.assert_allclose(answer["input"], digit, atol=5e-4)
        P = model.predict_proba(digit.reshape(1, 784))[0]
        np.testing.assert_allclose(answer["probabilities"], P, atol=1e-6)
        assert answer["digit"] == int(P.argmax()) and answer["blank"] is False and answer["model"] == "mlp"
        hidden = np.maximum(digit.reshape(1, 784) @ model.layers[0].params["W"] + model.layers[0].params["b"], 0)
        np.testing.assert_allclose(answer["layers"][0]["values"], hidden[0], atol=5e-4)


def test_raw_grey_pixels_as_the_page_sends_them(client, folder):
    for side in (28, 280):
        pixels = np.rint(seven(side) * 255).astype(np.uint8)
        response = client.post("/api/predict?model=mlp", content=pixels.tobytes(),
                               headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["input"], prepare(pixels), atol=5e-4)
        assert response.json()["model"] == "mlp"
    blank = client.post("/api/predict", content=bytes(280 * 280), headers={"Content-Type": "application/octet-stream"})
    assert blank.json() == {"model": "cnn", "blank": True, "message": "draw a digit"}
    for size in (0, 783, 785, 280 * 280 + 1, 100 * 100):
        response = client.post("/api/predict", content=bytes(size), headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 422 and "784 (28x28) or 78,400 (280x280)" in response.json()["detail"]
    unknown = client.post("/api/predict?model=../mlp", content=bytes(784),
                          headers={"Content-Type": "application/octet-stream"})
    assert unknown.status_code == 404


def test_an_uploaded_picture_is_prepared_like_numpynn_predict_prepares_it(client, folder):
    # dark ink on light paper, off-centre: prepare inverts, crops, scales and centres it
    picture = 1 - seven(280)[:, 30:]
    data = png(picture)
    response = client.post("/api/predict", files={"image": ("seven.png", data, "image/png")}, data={"model": "mlp"})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["input"], prepare(data), atol=5e-4)


def test_the_default_model_is_the_first_listed(client):
    assert post_json(client, {"pixels": seven(28).tolist()}).json()["model"] == "cnn"


def test_a_cnn_shows_feature_maps(client):
    answer = post_json(client, {"pixels": seven(28).tolist(), "model": "cnn"}).json()
    assert [(layer["kind"], layer["shape"]) for layer in answer["layers"]] == \
        [("maps", [2, 12, 12]), ("maps", [3, 4, 4]), ("units", [8])]  # valid 5x5: 28 -> 24 -> 12 -> 8 -> 4
    assert [layer["name"].split(":")[1].split(",")[0].strip() for layer in answer["layers"]] == ["ReLU"] * 3
    assert len(answer["layers"][0]["values"]) == 2 * 12 * 12
    weights = client.get("/api/weights", params={"model": "cnn", "layer": answer["layers"][0]["index"], "unit": 1})
    assert weights.status_code == 200 and weights.json()["shape"] == [1, 5, 5]
    dense = client.get("/api/weights", params={"model": "cnn", "layer": answer["layers"][2]["index"], "unit": 0})
    assert dense.json()["shape"] == [3, 4, 4] and len(dense.json()["values"]) == 3 * 4 * 4


@pytest.mark.parametrize("pixels", [np.zeros((280, 280)), np.ones((28, 28)), np.full((280, 280), 0.03)])
def test_a_blank_canvas_says_draw_a_digit_instead_of_guessing(client, pixels):
    answer = post_json(client, {"pixels": pixels.tolist()}).json()
    assert answer["blank"] is True and answer["message"] == "draw a digit"
    assert "digit" not in answer and "probabilities" not in answer


def test_a_blank_uploaded_picture_says_draw_a_digit(client):
    response = client.post("/api/predict", files={"image": ("pad.png", png(np.zeros((280, 280))), "image/png")})
    assert response.status_code == 200 and response.json()["blank"] is True


def test_a_units_incoming_weights_are_its_column_of_W_as_28x28(client, folder):
    model, _ = serialize.load_model(folder / "mlp.npz")
    response = client.get("/api/weights", params={"model": "mlp", "layer": 1, "unit": 5})
    assert response.status_code == 200
    data = response.json()
    assert data["shape"] == [28, 28]
    np.testing.assert_allclose(data["values"], model.layers[0].params["W"][:, 5], atol=5e-5)


def test_the_answer_holds_short_numbers(client):
    # orjson writes the float32 arrays rounded in float32: 0.123, never 0.12300000339746475
    answer = post_json(client, {"pixels": seven(280).tolist(), "model": "cnn"}).json()
    for values, decimals in [(answer["probabilities"], 6), (np.ravel(answer["input"]), 3),
                             *[(layer["values"], 3) for layer in answer["layers"]]]:
        assert all(v == round(v, decimals) for v in values)
    assert max(np.ravel(answer["input"])) == 1.0   # prepare's levels: the brightest pixel is 1
    weights = client.get("/api/weights", params={"model": "mlp", "layer": 1, "unit": 5}).json()["values"]
    assert all(v == round(v, 4) for v in weights)


def test_fast_predict_answers_as_the_declared_route_does(folder):
    # FastPredict answers POST /api/predict before FastAPI does; without it, the declared route (the one
    # /docs shows) must give the very same answers, good and bad.
    requests = [dict(json={"pixels": seven(28).tolist(), "model": "mlp"}),
                dict(content=np.rint(seven(280) * 255).astype(np.uint8).tobytes(), params={"model": "cnn"},
                     headers={"Content-Type": "application/octet-stream"}),
                dict(files={"image": ("seven.png", png(seven(280)), "image/png")}),
                dict(json={"pixels": [[0.5]]}), dict(json={"pixels": seven(28).tolist(), "model": "nope"}),
                dict(content=b"x", headers={"Content-Type": "text/plain"}),
                dict(json={"pixels": seven(28).tolist()}, params={"model": "m" * 201})]
    answers = []
    for fast in (True, False):
        app = create_app(folder)
        if not fast:
            app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != "FastPredict"]
        with local_client(app, raise_server_exceptions=False) as client:
            answers.append([(r.status_code, r.json()) for r in (client.post("/api/predict", **kw) for kw in requests)])
    assert [status for status, _ in answers[0]] == [200, 200, 200, 422, 404, 415, 422]
    assert answers[0][:6] == answers[1][:6]
    assert answers[0][6][1]["detail"] == "model must be a name from GET /api/models"  # FastAPI words its own


@pytest.mark.parametrize("slice_s, expected", [(0.0, ["A", "looked", "B", "C", "D"]),    # after every turn
                                                 (60.0, ["A", "B", "C", "D", "looked"])])  # not within a slice
def test_predictions_take_turns_in_order_and_the_loop_looks_between_slices(slice_s, expected):
    from numpynn.web.turns import Turns

    async def main():
        turns, order = Turns(slice_s), []
        loop = asyncio.get_running_loop()

        async def request(name):
            async with turns.take():
                order.append(name)
                if name == "A":  # something the loop has to do, such as reading a new request
                    loop.call_soon(order.append, "looked")

        async with turns.take():  # a first turn: the slice starts
            pass
        await asyncio.gather(*(request(name) for name in ["A", "B", "C", "D"]))
        return order

    assert asyncio.run(main()) == expected  # and the turns in the order the requests came


def test_an_uploads_form_is_closed(client, monkeypatch):
    from starlette.datastructures import FormData
    closed = []
    close = FormData.close

    async def counted(self):
        closed.append(True)
        await close(self)

    monkeypatch.setattr(FormData, "close", counted)
    client.post("/api/predict", files={"image": ("seven.png", png(seven(280)), "image/png")})
    client.post("/api/predict", files={"other": ("seven.png", png(seven(280)), "image/png")})
    assert closed == [True, True]


# ---------------------------------------------------------------------------------------------------------
# Bad input: a clear status and one line, and the server goes on

BAD_JSON = [
    ({"pixels": np.zeros((27, 28)).tolist()}, "shape [27, 28]"),
    ({"pixels": np.zeros((28, 28, 1)).tolist()}, "shape [28, 28, 1]"),
    ({"pixels": np.zeros(784).tolist()}, "shape [784]"),
    ({"pixels": np.zeros((100, 100)).tolist()}, "shape [100, 100]"),
    ({"pixels": []}, "shape [0]"),
    ({"pixels": [[0.0] * 28] * 27 + [[0.0] * 27]}, "different lengths"),
    ({"pixels": [["a"] * 28] * 28}, "numbers"),
    ({"pixels": [[None] * 28] * 28}, "numbers"),
    ({"pixels": [[True] * 28] * 28}, "numbers"),
    ({"pixels": (seven(28) * 255).tolist()}, "[0, 1]"),
    ({"pixels": (-seven(28)).tolist()}, "[0, 1]"),
    ({"pixels": (seven(28).astype(float) * 1e300).tolist()}, "run from 0 to 1e+300"),  # finite, though not in float32
    ({"pixels": "zeros"}, "list of rows"),
    ({"pixels": seven(28).tolist(), "model": 3}, "model must be a name"),
    ({"pixels": seven(28).tolist(), "path": "/etc/passwd"}, "unknown field 'path'"),
    ({"image": "x"}, "\"pixels\""),
    ([1, 2, 3], "\"pixels\""),
]


@pytest.mark.parametrize("body, said", BAD_JSON, ids=[said for _, said in BAD_JSON])
def test_bad_json_gets_422_with_one_line_saying_what_is_wrong(client, body, said):
    response = post_json(client, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and said in detail and "\n" not in detail


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client, literal):
    rows = [", ".join(["0.0"] * 28)] * 28
    rows[14] = ", ".join(["0.0"] * 13 + [literal] + ["0.0"] * 14)
    body = '{"pixels": [' + ", ".join(f"[{row}]" for row in rows) + "]}"
    response = post_json(client, body)
    assert response.status_code == 422 and "NaN or infinite" in response.json()["detail"]


@pytest.mark.parametrize("body", [b"{not json", b"[" * 100_000 + b"]" * 100_000, b"", "\u00e9".encode("latin-1")])
def test_a_body_that_is_not_json_gets_422(client, body):
    response = post_json(client, body)
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]


def test_an_unknown_model_gets_404_and_no_path_is_ever_opened(client):
    for name in ("nope", "../mlp", "/etc/passwd", "mlp.npz", "models/mlp"):
        response = post_json(client, {"pixels": seven(28).tolist(), "model": name})
        assert response.status_code == 404 and "unknown model" in response.json()["detail"]
        assert "cnn, mlp" in response.json()["detail"]


def test_a_huge_body_gets_413_whether_or_not_it_declares_its_length(client):
    big = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
    response = post_json(client, big)
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted as the bytes arrive
        for _ in range(40):
            yield b" " * 100_000

    response = client.post("/api/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    picture = client.post("/api/predict", files={"image": ("big.png", os.urandom(MAX_BODY + 10), "image/png")})
    assert picture.status_code == 413


def test_an_upload_that_is_not_a_picture_gets_422_with_the_reason(client):
    response = client.post("/api/predict", files={"image": ("notes.txt", b"hello, this is text", "text/plain")})
    assert response.status_code == 422 and "not a picture" in response.json()["detail"]
    response = client.post("/api/predict", files={"image": ("cut.png", png(seven())[:200], "image/png")})
    assert response.status_code == 422 and "damaged" in response.json()["detail"]
    response = client.post("/api/predict", data={"model": "mlp"}, files={"other": ("x.png", png(seven()))})
    assert response.status_code == 422 and "'image'" in response.json()["detail"]


def test_an_upload_claiming_a_huge_picture_is_refused_before_it_is_decoded(client):
    claim = png_header_claiming(8000, 8000)  # 64 megapixels claimed in 57 bytes: decoding it would fail
    response = client.post("/api/predict", files={"image": ("huge.png", claim, "image/png")})
    assert response.status_code == 422
    assert "8000x8000" in response.json()["detail"] and f"limit of {MAX_PIXELS:,}" in response.json()["detail"]


def test_an_upload_under_the_picture_limit_is_read_as_numpynn_predict_reads_it(client):
    out = io.BytesIO()
    Image.new("L", (3000, 2000), 0).save(out, format="PNG")  # 6 megapixels in a few kilobytes: one limit, the CLI's
    assert len(out.getvalue()) < 100_000
    response = client.post("/api/predict", files={"image": ("big.png", out.getvalue(), "image/png")})
    assert response.status_code == 200 and response.json()["blank"] is True  # decoded: no ink in it


def test_uploads_are_decoded_at_most_decoders_at_once(folder, monkeypatch):
    import httpx

    from numpynn.web import app as web_app
    from numpynn.web.pictures import DECODERS

    busy, most, lock = [0], [0], threading.Lock()

    def slow(picture):  # prepare, holding its worker thread a while, as a huge picture does
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.2)
        with lock:
            busy[0] -= 1
        return prepare(picture)

    monkeypatch.setattr(web_app, "prepare", slow)
    out = io.BytesIO()
    Image.fromarray((seven(280) * 255).astype(np.uint8)).save(out, format="JPEG")  # a JPEG: decoded in a thread
    app = create_app(folder)

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return await asyncio.gather(*(c.post("/api/predict", files={"image": ("d.jpg", out.getvalue())})
                                          for _ in range(3 * DECODERS)))

    answers = asyncio.run(main())
    assert [r.status_code for r in answers] == [200] * (3 * DECODERS)
    assert most[0] == DECODERS  # as many as allowed at once, never more


def test_other_content_types_get_415(client):
    response = client.post("/api/predict", content=b"1,2,3", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415 and "application/json" in response.json()["detail"]


@pytest.mark.parametrize("params, status", [
    ({"model": "mlp", "layer": 1, "unit": 16}, 422), ({"model": "mlp", "layer": 0, "unit": 0}, 422),
    ({"model": "mlp", "layer": 2, "unit": 0}, 422), ({"model": "mlp", "layer": "x", "unit": 0}, 422),
    ({"model": "mlp", "layer": 1, "unit": -1}, 422), ({"model": "mlp", "layer": 1}, 422),
    ({"model": "nope", "layer": 1, "unit": 0}, 404),
])
def test_bad_weight_requests(client, params, status):
    response = client.get("/api/weights", params=params)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)


def test_a_failure_inside_the_server_is_a_500_without_a_traceback_and_the_server_goes_on(client, monkeypatch):
    entry = client.app.state.models.get("mlp")

    def broken(x):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(entry.inside, "run", broken)
    response = post_json(client, {"pixels": seven(28).tolist(), "model": "mlp"})
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    monkeypatch.undo()
    assert post_json(client, {"pixels": seven(28).tolist(), "model": "mlp"}).status_code == 200


def test_the_server_answers_normally_after_every_kind_of_bad_request(client):
    for body, _ in BAD_JSON:
        post_json(client, body)
    post_json(client, b"[" * 50_000)
    post_json(client, b"0" * (MAX_BODY + 1))
    client.post("/api/predict", content=bytes(1000), headers={"Content-Type": "application/octet-stream"})
    client.post("/api/predict", files={"image": ("x", b"junk")})
    response = post_json(client, {"pixels": seven(28).tolist(), "model": "mlp"})
    assert response.status_code == 200 and len(response.json()["probabilities"]) == 10


# ---------------------------------------------------------------------------------------------------------
# Training from the page

@pytest.fixture
def trainer_client(tmp_path):
    data = make_mnist_dir(tmp_path / "data", n_train=200, n_test=40)
    with local_client(create_app(tmp_path / "models", data_dir=data), raise_server_exceptions=False) as client:
        yield client


QUICK = {"preset": "seed", "hidden": [8], "epochs": 2, "batch_size": 16, "dev_size": 20}


def events(client):
    """The run's events from the SSE stream, which ends once the run has ended."""
    found = []
    with client.stream("GET", "/api/train/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[len("data: "):]))
    return found


def test_a_training_run_streams_its_curves_and_its_model_appears_for_drawing(trainer_client):
    client = trainer_client
    response = client.post("/api/train", json=QUICK)
    assert response.status_code == 202, response.text
    seen = events(client)
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "batch" in kinds
    states = [e["state"] for e in seen if e["type"] == "state"]
    assert states == ["training", "saving", "done"]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
    done = seen[-1]
    assert done["epochs"] == 2 and 0 <= done["test_accuracy"] <= 1
    names = [m["name"] for m in client.get("/api/models").json()["models"]]
    assert names == [done["model"]] and done["model"].startswith("seed-")
    answer = post_json(client, {"pixels": seven(28).tolist(), "model": done["model"]}).json()
    assert len(answer["probabilities"]) == 10 and answer["layers"][0]["shape"] == [8]
    status = client.get("/api/train").json()
    assert status["state"] == "done" and status["running"] is False


def test_the_cnn_preset_trains_from_the_page_on_its_two_threads(trainer_client):
    """The cnn preset runs each batch as two halves at once (--threads 2, numpynn/parallel.py), here inside the
    server's training thread; its model is then drawn with, feature maps and all."""
    client = trainer_client
    options = {"preset": "cnn", "channels": [2, 3], "hidden": [8], "epochs": 1, "batch_size": 16, "dev_size": 20}
    assert client.post("/api/train", json=options).status_code == 202
    done = events(client)[-1]
    assert done["type"] == "state" and done["state"] == "done", done
    header = serialize.load(client.app.state.models.folder / f"{done['model']}.npz")[1]
    assert header["config"]["threads"] == 2
    answer = post_json(client, {"pixels": seven(28).tolist(), "model": done["model"]}).json()
    assert len(answer["probabilities"]) == 10 and answer["layers"][0]["shape"] == [2, 12, 12]


def test_only_one_run_at_a_time_and_stop_keeps_the_model(trainer_client, monkeypatch):
    client = trainer_client
    gate = threading.Event()  # holds the run at its start, so the test decides when it moves
    real_fit = loop.fit  # the Learn tab's run goes through train.train_and_save, which calls fit

    def held_fit(*args, **kwargs):
        gate.wait(30)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit", held_fit)
    assert client.post("/api/train", json={**QUICK, "epochs": 20}).status_code == 202
    second = client.post("/api/train", json=QUICK)
    assert second.status_code == 409 and "already" in second.json()["detail"]
    assert client.post("/api/train/stop").status_code == 200
    gate.set()
    seen = events(client)
    stopped = seen[-1]
    assert stopped["state"] == "stopped" and stopped["reason"] == "stopped from the page"
    assert stopped["epochs"] == 0 and [e["step"] for e in seen if e["type"] == "batch"] == [1]  # after one batch
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == [stopped["model"]]
    assert client.post("/api/train/stop").status_code == 409  # nothing to stop now
    assert client.post("/api/train", json=QUICK).status_code == 202  # and a new run may start
    assert events(client)[-1]["state"] == "done"


def test_a_run_stops_by_itself_at_the_time_limit(tmp_path):
    data = make_mnist_dir(tmp_path / "data", n_train=200, n_test=40)
    with local_client(create_app(tmp_path / "models", data_dir=data, max_seconds=0)) as client:
        assert client.post("/api/train", json={**QUICK, "epochs": 20}).status_code == 202
        last = events(client)[-1]
    assert last["state"] == "stopped" and last["reason"].startswith("time limit")


def test_a_run_without_data_fails_with_the_data_layers_message(tmp_path):
    with local_client(create_app(tmp_path / "models", data_dir=tmp_path)) as client:
        assert client.post("/api/train", json=QUICK).status_code == 202
        last = events(client)[-1]
    assert last["state"] == "failed" and "--data" in last["message"]
    assert str(tmp_path) not in last["message"]  # the server's folders stay in its log


@pytest.mark.parametrize("options, said", [
    ({"epochs": 0}, "epochs = 0"), ({"epochs": 21}, "from 1 to 20"), ({"hidden": [5000]}, "hidden"),
    ({"hidden": [8, 8, 8, 8]}, "1 to 3 widths"), ({"channels": [128]}, "channels"), ({"preset": "huge"}, "preset"),
    ({"optimizer": "lbfgs"}, "optimizer"), ({"lr": 0}, "lr = 0"), ({"lr": 5.0}, "lr = 5.0"),
    ({"lr": "fast"}, "lr"), ({"batch_size": 1}, "batch_size"), ({"train_images": 10**9}, "train_images"),
    ({"epochs": 2.5}, "epochs"), ({"data": "/etc"}, "data"), ({"dev_size": True}, "dev_size"),
])
def test_bad_training_options_get_422_and_start_nothing(trainer_client, options, said):
    response = trainer_client.post("/api/train", json=options)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert said in detail and "\n" not in detail
    assert trainer_client.get("/api/train").json()["state"] == "idle"


def test_learn_limits_are_in_the_status_for_the_form(trainer_client):
    status = trainer_client.get("/api/train").json()
    assert status["limits"]["epochs"] == [1, 20] and set(status["presets"]) == {"mlp", "seed", "cnn", "cnn-fast"}
    assert status["presets"]["seed"]["hidden"] == [10]


def test_parse_request_keeps_the_presets_values_for_what_is_left_out():
    config, n = learn.parse_request({"preset": "seed", "lr": 0.01, "train_images": 1000})
    assert config.hidden == (10,) and config.init == "seed" and config.lr == 0.01 and n == 1000
    assert config.epochs == learn.DEFAULT_EPOCHS  # the seed preset's own 30 is over the page's limit
    assert config.warmup_epochs == 1.0  # the preset's own
    short, _ = learn.parse_request({"preset": "seed", "epochs": 1})
    assert short.warmup_epochs == 0.5  # a one-epoch run cannot warm up for one epoch: half of it


BLAS_THREADS = """
import asyncio, json, sys
import httpx
from threadpoolctl import threadpool_info
import numpynn.train as loop
from numpynn.web.app import create_app
from numpynn.web.blas import one_blas_thread

def blas():
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

seen = {"before": blas()}
real_fit = loop.fit
def fit(*args, **kwargs):
    seen["training"] = blas()  # in the run's own thread
    return real_fit(*args, **kwargs)
loop.fit = fit

async def main():  # the app on this thread's event loop, as uvicorn runs it
    app = create_app(sys.argv[1], data_dir=sys.argv[2])
    one_blas_thread(app)
    seen["predictions"] = blas()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 headers={"X-Numpynn-Token": app.state.token}) as client:
        response = await client.post("/api/train", json={"preset": "seed", "hidden": [4], "epochs": 1, "dev_size": 20})
        assert response.status_code == 202, response.text
        while app.state.trainer.running:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the run's end hands the thread count back to this loop
    seen["after"] = blas()

asyncio.run(main())
print(json.dumps(seen))
"""


def test_serve_predicts_on_one_blas_thread_and_gives_a_training_run_all_of_them(tmp_path):
    data = make_mnist_dir(tmp_path / "data", n_train=100, n_test=20)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", BLAS_THREADS, tmp_path / "models", data], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"before": 2, "predictions": 1, "training": 2, "after": 1}


# ---------------------------------------------------------------------------------------------------------
# The command

def numpynn(*argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "numpynn", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_importing_numpynn_and_its_cli_does_not_import_the_web_stack():
    code = "import sys, numpynn, numpynn.cli; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv, code, said", [
    (["missing.npz"], 1, "missing.npz: no such file"),
    (["--port", "70000"], 2, "--port 70000 is out of range"),
    (["--models", "/no/such/folder"], 2, "no such folder"),
    (["--host", "no-such-host.invalid"], 2, "--host no-such-host.invalid"),
])
def test_serve_refuses_bad_arguments_in_one_line(argv, code, said):
    result = numpynn("serve", *argv)
    assert result.returncode == code and said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_serve_refuses_a_busy_port_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = numpynn("serve", "--models", tmp_path, "--port", busy.getsockname()[1])
    assert result.returncode == 1 and "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr


def test_serve_serves_the_page_and_predictions_and_stops_on_ctrl_c(folder):
    process = subprocess.Popen([sys.executable, "-m", "numpynn", "serve", folder / "mlp.npz", "--models", folder,
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = process.stdout.readline()
        assert line.startswith("numpynn: serving 3 models") and "http://127.0.0.1:" in line, line  # mlp, the built-in model, cnn
        url = line.split(" on ")[1].split()[0]
        assert "<canvas" in _get(url)
        request = urllib.request.Request(url + "api/predict", data=json.dumps({"pixels": seven(28).tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert answer["model"] == "mlp" and len(answer["probabilities"]) == 10
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # uvicorn shuts down cleanly, then (since 0.29's successors) hands Ctrl-C back: numpynn's usual 130
    assert process.returncode in (0, 130) and "Traceback" not in process.stderr.read()


def _get(url):
    deadline = time.monotonic() + 20
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------------------------
# The models folder and training's init_from, with files that are not plain models (registry, learn)

def test_init_from_an_ensemble_gets_422_and_starts_nothing(trainer_client, tmp_path):
    from numpynn.ensemble import Ensemble

    rng = np.random.default_rng(0)
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    serialize.save_ensemble(folder / "ens.npz", Ensemble([mlp([784, 8, 10], rng=rng), mlp([784, 8, 10], rng=rng)]),
                            [{}, {}], {"metrics": {}})
    assert "ens" in [m["name"] for m in trainer_client.get("/api/models").json()["models"]]
    response = trainer_client.post("/api/train", json={**QUICK, "init_from": "ens"})
    assert response.status_code == 422, response.text
    assert "cannot be a starting point" in response.json()["detail"]
    assert trainer_client.get("/api/train").json()["state"] == "idle"


def test_a_file_with_a_bad_generator_state_is_skipped_not_a_500(client, folder):
    model = mlp([784, 16, 10], dropout=0.2, rng=np.random.default_rng(0))
    state = model.layers[2].rng.bit_generator.state
    path = save(folder / "drop.npz", model)
    arrays, header = serialize.load(path)
    arrays["model/2.rng"] = {**state, "state": {"state": 10**100, "inc": 1}}  # too large for PCG64
    serialize.save(folder / "huge.npz", arrays, header)
    answer = client.get("/api/models")
    assert answer.status_code == 200
    names = [m["name"] for m in answer.json()["models"]]
    skipped = {s["file"]: s["reason"] for s in answer.json()["skipped"]}
    assert "drop" in names and "huge" not in names and "not a generator state" in skipped["huge.npz"]
