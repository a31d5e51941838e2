"""The commands that use a trained model: evaluate, calibrate, predict, info, report, export, and
augment-preview (what the training augmentation makes of a few images)."""
from __future__ import annotations

import dataclasses
import json

from ..checks import OptionError
from ..config import TrainConfig, applies
from ..report import ReportConfig
from .common import (CommandError, UsageError, builtin_path_or_error, config_from_flags, flag_error,
                     load_model_file, make_folder, output_folder)

AUGMENT_PARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name.startswith("augment_"))
SCALE = 3  # augment-preview: each pixel a 3 x 3 square
# The most onnxruntime may differ from numpynn on the check batch, in the probabilities and in the logits
# relative to the largest |logit| (at least 1): float32 rounding of sums taken in another order is ~1e-6 of
# the values summed, so logits of 1e30 (huge but finite weights) may differ by 1e24 and still agree.
EXPORT_TOLERANCE = 1e-4


def cmd_evaluate(args) -> int:
    from .. import analysis
    from ..data import load_raw
    from ..metrics import report

    model, header = load_model_file(args.model)
    _, _, x_test, y_test = load_raw(args.dataset, args.data, progress=False)
    X = x_test.reshape(len(x_test), -1).astype("float32") / 255  # (N, 784), as the model was trained
    y = y_test.astype("int64")
    P = model.predict_proba(X)  # (N, 10) softmax(logits / T)
    result = report(y, P.argmax(axis=1))
    result["temperature"] = model.temperature
    result["ece"] = analysis.expected_calibration_error(P.max(axis=1), P.argmax(axis=1) == y)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Accuracy: {100 * result['accuracy']:.2f}%  ({result['n']} test images, model {args.model or 'built-in'})")
    calibrated = (f"temperature {model.temperature:.3f}" if model.temperature != 1 else
                  "not calibrated: `numpynn calibrate MODEL` fits a temperature")
    print(f"Expected calibration error: {100 * result['ece']:.2f}%  ({calibrated})")
    print("\nclass  precision  recall     f1  support")
    for row in result["per_class"]:
        print(f"{row['class']:>5}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}")
    print(f"macro F1 {result['macro_f1']:.4f}")
    print("\nconfusion matrix (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{k:>6}" for k in range(10)))
    for k, row in enumerate(result["confusion"]):
        print(f"{k:>5}" + "".join(f"{n:>6}" for n in row))
    return 0


def cmd_calibrate(args) -> int:
    import pathlib

    from ..data import load_mnist
    from ..serialize import ModelFileError, save_model
    from ..train import calibrate_and_choose_rule, evaluate

    out = pathlib.Path(args.out or args.model)
    if out.suffix != ".npz":
        raise UsageError(f"--out {out}: model files end in .npz; choose a name like model.npz")
    output_folder(out.parent, "--out", may_create=False, value=out)
    model, header = load_model_file(args.model)
    split = header.get("dataset", {})
    dev_size, seed = split.get("dev_size"), split.get("split_seed")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (dev_size, seed)) or not dev_size:
        raise CommandError(f"{args.model}: its header does not say which dev set it was trained beside "
                           f"(dataset.dev_size and split_seed); only files written by `numpynn train` can be calibrated")
    try:
        splits = load_mnist(args.dataset, args.data, dev_size=dev_size, seed=seed, progress=False)
    except OptionError as error:  # a dev set the data cannot give (as large as the training set, or larger)
        raise CommandError(f"{args.model}: its header's dataset.{error}; only files written by `numpynn train` "
                           "can be calibrated") from None
    fitted, rule = calibrate_and_choose_rule(model, splits.X_dev, splits.y_dev, splits.X_test, splits.y_test)
    test_loss, test_accuracy = evaluate(model, splits.X_test, splits.y_test)
    metrics = {**header.get("metrics", {}), **fitted, "test_loss": test_loss, "test_accuracy": test_accuracy}
    kept = {key: value for key, value in header.items()
            if key not in ("kind", "architecture", "format_version", "temperature", "metrics")}  # same weights
    try:
        save_model(out, model, {**kept, "metrics": metrics, "not_sure": rule})
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    print(f"Temperature {fitted['temperature']:.3f} fitted on {len(splits.y_dev):,} dev images; test expected "
          f"calibration error {100 * fitted['test_ece_uncalibrated']:.2f}% -> {100 * fitted['test_ece']:.2f}%; "
          f"test accuracy {100 * test_accuracy:.2f}% (unchanged)")
    print(f"Model: {out}")
    return 0


