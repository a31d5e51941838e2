"""numpynn: a neural network written from scratch in NumPy that learns to read handwritten digits.

Start with `numpynn.seed`, the seed's 784-10-10 network function by function, and `docs/math.md`,
its derivation line by line.
"""
from .data import DataError

__version__ = "0.1.0"
__all__ = ["DataError", "__version__"]
