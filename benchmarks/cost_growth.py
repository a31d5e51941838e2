"""How does the cost of training grow with the batch size, the hidden width and the training-set size?

What it measures
    Epoch time and peak memory of two networks, each numpynn next to the same network in PyTorch on the same
    CPU, from the same initial weights and in the same order of the images:

    mlp   784-H-10, ReLU, softmax cross-entropy, SGD with momentum 0.9 (the `mlp` preset, as mlp_speed.py),
          numpynn with threads=1 (the preset's; NumPy's BLAS uses every core).
    cnn   conv5x5-32, max-pool, ReLU, conv5x5-64, max-pool, ReLU, dense H, ReLU, dense 10, Adam (the `cnn`
          preset, as cnn_speed.py: dropout and label smoothing off), numpynn with threads=2 (the preset's).

    along three axes, one changing at a time:
        batch size     32, 64, 128, 256, 512               at H = 800 (mlp) / 256 (cnn)
        hidden width   100 ... 3200 (mlp), 64 ... 1024 (cnn dense layer)   at batch 128
        training set   5,000, 10,000, 20,000, 50,000 images   at batch 128 and the default H

    On the batch and width axes the clock covers part of an epoch, the first --mlp-images (20,000) or
    --cnn-images (5,000) images of the training set, and the time is scaled to a 50,000-image epoch
    (seconds x 50,000 / images): "epoch s" there is an estimate. (At about 45,000 images/s for the MLP and
    4,000 for the CNN on 2 cores, that is about half a second and a second of work: long enough that the
    first batches' warm-up does not dominate.) On the training-set axis the set really has
    that many images and the time is one real epoch over it. Peak memory is never scaled: it is the peak RSS
    of the process that trained (os.wait4), holding the images it trained on, which on the batch and width
    axes are only the 20,000 or 5,000 (the interpreter, NumPy or PyTorch and the uint8 MNIST files are in it
    too, about the same at every point).

    Each point is one subprocess per engine: numpynn's fit() for one epoch (as mlp_speed.py and cnn_speed.py:
    no progress bar, log, checkpoint or dev set), and PyTorch (torch.set_num_threads = NumPy's BLAS
    threads) with cnn_speed.torch_net, the same layers and weights. --repeat N runs every point N times,
    round-robin; the figure and the table show the best time and the largest peak RSS.

The machine's limits, measured by this script in their own subprocesses and drawn on the time plots
    sgemm GFLOP/s     a float32 2048 x 2048 matrix product with NumPy's BLAS at its default threads (the
                      cores), best of 5: 2 * 2048^3 / seconds.
    copy GB/s         np.copyto of a 256 MB float32 array into another, best of 5: 2 * 256 MB (read and write)
                      / seconds. One thread, as NumPy runs element-wise work.
    FLOP floor        (dashed) the epoch's matrix-product FLOPs / sgemm FLOP/s: the time the products alone
                      would take at the BLAS's measured best. Per image, with M_l the multiply-adds of layer l's
                      forward product (dense: D_in * D_out; convolution: output pixels * C_out * C_in * k * k,
                      counted on a traced forward pass),
                          FLOPs = 2 * sum_l M_l  (forward)  +  2 * sum_l M_l  (dW)  +  2 * sum_{l > 1} M_l  (dX)
                      (the first layer's dX is needed by nobody); times the epoch's images. Biases, ReLU,
                      pooling, softmax and the optimizer are left out: they are not products.
    bandwidth floor   (dotted) the bytes the optimizer must stream per step / copy GB/s, times the epoch's
                      steps (ceil(images / batch)): SGD with momentum reads W, dW, v and writes v, W (5 floats
                      of 4 bytes per parameter); Adam reads W, dW, m, v and writes m, v, W (7). It is the
                      cost that grows as the batch shrinks (more steps per epoch), which the FLOP floor does
                      not see.
    On the memory plots: the float32 training set the process held (images x 784 x 4 bytes), and the
    machine's RAM (MemTotal in /proc/meminfo) where it is within 8 times the largest point (otherwise printed).

Where each runs
    numpynn runs with the interpreter running this script (numpynn's venv); torch with --bench-python
    (default .venv-bench/bin/python), a separate venv: numpynn never depends on torch. If it is missing, the
    torch rows are skipped with a note. The figure is drawn by a child with matplotlib (numpynn's venv).

Usage:  .venv/bin/python benchmarks/cost_growth.py [--repeat 1] [--json cost.json] [--out cost_growth.png]
        .venv/bin/python benchmarks/cost_growth.py --quick       # a tiny grid, for development: about a minute
Timings depend on everything else the machine is doing: run it on an otherwise idle machine.
"""
from __future__ import annotations

