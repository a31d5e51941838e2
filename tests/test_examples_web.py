"""Your handwriting on the server (numpynn/web/examples.py and the Learn tab's options): storing, counting and
deleting examples under the server's protections, bad bodies as JSON 4xx, and a page run that fine-tunes on
them and reports the held-out accuracy."""
import base64

import numpy as np
import pytest
from PIL import Image, ImageDraw

from numpynn import serialize
from numpynn.examples_db import Examples
from numpynn.extra_data import split_held_out
from numpynn.images import prepare
from numpynn.model import mlp
from numpynn.web.app import create_app

from .conftest import REPO, make_mnist_dir
from .test_serve import events, local_client

DRAWN = np.load(REPO / "tests" / "fixtures" / "drawings.npz")


def pad_of_seven() -> bytes:
    """A 7 on the page's 280x280 pad, as padGrey() sends it: one grey byte a pixel, row by row."""
    picture = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(picture).line([(75, 65), (205, 65), (125, 225)], fill=255, width=18, joint="curve")
    return picture.tobytes()


def body(label=7, pad=None, **more):
    return {"pad": base64.b64encode(pad_of_seven() if pad is None else pad).decode(), "label": label, **more}


@pytest.fixture
def folder(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    serialize.save_model(models / "m16.npz", mlp([784, 16, 10], rng=np.random.default_rng(0)), {"metrics": {}})
    return models


@pytest.fixture
def client(folder):
    with local_client(create_app(folder), raise_server_exceptions=False) as client:
        yield client


def test_an_example_is_stored_with_what_the_server_prepared_and_what_the_model_said(client, folder):
    assert client.get("/api/examples").json() == {"counts": [0] * 10, "total": 0, "max": 100_000}
    response = client.post("/api/examples", json=body(label=1))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["id"] == 1 and answer["label"] == 1 and answer["model"] == "m16" and answer["total"] == 1
    digit = prepare(np.frombuffer(pad_of_seven(), np.uint8).reshape(280, 280))
    model, _ = serialize.load_model(folder / "m16.npz")
    assert answer["predicted"] == int(model.predict(digit.reshape(1, -1))[0])  # the model's own answer
    store = Examples(folder)
    images, labels = store.arrays()
    assert (images[0] == np.round(digit * 255).astype(np.uint8)).all() and labels.tolist() == [1]
    assert store.rows()[0]["predicted"] == answer["predicted"]
    pad = Image.open(__import__("io").BytesIO(store.pad(1)))
    assert pad.format == "PNG" and pad.size == (280, 280) and pad.tobytes() == pad_of_seven()  # the raw pad
    assert client.post("/api/examples", json=body(label=7, pad=bytes(DRAWN["digits"][7]))).status_code == 201
    assert client.get("/api/examples").json()["counts"] == [0, 1, 0, 0, 0, 0, 0, 1, 0, 0]


def test_delete_one_or_all(client):
    for label in (1, 2, 3):
        client.post("/api/examples", json=body(label=label))
    response = client.delete("/api/examples?id=2")
    assert response.status_code == 200 and response.json()["deleted"] == 1 and response.json()["total"] == 2
    assert client.delete("/api/examples?id=2").status_code == 404
    response = client.delete("/api/examples?all=true")
    assert response.json()["deleted"] == 2 and response.json()["counts"] == [0] * 10


@pytest.mark.parametrize("sent, status, words", [
    ({"label": 7}, 422, "pad"),
    (body(label=10), 422, "label"),
    (body(label="7"), 422, "label"),
    (body(label=True), 422, "label"),
    (body(label=None), 422, "label"),
    ({**body(), "extra": 1}, 422, "extra"),
    ({**body(), "pad": "%%%"}, 422, "not base64"),
    ({**body(), "pad": "A" * 200_000}, 422, "pad"),
    (body(pad=bytes(1000)), 422, "pad: raw pixels: 1,000 bytes; send 784 (28x28) or 78,400"),
    (body(pad=bytes(78_400)), 422, "blank"),
    (body(model="nope"), 404, "unknown model"),
    (body(model=["m16"]), 422, "model"),
    ([1, 2, 3], 422, "request"),
    ("not json", 422, ""),
])
def test_bad_bodies_get_one_line_of_json_and_store_nothing(client, folder, sent, status, words):
    response = client.post("/api/examples", json=sent)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail and "\n" not in detail and "Traceback" not in detail
    assert Examples(folder).counts() == [0] * 10


@pytest.mark.parametrize("query", ["", "?id=0", "?id=-3", "?id=abc", "?id=1&all=true", "?all=maybe"])
def test_bad_deletes_get_422(client, query):
    response = client.delete(f"/api/examples{query}")
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)


