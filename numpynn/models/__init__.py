"""The built-in model: a trained network shipped inside the package, so that `numpynn predict` and
`numpynn serve` work before anything has been trained.

`cnn-affine.npz` here is an ordinary model file (see serialize.py) whose header also carries its `name`, its
metrics and `weights_sha256`, which serialize.load checks. `python -m numpynn.models TRAINED.npz` (run by
`make builtin-model`) makes it from a trained model; docs/builtin-model.md says how and with which numbers.
"""
from __future__ import annotations

import pathlib

BUILTIN = "cnn-affine"  # the preset and augmentation it was trained with: numpynn train --preset cnn --augment affine


def builtin_path() -> pathlib.Path:
    """Where the built-in model file lies in this installation (beside this module: package data)."""
    return pathlib.Path(__file__).with_name(f"{BUILTIN}.npz")


def builtin_label(header: dict) -> str:
    """How the interfaces name it: "built-in cnn-affine (99.53 % on MNIST test)"."""
    accuracy = header.get("metrics", {}).get("test_accuracy")
    dataset = header.get("dataset", {}).get("name", "mnist").upper()
    shown = f" ({100 * accuracy:.2f} % on {dataset} test)" if isinstance(accuracy, (int, float)) else ""
    return f"built-in {header.get('name', BUILTIN)}{shown}"
