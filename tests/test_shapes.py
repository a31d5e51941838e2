"""numpynn/shapes.py is the one place for MNIST's sizes: every module that needs 28, 784 or 10 reads them there."""
import ast
import inspect
import pathlib

from numpynn import conv, losses, model, seed, seed_fast, serialize, shapes
from numpynn.web import inside

PACKAGE = pathlib.Path(shapes.__file__).parent


def test_the_sizes_are_mnists():
    assert (shapes.SIDE, shapes.D, shapes.K) == (28, 784, 10)
    assert shapes.D == shapes.SIDE**2


def test_the_modules_read_them_from_shapes():
    assert (seed.D, seed.K) == (shapes.D, shapes.K)
    assert (inside.SIDE, inside.D, inside.K) == (shapes.SIDE, shapes.D, shapes.K)
    assert seed_fast.SIDE == shapes.SIDE
    assert serialize.shapes is shapes
    assert inspect.signature(model.mlp).parameters["sizes"].default == (shapes.D, 800, shapes.K)
    assert inspect.signature(losses.softmax_cross_entropy).parameters["K"].default == shapes.K
    assert inspect.signature(conv.Unflatten).parameters["shape"].default == (1, shapes.SIDE, shapes.SIDE)


def test_no_module_writes_the_sizes_again():
    """No number 784 in the code of these modules, and no (.., 28, 28) shape: prose may say them, code reads shapes."""
    for name in ["seed.py", "seed_fast.py", "serialize.py", "model.py", "conv.py", "web/inside.py"]:
        tree = ast.parse((PACKAGE / name).read_text())
        numbers = [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and type(node.value) is int]
        assert not [node.lineno for node in numbers if node.value == 784], name
        pairs = [(a.value, b.value, a.lineno) for a, b in zip(numbers, numbers[1:])]
        assert not [line for a, b, line in pairs if a == b == 28], name
