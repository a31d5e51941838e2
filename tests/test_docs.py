"""docs/math.md, docs/seed-fast.md, docs/conv.md, docs/backprop.md and the code must say the same thing.

The convention, for every ```python block in those pages: the nearest non-blank line above its opening fence
is a marker, one of
    <!-- from numpynn/seed.py -->   the block is quoted from that file (a path from the repository root):
                                    every non-empty line, stripped of surrounding whitespace, must be a line
                                    of the file, also stripped. Lines may be left out, never changed.
    <!-- example -->                the block is a usage example, not a quote: it must run.
A python block without a marker fails, so no quote escapes the check by accident.
"""
import contextlib
import inspect
import io
import pathlib
import re

import pytest

from numpynn import seed, seed_fast

REPO = pathlib.Path(__file__).resolve().parents[1]
MATH = REPO / "docs" / "math.md"
FAST = REPO / "docs" / "seed-fast.md"
PAGES = [MATH, FAST, REPO / "docs" / "conv.md", REPO / "docs" / "backprop.md"]  # the pages whose code blocks are checked
QUOTE = re.compile(r"<!--\s*from\s+(\S+)\s*-->")
EXAMPLE = re.compile(r"<!--\s*example\s*-->")
# The functions the issue asks the page to explain; every other public function of the module must be named too.
ISSUE_FUNCTIONS = [
    "init_params", "ReLU", "derivative_ReLU", "softmax", "one_hot", "forward_propagation", "cross_entropy",
    "backward_propagation", "update_params", "gradient_descent", "predict", "accuracy",
]
FAST_FUNCTIONS = ["ink_order", "pack_blocks", "block_forward", "block_backward", "gradients", "gradient_descent"]


def python_blocks(text: str):
    """(marker line, first line number, code) for every ```python block, in order."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip().startswith("```python"):
            above = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            blocks.append((above, i + 2, "\n".join(lines[i + 1 : end])))
            i = end
        i += 1
    return blocks


BLOCKS = [(page.name, *block) for page in PAGES for block in python_blocks(page.read_text(encoding="utf-8"))]
QUOTES = [(page, QUOTE.fullmatch(marker).group(1), line, code)
          for page, marker, line, code in BLOCKS if QUOTE.fullmatch(marker)]
EXAMPLES = [(page, line, code) for page, marker, line, code in BLOCKS if EXAMPLE.fullmatch(marker)]


def test_every_python_block_is_marked_as_a_quote_or_an_example():
    unmarked = [f"{page}:{line}" for page, marker, line, _ in BLOCKS
                if not (QUOTE.fullmatch(marker) or EXAMPLE.fullmatch(marker))]
    assert not unmarked, f"python blocks without a marker start at {unmarked}"
    assert sum(path == "numpynn/seed.py" for _, path, _, _ in QUOTES) >= 10  # math.md really quotes the seed
    assert sum(path == "numpynn/seed_fast.py" for _, path, _, _ in QUOTES) >= 3  # seed-fast.md, the fast path
    assert sum(path == "numpynn/conv.py" for _, path, _, _ in QUOTES) >= 5  # conv.md really quotes conv.py
    engine = ("numpynn/layers.py", "numpynn/losses.py", "numpynn/optim.py")  # backprop.md really quotes the engine
    assert all(sum(page == "backprop.md" and path == file for page, path, _, _ in QUOTES) >= 1 for file in engine)


@pytest.mark.parametrize("page, path, line, code", QUOTES, ids=[f"{pg}:{n}<-{p}" for pg, p, n, _ in QUOTES])
def test_quoted_lines_are_lines_of_the_code(page, path, line, code):
    source = REPO / path
    assert source.is_file(), f"docs/{page} line {line}: quotes {path}, which does not exist"
    code_lines = {text.strip() for text in source.read_text(encoding="utf-8").splitlines()}
    changed = [text.strip() for text in code.splitlines() if text.strip() and text.strip() not in code_lines]
    assert not changed, f"docs/{page}, block at line {line}: not lines of {path}:\n" + "\n".join(changed)


@pytest.mark.parametrize("page, line, code", EXAMPLES, ids=[f"{pg}:{n}" for pg, n, _ in EXAMPLES])
def test_examples_run(page, line, code):
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"docs/{page}:{line}", "exec"), {})


def public_functions(module) -> set[str]:
    return {name for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}


@pytest.mark.parametrize("module, page, expected", [(seed, MATH, ISSUE_FUNCTIONS), (seed_fast, FAST, FAST_FUNCTIONS)],
                         ids=["seed", "seed_fast"])
def test_every_public_function_of_the_seed_is_named(module, page, expected):
    text = page.read_text(encoding="utf-8")
    public = public_functions(module)
    assert set(expected) <= public, f"the list names a function {module.__name__} no longer has"
    missing = sorted(name for name in public if f"`{name}`" not in text)
    assert not missing, f"docs/{page.name} never names these functions of {module.__name__}: {missing}"


# ----------------------------------------------------------------------------------------------------------
# README's Troubleshooting section quotes real runs: each `$ numpynn ...` line is run again here, and what it
# prints must still be what the README shows (the port and the model's own numbers aside, as said below).

README = REPO / "README.md"


def troubleshooting_runs() -> list[tuple[str, list[str]]]:
    """(command, the lines printed after it) for every `$ ` line in the plain ``` blocks of README's
    Troubleshooting section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Troubleshooting\n"):]
    section = section[: section.index("\n## ", 1)]
    runs, fence = [], None  # fence: the opening line of the block we are in, else None
    for line in section.splitlines():
        if line.startswith("```"):
            fence = None if fence else line
        elif fence == "```" and line.startswith("$ "):
            runs.append((line[2:], []))
        elif fence == "```" and runs:
            runs[-1][1].append(line)
    return runs


