"""What the benchmark scripts share: running one measured child process (its peak RSS from os.wait4, its CPU time,
how busy other processes kept the CPUs meanwhile), the one-line error exits, reading the BLAS with threadpoolctl
(in a worker process), the machine and its environment, the report's table and the atomic --json file.

The measuring process imports this module, so at the top it imports the standard library only: on Linux a
child's peak RSS starts at its parent's RSS when it was spawned (the high-water mark survives exec), so a parent
holding NumPy would inflate every child's number. threadpoolctl is imported only inside blas_libraries, which
the worker processes call.

The scripts run as `python benchmarks/NAME.py`, which puts this folder first on sys.path: `from _common import`.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import traceback

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------
# Running one child

def cpu_times() -> tuple[float, float] | None:
    """(busy, total) seconds of all CPUs together since boot, from /proc/stat; None where it does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - fields[3] - fields[4]) / tick, sum(fields[:8]) / tick


def cpu_busy_before(seconds: float = 1.0) -> float | None:
    """The fraction of all CPUs' time spent busy over the next `seconds`, before any run starts: other work
    running now would slow every number. None where /proc/stat does not exist.
    (The load average would be simpler, but it lags a minute behind: it still counts work that has ended.)"""
    first = cpu_times()
    time.sleep(seconds)
    second = cpu_times()
    if not first or not second:
        return None
    return (second[0] - first[0]) / max(second[1] - first[1], 1e-9)


def run_child(command: list[str], what: str, prog: str) -> tuple[str, dict]:
    """Run one command from the repository root; return its stdout and its wall seconds, CPU seconds, peak RSS
    (os.wait4: this child's own) and the share of all CPUs that *other* processes kept busy meanwhile.
    If it fails or prints nothing, exit with one line "PROG: error: WHAT failed ..." quoting its own error."""
    # Output goes to files, not pipes: the child is reaped with os.wait4 (for its own rusage), and nobody
    # would be draining a pipe meanwhile.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = cpu_times()
        started = time.perf_counter()
        # cwd=REPO: `python -m numpynn` then imports the working tree's numpynn, the code being measured.
        child = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except KeyboardInterrupt:
            child.kill()
            child.wait()
            raise
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        wall = time.perf_counter() - started
        after = cpu_times()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if child.returncode != 0 or not stdout.strip():
        # numpynn reports a bad flag or missing data as one line "numpynn: error: ..." that may be followed by
        # hints; that line says most. Anything else (a traceback) ends with the line that says most.
        said = stderr.strip().splitlines() or ["(nothing on stderr)"]
        errors = [line for line in said if line.startswith("numpynn: error")]
        sys.exit(f"{prog}: error: {what} failed (exit {child.returncode}): {(errors or said)[-1]}")
    cpu_seconds = usage.ru_utime + usage.ru_stime  # near 2 x wall when two BLAS threads had a core each
    others = None
    if before and after:  # all CPUs' busy time meanwhile, less this child's own, as a share of all CPUs' time
        others = max(0.0, (after[0] - before[0] - cpu_seconds) / max(after[1] - before[1], 1e-9))
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak_kib = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return stdout, {"wall_seconds": wall, "cpu_seconds": cpu_seconds, "peak_rss_kib": peak_kib, "others_busy": others}


def last_json(stdout: str, what: str, prog: str) -> dict:
    """The child's last output line, which is JSON; exit with one line if it is not."""
    line = stdout.strip().splitlines()[-1]
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        sys.exit(f"{prog}: error: {what} did not end with a JSON line; its last line: {line}")


def run_json_child(command: list[str], what: str, prog: str) -> dict:
    """run_child for a command whose last line is JSON: that JSON, then the measurements."""
    stdout, usage = run_child(command, what, prog)
    return {**last_json(stdout, what, prog), **usage}


