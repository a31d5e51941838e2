"""python -m numpynn.models TRAINED.npz [--out FILE]: the built-in model, made from a trained model file.

The weights are cast to float32 (half the size of float64; for the cnn-affine model the test accuracy does
not change, see docs/builtin-model.md), measured again on the dev and test sets of the header's own split,
and written with the header of the training run plus `name`, the new metrics and `weights_sha256`
(serialize.weights_sha256 of the arrays as written). `make builtin-model` runs the training and then this.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from . import BUILTIN, builtin_label, builtin_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numpynn.models", description=__doc__.splitlines()[0])
    parser.add_argument("trained", metavar="TRAINED.npz", help="a model file written by numpynn train")
    parser.add_argument("--out", default=str(builtin_path()), help="the file to write (default: the package's "
                        f"{BUILTIN}.npz)")
    parser.add_argument("--data", metavar="DIR", help="folder with the MNIST files (default: $NUMPYNN_DATA, ...)")
    args = parser.parse_args(argv)

    from ..data import load_mnist
    from ..model import Sequential
    from ..serialize import ModelFileError, join, load_model, save_model, weights_sha256
    from ..train import evaluate

    try:
        trained, header = load_model(args.trained)
    except ModelFileError as error:
        print(f"numpynn: error: {error}", file=sys.stderr)
        return 1
    if header["kind"] != "model":
        print(f"numpynn: error: {args.trained}: a checkpoint; give the model file training wrote", file=sys.stderr)
        return 1
    spec = [{**layer, "dtype": "float32"} if "dtype" in layer else layer for layer in header["architecture"]]
    model = Sequential.from_spec(spec, state=trained.state_dict())  # load_state_dict casts to the layers' dtype
    model.temperature = trained.temperature  # and the header's not_sure rule is kept below, as trained
    dataset = header["dataset"]
    splits = load_mnist(dataset["name"], args.data, dev_size=dataset["dev_size"], seed=dataset["split_seed"],
                        progress=False)
    metrics = dict(header["metrics"])
    for split, X, y in (("dev", splits.X_dev, splits.y_dev), ("test", splits.X_test, splits.y_test)):
        loss, accuracy = evaluate(model, X, y)
        before = header["metrics"].get(f"{split}_accuracy")
        print(f"{split} accuracy: {100 * accuracy:.2f} % with float32 weights"
              + (f" ({100 * before:.2f} % as trained)" if isinstance(before, float) else ""))
        metrics[f"{split}_accuracy"], metrics[f"{split}_loss"] = accuracy, loss
    kept = {key: value for key, value in header.items() if key not in ("format_version", "kind", "architecture")}
    new_header = {**kept, "name": BUILTIN, "metrics": metrics,
                  "weights_sha256": weights_sha256(join("model", model.state_dict()))}
    out = save_model(args.out, model, new_header)
    _, check = load_model(out)  # read back: the hash and every other check of serialize.load
    print(f"Wrote {out} ({out.stat().st_size:,} bytes): {builtin_label(check)}, "
          f"weights_sha256 {check['weights_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