RUNS = troubleshooting_runs()


def test_the_troubleshooting_section_quotes_each_problem():
    commands = [command.split()[:2] for command, _ in RUNS]
    assert [["numpynn", "train"], ["numpynn", "train"], ["numpynn", "serve"], ["mkdir", "seen"],
            ["numpynn", "predict"]] == commands
    assert sum(line.startswith("numpynn: error: ") for _, lines in RUNS for line in lines) == 3


def numpynn(argv, cwd, **env):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "numpynn", *argv], cwd=cwd, capture_output=True, text=True,
                            timeout=300, env={**os.environ, **env})
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]  # no progress bars


@pytest.mark.mnist
def test_the_troubleshooting_messages_are_what_numpynn_prints(tmp_path, mnist_dir):
    import shlex
    import socket

    from numpynn import serialize
    from numpynn.train import Run, make_config

    for command, lines in RUNS:
        argv = shlex.split(command)
        if argv[0] == "mkdir":
            (tmp_path / argv[1]).mkdir()
            continue
        argv = argv[1:]
        if argv[0] == "serve":  # the README's run found port 8000 taken; here a port this test holds
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                port = busy.getsockname()[1]
                printed = numpynn([*argv, "--port", str(port)], tmp_path, NUMPYNN_MODELS=str(tmp_path))
            assert printed == [line.replace(":8000 ", f":{port} ") for line in lines], command
        elif argv[0] == "predict":  # any model: the digit's numbers are the model's, the rest is numpynn's
            serialize.save_model(tmp_path / argv[1], Run.start(make_config("mlp", hidden=(16,))).model, {})
            (tmp_path / "docs" / "img").mkdir(parents=True)
            (tmp_path / argv[2]).write_bytes((REPO / argv[2]).read_bytes())
            printed = numpynn(argv, tmp_path)
            number = r"\d{1,3}\.\d%"
            assert re.fullmatch(rf"docs/img/seven\.jpg: \d  \({number}; then \d: {number}, \d: {number}\)", printed[0])
            assert re.fullmatch(rf"docs/img/seven\.jpg: \d  \({number}; then \d: {number}, \d: {number}\)", lines[0])
            assert printed[1:] == lines[1:] and (tmp_path / "seen" / "seven.input.png").is_file()
        else:  # train: with the real MNIST found through $NUMPYNN_DATA, as in the README's runs
            printed = numpynn(argv, tmp_path, NUMPYNN_DATA=str(mnist_dir))
            assert printed[-len(lines):] == lines, command
