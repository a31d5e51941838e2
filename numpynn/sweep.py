"""Hyperparameter sweeps on Ray Tune: many numpynn trainings over a search space, on one machine or a cluster.

A sweep is a search space (a TOML file, below) over TrainConfig's fields. Ray Tune draws the trials from it (a
grid, random draws, or both), runs them on as many workers as it has, and stops weak ones early with ASHA on the
dev accuracy of each epoch. Each trial is numpynn's own `fit`: after every epoch it reports the epoch's History
row to Tune with numpynn's own checkpoint file (the whole Run) inside a Tune checkpoint, so a trial whose worker
dies restarts from its last epoch and ends with the weights an uninterrupted trial has (fit resumes bit for bit).

    [sweep]                    # how to search (all optional)
    num_samples = 4            # random draws; with a grid, each grid point is run this many times
    scheduler = "asha"         # or "none": run every trial to its last epoch
    grace_period = 1           # ASHA: epochs every trial gets before it may be stopped
    reduction_factor = 2       # ASHA: keep about 1 in this many trials at each rung
    seed = 0                   # the random search's draws
    max_failures = 2           # restarts of a trial whose worker died, each from its last checkpoint
    save_all = false           # also write every trial's model to models/<trial>.npz (a committee's members)

    [fixed]                    # TrainConfig fields every trial shares (preset first, as in train --config)
    preset = "mlp"
    epochs = 5

    [space]                    # TrainConfig fields to search, one kind of domain each
    lr = { loguniform = [0.01, 0.3] }
    hidden = { grid = [[128], [800]] }
    batch_size = { choice = [64, 128] }
    dropout = { uniform = [0.0, 0.5] }

    [recipes.wide]             # optional: whole recipes, each run once per point of [space] (a grid over them)
    channels = [48, 64]
    [recipes.sgd]
    optimizer = "sgd"
    lr = 0.05

A trial's settings come from the preset (a recipe's own, else [fixed]'s), then [fixed], then its recipe, then
its values drawn from [space]. Recipes are what a committee of different networks needs: several fields that
change together, which a grid over single fields cannot say.

Results, in the output folder: results.csv and results.json (one row per trial: its recipe and searched values, best dev
accuracy, epochs run, seconds, how it ended), trials.png (every trial's dev accuracy per epoch, the best
drawn bold), best.npz (the best trial's model at its last epoch, calibrated and scored on the test set, as
`numpynn train` writes it) and ray/ (Tune's own records and checkpoints).

Left out: search algorithms that learn from earlier trials (Bayesian optimisation, Optuna), population-based
training, and several CPUs per trial (each trial is one process on one core; threads > 1 only oversubscribes).
Ray is imported only here, and only when a sweep runs: `pip install 'numpynn[sweep]'`.
"""
from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import socket
import tempfile
import time
from dataclasses import fields

from .atomic import write_atomically
from .checks import OptionError, shown, whole_number
from .config import NotAnOption, TomlFileError, TrainConfig, kind_of, make_config, read_toml

DOMAINS = ("grid", "choice", "uniform", "loguniform")
SETTINGS = {"num_samples": 1, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2, "seed": 0,
            "max_failures": 2, "save_all": False}
# The range of each number in [sweep]. The tops are far above any sweep one machine or cluster runs, and keep
# Tune's own arithmetic sane (its random search seeds NumPy's RandomState, which takes 32 bits).
RANGES = {"num_samples": (1, 100_000), "grace_period": (1, 100_000), "reduction_factor": (1, 1000),
          "seed": (0, 2**32 - 1), "max_failures": (0, 1000)}
CHECKPOINT = "run.ckpt.npz"  # numpynn's checkpoint, inside each Tune checkpoint folder
INSTALL = "Ray Tune is not installed; pip install 'numpynn[sweep]' (or pip install 'ray[tune]>=2.60')"


class SweepError(Exception):
    """A sweep cannot start or finish: a bad space file, Ray missing, a cluster out of reach. One line."""


# The space file ----------------------------------------------------------------------------------------------

