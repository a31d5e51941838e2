"""Trials per hour on this machine: the same 4 trainings run one at a time with `numpynn train` (no Ray), then as
`numpynn sweep` with Ray on 1 worker and on 2 workers. Writes one JSON line per mode (docs/scale.md quotes them).

    nice -n 19 python benchmarks/sweep_throughput.py OUT_DIR [--data DIR]
"""
import json
import os
import pathlib
import subprocess
import sys
import time

LRS = [0.03, 0.05, 0.1, 0.2]
FIXED = {"preset": "mlp", "hidden": [128], "epochs": 2}  # a short real MNIST training, about 10 s of CPU

out = pathlib.Path(sys.argv[1])
data = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else os.environ.get("NUMPYNN_DATA")
out.mkdir(parents=True, exist_ok=True)
numpynn = [sys.executable, "-m", "numpynn"]
data_flag = ["--data", data] if data else []


def timed(mode, commands):
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    row = {"mode": mode, "trials": len(LRS), "seconds": round(seconds, 1),
           "trials_per_hour": round(3600 * len(LRS) / seconds), "load_before": round(load, 2),
           "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
    print(json.dumps(row), flush=True)


flags = ["--hidden", "128", "--epochs", "2", "--quiet"]
timed("numpynn train, one at a time", [[*numpynn, "train", *flags, "--lr", str(lr), "--out", str(out / f"m{i}.npz"),
                                        *data_flag] for i, lr in enumerate(LRS)])
space = out / "space.toml"
space.write_text('[sweep]\nscheduler = "none"\n[fixed]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in FIXED.items())
                 + f"[space]\nlr = {{ grid = {json.dumps(LRS)} }}\n")
for workers in (1, 2):
    timed(f"numpynn sweep, Ray, {workers} worker(s)",
          [[*numpynn, "sweep", str(space), "--out", str(out / f"sweep{workers}"), "--workers", str(workers), *data_flag]])
