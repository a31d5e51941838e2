"""Beyond one run: numpynn ensemble (numpynn/ensemble.py) and numpynn sweep (numpynn/sweep.py, on Ray Tune)."""
from __future__ import annotations

from ..checks import OptionError
from .common import CommandError, UsageError, load_model_file, output_folder

MIN_CALIBRATION = 100  # images no member trained on, the fewest numpynn ensemble fits a temperature on


def cmd_ensemble(args) -> int:
    """Load each member (each must be a model file of the same dataset), average them, score the test set, save."""
    import pathlib

    from ..data import load_raw
    from ..ensemble import Ensemble, check_shift, log_mean
    from ..serialize import ModelFileError, check_ensemble_size, save_ensemble
    from ..train import calibrate_and_choose_rule, calibration_error, evaluate

    out = pathlib.Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out {out}: model files end in .npz; choose a name like ensemble.npz")
    try:  # before a member is loaded
        check_shift(args.shift, len(args.models))
    except OptionError as error:
        if error.name == "shift":
            raise UsageError(str(error.renamed("--shift"))) from None
        raise UsageError(f"an ensemble needs two or more model files, or one with test-time shifts (--shift 1); "
                         f"{len(args.models)} given") from None
    try:  # the file's limits, before a member is loaded: nothing is written that no command could read
        check_ensemble_size(f"--out {out}", len(args.models), 0)
    except ModelFileError as error:
        raise UsageError(str(error)) from None
    for path in args.models:  # by any other spelling or link too (os.path.samefile): the inputs stay as they are
        if _same_file(out, path):
            raise UsageError(f"--out {out}: it is one of the members ({path}), which would be replaced; "
                             "choose another name for the ensemble")
    output_folder(out.parent, "--out", may_create=False, value=out)
    members, about, datasets, headers, parameters = [], [], set(), [], 0
    for path in args.models:
        model, header = load_model_file(path)
        if header.get("kind") != "model":
            raise CommandError(f"{path}: a checkpoint, not a model file (use the model .npz it belongs to)")
        if "members" in header:
            raise CommandError(f"{path}: already an ensemble; list its member files instead")
        parameters += model.n_params()
        try:  # as they come: 100 members of the largest size would not fit in memory
            check_ensemble_size(f"--out {out}", len(args.models), parameters)
        except ModelFileError as error:
            raise CommandError(str(error)) from None
        datasets.add(header.get("dataset", {}).get("name", args.dataset))
        members.append(model)
        headers.append(header)
        about.append({"file": pathlib.Path(path).name,
                      "metrics": {k: v for k, v in header.get("metrics", {}).items() if k.startswith("test_")}})
    if len(datasets) > 1:
        raise CommandError(f"the members were trained on different datasets ({', '.join(sorted(datasets))}); "
                           "an ensemble's members must read the same kind of images")
    try:
        ensemble = Ensemble(members, shift=args.shift)
    except OptionError as error:
        raise CommandError(str(error)) from None
    dataset = datasets.pop()
    x_train, y_train, x_test, y_test = load_raw(dataset, args.data, progress=False)
    X, y = x_test.reshape(len(x_test), -1).astype("float32") / 255, y_test.astype("int64")  # (N, 784), (N,)
    from tqdm import tqdm

    passes = len(members) * len(ensemble.views)  # on a terminal, a bar: a 49-member committee takes minutes
    with tqdm(total=passes, desc="scoring the test set", unit="pass", leave=False, disable=None) as bar:
        log_p = ensemble.member_log_probabilities(X, done=bar.update)  # (M, V, N, K): every member, every view
    Z = log_mean(log_p)  # (N, K) the ensemble's logits on the test set, reused below
    extra, fitted = {}, {}
    unseen = _unseen_by_all(headers, len(x_train))  # training images that are in every member's dev set
    note = (f"not calibrated as a whole: {len(unseen)} images are in every member's dev set, fewer than the "
            f"{MIN_CALIBRATION} needed")
    if len(unseen) >= MIN_CALIBRATION:
        X_unseen = x_train[unseen].reshape(len(unseen), -1).astype("float32") / 255  # (n, 784)
        fitted, extra["not_sure"] = calibrate_and_choose_rule(ensemble, X_unseen, y_train[unseen].astype("int64"),
                                                              X, y, Z_test=Z)
        note = (f"temperature {ensemble.temperature:.3f}, fitted on the {len(unseen):,} training images no member "
                f"trained on (test ECE {100 * fitted['test_ece_uncalibrated']:.2f}% at temperature 1)")
    test_loss, test_accuracy = evaluate(ensemble, X, y, Z=Z)
    test_ece = fitted["test_ece"] if fitted else calibration_error(ensemble, X, y, Z=Z)
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss, "test_ece": test_ece,
               "members": len(members), "views": len(ensemble.views), "calibration_images": len(unseen)}
    from .. import __version__

    header = {"numpynn_version": __version__, "dataset": {"name": dataset}, "metrics": metrics, **extra,
              "preprocessing": {"input": "28x28 greyscale, white ink on black", "flatten": 784, "scale": "pixel / 255"}}
    try:
        save_ensemble(out, ensemble, about, header)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    for path, log_p_m in zip(args.models, log_p):  # each member on the images as they are (view 0)
        print(f"  {path}: test accuracy {100 * float((log_p_m[0].argmax(axis=1) == y).mean()):.2f}%")
    seen = f", each on {len(ensemble.views)} views (the image and its {args.shift}-pixel shifts)" if args.shift else ""
    print(f"Ensemble of {len(members)}{seen}: test accuracy {100 * test_accuracy:.2f}% ({len(y):,} test images); "
          f"test ECE {100 * metrics['test_ece']:.2f}%, {note}")
    print(f"Model: {out}")
    return 0


def _same_file(a, b) -> bool:
    """Whether paths a and b name the same file (a hard link, a symlink, another spelling); False if either is
    missing or unreadable."""
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _unseen_by_all(headers: list[dict], n_train: int):
    """Indices of the training images in every member's dev set, from each header's dev_size and split_seed
    (data.in_every_dev_set): images no member trained on. Empty if a header does not say its split."""
    import numpy as np

    from ..data import in_every_dev_set

    splits = []
    for header in headers:
        split = header.get("dataset", {})
        size, seed = split.get("dev_size"), split.get("split_seed")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (size, seed)):
            return np.zeros(0, np.int64)
        splits.append((size, seed))
    return in_every_dev_set(splits, n_train)


def cmd_sweep(args) -> int:
    """numpynn sweep: the search itself is numpynn/sweep.py; this reads the flags and prints the outcome."""
    import pathlib

    from ..sweep import SweepError, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: use 1 or more")
    out = pathlib.Path(args.out)
    output_folder(out, "--out")
    try:
        result = run_sweep(args.space, out, address=args.address, workers=args.workers, data=args.data,
                           dataset=args.dataset, resume=args.resume)
    except SweepError as error:
        raise CommandError(str(error)) from None
    except OptionError as error:
        raise CommandError(f"{args.space}: {error}") from None
    best = result["best"]
    print(f"{len(result['trials'])} trials in {result['seconds']:.0f} s; best dev accuracy "
          f"{100 * best['best_dev_accuracy']:.2f}% (trial {best['trial']}, {best['epochs']} epochs)")
    print(f"Results: {out / 'results.csv'}, {out / 'results.json'}, {out / 'trials.png'}; best model: "
          f"{out / 'best.npz'} (test accuracy {100 * result['best_test_accuracy']:.2f}%)")
    return 0