# The measuring process imports only the standard library (see _common.py: a heavy parent inflates the
# children's peak RSS); the figure is drawn in a child for the same reason.
import argparse
import math
import os
import pathlib
import platform
import sys
import tempfile
import time

import _common  # benchmarks/_common.py: this folder is on sys.path when the script runs
from _common import REPO, check_json_path, code_hash, cpu_busy_before, cpu_name, run_json_child, table, write_json

PROG = "cost_growth"
ENGINE_CODE = [REPO / "numpynn" / name for name in ("train.py", "model.py", "layers.py", "conv.py", "losses.py",
                                                     "optim.py", "parallel.py")]
KINDS = {"engine": "numpynn", "torch": "PyTorch"}
ENV_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS")
EPOCH = 50_000  # the training set's images: partial epochs are scaled to this
D = 784
NETS = {"mlp": "MLP 784-H-10, SGD momentum", "cnn": "CNN conv32-conv64-H-10, Adam"}
AXES = {"batch": "batch size", "hidden": "hidden width H", "train": "training-set size (images)"}
SHORT = {"mlp": "MLP 784-H-10", "cnn": "CNN", "batch": "batch size", "hidden": "width H", "train": "training set"}
# The grids: each axis changes one thing from the default point (batch 128, H = DEFAULT_H).
DEFAULT_H = {"mlp": 800, "cnn": 256}
GRID = {
    "mlp": {"batch": (32, 64, 128, 256, 512), "hidden": (100, 200, 400, 800, 1600, 3200),
            "train": (5_000, 10_000, 20_000, 50_000)},
    "cnn": {"batch": (32, 64, 128, 256, 512), "hidden": (64, 128, 256, 512, 1024),
            "train": (5_000, 10_000, 20_000, 50_000)},
}
QUICK_GRID = {  # --quick: two points per axis, a few hundred images
    "mlp": {"batch": (64, 256), "hidden": (100, 800), "train": (256, 512)},
    "cnn": {"batch": (64, 256), "hidden": (64, 256), "train": (256, 512)},
}
OPTIMIZER_FLOATS = {"sgd": 5, "adam": 7}  # floats streamed per parameter per step (see the docstring)


# ---------------------------------------------------------------------------------------------------------
# Worker processes: each prints one JSON line.

def _setup(args):
    """The config, the first args.images images of the training set (float32; no dev set) and the Run."""
    sys.path.insert(0, str(REPO))  # the working tree's numpynn, whichever venv runs this
    import numpy as np

    from numpynn.data import Splits, _features, load_raw, split_order
    from numpynn.train import Run, make_config

    common = {"epochs": 1, "schedule": "constant", "warmup_epochs": 0.0, "label_smoothing": 0.0,
              "batch_size": args.batch_size, "hidden": (args.hidden,)}
    if args.net == "mlp":
        config = make_config("mlp", **common)
    else:  # dropout off, as cnn_speed.py: the same math in both engines; threads stays the preset's 2
        config = make_config("cnn", dropout=0.0, **common)
    # load_mnist's training split, but only its first args.images images made float32, so that the peak RSS
    # holds the set trained on and not all 50,000 (the uint8 files, 55 MB, are read whole either way).
    x_train, y_train, _, _ = load_raw("mnist", args.data, progress=False)
    train = split_order(len(x_train), config.seed)[config.dev_size:][: args.images]
    if len(train) < args.images:
        raise ValueError(f"{args.images} images asked for, the training set has {len(train)}")
    X, y = _features(x_train[train]), y_train[train].astype(np.int64)  # (n, 784), (n,)
    del x_train, y_train
    splits = Splits(X_train=X, y_train=y, X_dev=None, y_dev=None, X_test=None, y_test=None)
    return config, splits, Run.start(config), np


