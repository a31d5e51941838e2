"""numpynn sweep: the space file checked in one line (no Ray needed), then real sweeps on Ray Tune on tiny data:
ASHA stops the worse trial, a trial whose worker dies resumes from its checkpoint with the weights of an
uninterrupted run, and a second local Ray node stands in for a cluster. The Ray tests are skipped where Ray is
not installed (it is the optional extra numpynn[sweep])."""
import importlib.util
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from numpynn import serialize, sweep
from numpynn.sweep import SweepError, read_space

from .conftest import REPO, make_mnist_dir, run_cli as run

TINY = {"preset": "mlp", "epochs": 2, "hidden": [16], "batch_size": 16, "dev_size": 20}


def space_file(tmp_path, space: str, fixed: dict = TINY, settings: str = "") -> pathlib.Path:
    lines = ["[sweep]", settings, "[fixed]"] + [f"{k} = {json.dumps(v)}" for k, v in fixed.items()]
    path = tmp_path / "space.toml"
    path.write_text("\n".join(lines) + "\n[space]\n" + space + "\n")
    return path


def test_a_space_file_is_read_into_settings_fixed_values_and_domains(tmp_path):
    path = space_file(tmp_path, 'lr = { loguniform = [0.01, 0.3] }\nhidden = { grid = [[8], [16]] }\n'
                      'dropout = { uniform = [0.0, 0.5] }\nbatch_size = { choice = [8, 16] }', settings="num_samples = 3",
                      fixed={"epochs": 2})
    settings, fixed, space, recipes = read_space(path)
    assert recipes == {}
    assert settings["num_samples"] == 3 and settings["scheduler"] == "asha" and fixed["epochs"] == 2
    assert space["hidden"] == {"grid": [[8], [16]]}
    with pytest.raises(SweepError, match="both in"):
        read_space(space_file(tmp_path, "hidden = { grid = [[8], [16]] }")) and space["lr"] == {"loguniform": [0.01, 0.3]}


@pytest.mark.parametrize("space, settings, message", [
    ("lr2 = { choice = [0.1] }", "", "lr2 is not a training option"),
    ("lr = [0.1, 0.2]", "", "must be one of"),
    ("lr = { normal = [0, 1] }", "", "must be one of"),
    ("lr = { loguniform = [0, 1] }", "", "low > 0"),
    ("lr = { uniform = [0.3, 0.1] }", "", "low < high"),
    ("lr = { grid = [0.1, -1.0] }", "", "lr"),
    ("optimizer = { choice = ['sgd', 'rmsprop'] }", "", "optimizer"),
    ("lr = { choice = [0.1] }", "num_samples = 0", "num_samples = 0 is out of range"),
    ("lr = { choice = [0.1] }", "workers = 2", "workers is not a setting"),
    ("", "", "no [space]"),
    ("lr = {", "", "not a valid TOML file"),
    # values a trial could never run with, and sizes no sweep needs
    ("threads = { uniform = [1, 2] }", "", "[space] threads: uniform draws fractions"),
    ("channels = { loguniform = [8, 64] }", "", "[space] channels: loguniform draws fractions"),
    ("seed = { uniform = [0, 9] }", "", "use { grid = [...] } or { choice = [...] }"),
    ("lr = { choice = [0.1] }", "num_samples = 1000000000000000000000", "num_samples = a number of about 22 digits"),
    ("lr = { choice = [0.1] }", "num_samples = 100001", "use a whole number from 1 to 100000"),
    ("lr = { choice = [0.1] }", "seed = 4294967296", "[sweep] seed = 4294967296 is out of range"),
    ("lr = { choice = [0.1] }", "reduction_factor = inf", "use a number above 1 and at most 1000"),
    ("lr = { grid = [1" + "0" * 400 + "] }", "", "lr = a number of about 401 digits is out of range"),
    ("lr = { grid = [1e308] }", "", "lr = 1e+308 is out of range"),
    ("patience = { grid = [1" + "0" * 30 + "] }", "", "use a whole number below 2**63"),
    ("x = " + "[" * 5000 + "]" * 5000, "", "nested too deeply"),
    ("[recipes.wide]\npreset = ['mlp']", "", "[recipes.wide] preset = ['mlp'] is out of range"),
    ("[recipes.wide]\nlr2 = 0.1", "", "[recipes.wide] lr2 is not a training option"),
    ("lr = { choice = [0.1] }\n[recipes.wide]\nlr = 0.2", "", "lr is both in [recipes.wide] and in [space]"),
    ("[recipes.wide]\noptimizer = 'rmsprop'", "", "[recipes.wide] optimizer"),
    ("[recipes.wide]\npreset = 'huge'", "", "[recipes.wide] preset"),
    ("[recipes.wide]\nhidden = [0]", "", "[recipes.wide] hidden"),
    ("[recipes]\nwide = 1", "", "recipes.wide must be a table of training options"),
    ("[recipes.wide]", "", "recipes.wide must be a table of training options"),
])
def test_a_bad_space_file_is_one_line_before_ray_starts(tmp_path, capsys, space, settings, message):
    path = space_file(tmp_path, space, settings=settings)
    with pytest.raises(SweepError, match=re.escape(message)):
        read_space(path)
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "out")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_recipes_change_several_fields_together_on_top_of_fixed(tmp_path):
    path = space_file(tmp_path, "seed = { grid = [1, 2] }\n[recipes.fast]\npreset = 'cnn-fast'\nepochs = 3\n"
                      "[recipes.sgd]\noptimizer = 'sgd'\nlr = 0.05", fixed={"preset": "cnn", "epochs": 2})
    settings, fixed, space, recipes = read_space(path)
    assert list(recipes) == ["fast", "sgd"]
    fast = sweep.trial_config(fixed, recipes["fast"], {"seed": 2})  # the recipe's preset, then [fixed], then itself
    assert (fast.channels, fast.epochs, fast.seed, fast.optimizer) == ((16, 32), 3, 2, "adam")
    sgd = sweep.trial_config(fixed, recipes["sgd"], {"seed": 1})    # [fixed]'s preset under the recipe
    assert (sgd.channels, sgd.epochs, sgd.optimizer, sgd.lr) == ((32, 64), 2, "sgd", 0.05)
    # recipes alone (no [space]) are a search too
    assert read_space(space_file(tmp_path, "[recipes.a]\nlr = 0.1\n[recipes.b]\nlr = 0.2"))[3]["b"] == {"lr": 0.2}


