"""The "not sure" rule (numpynn.abstain) on probabilities built by hand, its one-line errors, and the drawings
fixture it is measured on (tests/fixtures/drawings.npz): what it holds, and that its script makes it again."""
import importlib.util
import pathlib

import numpy as np
import pytest

from numpynn.abstain import choose_ink_limit, choose_threshold, not_sure
from numpynn.checks import OptionError

FIXTURES = pathlib.Path(__file__).with_name("fixtures")


def rows_with_top(p_max, K=10):
    """Probabilities (N, K) whose top probability is p_max[i], the rest spread evenly over the other classes."""
    p_max = np.asarray(p_max, float)
    P = np.repeat(((1 - p_max) / (K - 1))[:, None], K, axis=1)        # (N, K)
    P[np.arange(len(p_max)), np.arange(len(p_max)) % K] = p_max
    return P


def test_threshold_by_hand():
    # Ten dev digits, top probabilities 0.95, 0.50, 0.99, 0.60, 0.97, 0.70, 0.98, 0.80, 0.96, 0.90.
    # Sorted: 0.50 0.60 0.70 0.80 0.90 0.95 0.96 0.97 0.98 0.99. With a = 0.2, m = floor(0.2 * 10) = 2, so
    # t = p_(3) = 0.70: 0.50 and 0.60 fall below it (2 of 10); any larger t would take 0.70 too (3 of 10).
    P = rows_with_top([0.95, 0.50, 0.99, 0.60, 0.97, 0.70, 0.98, 0.80, 0.96, 0.90])
    t = choose_threshold(P, 0.2)
    assert t == pytest.approx(0.70)
    assert not_sure(P, t).tolist() == [False, True, False, True, False, False, False, False, False, False]
    assert not_sure(P, np.nextafter(t, 1)).sum() == 3                 # the next larger t breaks the budget
    assert choose_threshold(P, 0.25) == pytest.approx(0.70)           # floor(2.5) = 2: the same t
    assert choose_threshold(P, 0.0) == pytest.approx(0.50)            # nothing below the smallest
    assert not_sure(P, choose_threshold(P, 0.0)).sum() == 0
    assert choose_threshold(P, 0.95) == pytest.approx(0.99)           # m = 9: all but the surest


def test_threshold_keeps_the_budget_at_every_rate():
    rng = np.random.default_rng(0)
    P = rows_with_top(rng.uniform(0.2, 1.0, 1000))
    for a in np.arange(0, 100) / 100:                                 # 0.29 * 1000 is 289.99999999999994
        t = choose_threshold(P, a)
        assert not_sure(P, t).sum() == int(round(a * 1000))           # distinct values: exactly the budget


def test_ties_are_answered():
    P = rows_with_top([0.9] * 8 + [0.3, 0.4])
    t = choose_threshold(P, 0.5)                                      # m = 5, but 0.9 is shared by 8 rows
    assert t == pytest.approx(0.9) and not_sure(P, t).sum() == 2      # below the budget rather than over it


@pytest.mark.parametrize("P, a, name", [
    (np.array([0.1, 0.9]), 0.05, "P_dev.shape"),                      # one row, not (N, K)
    (np.zeros((0, 10)), 0.05, "P_dev.shape"),
    (np.array([[1]]), 0.05, "P_dev.shape"),
    (np.array([[2.0, -1.0, 0.5]]), 0.05, "P_dev"),                    # logits, not probabilities
    (np.array([[0.2, 0.2, 0.2]]), 0.05, "P_dev"),                     # rows do not sum to 1
    (np.array([[np.nan, 1.0]]), 0.05, "P_dev"),
    (np.array([[0, 1], [1, 0]]), 0.05, "P_dev.dtype"),                # integers
    (np.array([[0.5, 0.5]]), 1.0, "max_abstain"),                     # abstaining on all is no rule
    (np.array([[0.5, 0.5]]), -0.01, "max_abstain"),
    (np.array([[0.5, 0.5]]), True, "max_abstain"),
    (np.array([[0.5, 0.5]]), "0.05", "max_abstain"),
    (np.array([[0.5, 0.5]]), float("nan"), "max_abstain"),
])
def test_choose_threshold_refuses_in_one_line(P, a, name):
    with pytest.raises(OptionError) as caught:
        choose_threshold(P, a)
    assert caught.value.name == name and "\n" not in str(caught.value)


