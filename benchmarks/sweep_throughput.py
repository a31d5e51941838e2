"""Trials per hour on this machine: the same 4 trainings run one at a time with `numpynn train` (no Ray), then as
`numpynn sweep` with Ray on 1 worker and on 2 workers. Writes one JSON line per mode (docs/scale.md quotes them).

    nice -n 19 python benchmarks/sweep_throughput.py OUT_DIR [--data DIR] [--epochs N]
"""
import json
import os
import pathlib
import subprocess
import sys
import time

LRS = [0.03, 0.05, 0.1, 0.2]
EPOCHS = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 3
FIXED = {"preset": "mlp", "hidden": [800], "epochs": EPOCHS}  # the mlp preset, cut to EPOCHS epochs

out = pathlib.Path(sys.argv[1])
data = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else os.environ.get("NUMPYNN_DATA")
out.mkdir(parents=True, exist_ok=True)
numpynn = [sys.executable, "-m", "numpynn"]
data_flag = ["--data", data] if data else []


def timed(mode, commands, results=None):
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    row = {"mode": mode, "trials": len(LRS), "seconds": round(seconds, 1),
           "trials_per_hour": round(3600 * len(LRS) / seconds), "load_before": round(load, 2),
           "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
    if results is not None and (results / "results.json").exists():  # the trials' own time, in Tune's clock
        row["trial_seconds"] = [round(r["seconds"], 1) for r in json.loads((results / "results.json").read_text())]
    print(json.dumps(row), flush=True)


flags = ["--hidden", "800", "--epochs", str(EPOCHS), "--quiet"]
timed("numpynn train, one at a time", [[*numpynn, "train", *flags, "--lr", str(lr), "--out", str(out / f"m{i}.npz"),
                                        *data_flag] for i, lr in enumerate(LRS)])
space = out / "space.toml"
space.write_text('[sweep]\nscheduler = "none"\n[fixed]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in FIXED.items())
                 + f"[space]\nlr = {{ grid = {json.dumps(LRS)} }}\n")
for workers in (1, 2):
    timed(f"numpynn sweep, Ray, {workers} worker(s)",
          [[*numpynn, "sweep", str(space), "--out", str(out / f"ray{workers}"), "--workers", str(workers), *data_flag]],
          out / f"ray{workers}")