def read_space(path) -> tuple[dict, dict, dict]:
    """(settings, fixed, space) from a TOML space file, each checked: settings by name and range, fixed and
    space by TrainConfig itself (every grid or choice value, and both ends of a range, make a valid config)."""
    path = pathlib.Path(path)
    try:
        data = read_toml(path)
    except TomlFileError as error:
        raise SweepError(f"{path}: {error}") from None
    unknown = data.keys() - {"sweep", "fixed", "space", "recipes"}
    if unknown:
        raise SweepError(f"{path}: unknown section [{sorted(unknown)[0]}]; a space file has [sweep], [fixed], "
                         "[space] and [recipes.NAME]")
    for section, value in data.items():
        if not isinstance(value, dict):
            raise SweepError(f"{path}: {section} must be a section, [{section}], not a value")
    settings = {**SETTINGS, **data.get("sweep", {})}
    fixed, space, recipes = data.get("fixed", {}), data.get("space", {}), data.get("recipes", {})
    for key, value in settings.items():
        if key not in SETTINGS:
            raise SweepError(f"{path}: [sweep] {key} is not a setting; use {', '.join(SETTINGS)}")
        if not _setting_ok(key, value):
            raise SweepError(f"{path}: [sweep] {key} = {shown(value)} is out of range; {_setting_range(key)}")
    if not space and not recipes:
        raise SweepError(f"{path}: no [space] to search; add e.g. lr = {{ loguniform = [0.01, 0.3] }}")
    kinds = {f.name: kind_of(f) for f in fields(TrainConfig)}
    names = set(kinds)
    for name, recipe in recipes.items():
        if not isinstance(recipe, dict) or not recipe:
            raise SweepError(f"{path}: recipes.{name} must be a table of training options: [recipes.{name}] "
                             "then lines such as lr = 0.05")
        for key in recipe:
            if key not in names:
                raise SweepError(f"{path}: [recipes.{name}] {key} is not a training option (see `numpynn train "
                                 "--help`)")
            if key in space:
                raise SweepError(f"{path}: {key} is both in [recipes.{name}] and in [space]; keep one")
    for name, domain in space.items():
        if name not in names:
            raise SweepError(f"{path}: [space] {name} is not a training option (see `numpynn train --help`)")
        if name in fixed:
            raise SweepError(f"{path}: {name} is both in [fixed] and in [space]; keep one")
        if not (isinstance(domain, dict) and len(domain) == 1 and next(iter(domain)) in DOMAINS):
            raise SweepError(f"{path}: [space] {name} must be one of {{ grid = [...] }}, {{ choice = [...] }}, "
                             "{ uniform = [low, high] }, { loguniform = [low, high] }")
        kind, values = next(iter(domain.items()))
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: [space] {name}: {kind} needs a list of values")
        if kind in ("uniform", "loguniform"):
            if kinds[name] is not float:  # Tune draws fractions, such as 2.37 epochs: every trial would fail
                raise SweepError(f"{path}: [space] {name}: {kind} draws fractions, but {name} is not a fractional "
                                 f"number; use {{ grid = [...] }} or {{ choice = [...] }}")
            if not (len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                    and values[0] < values[1] and (kind == "uniform" or values[0] > 0)):
                raise SweepError(f"{path}: [space] {name}: {kind} needs [low, high] with low < high"
                                 f"{' and low > 0' if kind == 'loguniform' else ''}")
    for label, recipe in [(f"[recipes.{name}]", recipe) for name, recipe in recipes.items()] or [("", {})]:
        try:
            trial_config(fixed, recipe, {})
            for name, domain in space.items():  # every value a trial may get, with the fixed ones and the recipe
                for value in next(iter(domain.values())):
                    trial_config(fixed, recipe, {name: value})
        except NotAnOption as error:
            raise SweepError(f"{path}: [fixed] {error}") from None
        except OptionError as error:  # one line naming the field, as `numpynn train` gives it
            raise SweepError(f"{path}: {label + ' ' if label else ''}{error}") from None
    return settings, fixed, space, recipes