@pytest.mark.parametrize("kind", ["pipe", "folder", "not utf-8", "huge"])
def test_a_space_file_that_is_no_toml_file_is_one_line_at_once(tmp_path, capsys, kind):
    """A pipe would be read forever; every file the user names is read by config.read_toml."""
    path = tmp_path / "space.toml"
    if kind == "pipe":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\xff = 1\n" if kind == "not utf-8" else b"# padding\n" * 200_000)
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "out")
    words = {"pipe": "not a regular file", "folder": "not a regular file", "not utf-8": "not UTF-8 text",
             "huge": "larger than 1,000,000 bytes"}[kind]
    assert code == 1 and words in err and len(err.strip().splitlines()) == 1 and "unexpected" not in err, err


def test_a_section_given_as_a_value_is_one_line(tmp_path, capsys):
    path = tmp_path / "space.toml"
    path.write_text("space = 1\n")
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "out")
    assert code == 1 and "space must be a section, [space], not a value" in err and len(err.strip().splitlines()) == 1


def test_a_missing_space_file_and_a_fixed_typo_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "sweep", tmp_path / "nope.toml", "--out", tmp_path / "out")
    assert code == 1 and "no such file" in err
    path = space_file(tmp_path, "lr = { choice = [0.1] }", fixed={**TINY, "epoch": 3})
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "out")
    assert code == 1 and "epoch is not a training option" in err and len(err.strip().splitlines()) == 1


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code, _, err = run(capsys, "sweep", space_file(tmp_path, "lr = { choice = [0.1] }"), "--out", tmp_path / "out")
    assert code == 1 and "pip install 'numpynn[sweep]'" in err and len(err.strip().splitlines()) == 1


# With Ray --------------------------------------------------------------------------------------------------------

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = [pytest.mark.ray, pytest.mark.skipif(not HAS_RAY, reason="Ray Tune is the optional extra numpynn[sweep]")]


def ray_test(test):
    for mark in needs_ray:
        test = mark(test)
    return test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@ray_test
@pytest.mark.parametrize("address, message", [("127.0.0.1:{port}", "cannot reach the Ray cluster"),
                                              ("ray://127.0.0.1:{port}", "cannot reach the Ray cluster"),
                                              ("nonsense", "give auto, host:port or ray://host:port"),
                                              ("localhost:²", "give auto, host:port or ray://host:port"),
                                              ("127.0.0.1:99999", "give auto, host:port or ray://host:port")])
