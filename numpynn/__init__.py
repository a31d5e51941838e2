"""numpynn: a neural network written from scratch in NumPy that learns to read handwritten digits.

Start with `numpynn.seed`, the seed's 784-10-10 network function by function, and `docs/math.md`,
its derivation line by line. The engine (layers, losses, optim, model; config and train) grows from there;
`numpynn.MLPClassifier` wraps it in scikit-learn's conventions.
"""
from .data import DataError

__version__ = "0.1.0"
__all__ = ["DataError", "MLPClassifier", "__version__"]


def __getattr__(name):
    # Imported on first use: `import numpynn` stays light for code that only wants the data or the seed.
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module 'numpynn' has no attribute {name!r}")