def trial_config(fixed: dict, recipe: dict, params: dict) -> TrainConfig:
    """One trial's TrainConfig: the preset (the recipe's own, else [fixed]'s), then [fixed], then the recipe,
    then the trial's values from [space]. OptionError names a field that is wrong."""
    options = {**fixed, **recipe, **params}
    return make_config(options.pop("preset", "mlp"), **options)


def _setting_ok(key: str, value) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "scheduler":
        return value in ("asha", "none")
    if key == "save_all":
        return isinstance(value, bool)
    low, high = RANGES[key]
    if key == "reduction_factor":  # any number above 1 (and not infinity)
        return number and low < value <= high
    return number and isinstance(value, int) and low <= value <= high


def _setting_range(key: str) -> str:
    """How to fix a [sweep] setting that _setting_ok refused."""
    if key == "scheduler":
        return 'use "asha" or "none"'
    if key == "save_all":
        return "use true or false"
    low, high = RANGES[key]
    return (f"use a number above {low} and at most {high}" if key == "reduction_factor" else
            f"use a whole number from {low} to {high}")


def tune_space(space: dict, recipes: dict) -> dict:
    """The space file's domains as Ray Tune's; the recipes, by name, as one more grid."""
    from ray import tune

    make = {"grid": tune.grid_search, "choice": tune.choice,
            "uniform": lambda v: tune.uniform(*v), "loguniform": lambda v: tune.loguniform(*v)}
    domains = {name: make[kind](values) for name, domain in space.items() for kind, values in domain.items()}
    return {"recipe": tune.grid_search(list(recipes)), **domains} if recipes else domains


# One trial, on a worker ----------------------------------------------------------------------------------------

def _report(metrics: dict, checkpoint) -> None:
    """tune.report, looked up at call time (a test replaces it to kill a worker after a report)."""
    from ray import tune

    tune.report(metrics, checkpoint=checkpoint)


def trial(params: dict, *, fixed: dict, data, dataset: str, recipes: dict | None = None) -> None:
    """One trial: the config of `fixed`, its recipe (params["recipe"] names it) and `params`, trained by fit;
    after every epoch its History row goes to Tune with the whole Run as numpynn's checkpoint. Resumes from
    Tune's checkpoint when it has one."""
    from ray import tune

    from . import serialize
    from .data import load_mnist
    from .train import Run, fit

    config = _config_of(params, fixed, recipes or {})
    splits = load_mnist(dataset, data, dev_size=config.dev_size, seed=config.seed, progress=False)
    saved = tune.get_checkpoint()
    if saved is None:
        run = Run.start(config, splits.X_train.shape[1], int(splits.y_train.max()) + 1)
    else:
        with saved.as_directory() as folder:
            run = Run.resume(*serialize.load_checkpoint(pathlib.Path(folder) / CHECKPOINT))

    def on_epoch(run, row):
        with tempfile.TemporaryDirectory() as folder:
            serialize.save(pathlib.Path(folder) / CHECKPOINT, run.checkpoint_arrays(), run.checkpoint_header())
            metrics = {key: row[key] for key in ("epoch", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy",
                                                  "seconds")}
            _report(metrics, tune.Checkpoint.from_directory(folder))

    fit(run, splits, on_epoch=on_epoch, diagnose=False)


def _config_of(params: dict, fixed: dict, recipes: dict) -> TrainConfig:
    """The TrainConfig of a trial that Tune gave `params` (the recipe's name among them)."""
    drawn = {k: v for k, v in params.items() if k != "recipe"}
    return trial_config(fixed, recipes.get(params.get("recipe"), {}), drawn)


# The sweep, on the driver ------------------------------------------------------------------------------------