def product_macs(model, np) -> list[int]:
    """Multiply-adds of each layer's forward matrix product for one image, traced through a forward pass:
    dense D_in * D_out, convolution (output pixels) * C_out * C_in * k * k."""
    X, macs = np.zeros((1, D), np.float32), []
    for layer in model.layers:
        Y = layer.forward(X, train=False)
        spec = layer.spec()
        if spec["type"] == "Dense":
            macs.append(spec["D_in"] * spec["D_out"])
        elif spec["type"] == "Conv2D":
            macs.append(Y[0].size * spec["C_in"] * spec["kernel"] ** 2)  # Y[0]: (C_out, H_out, W_out)
        X = Y
    return macs


def _describe(config, run, np) -> dict:
    return {"macs": product_macs(run.model, np), "params": int(sum(p.size for p in run.model.params())),
            "optimizer": config.optimizer}


def work_probe(args) -> dict:
    import numpy as np

    blas = _common.blas_libraries(("user_api", "internal_api", "version", "architecture", "num_threads",
                                   "filepath"))
    return {"numpy": np.__version__, "python": platform.python_version(), "blas": blas}


def work_sgemm(args) -> dict:
    """Float32 C = A @ B, n x n, at the BLAS's default threads: best of 5, after one warm-up."""
    import numpy as np

    n = 2048
    rng = np.random.default_rng(0)
    A, B = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    C = np.empty((n, n), np.float32)
    np.matmul(A, B, out=C)  # warm-up: threads started, pages touched
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        best = min(best, time.perf_counter() - start)
    return {"n": n, "seconds": best, "gflops": 2 * n**3 / best / 1e9}


def work_bandwidth(args) -> dict:
    """np.copyto of a 256 MB float32 array into another: best of 5, read + write bytes per second."""
    import numpy as np

    src = np.ones(args.bandwidth_mb * 2**20 // 4, np.float32)
    dst = np.zeros_like(src)  # both touched: no page faults inside the clock
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return {"bytes": src.nbytes, "seconds": best, "gbs": 2 * src.nbytes / best / 1e9}


def work_engine(args) -> dict:
    from numpynn.train import fit

    config, splits, run, np = _setup(args)
    start = time.perf_counter()
    history = fit(run, splits)  # one epoch; no progress, log, checkpoint or dev set
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "samples": len(splits.y_train), "train_loss": history.epochs[-1]["train_loss"],
            "threads": config.threads, "data_bytes": splits.X_train.nbytes, **_describe(config, run, np)}


def work_torch(args) -> dict:
    import torch

    from cnn_speed import torch_net  # the numpynn model's layers and weights as a torch.nn.Sequential

    torch.set_num_threads(args.threads)
    config, splits, run, np = _setup(args)
    net = torch_net(run.model, torch)
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                     eps=config.eps)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    X, y = torch.from_numpy(splits.X_train), torch.from_numpy(splits.y_train)  # shared with NumPy, no copy
    start = time.perf_counter()
    order = torch.from_numpy(run.rng.permutation(len(y)))  # the engine's order: its first permutation
    loss = _common.torch_epoch(torch, net, optimizer, X, y, order, config.batch_size)
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "samples": len(y), "train_loss": loss, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "data_bytes": splits.X_train.nbytes, **_describe(config, run, np)}