def test_an_unreachable_cluster_is_one_line(tmp_path, capsys, address, message):
    path = space_file(tmp_path, "lr = { choice = [0.1] }")
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "out", "--address", address.format(port=free_port()))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's sweeps (starting it costs seconds); run_sweep uses it as it is."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_mnist_dir(tmp_path_factory.mktemp("tiny"), n_train=400, n_test=100)


@ray_test
def test_asha_stops_the_worse_trial_and_the_results_are_written(local_ray, tiny, tmp_path):
    path = space_file(tmp_path, "lr = { grid = [0.1, 0.00001] }", settings="reduction_factor = 2")
    out = tmp_path / "out"
    result = sweep.run_sweep(path, out, workers=1, data=tiny)  # one at a time: the good trial sets the bar first
    rows = {row["lr"]: row for row in result["trials"]}
    assert rows[0.1]["epochs"] == 2 and rows[0.1]["ended"] == "completed"
    assert rows[0.00001]["epochs"] == 1 and rows[0.00001]["ended"] == "stopped early"
    assert result["best"]["lr"] == 0.1
    table = json.loads((out / "results.json").read_text())
    assert {"trial", "lr", "best_dev_accuracy", "epochs", "seconds"} <= set(table[0])
    assert (out / "results.csv").read_text().splitlines()[0].startswith("trial,lr,best_dev_accuracy,epochs,seconds")
    assert (out / "trials.png").stat().st_size > 1000
    model, header = serialize.load_model(out / "best.npz")
    assert header["config"]["lr"] == 0.1 and header["metrics"]["test_accuracy"] == result["best_test_accuracy"]
    # --resume on a finished sweep: Tune's record is read back, nothing trains again, the same table comes out
    again = sweep.run_sweep(path, out, workers=1, data=tiny, resume=True)
    assert sorted((r["trial"], r["epochs"], r["best_dev_accuracy"]) for r in again["trials"]) == \
        sorted((r["trial"], r["epochs"], r["best_dev_accuracy"]) for r in result["trials"])


@ray_test
def test_a_committee_sweep_saves_every_member_for_numpynn_ensemble(local_ray, tiny, tmp_path, capsys):
    path = space_file(tmp_path, "seed = { grid = [0, 1] }", settings='scheduler = "none"\nsave_all = true')
    result = sweep.run_sweep(path, tmp_path / "out", data=tiny)
    members = sorted((tmp_path / "out" / "models").glob("*.npz"))
    assert len(members) == 2 and all("test_accuracy" in row for row in result["trials"])
    code, stdout, err = run(capsys, "ensemble", *members, "--out", tmp_path / "committee.npz", "--data", tiny)
    assert code == 0 and "Ensemble of 2" in stdout, err


@ray_test
def test_a_sweep_over_recipes_runs_each_recipe_and_names_it_in_the_table(local_ray, tiny, tmp_path):
    path = space_file(tmp_path, "[recipes.narrow]\nhidden = [8]\n[recipes.wide]\nhidden = [32]\nepochs = 1",
                      settings='scheduler = "none"\nsave_all = true')
    out = tmp_path / "out"
    result = sweep.run_sweep(path, out, data=tiny)
    rows = {row["recipe"]: row for row in result["trials"]}
    assert set(rows) == {"narrow", "wide"}
    assert (rows["narrow"]["epochs"], rows["wide"]["epochs"]) == (2, 1)  # each recipe's own epochs
    assert all(row["ended"] == "completed" for row in rows.values())
    for name, width in (("narrow", 8), ("wide", 32)):
        _, header = serialize.load_model(out / "models" / f"{rows[name]['trial']}.npz")
        assert header["config"]["hidden"] == [width]
    assert (out / "results.csv").read_text().splitlines()[0].startswith("trial,recipe,best_dev_accuracy")


@ray_test
def test_resume_needs_a_sweep_to_continue(tmp_path, capsys):
    path = space_file(tmp_path, "lr = { choice = [0.1] }")
    code, _, err = run(capsys, "sweep", path, "--out", tmp_path / "none", "--resume")
    assert code == 1 and "holds no sweep to continue" in err


