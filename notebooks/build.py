"""Build the notebooks: each notebooks/src/NN-name.py becomes notebooks/NN-name.ipynb, executed top to bottom
on the full MNIST data, so the stored notebook shows real numbers and figures.

    .venv/bin/python notebooks/build.py          # every notebook (a few minutes on two cores)
    .venv/bin/python notebooks/build.py 03 06    # those whose names start with 03 or 06
    .venv/bin/python notebooks/build.py --text-only 03   # only the text changed: keep the stored outputs

The sources are plain Python in the "percent" format that Jupytext, VS Code and PyCharm read: a line
`# %%` starts a code cell, `# %% [markdown]` a text cell whose lines are Markdown behind `# `. They are
what a reviewer reads and what you edit; the .ipynb files are built from them, never edited by hand.

tests/test_notebooks.py uses the same functions to run every notebook in a fresh kernel with
NUMPYNN_SMALL=1, in memory: the stored files are only ever written here.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent  # notebooks/: every notebook runs with this as its folder
SRC = HERE / "src"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def sources() -> list[pathlib.Path]:
    """The notebook sources, in reading order."""
    return sorted(SRC.glob("[0-9][0-9]-*.py"))


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Percent-format text -> [(kind, source)], kind "code" or "markdown". Markdown lines lose their "# "."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif not cells:
            if line.strip():
                raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
        elif cells[-1][0] == "markdown":
            if line and not line.startswith("#"):
                raise ValueError(f"a markdown cell's lines must start with '#': {line!r}")
            cells[-1][1].append(line[2:] if line.startswith("# ") else line[1:])
        else:
            cells[-1][1].append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def notebook_from_source(path: pathlib.Path) -> nbformat.NotebookNode:
    """The notebook a source describes, not yet executed."""
    nb = nbformat.v4.new_notebook()
    for kind, source in parse_percent(path.read_text(encoding="utf-8")):
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: rebuilding an unchanged source gives the same file
    return nb


class ThisPython(KernelSpecManager):
    """The one kernel this script and the tests use: this very interpreter (the venv's python), whatever
    a `python3` kernelspec elsewhere on the machine (~/.local/share/jupyter, /usr/share/jupyter) points at."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=KERNELSPEC["display_name"], language="python")


def execute(nb: nbformat.NotebookNode, timeout: int = 900) -> float:
    """Run every cell of nb in a fresh kernel, in notebooks/, filling in the outputs (in memory). The kernel
    inherits this process's environment, NUMPYNN_SMALL and NUMPYNN_DATA included. Raises
    nbclient.exceptions.CellExecutionError on the first cell that fails. Returns the seconds it took."""
    km = KernelManager(kernel_name=KERNELSPEC["name"], kernel_spec_manager=ThisPython())
    client = NotebookClient(nb, km=km, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    env = {name: value for name, value in os.environ.items() if name != "MPLBACKEND"}  # figures inline
    start = time.perf_counter()
    client.execute(env=env)
    return time.perf_counter() - start


def keep_outputs(nb: nbformat.NotebookNode, stored_path: pathlib.Path) -> None:
    """Give nb's code cells the outputs of the stored notebook's; refuse if any code cell differs, since its
    outputs would then not be its own."""
    stored = nbformat.read(stored_path, as_version=4)
    old = [cell for cell in stored.cells if cell.cell_type == "code"]
    new = [cell for cell in nb.cells if cell.cell_type == "code"]
    if [cell.source for cell in old] != [cell.source for cell in new]:
        raise SystemExit(f"{stored_path.name}: the code changed, so its outputs must be made again: "
                         f"build without --text-only")
    for new_cell, old_cell in zip(new, old):
        new_cell.outputs, new_cell.execution_count = old_cell.outputs, old_cell.execution_count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="build only the notebooks whose names start with these")
    parser.add_argument("--text-only", action="store_true",
                        help="do not execute: take every code cell's outputs from the stored notebook, which "
                             "must have the very same code cells (for edits to the Markdown cells only)")
    args = parser.parse_args(argv)
    if os.environ.get("NUMPYNN_SMALL", "") not in ("", "0"):
        parser.error("NUMPYNN_SMALL is set: the stored notebooks must show full-data runs; unset it")
    chosen = [p for p in sources() if not args.prefixes or p.name.startswith(tuple(args.prefixes))]
    if not chosen:
        parser.error(f"no source in {SRC} matches {args.prefixes}")
    for path in chosen:
        nb = notebook_from_source(path)
        out = HERE / f"{path.stem}.ipynb"
        if args.text_only:
            keep_outputs(nb, out)
            seconds = 0.0
        else:
            seconds = execute(nb)
        nbformat.validate(nb)
        tmp = out.with_suffix(".ipynb.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(out)  # whole or not at all
        print(f"{out.relative_to(HERE.parent)}: " + ("text updated" if args.text_only else f"executed in {seconds:.1f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