def test_storing_and_deleting_follow_the_servers_protections(folder):
    """As for starting a training run (guard.py): the token, a JSON body, the page's own origin."""
    from fastapi.testclient import TestClient

    app = create_app(folder)
    token = {"X-Numpynn-Token": app.state.token}
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.post("/api/examples", json=body()).status_code == 403  # no token
        assert client.post("/api/examples", json=body(), headers={"X-Numpynn-Token": "wrong"}).status_code == 403
        assert client.delete("/api/examples?all=true").status_code == 403
        form = client.post("/api/examples", content="label=7", headers={**token, "Content-Type":
                                                                        "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        text = client.post("/api/examples", content="{}", headers={**token, "Content-Type": "text/plain"})
        assert text.status_code == 415
        foreign = client.post("/api/examples", json=body(), headers={**token, "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        cross = client.delete("/api/examples?all=true", headers={**token, "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        rebound = client.get("/api/examples", headers={"Host": "attacker.example:8000"})
        assert rebound.status_code == 421
        assert Examples(folder).counts() == [0] * 10
        assert client.post("/api/examples", json=body(), headers=token).status_code == 201
        assert client.get("/api/examples").status_code == 200  # reading needs no token, as /api/models


def test_a_damaged_database_is_a_409_without_the_servers_paths_and_is_left_alone(client, folder, capsys):
    (folder / "examples.sqlite").write_bytes(b"garbage" * 100)
    for response in (client.get("/api/examples"), client.post("/api/examples", json=body()),
                     client.delete("/api/examples?all=true")):
        assert response.status_code == 409
        detail = response.json()["detail"]
        assert detail.startswith("examples.sqlite: not a SQLite database") and str(folder) not in detail
    assert (folder / "examples.sqlite").read_bytes() == b"garbage" * 100
    assert str(folder) in capsys.readouterr().err  # the server's own log says where


@pytest.mark.parametrize("damage", ["row", "fifo"])
def test_a_database_with_a_bad_row_or_a_fifo_in_its_place_is_a_409_not_a_500_or_a_hang(client, folder, damage):
    import os
    import threading

    from .test_examples_db import crafted

    if damage == "row":  # passes the file's checks, holds a label its CHECK constraint would refuse
        crafted(folder, label=12)
    else:
        os.mkfifo(folder / "examples.sqlite")  # opened, it would hold one of the server's threads forever
    answers = []
    asking = threading.Thread(target=lambda: answers.extend([client.get("/api/examples"),
                                                             client.post("/api/examples", json=body()),
                                                             client.delete("/api/examples?id=1")]), daemon=True)
    asking.start()
    asking.join(timeout=20)
    assert len(answers) == 3, "hangs"
    for response in answers:
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert detail.startswith("examples.sqlite: ") and str(folder) not in detail and "move it aside" in detail


# ---------------------------------------------------------------------------------------------------------
# The Learn tab: start from a model, include my examples

@pytest.fixture
def trainer(tmp_path, folder):
    data = make_mnist_dir(tmp_path / "data", n_train=200, n_test=40)
    with local_client(create_app(folder, data_dir=data), raise_server_exceptions=False) as client:
        yield client


QUICK = {"preset": "seed", "hidden": [16], "epochs": 2, "batch_size": 16, "dev_size": 20}


def store_drawn(folder, n=20):
    store = Examples(folder)
    for i in range(0, 25 * n, 25):
        store.add(DRAWN["digits"][i].tobytes(), b"", int(DRAWN["digit_labels"][i]), None, "m16")


def test_a_page_run_fine_tunes_on_my_examples_and_reports_the_held_out_accuracy(trainer, folder):
    store_drawn(folder)
    response = trainer.post("/api/train", json={**QUICK, "init_from": "m16", "include_examples": True})
    assert response.status_code == 202, response.text
    done = events(trainer)[-1]
    assert done["state"] == "done", done
    scores = done["your_examples"]
    assert scores["train"] == 16 and scores["held_out"] == 4
    X = DRAWN["digits"][::25].reshape(20, -1).astype(np.float32) / 255
    y = DRAWN["digit_labels"][::25]
    _, held = split_held_out(20, seed=0)
    start, _ = serialize.load_model(folder / "m16.npz")
    tuned, header = serialize.load_model(folder / f"{done['model']}.npz")
    assert scores["held_out_accuracy_before"] == np.mean(start.predict(X[held]) == y[held])
    assert scores["held_out_accuracy_after"] == np.mean(tuned.predict(X[held]) == y[held])
    assert header["metrics"]["train_images"] == 180 + 16 * 20  # MNIST's training split (200 - 20 dev), yours 20 times
    assert scores["repeat"] == 20


def test_without_a_start_model_there_is_no_before(trainer, folder):
    store_drawn(folder, 5)
    assert trainer.post("/api/train", json={**QUICK, "include_examples": True}).status_code == 202
    scores = events(trainer)[-1]["your_examples"]
    assert scores["held_out"] == 1 and scores["held_out_accuracy_before"] is None
    assert scores["held_out_accuracy_after"] in (0.0, 1.0)


@pytest.mark.parametrize("options, words", [
    ({"include_examples": True}, "0 examples stored"),
    ({"include_examples": "yes"}, "include_examples"),
    ({"init_from": "nope"}, "unknown model 'nope'"),
    ({"init_from": 3}, "init_from"),
    ({"include_examples": True, "examples_repeat": 0}, "examples_repeat"),
    ({"include_examples": True, "examples_repeat": 101}, "examples_repeat"),
    ({"init_from": "m16", "hidden": [32]}, "weights 784x16, 16x10) is not this run's (weights 784x32, 32x10)"),
])
def test_bad_run_options_about_my_examples_get_422_and_start_nothing(trainer, options, words):
    response = trainer.post("/api/train", json={**QUICK, **options})
    assert response.status_code == 422 and words in response.json()["detail"], response.text
    assert trainer.get("/api/train").json()["state"] == "idle"


def test_more_copies_of_my_examples_than_a_run_may_add_are_refused_at_the_start(trainer, folder, monkeypatch):
    from numpynn import extra_data

    store_drawn(folder, 10)  # 8 for training, 2 held out
    monkeypatch.setattr(extra_data, "MAX_ADDED", 8 * 5)  # each at most 5 times
    response = trainer.post("/api/train", json={**QUICK, "include_examples": True, "examples_repeat": 6})
    assert response.status_code == 422 and "examples_repeat = 6" in response.json()["detail"], response.text
    assert "from 1 to 5" in response.json()["detail"]
    assert trainer.get("/api/train").json()["state"] == "idle"
    assert trainer.post("/api/train", json={**QUICK, "include_examples": True, "examples_repeat": 5}).status_code == 202
    assert events(trainer)[-1]["state"] == "done"


def test_no_malformed_request_to_the_examples_routes_gets_a_500_or_a_logged_error(client, caplog):
    import logging

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    good = base64.b64encode(pad_of_seven()).decode()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"]),
           query=st.sampled_from(["", "?id=1", "?id=", "?id=99999999999999999999999", "?all=1", "?all=%ff",
                                  "?id=1&id=2", "?x=%"]),
           kind=st.sampled_from(["application/json", "", "text/plain", "application/json; charset=utf-16",
                                 "multipart/form-data; boundary=x"]),
           payload=st.one_of(st.binary(max_size=500), st.sampled_from([
               b"", b"{}", b"null", b"[]", b'{"pad": 1, "label": 1}', b'{"pad": "", "label": 1}',
               f'{{"pad": "{good}", "label": 1e400}}'.encode(),
               f'{{"pad": "{good}", "label": 3, "model": null}}'.encode(),
               f'{{"pad": "{good[:-4]}", "label": 3}}'.encode(), b'{"pad": "\\u0000", "label": 0}'])))
    def check(method, query, kind, payload):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            response = client.request(method, "/api/examples" + query, content=payload,
                                      headers={"Content-Type": kind} if kind else {})
        assert response.status_code < 500, (method, query, kind, payload[:80], response.text[:300])
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]

    check()
