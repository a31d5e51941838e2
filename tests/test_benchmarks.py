"""The benchmark scripts run end to end on a tiny grid, and refuse bad flags in one line. They measure nothing
here (the timings of a test run mean nothing); benchmarks/README.md has real runs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_cost_growth_draws_its_figure_and_writes_every_point(tmp_path, mnist_dir):
    out, report = tmp_path / "growth.png", tmp_path / "growth.json"
    done = bench("benchmarks/cost_growth.py", "--quick", "--nets", "mlp", "--runs", "engine", "--data", mnist_dir,
                 "--out", out, "--json", report)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads(report.read_text())["points"]
    assert {p["axis"] for p in points} == {"batch", "hidden", "train"}
    for point in points:  # every point measured, with its floors
        engine = point["results"]["engine"]
        assert engine["epoch_seconds"] > 0 and engine["peak_rss_kib"] > 0
        assert point["flop_floor_seconds"] > 0 and point["bandwidth_floor_seconds"] > 0
    assert not list(tmp_path.glob("*.tmp*"))  # written by rename, nothing half-written left


@pytest.mark.parametrize("script, flags, says", [
    ("fast99.py", ["--seeds", "x"], "--seeds x: give whole numbers"),
    ("fast99.py", ["--seeds", "-1"], "--seeds: give one or more seeds, 0 or more"),
    ("fast99.py", ["--runs", "torch"], "--runs must include numpynn"),
    ("fast99.py", ["--json", "/no/such/folder/r.json"], "/no/such/folder"),
    ("cost_growth.py", ["--runs", "tensorflow"], "tensorflow"),
])
def test_bad_flags_are_one_line_and_exit_2(script, flags, says):
    done = bench(f"benchmarks/{script}", *flags, timeout=60)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"{script}: error: ")


def test_a_missing_or_torchless_benchmark_interpreter_is_named_in_one_line(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert _common.why_no_torch(str(tmp_path / "nope")).endswith("not found (see benchmarks/README.md for the "
                                                                  "benchmark venv)")
    assert _common.why_no_torch(sys.executable) in ("", f"{sys.executable} cannot import torch")
    assert _common.blas_threads([{"user_api": "openmp", "num_threads": 8},
                                 {"user_api": "blas", "num_threads": 2}]) == 2
    assert _common.blas_threads([]) == 1
