"""The models the page may use, each under a name: the MODEL file given to `numpynn serve` (if any), then the
built-in model (if given; named BUILTIN_NAME, which says so on the page's menu), then every model file in the
models folder (where the Learn tab saves its runs).

A client chooses a model by name only. Names are looked up in this registry's own dictionary, built by
listing the folder; nothing a request sends ever becomes part of a path.

Models are loaded once and kept; a file that changes on disk (same name, new size or time) is loaded again
the next time the folder is listed. Files that are not numpynn models (a checkpoint, a corrupt file) are
skipped with their reason, which GET /api/models reports.
"""
from __future__ import annotations

import os
import pathlib
import threading
from dataclasses import dataclass, field

from ..models import BUILTIN
from ..serialize import ModelFileError, load_model
from .inside import Inside

BUILTIN_NAME = f"{BUILTIN} (built-in)"  # the page's menu shows names as they are: this one says what it is
MAX_MODELS = 100  # listed at most, sorted by name: a folder of thousands of files must not stall the page


def default_models_dir() -> pathlib.Path:
    """$NUMPYNN_MODELS, else $XDG_DATA_HOME/numpynn/models, else ~/.local/share/numpynn/models.

    A data folder, not a cache: models trained on the page are work that nobody wants cleaned away."""
    if os.environ.get("NUMPYNN_MODELS"):
        return pathlib.Path(os.environ["NUMPYNN_MODELS"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    root = pathlib.Path(xdg) if os.path.isabs(xdg) else pathlib.Path.home() / ".local" / "share"
    return root / "numpynn" / "models"


@dataclass
class Entry:
    """One usable model: its name, where it came from, the loaded network and what the page shows of it."""

    name: str
    path: pathlib.Path
    stamp: tuple[int, int]  # (size, mtime_ns) when loaded: a change means load again
    model: object
    header: dict
    inside: Inside = field(repr=False)
    builtin: bool = False  # the model shipped inside numpynn (numpynn/models)

    def describe(self) -> dict:
        metrics = self.header.get("metrics", {})
        return {
            "name": self.name,
            "file": self.path.name,
            "architecture": " | ".join(" -> ".join(_describe(layer) for layer in member["architecture"])
                                       for member in self.header.get("members", [self.header]))
                            + (f" | each on 5 views, moved {self.model.shift} px" if getattr(self.model, "shift", 0)
                               else ""),
            "parameters": int(self.model.n_params()),
            "test_accuracy": metrics.get("test_accuracy"),
            "dev_accuracy": metrics.get("dev_accuracy"),
            "builtin": self.builtin,
            "epochs": metrics.get("epochs"),
            "layers": self.inside.describe(),
        }


def _describe(layer: dict) -> str:
    kind = layer["type"]
    if kind == "Dense":
        return f"Dense {layer['D_in']}x{layer['D_out']}"
    if kind == "Conv2D":
        return f"Conv {layer['kernel']}x{layer['kernel']} {layer['C_in']}->{layer['C_out']}"
    return kind


class Models:
    """name -> Entry, for the pinned file, the built-in model and the folder's model files."""

    def __init__(self, folder, pinned=None, builtin=None):
        self.folder = pathlib.Path(folder)
        self.pinned = pathlib.Path(pinned) if pinned else None
        self.builtin = pathlib.Path(builtin) if builtin else None
        self._entries: dict[str, Entry] = {}
        self.skipped: list[dict] = []  # {"file", "reason"} for files that are not usable models
        self._lock = threading.Lock()  # the training thread adds models while requests read them

    def refresh(self) -> list[Entry]:
        """List the folder again: load new or changed files, forget removed ones. Returns the entries in
        order: the pinned model first, then the built-in one, then the folder's by name."""
        paths = []
        if self.pinned is not None:
            paths.append(self.pinned)
        if self.builtin is not None:
            paths.append(self.builtin)
        if self.folder.is_dir():
            found = sorted(p for p in self.folder.glob("*.npz")
                           if not p.name.endswith(".ckpt.npz") and not p.name.startswith("."))
            paths += found[:MAX_MODELS]
        entries, skipped = {}, []
        for path in paths:
            builtin = path is self.builtin
            name = BUILTIN_NAME if builtin else path.name[: -len(".npz")]
            if name in entries:  # the folder has a file named like the pinned one: the pinned one wins
                continue
            try:
                entries[name] = self._load(name, path, builtin)
            except ModelFileError as error:
                skipped.append({"file": path.name, "reason": str(error).replace(str(path), path.name)})
        with self._lock:
            self._entries, self.skipped = entries, skipped
        return list(entries.values())

    def _load(self, name: str, path: pathlib.Path, builtin: bool = False) -> Entry:
        try:
            st = path.stat()
        except OSError as error:
            raise ModelFileError(f"{path}: cannot be read ({error.strerror})") from None
        stamp = (st.st_size, st.st_mtime_ns)
        old = self._entries.get(name)
        if old is not None and old.path == path and old.stamp == stamp:
            return old
        model, header = load_model(path)
        if header.get("kind") != "model":
            raise ModelFileError(f"{path}: a {header.get('kind')} file, not a model file")
        try:
            inside = Inside(model)
        except ValueError as error:  # a network that does not read 28x28 digits
            raise ModelFileError(f"{path}: {error}") from None
        return Entry(name, path, stamp, model, header, inside, builtin)

    def get(self, name: str | None) -> Entry:
        """The entry called `name` (None: the first one). KeyError with a one-line message otherwise."""
        with self._lock:
            entries = self._entries
        if not entries:
            raise KeyError("no models yet: train one in the Learn tab, or start `numpynn serve MODEL.npz` "
                           "with a model from `numpynn train --out MODEL.npz`")
        if name is None:
            return next(iter(entries.values()))
        if name not in entries:
            shown = ", ".join(list(entries)[:10])
            raise KeyError(f"unknown model {name[:80]!r}: choose one of {shown} (GET /api/models)")
        return entries[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)
