"""The worked example of docs/backprop.md (section 5), recomputed by numpynn's own layers.

The page writes one training step of a 2-2-2 network by hand. Every number of it sits in a ```text block
that follows the marker line <!-- worked example -->, one quantity per line:

    name = value                    e.g.  Z1 = [[0.8, -0.1]]
    name = arithmetic = value       e.g.  Z1[0,0] = 1.0*0.5 + 2.0*0.1 + 0.1 = 0.8

`name` is a Python expression over the quantities below (Z1, Z1[0,0], at(0.01)["L_new"] for the same step
with lr = 0.01, ...). The inputs (X, y, W1, b1,
W2, b2, lr) are read from the page and the network is built from them with numpynn.layers, the loss from
numpynn.losses and the step from numpynn.optim, in float64. Then every value on the page must equal numpynn's to
the digits written (0.5744 stands for anything in [0.57435, 0.57445]), and every hand calculation must give its
value up to the rounding of its inputs. So the page cannot drift from the code, nor its arithmetic from itself.
"""
import ast
import math
import pathlib
import re

import numpy as np
import pytest

from numpynn.layers import Dense, ReLU
from numpynn.losses import softmax, softmax_cross_entropy
from numpynn.model import Sequential
from numpynn.optim import SGD

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "backprop.md"
MARKER = "<!-- worked example -->"
INPUTS = ("X", "y", "W1", "b1", "W2", "b2", "lr")
# Every quantity the page must show, so that none of them is left to the reader's trust.
REQUIRED = INPUTS + ("Z1", "A1", "Z2", "E", "P", "Y", "L", "dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1",
                     "W1_new", "b1_new", "W2_new", "b2_new", "g2", "L_taylor", "L_new")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
MATH = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt}


