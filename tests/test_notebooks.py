"""The notebooks in notebooks/: each runs top to bottom without an error, on a small slice of MNIST
(NUMPYNN_SMALL=1), in a fresh kernel of this interpreter, in at most 60 seconds; and each stored .ipynb is
its source in notebooks/src/, built and executed (notebooks/build.py), with no error among its outputs.

The notebooks are executed in memory: the stored files, with their full-data outputs, are never rewritten
here."""
import importlib.util
import time

import pytest

from tests.conftest import REPO

pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra: pip install -e '.[test]'")
import nbformat  # noqa: E402

NOTEBOOKS = REPO / "notebooks"
LIMIT_S = 60  # per notebook, kernel start included, on a 2-core machine


def load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()
SOURCES = build.sources()


def test_every_source_has_its_notebook():
    assert len(SOURCES) >= 5
    assert [p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb"))] == [p.stem for p in SOURCES]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_notebook_is_its_source_executed(source):
    """Edit the source, then run build.py: the stored notebook must hold the same cells, every code cell
    executed in order, and no error output."""
    stored = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4)
    nbformat.validate(stored)
    expected = build.notebook_from_source(source)
    assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in expected.cells], \
        f"{source.stem}.ipynb differs from src/{source.name}: run notebooks/build.py {source.stem[:2]}"
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "not executed top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0].get("ename")
    assert any(o.output_type == "display_data" and "image/png" in o.data for c in code for o in c.outputs) \
        or source.stem.startswith("02"), "no figure among the outputs"


@pytest.mark.mnist
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_small(source, mnist_dir, monkeypatch):
    """Every cell, in a fresh kernel, with NUMPYNN_SMALL=1; nbclient raises CellExecutionError, naming the
    cell and the traceback, on the first that fails."""
    monkeypatch.setenv("NUMPYNN_SMALL", "1")
    monkeypatch.setenv("NUMPYNN_DATA", str(mnist_dir))
    nb = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4)
    start = time.perf_counter()
    build.execute(nb, timeout=LIMIT_S * 2)
    seconds = time.perf_counter() - start
    print(f"{source.stem}: {seconds:.1f} s")
    assert seconds <= LIMIT_S, f"{source.stem} took {seconds:.0f} s with NUMPYNN_SMALL=1; the limit is {LIMIT_S} s"