def connect(address: str | None, workers: int | None):
    """Start a new Ray here with `workers` CPUs (default: every core; never another user's Ray found on this
    machine), or join the cluster at `address` (auto,
    host:port or ray://host:port). Returns a function that disconnects. SweepError if Ray is missing or the
    cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise SweepError(INSTALL) from None
    if ray.is_initialized():  # a caller (a test, a notebook) started it: use it as it is
        return lambda: None
    if address not in (None, "auto"):
        host, _, text = address.removeprefix("ray://").rpartition(":")
        port = whole_number(text, 1, 65535)  # ASCII digits only ("²" is a digit to isdigit), a port's range
        if not host or port is None:
            raise SweepError(f"--address {address}: give auto, host:port or ray://host:port")
        try:  # a quick look first: Ray's own connection retries for minutes before it gives up
            socket.create_connection((host.strip("[]"), port), timeout=5).close()
        except OSError as error:
            raise SweepError(f"--address {address}: cannot reach the Ray cluster ({error.strerror or error}); "
                             "is `ray start --head` running there, and the port open?") from None
    try:
        if address is None:
            ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        text = " ".join(str(error).split())[:200]
        if address is None:
            raise SweepError(f"cannot start Ray on this machine ({text})") from None
        raise SweepError(f"--address {address}: cannot join the Ray cluster ({text}); start one with "
                         "`ray start --head`, or leave --address out to run on this machine") from None
    return ray.shutdown


def run_sweep(space_file, out, *, address=None, workers=None, data=None, dataset="mnist", log=None,
              trainable=None, resume=False) -> dict:
    """Run the sweep of `space_file` and write its results into `out` (made if missing). Returns
    {"trials": rows, "best": the best row, "best_test_accuracy", "seconds"}. resume: continue the sweep that
    `out` holds (stopped by Ctrl-C or a crash), each unfinished trial from its last checkpoint. trainable: a
    stand-in for `trial` with its signature (tests use it to kill a worker)."""
    say = log or (lambda line: None)
    settings, fixed, space, recipes = read_space(space_file)
    out = pathlib.Path(out).resolve()
    if resume and not (out / "ray" / "sweep" / "tuner.pkl").exists():
        raise SweepError(f"--resume: {out} holds no sweep to continue; run it without --resume first")
    out.mkdir(exist_ok=True)
    disconnect = connect(address, workers)
    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        epochs = max(trial_config(fixed, recipe, {}).epochs for recipe in list(recipes.values()) or [{}])
        if "epochs" in space:
            epochs = max(int(v) for v in next(iter(space["epochs"].values())))
        scheduler = (ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=settings["grace_period"],
                                   reduction_factor=settings["reduction_factor"])
                     if settings["scheduler"] == "asha" else FIFOScheduler())
        job = tune.with_parameters(trainable or trial, fixed=fixed, recipes=recipes, data=_absolute(data),
                                   dataset=dataset)
        if resume:  # Tune's own record of the sweep: the space, the trials and their last checkpoints
            tuner = tune.Tuner.restore(str(out / "ray" / "sweep"), tune.with_resources(job, {"cpu": 1}),
                                       resume_unfinished=True, resume_errored=True)
        else:
            tuner = _new_tuner(tune, job, tune_space(space, recipes), settings, scheduler, workers, address, out)
        # Tune warns when numpynn's per-epoch checkpoints come faster than every 5 s (tiny data): expected here.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's older reporter honours verbose=0: no tables
        started = time.perf_counter()
        results = tuner.fit()
        seconds = time.perf_counter() - started
        rows, curves = _rows(results, ["recipe"] * bool(recipes) + list(space), fixed, recipes)
        ok = [row for row in rows if row["best_dev_accuracy"] is not None]
        if not ok:
            raise SweepError(f"no trial finished an epoch; the first error: {rows[0]['error'] if rows else 'none'}")
        best = max(ok, key=lambda row: row["best_dev_accuracy"])
        say(f"{len(rows)} trials, best {best['trial']}: dev accuracy {best['best_dev_accuracy']:.4f}")
        best_test = _save_best(results[best["index"]].checkpoint, out / "best.npz", data, dataset)
        if settings["save_all"]:  # every trial's model, e.g. the members of a committee (numpynn ensemble)
            (out / "models").mkdir(exist_ok=True)
            for row in rows:
                if results[row["index"]].checkpoint is not None:
                    row["test_accuracy"] = _save_best(results[row["index"]].checkpoint,
                                                      out / "models" / f"{row['trial']}.npz", data, dataset)
    finally:
        disconnect()
    _write_tables(out, rows)
    _draw(curves, best["trial"], out / "trials.png")
    return {"trials": rows, "best": best, "best_test_accuracy": best_test, "seconds": seconds}


def _new_tuner(tune, job, param_space, settings, scheduler, workers, address, out):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return tune.Tuner(
        tune.with_resources(job, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="dev_accuracy", mode="max", scheduler=scheduler, num_samples=settings["num_samples"],
            search_alg=BasicVariantGenerator(random_state=settings["seed"],  # at most `workers` at once
                                             max_concurrent=workers if address is None and workers else 0)),
        run_config=tune.RunConfig(
            name="sweep", storage_path=str(out / "ray"), verbose=0,
            failure_config=tune.FailureConfig(max_failures=settings["max_failures"]),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def _absolute(data):
    return str(pathlib.Path(data).resolve()) if data else None  # workers do not share the driver's folder


def _rows(results, searched: list[str], fixed: dict, recipes: dict) -> tuple[list[dict], dict]:
    """One row per trial, and each trial's dev accuracy per epoch."""
    rows, curves = [], {}
    for index, result in enumerate(results):
        frame = result.metrics_dataframe
        accuracies = [] if frame is None or "dev_accuracy" not in frame else \
            [float(a) for a in frame["dev_accuracy"] if a is not None and not math.isnan(a)]
        name = (result.metrics or {}).get("trial_id") or f"trial{index}"
        curves[name] = accuracies
        rows.append({
            "trial": name, "index": index,
            **{key: result.config.get(key) for key in searched},
            "best_dev_accuracy": max(accuracies) if accuracies else None,
            "epochs": len(accuracies),
            "seconds": float(result.metrics.get("time_total_s", 0.0)) if result.metrics else 0.0,
            "ended": ("failed" if result.error else "completed" if len(accuracies) >=
                      _config_of(result.config, fixed, recipes).epochs else "stopped early"),
            "error": " ".join(str(result.error).split())[:300] if result.error else "",
        })
    return rows, curves