def run_worker(workers: dict, args) -> int:
    """In a worker process: run workers[args.worker](args) and print its result as one JSON line. On an error,
    exit with one line for run_child to quote (a traceback first, unless numpynn said what to do itself)."""
    try:
        result = workers[args.worker](args)
    except Exception as error:
        if type(error).__name__ == "DataError":  # numpynn's own message says what to do
            sys.exit(f"numpynn: error: {error}")
        traceback.print_exc()
        sys.exit(f"numpynn: error: {type(error).__name__}: {error}")
    print(json.dumps(result))
    return 0


def torch_epoch(torch, net, optimizer, X, y, order, batch_size: int) -> float:
    """One epoch of a PyTorch network in the given order of the images, batches of batch_size, softmax
    cross-entropy: what the speed benchmarks time as PyTorch's row. Returns the mean training loss."""
    loss_sum = 0.0
    for first in range(0, len(y), batch_size):
        batch = order[first : first + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X[batch]), y[batch])
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(batch)
    return loss_sum / len(y)


def run_main(main, prog: str) -> None:
    """Run main() as the script's entry point: its return value is the exit status; Ctrl-C exits with 130."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # run_child has already stopped the child
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


# ---------------------------------------------------------------------------------------------------------
# The BLAS, the machine, the code measured

def blas_libraries(keys: tuple[str, ...], user_api: str | None = None) -> list[dict]:
    """The libraries threadpoolctl finds loaded in this process (those of `user_api` only, if given), each as
    a dict of `keys`. For worker processes: it imports threadpoolctl (ImportError where it is missing)."""
    from threadpoolctl import threadpool_info

    return [{key: lib.get(key) for key in keys} for lib in threadpool_info() if user_api in (None, lib["user_api"])]


def blas_threads(libs: list[dict]) -> int:
    """The threads NumPy's BLAS runs with, from blas_libraries' list: what PyTorch's rows are given too."""
    return max((lib["num_threads"] for lib in libs if lib["user_api"] == "blas"), default=1)


def why_no_torch(python: str) -> str:
    """Why the PyTorch rows cannot run with this interpreter, or "" if they can."""
    if not pathlib.Path(python).exists():
        return f"{python} not found (see benchmarks/README.md for the benchmark venv)"
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0:
        return f"{python} cannot import torch"
    return ""


def describe_library(lib: dict) -> str:
    """One BLAS library in words: "openblas 0.3.27, kernel Haswell, 2 threads"."""
    return f"{lib['internal_api']} {lib['version']}, kernel {lib['architecture']}, {lib['num_threads']} threads"


def library_file(lib: dict) -> str:
    """The file name of a library from blas_libraries (with "filepath" among its keys)."""
    return pathlib.Path(lib["filepath"] or "?").name


def environment(names) -> dict:
    """The named environment variables as found, None where unset (this code never sets them)."""
    return {name: os.environ.get(name) for name in names}


def describe_environment(env: dict) -> str:
    return "  ".join(f"{name}={value if value is not None else '(unset)'}" for name, value in env.items())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def code_hash(paths) -> str:
    """A short SHA-256 of the files, in order, so a report says which version of the code it measured."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------
# The report

def table(rows: list[tuple[str, ...]], left=(0,)) -> list[str]:
    """The rows (the first is the header) as lines of aligned columns, two spaces apart: the columns in `left`
    left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = (cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells).rstrip())
    return lines


def check_json_path(parser, path: str | None) -> None:
    """Make --json PATH fail at once, not after the runs, when its folder does not exist."""
    if path and not pathlib.Path(path).resolve().parent.is_dir():
        parser.error(f"--json {path}: its folder does not exist")


def check_runs(parser, text: str, kinds) -> list[str]:
    """--runs LIST as a list of kinds; a parser error names any that is not one of `kinds`."""
    runs = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in runs if kind not in kinds]
    if unknown or not runs:
        parser.error(f"--runs: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(kinds)}")
    return runs


def write_json(path: str, report: dict) -> None:
    """Write the report whole or not at all: a temporary file next to `path`, then an atomic rename."""
    target = pathlib.Path(path).resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