def cmd_predict(args) -> int:
    import pathlib

    import numpy as np

    from ..abstain import apply_rule
    from ..explain import saliency
    from ..images import ImageError, explanation_picture, prepare, to_png

    folder = output_folder(args.show_input, "--show-input", may_create=False) if args.show_input else None
    explained = output_folder(args.explain, "--explain", may_create=False) if args.explain else None
    if args.paths[0].endswith(".npz"):  # the first argument ending in .npz is the model
        if len(args.paths) == 1:
            raise UsageError(f"{args.paths[0]}: give the pictures to read after the model file")
        args.model, args.images = args.paths[0], args.paths[1:]
    else:
        args.model, args.images = None, args.paths
    model, header = load_model_file(args.model)
    try:
        digits = [prepare(path) for path in args.images]  # each (28, 28) in [0, 1]
    except ImageError as error:
        raise CommandError(str(error)) from None
    X = np.stack(digits).reshape(len(digits), -1)  # (n, 784)
    P = model.predict_proba(X)  # (n, 10)
    unsure = apply_rule(header.get("not_sure"), P, X)  # (n,) the model file's rule; none: always an answer
    results = []
    for path, digit, p, u in zip(args.images, digits, P, unsure):
        result = {"file": path, "digit": int(p.argmax()), "not_sure": bool(u),
                  "probabilities": [round(float(q), 6) for q in p]}
        try:
            if args.show_input:
                seen = folder / (pathlib.Path(path).stem + ".input.png")
                to_png(digit, seen, scale=8)
                result["input"] = str(seen)
            if args.explain:
                why = explained / (pathlib.Path(path).stem + ".explain.png")
                S = saliency(model, digit.reshape(1, -1), result["digit"])[0]  # (784,) gradient x input
                to_png(explanation_picture(digit, S), why, scale=8)
                result["explanation"] = str(why)
        except OSError as error:  # numpynn.atomic.OutputError: one line naming the file
            raise CommandError(str(error)) from None
        results.append(result)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        top = sorted(range(10), key=lambda k: -r["probabilities"][k])[:3]
        others = ", ".join(f"{k}: {100 * r['probabilities'][k]:.1f}%" for k in top[1:])
        answer = f"not sure  (maybe {r['digit']}: " if r["not_sure"] else f"{r['digit']}  ("
        print(f"{r['file']}: {answer}{100 * r['probabilities'][r['digit']]:.1f}%; then {others})")
        if "input" in r:
            print(f"  the network saw: {r['input']}")
        if "explanation" in r:
            print(f"  why (red: raised the score of {r['digit']}, blue: lowered it): {r['explanation']}")
    return 0


def cmd_info(args) -> int:
    from ..serialize import printable

    model, header = load_model_file(args.model)
    if args.json:
        print(json.dumps(header, indent=1))  # JSON escapes every control character itself
        return 0

    def say(line: str) -> None:  # the header's text is the file's: printed with its control characters escaped
        print(printable(line))

    say(f"{args.model or builtin_path_or_error()}: numpynn {header.get('kind', 'model')} file, format "
        f"{header['format_version']}, written by numpynn {header.get('numpynn_version', '?')}")
    for key in ("name", "weights_sha256"):  # the built-in model's
        if key in header:
            say(f"{key}: {header[key]}")
    for n, member in enumerate(header.get("members", [header]), start=1):  # an ensemble: one line per member
        which = f"member {n} of {len(header['members'])}: " if "members" in header else ""
        say(f"{which}architecture: {' -> '.join(_describe(layer) for layer in member['architecture'])}")
    if header.get("shift"):
        pixels = "1 pixel" if header["shift"] == 1 else f"{header['shift']} pixels"
        say(f"test-time shifts: every member also reads each image moved {pixels} up, down, left and right; the "
            f"probabilities are the mean over members and these 5 views")
    say(f"parameters: {model.n_params():,}")
    say(f"probabilities: softmax(logits / {model.temperature:.3g})" + (
        ", the temperature fitted on the dev set (calibrated)" if model.temperature != 1 else ", not calibrated"))
    rule = header.get("not_sure")
    if rule:
        say(f"not sure: when the top probability is below {rule['threshold']:.4g} or the ink covers more than "
            f"{100 * rule['ink_limit']:.1f}% of the 28x28 (chosen on the dev set)")
    for key in ("dataset", "preprocessing", "metrics", "config"):
        if key in header:
            items = header[key].items()
            if key == "config":  # only what applies: no channels for an MLP, no betas for SGD (--json has all)
                items = [(k, v) for k, v in items if applies(k, header[key])]
            say(f"{key}: " + ", ".join(f"{k}={v}" for k, v in items))
    return 0