def _save_best(checkpoint, path, data, dataset) -> float:
    """The best trial's Run at its last reported epoch, calibrated, scored on the test set and saved as
    `numpynn train` saves a model (train_and_save). Returns its test accuracy."""
    from . import serialize
    from .data import load_mnist
    from .train import Run, train_and_save

    with checkpoint.as_directory() as folder:
        arrays, header = serialize.load_checkpoint(pathlib.Path(folder) / CHECKPOINT)
    run = Run.resume(arrays, header, epochs=header["trainer"]["epoch"])  # as far as it got: no more training
    splits = load_mnist(dataset, data, dev_size=run.config.dev_size, seed=run.config.seed, progress=False)
    _, scores = train_and_save(run, splits, path, dataset, diagnose=False)
    return scores["test_accuracy"]


def _write_tables(out: pathlib.Path, rows: list[dict]) -> None:
    shown = [{k: v for k, v in row.items() if k != "index"} for row in rows]
    write_atomically(out / "results.json", (json.dumps(shown, indent=1) + "\n").encode())
    with tempfile.NamedTemporaryFile("w", newline="", dir=out, delete=False, suffix=".tmp") as f:
        columns = list(dict.fromkeys(key for row in shown for key in row))  # every row's keys, in order
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in shown)
    os.replace(f.name, out / "results.csv")


def _draw(curves: dict, best: str, path) -> None:
    """Every trial's dev accuracy per epoch, the best bold and coloured, the others thin and grey."""
    from matplotlib.ticker import MaxNLocator

    from .report import _figure, save_figure

    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    for name, accuracies in curves.items():
        if name != best and accuracies:
            ax.plot(range(1, len(accuracies) + 1), accuracies, color="0.6", lw=1, marker=".")
    if curves.get(best):
        ax.plot(range(1, len(curves[best]) + 1), curves[best], color="C3", lw=2.5, marker="o", label=f"best: {best}")
        ax.legend(loc="lower right")
    ax.set(xlabel="epoch", ylabel="dev accuracy", title=f"{len(curves)} trials: dev accuracy per epoch "
           "(a short line: stopped early by ASHA)")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