def work_plot(args) -> dict:
    """Draw the report (a JSON file) as the figure, written atomically to args.out."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(pathlib.Path(args.report).read_text())
    nets = [net for net in NETS if any(p["net"] == net for p in report["points"])]
    fig, axes = plt.subplots(2 * len(nets), 3, figsize=(15, 7.5 * len(nets)), squeeze=False)
    ram = report["machine"]["ram_bytes"]
    colours = {"engine": "tab:blue", "torch": "tab:orange"}
    for n, net in enumerate(nets):
        for a, axis in enumerate(AXES):
            points = sorted((p for p in report["points"] if p["net"] == net and p["axis"] == axis),
                            key=lambda p: p["value"])
            if not points:
                continue
            xs = [p["value"] for p in points]
            t_ax, m_ax = axes[2 * n][a], axes[2 * n + 1][a]
            for kind, label in KINDS.items():
                if all(kind in p["results"] for p in points):
                    t_ax.plot(xs, [p["results"][kind]["epoch_seconds"] for p in points], "o-",
                              color=colours[kind], label=label)
                    m_ax.plot(xs, [p["results"][kind]["peak_rss_kib"] / 1024 for p in points], "o-",
                              color=colours[kind], label=f"{label} peak RSS")
            t_ax.plot(xs, [p["flop_floor_seconds"] for p in points], "k--", lw=1,
                      label=f"FLOP floor ({report['limits']['sgemm_gflops']:.0f} GFLOP/s sgemm)")
            t_ax.plot(xs, [p["bandwidth_floor_seconds"] for p in points], "k:", lw=1.3,
                      label=f"optimizer bandwidth floor ({report['limits']['copy_gbs']:.1f} GB/s copy)")
            data_mib = [p["data_bytes"] / 2**20 for p in points]
            m_ax.plot(xs, data_mib, "g--", lw=1, label="float32 training set held")
            top = max([*data_mib, *(p["results"][k]["peak_rss_kib"] / 1024 for p in points for k in p["results"])])
            if ram and ram / 2**20 <= 8 * top:
                m_ax.axhline(ram / 2**20, color="r", lw=1, label=f"RAM ({ram / 2**30:.1f} GiB)")
            scaled = axis != "train"
            t_ax.set_title(f"{SHORT[net]}: epoch time vs {SHORT[axis]}"
                           + (f"\n(timed on {points[0]['images']:,} images, scaled to {EPOCH:,})" if scaled
                              else "\n(one real epoch over the set)"), fontsize=9)
            m_ax.set_title(f"{SHORT[net]}: peak memory vs {SHORT[axis]}"
                           + (f"\n(holding {points[0]['images']:,} images)" if scaled else ""), fontsize=9)
            t_ax.set_ylabel(f"seconds per epoch{' (50,000 images)' if scaled else ''}")
            m_ax.set_ylabel("peak RSS, MiB")
            t_ax.set_yscale("log")
            m_ax.set_ylim(0, 1.1 * top)  # memory on a linear scale from 0: the fixed cost shows as the offset
            for ax in (t_ax, m_ax):
                ax.set_xscale("log", base=2)
                ax.set_xticks(xs)
                ax.set_xticklabels([f"{x:,}" for x in xs], fontsize=8)
                ax.minorticks_off()
                ax.set_xlabel(AXES[axis])
                ax.grid(True, which="major", alpha=0.3)
                ax.legend(fontsize=7)
    busy = report["machine"]["cpu_busy_before"]
    versus = f" next to PyTorch {report['torch_version']}" if report.get("torch_version") else ""
    fig.suptitle(f"How cost grows ({', '.join(NETS[net] for net in nets)}): numpynn{versus} on "
                 f"{report['machine']['cpus']} CPUs ({report['machine']['cpu']}); best of {report['repeat']}"
                 + (f"; CPUs {100 * busy:.0f}% busy before" if busy is not None else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    target = pathlib.Path(args.out).resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp.png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return {"out": str(target)}


WORKERS = {"probe": work_probe, "sgemm": work_sgemm, "bandwidth": work_bandwidth, "engine": work_engine,
           "torch": work_torch, "plot": work_plot}


# ---------------------------------------------------------------------------------------------------------
# The measuring process

def worker_command(python: str, kind: str, args, point: dict | None = None, threads: int = 1) -> list[str]:
    command = [python, str(pathlib.Path(__file__).resolve()), "--worker", kind, "--threads", str(threads),
               "--bandwidth-mb", str(args.bandwidth_mb)]
    if point:
        command += ["--net", point["net"], "--batch-size", str(point["batch"]), "--hidden", str(point["hidden"]),
                    "--images", str(point["images"])]
    return command + (["--data", args.data] if args.data else [])


def grid_points(args) -> list[dict]:
    """Every point of the grid, each axis from the default point; a point on two axes appears on both."""
    grid = QUICK_GRID if args.quick else GRID
    points = []
    for net in args.nets:
        partial = args.mlp_images if net == "mlp" else args.cnn_images
        for axis, values in grid[net].items():
            for value in values:
                batch = value if axis == "batch" else 128
                hidden = value if axis == "hidden" else DEFAULT_H[net]
                images = value if axis == "train" else partial
                points.append({"net": net, "axis": axis, "value": value, "batch": batch, "hidden": hidden,
                               "images": images, "scale": 1.0 if axis == "train" else EPOCH / images})
    return points


def floors(point: dict, described: dict, limits: dict) -> dict:
    """The epoch's matrix-product FLOPs and optimizer bytes, and the times they take at the machine's limits."""
    macs = described["macs"]
    epoch_images = point["images"] * point["scale"]  # 50,000, or the real set's size
    flops = epoch_images * (2 * sum(macs) + 2 * sum(macs) + 2 * sum(macs[1:]))  # forward, dW, dX but the first
    steps = math.ceil(epoch_images / point["batch"])
    optimizer_bytes = steps * described["params"] * OPTIMIZER_FLOATS[described["optimizer"]] * 4
    return {"flops": flops, "optimizer_bytes": optimizer_bytes, "params": described["params"],
            "flop_floor_seconds": flops / (limits["sgemm_gflops"] * 1e9),
            "bandwidth_floor_seconds": optimizer_bytes / (limits["copy_gbs"] * 1e9)}


def ram_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def print_report(report: dict) -> None:
    info, limits, machine = report["probe"], report["limits"], report["machine"]
    print(f"numpynn cost growth: epoch time and peak memory against batch size, hidden width and training-set "
          f"size; best of {report['repeat']} run(s) of each point{' (--quick grid)' if report['quick'] else ''}")
    blas = "; ".join(f"{_common.describe_library(lib)} ({_common.library_file(lib)})"
                     for lib in info["blas"] if lib["user_api"] == "blas") or "none found by threadpoolctl"
    print(f"BLAS      NumPy {info['numpy']}: {blas}")
    if report.get("torch_version"):
        print(f"          PyTorch {report['torch_version']}: {report['threads']} threads (set_num_threads)")
    print(f"env       {_common.describe_environment(report['env'])}")
    ram = machine["ram_bytes"]
    memory = f"RAM {ram / 2**30:.1f} GiB" if ram else "RAM unknown"
    print(f"machine   {machine['cpus']} CPUs, {machine['cpu']}, Python {info['python']}, {memory}")
    print(f"limits    sgemm {limits['sgemm_gflops']:.1f} GFLOP/s (float32 {limits['sgemm_n']}^2, BLAS threads); "
          f"copy {limits['copy_gbs']:.1f} GB/s ({limits['copy_bytes'] // 2**20} MB float32, read + write, "
          f"1 thread)")
    code = report["engine_sha256"]
    changed = "" if code["before"] == code["after"] else f", CHANGED during the runs to {code['after']}"
    print(f"code      numpynn (train, model, layers, conv, losses, optim, parallel) sha256 {code['before']}{changed}")
    if report["skipped"]:
        print(f"skipped   torch: {report['skipped']}")
    for net in NETS:
        points = [p for p in report["points"] if p["net"] == net]
        if not points:
            continue
        partial = next((p["images"] for p in points if p["axis"] != "train"), None)
        print(f"\n{NETS[net]}" + (f"; batch and width axes timed on {partial:,} images and scaled to a "
                                  f"{EPOCH:,}-image epoch" if partial else ""))
        rows = [("axis", "batch", "H", "epoch images", "numpynn s", "torch s", "numpynn/torch", "FLOP floor s",
                 "bw floor s", "numpynn RSS", "torch RSS", "data MiB", "others")]
        for p in points:
            e, t = p["results"].get("engine"), p["results"].get("torch")
            others = max((r["others_busy_max"] for r in p["results"].values()), default=0.0)
            rows.append((AXES[p["axis"]].split()[0], str(p["batch"]), str(p["hidden"]),
                         f"{round(p['images'] * p['scale']):,}" + ("" if p["axis"] == "train" else "*"),
                         f"{e['epoch_seconds']:.2f}" if e else "-", f"{t['epoch_seconds']:.2f}" if t else "-",
                         f"{e['epoch_seconds'] / t['epoch_seconds']:.2f}x" if e and t else "-",
                         f"{p['flop_floor_seconds']:.3f}", f"{p['bandwidth_floor_seconds']:.3f}",
                         f"{e['peak_rss_kib'] / 1024:.0f} MiB" if e else "-",
                         f"{t['peak_rss_kib'] / 1024:.0f} MiB" if t else "-",
                         f"{p['data_bytes'] / 2**20:.1f}", f"{100 * others:.0f}%"))
        print("\n".join(table(rows)))
    print()
    print("epoch images *: timed on fewer images and scaled (seconds x 50,000 / images); memory is not scaled.")
    print("FLOP floor: the epoch's matrix-product FLOPs (forward, dW, dX) / the sgemm GFLOP/s above.")
    print("bw floor:   the bytes the optimizer streams per step (SGD momentum 5, Adam 7 floats a parameter)")
    print("            x steps per epoch / the copy GB/s above.")
    print("RSS:        the peak resident memory of the process that trained; data MiB: its float32 images.")
    print("others:     the largest share of all CPUs other processes used during the point's runs.")
    if ram and not report["ram_drawn"]:
        print(f"RAM ({ram / 2**30:.1f} GiB) is not drawn on the memory plots: over 8 times their largest point.")
    busy = machine["cpu_busy_before"]
    if busy is not None and busy > 0.1:
        print(f"\nwarning: the CPUs were {100 * busy:.0f}% busy in the second before the runs")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="runs of each point, round-robin; the best time is drawn (default: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny grid (two points per axis, a few hundred images), for development")
    parser.add_argument("--runs", default=",".join(KINDS), metavar="LIST",
                        help=f"which engines, comma-separated, from {','.join(KINDS)} (default: both)")
    parser.add_argument("--nets", default=",".join(NETS), metavar="LIST",
                        help=f"which networks, comma-separated, from {','.join(NETS)} (default: both)")
    parser.add_argument("--mlp-images", type=int, default=20_000, metavar="N",
                        help="images timed per MLP point on the batch and width axes (default: 20000)")
    parser.add_argument("--cnn-images", type=int, default=5_000, metavar="N",
                        help="images timed per CNN point on the batch and width axes (default: 5000)")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: numpynn's search)")
    parser.add_argument("--bench-python", metavar="PATH", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="interpreter with torch (default: .venv-bench/bin/python)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file (atomically)")
    parser.add_argument("--out", metavar="PATH", default=str(REPO / "benchmarks" / "cost_growth.png"),
                        help="the figure, PNG, written atomically (default: benchmarks/cost_growth.png)")
    parser.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)  # internal: one child
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)  # internal: torch's threads
    parser.add_argument("--net", choices=tuple(NETS), help=argparse.SUPPRESS)  # internal: one point
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)  # internal: the plot worker's input
    parser.add_argument("--bandwidth-mb", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    args.runs = _common.check_runs(parser, args.runs, KINDS)
    args.nets = _common.check_runs(parser, args.nets, NETS)
    if args.repeat < 1 or args.mlp_images < 1 or args.cnn_images < 1:
        parser.error("--repeat, --mlp-images and --cnn-images must be 1 or more")
    if args.quick:  # a few hundred images on every axis
        args.mlp_images = min(args.mlp_images, 512)
        args.cnn_images = min(args.cnn_images, 256)
    check_json_path(parser, args.json)
    if not pathlib.Path(args.out).resolve().parent.is_dir():
        parser.error(f"--out {args.out}: its folder does not exist")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _common.run_worker(WORKERS, args)

    started = time.perf_counter()
    cpu_busy = cpu_busy_before()
    code_before = code_hash(ENGINE_CODE)
    info = run_json_child(worker_command(sys.executable, "probe", args), "reading the BLAS", PROG)
    threads = _common.blas_threads(info["blas"])
    sgemm = run_json_child(worker_command(sys.executable, "sgemm", args), "the sgemm measurement", PROG)
    copy = run_json_child(worker_command(sys.executable, "bandwidth", args), "the bandwidth measurement", PROG)
    limits = {"sgemm_gflops": sgemm["gflops"], "sgemm_n": sgemm["n"], "sgemm_seconds": sgemm["seconds"],
              "copy_gbs": copy["gbs"], "copy_bytes": copy["bytes"], "copy_seconds": copy["seconds"]}

    kinds = list(args.runs)
    skipped = _common.why_no_torch(args.bench_python) if "torch" in kinds else ""
    if skipped:
        kinds.remove("torch")
    if not kinds:
        sys.exit(f"{PROG}: error: nothing to run: {skipped}")

    points = grid_points(args)
    # A point on two axes (batch 128 at the default H) is measured once and drawn on both.
    key = lambda p: (p["net"], p["batch"], p["hidden"], p["images"])  # noqa: E731
    runs: dict[tuple, dict[str, list]] = {key(p): {kind: [] for kind in kinds} for p in points}
    for repeat in range(args.repeat):  # round-robin, so a slow spell of the machine touches every point alike
        for k, by_kind in runs.items():
            point = next(p for p in points if key(p) == k)
            for kind in kinds:
                python = args.bench_python if kind == "torch" else sys.executable
                what = f"the {kind} run of {point['net']} batch {point['batch']} H {point['hidden']} " \
                       f"on {point['images']} images"
                result = run_json_child(worker_command(python, kind, args, point, threads), what, PROG)
                by_kind[kind].append(result)
                print(f"{PROG}: {time.perf_counter() - started:6.0f} s  {what}: {result['train_seconds']:.2f} s, "
                      f"{result['peak_rss_kib'] / 1024:.0f} MiB", file=sys.stderr)
    for point in points:
        results = {}
        for kind, kind_runs in runs[key(point)].items():
            best = min(run["train_seconds"] for run in kind_runs)
            results[kind] = {"train_seconds_best": best, "epoch_seconds": best * point["scale"],
                             "peak_rss_kib": max(run["peak_rss_kib"] for run in kind_runs),
                             "others_busy_max": max((run["others_busy"] or 0.0) for run in kind_runs),
                             "runs": kind_runs}
        first = next(iter(results.values()))["runs"][0]
        point.update(results=results, data_bytes=first["data_bytes"], **floors(point, first, limits))
    torch_runs = [run for by_kind in runs.values() for run in by_kind.get("torch", [])]
    ram = ram_bytes()
    top_kib = max(r["peak_rss_kib"] for p in points for r in p["results"].values())
    report = {
        "quick": args.quick, "repeat": args.repeat, "epoch_images": EPOCH, "threads": threads,
        "probe": info, "limits": limits, "torch_version": torch_runs[0]["torch"] if torch_runs else None,
        "env": _common.environment(ENV_VARIABLES),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "cpu_busy_before": cpu_busy, "ram_bytes": ram},
        "ram_drawn": bool(ram and ram <= 8 * top_kib * 1024),
        "engine_sha256": {"before": code_before, "after": code_hash(ENGINE_CODE)},
        "skipped": skipped, "points": points, "seconds_total": time.perf_counter() - started,
    }
    print_report(report)
    with tempfile.TemporaryDirectory() as folder:  # the plot child reads the report from a file
        path = pathlib.Path(folder) / "report.json"
        write_json(str(path), report)
        command = worker_command(sys.executable, "plot", args) + ["--report", str(path), "--out", args.out]
        run_json_child(command, "drawing the figure", PROG)
    print(f"\nfigure    {args.out}")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    _common.run_main(main, PROG)