def crash_once(marker: str):
    """A stand-in for sweep.trial whose worker process dies right after its first report, once; on the
    restart it notes whether Tune handed it a checkpoint to resume from."""
    def crashing_trial(params, **kwargs):
        import os
        import pathlib
        import time

        from ray import tune

        from numpynn import sweep as sweep_module

        flag = pathlib.Path(marker)
        if flag.exists():
            (flag.parent / "resumed").write_text(str(tune.get_checkpoint() is not None))
            return sweep_module.trial(params, **kwargs)
        real = sweep_module._report

        def report(metrics, checkpoint):
            real(metrics, checkpoint)
            flag.write_text("crashed")
            time.sleep(2)  # the report reaches the driver, as it would before a machine fails
            os._exit(1)  # the worker dies as a killed process does: no cleanup, no exception

        sweep_module._report = report
        return sweep_module.trial(params, **kwargs)
    return crashing_trial


@ray_test
def test_a_killed_trial_resumes_from_its_checkpoint_and_ends_with_the_same_weights(local_ray, tiny, tmp_path):
    from numpynn.data import load_mnist
    from numpynn.train import Run, fit, make_config

    path = space_file(tmp_path, "lr = { choice = [0.1] }", fixed={**TINY, "epochs": 3}, settings='scheduler = "none"')
    result = sweep.run_sweep(path, tmp_path / "out", workers=1, data=tiny, trainable=crash_once(str(tmp_path / "crash")))
    assert (tmp_path / "crash").exists() and (tmp_path / "resumed").read_text() == "True"
    assert result["trials"][0]["epochs"] == 3 and not result["trials"][0]["error"]
    resumed, _ = serialize.load_model(tmp_path / "out" / "best.npz")
    # The same trial, uninterrupted, here
    config = make_config("mlp", **{**{k: v for k, v in TINY.items() if k != "preset"}, "epochs": 3, "lr": 0.1})
    splits = load_mnist("mnist", tiny, dev_size=config.dev_size, seed=config.seed, progress=False)
    run_ = Run.start(config)
    fit(run_, splits, diagnose=False)
    for name, value in run_.model.state_dict().items():
        if not name.endswith(".rng"):
            np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)


@ray_test
def test_a_sweep_runs_on_a_cluster_address(tiny, tmp_path):
    """A second Ray node, started as `ray start --head` starts one, stands in for a cluster; the sweep runs in
    another process that joins it with --address."""
    port = free_port()
    ray_bin = pathlib.Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_ADDRESS": ""}
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        path = space_file(tmp_path, "lr = { grid = [0.1, 0.05] }")
        done = subprocess.run([sys.executable, "-m", "numpynn", "sweep", str(path), "--out", str(tmp_path / "out"),
                               "--data", str(tiny), "--address", f"127.0.0.1:{port}"], capture_output=True,
                              text=True, timeout=240, cwd=REPO, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads((tmp_path / "out" / "results.json").read_text())
        assert len(rows) == 2 and all(row["epochs"] == 2 for row in rows)
        assert (tmp_path / "out" / "best.npz").exists()
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and the processes it started, and only those
        head.wait(timeout=60)


@pytest.mark.parametrize("name", ["sweep.toml", "committee.toml", "long-committee.toml"])
def test_the_example_space_files_are_valid(name):
    settings, fixed, space, recipes = read_space(REPO / "examples" / name)
    for recipe in list(recipes.values()) or [{}]:
        sweep.trial_config(fixed, recipe, {})
    if name == "committee.toml":  # 7 inputs (6 of them width-normalised) x 5 seeds, each run to its end and saved
        assert len(recipes) * len(space["seed"]["grid"]) == 35
        assert sorted(recipe.get("width_norm", 0) for recipe in recipes.values()) == [0, 10, 12, 14, 16, 18, 20]
        assert all(sweep.trial_config(fixed, recipe, {}).threads == 1 for recipe in recipes.values())
        assert settings["scheduler"] == "none" and settings["save_all"] is True
    if name == "long-committee.toml":  # the six 75-epoch networks of docs/scale.md, seeds and all
        config = sweep.trial_config(fixed, {}, {"seed": 101})
        assert (config.epochs, config.dev_size, config.augment, config.threads) == (75, 1000, "affine", 1)
        assert space["seed"]["grid"] == [101, 102, 103, 111, 112, 113]
        assert settings["scheduler"] == "none" and settings["save_all"] is True