def cmd_augment_preview(args) -> int:
    """A grid of --n random training digits: the top row as they are, each of the --rows rows below a fresh draw
    of the augmentation that `numpynn train` would apply with the same preset and flags."""
    import pathlib

    import numpy as np

    from ..data import load_raw
    from ..images import digit_grid, to_png
    from ..config import augmenter, make_config

    out = pathlib.Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the picture is a PNG; give a name ending in .png")
    output_folder(out.parent, "--out", may_create=False, value=out)
    for flag, value, most in (("--n", args.n, 100), ("--rows", args.rows, 20)):
        if not 1 <= value <= most:
            raise UsageError(f"{flag} = {value} is out of range: use 1 to {most}")
    if args.seed < 0:
        raise UsageError(f"--seed = {args.seed} is out of range: use 0 or more")
    given = {name: getattr(args, name) for name in AUGMENT_PARAMETERS if hasattr(args, name)}
    try:
        config = make_config(getattr(args, "preset", "mlp"), **given)
    except OptionError as error:
        raise flag_error(error) from None
    kind = args.augment or (config.augment if config.augment != "none" else "affine")
    config = dataclasses.replace(config, augment=kind)

    x_train = load_raw(args.dataset, args.data, progress=False)[0]      # (60000, 28, 28) uint8
    rng = np.random.default_rng([args.seed, 3])
    pick = rng.choice(len(x_train), size=min(args.n, len(x_train)), replace=False)
    X = x_train[pick].reshape(len(pick), -1).astype(np.float32) / 255   # (n, 784), as training sees them
    transform = augmenter(config)
    rows = [X] + [transform(X, rng) for _ in range(args.rows)]          # each (n, 784)
    try:
        to_png(digit_grid(rows), out, scale=SCALE)
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write it ({error.strerror or error})") from None
    names = [name for name in AUGMENT_PARAMETERS if applies(name, {"augment": kind})]
    settings = ", ".join(f"{name.removeprefix('augment_')} {getattr(config, name):g}" for name in names)
    print(f"{out}: {len(pick)} training digits (top row) and {args.rows} rows of {kind} augmentations of them "
          f"({settings})")
    return 0


def _describe(layer: dict) -> str:
    sizes = [f"{k}={v}" for k, v in layer.items() if k != "type"]
    return f"{layer['type']}({', '.join(sizes)})" if sizes else layer["type"]


def cmd_report(args) -> int:
    import pathlib

    from ..data import load_raw
    from ..report import write_report

    config = config_from_flags(ReportConfig, args)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.model).with_name(pathlib.Path(args.model).stem + "-report")
    model, header = load_model_file(args.model)
    output_folder(out, "--out")
    _, _, x_test, y_test = load_raw(args.dataset, args.data, progress=False)
    X = x_test.reshape(len(x_test), -1).astype("float32") / 255  # (N, 784), as the model was trained
    y = y_test.astype("int64")
    try:
        K = model.predict_proba(X[:1]).shape[1]
    except ValueError as error:  # a model made for other inputs than these images
        raise CommandError(f"{args.model} does not take {args.dataset}'s {X.shape[1]}-pixel images ({error})") from None
    if K <= y.max():
        raise CommandError(f"{args.model} tells {K} classes apart; {args.dataset} has {y.max() + 1}")
    try:
        report = write_report(model, header, X, y, make_folder(out), config, title=pathlib.Path(args.model).name,
                              log=print)
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write the report ({error.strerror or error})") from None
    for heading, why in report.missing:
        print(f"not drawn: {heading}: {why}")
    print(f"Report: {out / 'index.html'}  (test accuracy {100 * report.test_accuracy:.2f}%, "
          f"expected calibration error {100 * report.ece:.2f}%)")
    return 0


def cmd_export(args) -> int:
    """The model as ONNX (numpynn/export.py), checked in onnxruntime when it is installed, then written whole."""
    import pathlib

    from ..export import OPSET, ExportError, check_batch, compare_with_onnxruntime, require_onnx, save_onnx, to_onnx

    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.model).with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise UsageError(f"--out {out}: ONNX files end in .onnx; choose a name like model.onnx")
    output_folder(out.parent, "--out", may_create=False, value=out)
    try:
        require_onnx()  # before the model is read: without onnx there is nothing to do
    except ExportError as error:
        raise CommandError(str(error)) from None
    model, header = load_model_file(args.model)
    try:
        proto = to_onnx(model, header)
    except ExportError as error:
        raise CommandError(f"{args.model}: {error}") from None
    X = check_batch()
    difference = compare_with_onnxruntime(proto, model, X)
    if difference is not None and (difference["logits"] > EXPORT_TOLERANCE * max(1.0, difference["largest_logit"])
                                   or difference["probabilities"] > EXPORT_TOLERANCE):
        raise CommandError(f"onnxruntime {difference['onnxruntime']} disagrees with numpynn by up to "
                           f"{difference['logits']:.2g} in the logits (the largest is "
                           f"{difference['largest_logit']:.2g}) and {difference['probabilities']:.2g} in the "
                           f"probabilities; nothing was written (a bug in numpynn's exporter: please report it)")
    save_onnx(proto, out)
    print(f"Wrote {out}  (ONNX opset {OPSET}, {out.stat().st_size:,} bytes): input pixels (N, {X.shape[1]}) "
          f"float32, outputs logits and probabilities")
    if difference is None:
        print("Not checked: onnxruntime is not installed (pip install onnxruntime to compare it with numpynn)")
    else:
        print(f"Checked with onnxruntime {difference['onnxruntime']} on {len(X)} check images (black, white, random "
              f"pixels): max |difference| from numpynn {difference['logits']:.1e} in the logits (the largest "
              f"|logit| is {difference['largest_logit']:.1e}), "
              f"{difference['probabilities']:.1e} in the probabilities")
    return 0