@pytest.mark.parametrize("t", [1.5, -0.1, float("inf"), None, "0.9"])
def test_not_sure_refuses_a_bad_threshold(t):
    with pytest.raises(OptionError) as caught:
        not_sure(rows_with_top([0.9, 0.5]), t)
    assert caught.value.name == "t" and "\n" not in str(caught.value)


def test_not_sure_refuses_logits():
    with pytest.raises(OptionError, match="not logits"):
        not_sure(np.array([[3.0, -2.0, 0.1]]), 0.9)


# ---------------------------------------------------------------------------------------------------------
# The drawings fixture

def load_script():
    spec = importlib.util.spec_from_file_location("make_drawings", FIXTURES / "make_drawings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_holds_what_it_says():
    path = FIXTURES / "drawings.npz"
    assert path.stat().st_size < 500_000
    with np.load(path, allow_pickle=False) as f:                      # plain arrays: no pickle needed
        d = {name: f[name] for name in f.files}
    assert d["digits"].shape == (500, 28, 28) and d["digits"].dtype == np.uint8
    assert d["others"].shape == (500, 28, 28) and d["others"].dtype == np.uint8
    assert np.bincount(d["digit_labels"], minlength=10).tolist() == [50] * 10
    kinds, counts = np.unique(d["other_kinds"], return_counts=True)
    assert dict(zip(kinds.tolist(), counts.tolist())) == {k: 100 for k in ("letter", "pair", "scribble", "stray",
                                                                           "symbol")}
    letters = set(d["other_names"][d["other_kinds"] == "letter"].tolist())
    assert len(letters) == 20 and not letters & set("OISZBG")        # no letter that looks like a digit
    detached = {"1-base", "4-open", "4-square", "5-bar", "7-crossbar"}  # digits drawn in several strokes
    assert detached <= set(d["digit_styles"].tolist())
    for images in (d["digits"], d["others"]):                         # prepared as the server does: ink up to 255
        assert (images.reshape(500, -1).max(axis=1) == 255).all()


def test_script_makes_the_fixture_again():
    made = load_script().make()
    with np.load(FIXTURES / "drawings.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(made)
        for name, array in made.items():
            stored = f[name]
            assert stored.dtype == array.dtype and stored.shape == array.shape, name
            assert stored.tobytes() == array.tobytes(), f"{name} differs: run tests/fixtures/make_drawings.py"


def test_ink_limit_by_hand():
    # Five dev images whose ink (mean pixel) is 0.10, 0.30, 0.20, 0.25, 0.15. Decreasing: 0.30 0.25 0.20 0.15
    # 0.10. With a = 0.2, m = floor(0.2 * 5) = 1, u = the 2nd largest = 0.25: only 0.30 exceeds it.
    X = np.array([0.10, 0.30, 0.20, 0.25, 0.15])[:, None] * np.ones((1, 784))   # (5, 784)
    u = choose_ink_limit(X, 0.2)
    assert u == pytest.approx(0.25)
    P = rows_with_top([0.99] * 5)                                     # sure of every one
    assert not_sure(P, 0.5, X, u).tolist() == [False, True, False, False, False]
    assert not_sure(P, 0.995, X, u).all()                             # either test is enough
    assert choose_ink_limit(X.reshape(5, 28, 28), 0.0) == pytest.approx(0.30)   # 28x28 images too: none over


@pytest.mark.parametrize("X, u, name", [
    (np.full((2, 784), 0.1), None, "ink_limit"),                      # X without a limit
    (None, 0.3, "ink_limit"),                                         # a limit without X
    (np.full((3, 784), 0.1), 0.3, "X.shape"),                         # not one image per row of P
    (np.full((2, 100), 0.1), 0.3, "X.shape"),
    (np.full((2, 784), 25), 0.3, "X"),                                # bytes, not [0, 1]
    (np.full((2, 784), 0.1), 1.5, "ink_limit"),
])
def test_not_sure_refuses_bad_ink_arguments(X, u, name):
    with pytest.raises(OptionError) as caught:
        not_sure(rows_with_top([0.9, 0.5]), 0.6, X, u)
    assert caught.value.name == name and "\n" not in str(caught.value)


# The rule stored in a model file, and what predict and the page answer with it.

import json  # noqa: E402

from numpynn import serialize  # noqa: E402
from numpynn.abstain import DEV_RATE, INK_RATE, apply_rule, choose_rule  # noqa: E402
from numpynn.model import mlp  # noqa: E402

from .conftest import run_cli  # noqa: E402

FAST = ["--hidden", "16", "--epochs", "2", "--batch-size", "16", "--dev-size", "40", "--quiet"]


def test_choose_rule_and_apply_rule():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(10) * 0.3, 400)
    X = rng.random((400, 784)) * 0.4
    rule = choose_rule(P, X)
    assert rule == {"threshold": choose_threshold(P, DEV_RATE), "ink_limit": choose_ink_limit(X, INK_RATE),
                    "dev_rate": DEV_RATE}
    assert (apply_rule(rule, P, X) == not_sure(P, rule["threshold"], X, rule["ink_limit"])).all()
    assert apply_rule(rule, P, X).mean() <= DEV_RATE + INK_RATE
    assert not apply_rule(None, P, X).any()  # a file without a rule: always an answer


def test_train_stores_the_rule_chosen_on_the_dev_set(tmp_path, tiny_mnist, capsys):
    from numpynn.data import load_mnist

    code, _, err = run_cli(capsys, "train", "--data", tiny_mnist, *FAST, "--out", tmp_path / "m.npz")
    assert code == 0, err
    model, header = serialize.load_model(tmp_path / "m.npz")
    splits = load_mnist(data_dir=tiny_mnist, dev_size=40, seed=0, progress=False)
    assert header["not_sure"] == choose_rule(model.predict_proba(splits.X_dev), splits.X_dev)


def _model_with_rule(path, rule):
    model = mlp([784, 16, 10], rng=np.random.default_rng(0))
    serialize.save_model(path, model, {} if rule is None else {"not_sure": rule})
    return path


def _seven_png(path):
    from PIL import Image, ImageDraw

    picture = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(picture).line([(70, 60), (210, 60), (120, 230)], fill=255, width=18)
    picture.save(path)
    return path


@pytest.mark.parametrize("rule, unsure", [
    ({"threshold": 0.0, "ink_limit": 0.0}, True),    # any ink is too much
    ({"threshold": 1.0, "ink_limit": 1.0}, True),    # never sure enough
    ({"threshold": 0.0, "ink_limit": 1.0}, False),   # always sure
    (None, False),                                   # no rule in the file
])
def test_predict_answers_not_sure_by_the_files_rule(tmp_path, capsys, rule, unsure):
    model = _model_with_rule(tmp_path / "m.npz", rule)
    picture = _seven_png(tmp_path / "seven.png")
    code, out, err = run_cli(capsys, "predict", model, picture, "--json")
    assert code == 0, err
    assert json.loads(out)[0]["not_sure"] is unsure
    code, out, err = run_cli(capsys, "predict", model, picture)
    assert code == 0 and ("not sure  (maybe " in out) is unsure


@pytest.mark.parametrize("rule", [{"threshold": 2, "ink_limit": 0.3}, {"threshold": 0.5}, "sure",
                                  {"threshold": float("nan"), "ink_limit": 0.3}, {"threshold": True, "ink_limit": 0}])
def test_a_bad_rule_in_a_file_is_one_line(tmp_path, rule):
    _model_with_rule(tmp_path / "m.npz", rule)
    with pytest.raises(serialize.ModelFileError, match="not_sure") as caught:
        serialize.load_model(tmp_path / "m.npz")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("rule, unsure", [({"threshold": 0.0, "ink_limit": 0.0}, True),
                                          ({"threshold": 0.0, "ink_limit": 1.0}, False)])
def test_the_page_is_told_not_sure(tmp_path, rule, unsure):
    from .test_serve import local_client

    from numpynn.web.app import create_app

    folder = tmp_path / "models"
    folder.mkdir()
    _model_with_rule(folder / "m.npz", rule)
    picture = _seven_png(tmp_path / "s.png").read_bytes()
    with local_client(create_app(folder)) as client:
        answer = client.post("/api/predict", files={"image": ("s.png", picture, "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["not_sure"] is unsure