def worked_lines(text: str):
    """(line number, line) for every non-empty line of the ```text blocks that follow MARKER."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        start = next(j for j in range(i + 1, len(lines)) if lines[j].strip())
        assert lines[start].strip() == "```text", f"line {start + 1}: {MARKER} must be followed by a ```text block"
        end = next(j for j in range(start + 1, len(lines)) if lines[j].strip() == "```")
        yield from ((j + 1, lines[j].strip()) for j in range(start + 1, end) if lines[j].strip())


def parse(text: str) -> list[tuple[int, str, list[str], str]]:
    """(line number, name, [arithmetic, ...], value) for every line of the worked blocks."""
    rows = []
    for number, line in worked_lines(text):
        parts = [part.strip() for part in line.split(" = ")]
        assert len(parts) >= 2, f"docs/backprop.md line {number}: expected 'name = value', got {line!r}"
        rows.append((number, parts[0], parts[1:-1], parts[-1]))
    return rows


def one_step(X, y, W1, b1, W2, b2, lr) -> dict:
    """Every quantity of the example, computed by numpynn in float64."""
    dense1 = Dense(2, 2, W=np.array(W1, np.float64), dtype=np.float64)
    dense2 = Dense(2, 2, W=np.array(W2, np.float64), dtype=np.float64)
    dense1.params["b"][...], dense2.params["b"][...] = b1, b2
    relu = ReLU()
    model = Sequential([dense1, relu, dense2])
    X, y = np.array(X, np.float64), np.array(y)
    q = {"X": X, "y": y, "W1": dense1.params["W"].copy(), "b1": dense1.params["b"].copy(),
         "W2": dense2.params["W"].copy(), "b2": dense2.params["b"].copy(), "lr": lr}
    q["Z1"] = dense1.forward(X)                   # the layers one at a time, to see inside
    q["A1"] = relu.forward(q["Z1"])
    q["Z2"] = dense2.forward(q["A1"])
    q["E"] = np.exp(q["Z2"] - q["Z2"].max(axis=1, keepdims=True))
    q["P"] = softmax(q["Z2"])
    q["Y"] = np.eye(2)[y]
    q["L"], q["dZ2"] = softmax_cross_entropy(q["Z2"], y, K=2)
    assert np.array_equal(model.forward(X), q["Z2"])  # the same forward as the model's
    q["dA1"] = dense2.backward(q["dZ2"])          # what Sequential.backward does, one layer at a time
    q["dZ1"] = relu.backward(q["dA1"])
    dense1.backward(q["dZ1"])
    q["dW1"], q["db1"], q["dW2"], q["db2"] = model.grads()
    q["g2"] = sum(float((g**2).sum()) for g in model.grads())  # the squared norm of the whole gradient
    q["L_taylor"] = q["L"] - lr * q["g2"]         # what the first-order Taylor expansion predicts
    SGD(lr).step(model.params(), model.grads())
    q["W1_new"], q["b1_new"], q["W2_new"], q["b2_new"] = (theta.copy() for theta in model.params())
    q["L_new"] = softmax_cross_entropy(model.forward(X), y, K=2)[0]
    q["at"] = lambda other_lr: one_step(X, y, W1, b1, W2, b2, other_lr)  # the same step with another lr
    return q


def tolerance(number: str) -> float:
    """Half a unit in the last digit written, and never more than in the fourth decimal: 0.5744 stands for
    [0.57435, 0.57445], and 0.8 for [0.79995, 0.80005]."""
    decimals = len(number.split(".")[1].split("e")[0].split("E")[0]) if "." in number else 0
    return 0.5 * 10.0 ** -max(decimals, 4) + 1e-12


def mismatches(text: str) -> list[str]:
    """Every disagreement between the worked example on the page and numpynn; empty if there is none."""
    rows = parse(text)
    given = {name: ast.literal_eval(value) for _, name, _, value in rows if name in INPUTS}
    missing = [name for name in INPUTS if name not in given]
    if missing:
        return [f"the page never gives the inputs {missing}"]
    q = one_step(**given)
    problems = []
    for number, name, arithmetic, value in rows:
        written = NUMBER.findall(value)
        try:
            computed = np.atleast_1d(np.asarray(eval(name, {"np": np}, dict(q)), np.float64)).ravel()
        except Exception as error:  # a name the example does not have
            problems.append(f"line {number}: {name!r} is not a quantity of the example ({error})")
            continue
        if len(written) != computed.size or np.shape(ast.literal_eval(value)) != np.shape(eval(name, {}, dict(q))):
            problems.append(f"line {number}: {name} = {value}, but numpynn's {name} has shape "
                            f"{np.shape(eval(name, {}, dict(q)))}")
            continue
        for w, c in zip(written, computed):
            if abs(float(w) - c) > tolerance(w):
                problems.append(f"line {number}: {name} = {value}, but numpynn computes {np.round(computed, 6)}")
                break
        for expression in arithmetic:  # the hand calculation, from rounded inputs: allow for their rounding
            result = eval(expression, {"__builtins__": {}}, MATH)
            if abs(result - float(written[0])) > 6 * tolerance(written[0]):
                problems.append(f"line {number}: {expression} = {result:.6g}, not {value}")
    return problems


def test_every_number_of_the_worked_example_is_numpynns():
    problems = mismatches(DOC.read_text(encoding="utf-8"))
    assert not problems, "docs/backprop.md's worked example disagrees with numpynn:\n" + "\n".join(problems)


def test_the_page_shows_every_quantity():
    names = {name for _, name, _, _ in parse(DOC.read_text(encoding="utf-8"))}
    assert not set(REQUIRED) - names, f"the worked example never shows {sorted(set(REQUIRED) - names)}"


def test_the_step_lowers_the_loss():
    rows = parse(DOC.read_text(encoding="utf-8"))
    q = one_step(**{name: ast.literal_eval(value) for _, name, _, value in rows if name in INPUTS})
    assert q["L_new"] < q["L"]


@pytest.mark.parametrize("name", ["L", "W1", "dW1", "W2_new"])
def test_a_wrong_number_on_the_page_is_caught(name):
    """Change one digit of one line of the page: the check above must fail."""
    text = DOC.read_text(encoding="utf-8")
    number, _, _, value = next(row for row in parse(text) if row[1] == name)
    lines = text.splitlines()
    first = NUMBER.search(value).group()
    wrong = value.replace(first, f"{float(first) + 0.01:.4f}", 1)
    lines[number - 1] = lines[number - 1].replace(value, wrong)
    assert mismatches("\n".join(lines)), f"changing {name} from {value} to {wrong} went unnoticed"
