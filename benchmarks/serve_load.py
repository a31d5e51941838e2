"""Load on `numpynn serve`: C concurrent clients on loopback send N requests, some of them malformed, and the
report says how many predictions per second the server answered, their latency (p50, p99), the errors, and the
server's memory (RSS) as the requests go by.

    .venv/bin/python benchmarks/serve_load.py                       # 16 clients, 10,000 requests
    .venv/bin/python benchmarks/serve_load.py --model model.npz --requests 20000 --json load.json

The server is the real command, `python -m numpynn serve MODEL --port 0`, in its own process; this process is
the clients: asyncio, one keep-alive HTTP/1.1 connection per client, each client sending its next request as
soon as the last one is answered (a closed loop, so latency includes the wait behind the other 15 clients).

The request mix, cycled in a fixed order:
- 6 in 10: what the page sends while you draw: the 280x280 pad's grey levels, raw (application/octet-stream)
- 2 in 10: a JSON 28x28 array
- 1 in 10: the same pad as a PNG picture, uploaded as multipart/form-data
- 1 in 10: malformed, one of: wrong shape, NaN, not JSON, not a picture, an unknown model, a body over the
  2 MB limit (it declares 3 MB; the server answers 413 at once and closes that connection)
A request is an error if its answer is not the expected one (200 with a digit for the good ones, the expected
4xx for each malformed one) or it gets no answer at all.

Without --model the server gets an untrained 784-800-10 network, the mlp preset's shape: its weights do not
change the time a prediction takes. Memory: the server's VmRSS from /proc, sampled as the run goes; flat means
it does not grow between the first fifth of the requests and the end.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from _common import REPO, check_json_path, cpu_busy_before, cpu_name, run_main, write_json

PROG = "serve_load"


def build_requests(host: str, only: str | None = None):
    """The request bodies, built once: (name, raw HTTP request bytes, expected status)."""
    import numpy as np
    from PIL import Image, ImageDraw

    pad = Image.new("L", (280, 280), 0)  # a '7' drawn as the page draws it: white on black, an 18 px brush
    ImageDraw.Draw(pad).line([(75, 65), (205, 65), (125, 225)], fill=255, width=18, joint="curve")
    png = io.BytesIO()
    pad.convert("RGBA").save(png, format="PNG")  # the page's canvas.toBlob gives RGBA
    digit = (np.asarray(pad.resize((28, 28), Image.Resampling.BOX), np.float32) / 255).round(3)

    def post(body: bytes, content_type: str, declared: int | None = None, query: str = "") -> bytes:
        head = (f"POST /api/predict{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {declared if declared is not None else len(body)}\r\n\r\n")
        return head.encode() + body

    def multipart(data: bytes, name="pad.png", kind="image/png") -> bytes:
        boundary = "numpynnbench7MA4YWxkTrZu0gW"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return post(body, f"multipart/form-data; boundary={boundary}")

    def as_json(value) -> bytes:
        return post(json.dumps(value).encode(), "application/json")

    page = ("page raw 280x280", post(np.asarray(pad).tobytes(), "application/octet-stream"), 200)
    array = ("JSON 28x28", as_json({"pixels": digit.tolist()}), 200)
    upload = ("PNG upload", multipart(png.getvalue()), 200)
    nan = json.dumps({"pixels": digit.tolist()}).replace("0.0", "NaN", 1).encode()
    malformed = [
        ("wrong shape", as_json({"pixels": digit[:27].tolist()}), 422),
        ("NaN", post(nan, "application/json"), 422),
        ("not JSON", post(b"{\"pixels\": [[0.1, 0.2", "application/json"), 422),
        ("not a picture", multipart(b"this is not a picture", "notes.txt", "text/plain"), 422),
        ("unknown model", as_json({"pixels": digit.tolist(), "model": "../../etc/passwd"}), 404),
        ("body over 2 MB", post(b"[" * 65536, "application/json", declared=3_000_000), 413),
    ]
    mix = [page, array, page, upload, page, array, page, page, page, None]  # None: the next malformed one
    if only is not None:  # one kind of good request, no malformed ones: what that kind alone costs
        mix = [{"page": page, "json": array, "upload": upload}[only]] * 10
    return mix, malformed


async def client(host, port, requests, results, deadline):
    """One keep-alive connection; sends requests[i] in turn, records (name, seconds, status or error)."""
    reader = writer = None
    for name, raw, expected in requests:
        if time.perf_counter() > deadline:
            results.append((name, None, "timeout: the run's time limit passed", expected))
            continue
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(raw)
            await writer.drain()
            status, close = await asyncio.wait_for(read_response(reader), timeout=10)
            results.append((name, time.perf_counter() - started, status, expected))
            if close:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            results.append((name, None, f"{type(error).__name__}: {error}", expected))
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    if status == 200 and b'"probabilities"' not in body:
        raise ValueError("a 200 answer without probabilities")
    return status, headers.get("connection", "").lower() == "close"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def load(host, port, pid, n_requests, n_clients, seconds, only=None):
    mix, malformed = build_requests(f"{host}:{port}", only)
    plan, bad = [], 0
    for i in range(n_requests):
        entry = mix[i % 10]
        if entry is None:
            entry, bad = malformed[bad % len(malformed)], bad + 1
        plan.append(entry)
    per_client = [plan[c::n_clients] for c in range(n_clients)]
    results, samples = [], []
    deadline = time.perf_counter() + seconds

    async def sampler():
        while True:
            samples.append((len(results), rss_mib(pid)))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(sampler())
    started = time.perf_counter()
    await asyncio.gather(*(client(host, port, requests, results, deadline) for requests in per_client))
    wall = time.perf_counter() - started
    watcher.cancel()
    samples.append((len(results), rss_mib(pid)))
    return results, samples, wall


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file to serve (default: an untrained 784-800-10)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in all (default: 10000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--warmup", type=int, default=500, help="requests sent first and not counted (default: 500)")
    parser.add_argument("--seconds", type=float, default=120, help="give up after this long (default: 120)")
    parser.add_argument("--only", choices=("page", "json", "upload"),
                        help="send only this kind of good request (default: the mix above)")
    parser.add_argument("--json", metavar="PATH", help="also write every number to a JSON file")
    args = parser.parse_args()
    if args.requests < 100 or args.clients < 1 or args.warmup < 0:
        raise SystemExit(f"{PROG}: error: use --requests 100 or more, --clients 1 or more, --warmup 0 or more")
    check_json_path(parser, args.json)

    with tempfile.TemporaryDirectory(prefix="numpynn-serve-load-") as tmp:
        model = args.model or make_model(pathlib.Path(tmp) / "mlp-800.npz")
        busy = cpu_busy_before()
        server = subprocess.Popen([sys.executable, "-m", "numpynn", "serve", str(model), "--models", tmp,
                                   "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=REPO)
        try:
            line = server.stdout.readline()
            if " on http://" not in line:
                raise SystemExit(f"{PROG}: error: the server did not start: {server.stderr.read().strip()}")
            address = line.split(" on http://")[1].split("/")[0]
            host, port = address.rsplit(":", 1)
            if args.warmup:
                asyncio.run(load(host, int(port), server.pid, args.warmup, args.clients, args.seconds, args.only))
            results, samples, wall = asyncio.run(load(host, int(port), server.pid, args.requests, args.clients,
                                                      args.seconds, args.only))
            cpu = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=15)
    report(args, results, samples, wall, busy, cpu)


def make_model(path):
    """An untrained network of the mlp preset's shape, written in a subprocess (this process stays light)."""
    code = ("import sys, numpy as np; from numpynn import serialize; from numpynn.model import mlp; "
            "serialize.save_model(sys.argv[1], mlp([784, 800, 10], rng=np.random.default_rng(0)), {})")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=REPO)
    return path


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def report(args, results, samples, wall, busy, cpu):
    good = [r for r in results if r[3] == 200]
    errors = [r for r in results if r[2] != r[3]]
    ok_latency = [r[1] * 1000 for r in good if r[2] == 200]
    all_latency = [r[1] * 1000 for r in results if r[1] is not None]
    predictions = sum(1 for r in good if r[2] == 200)
    by_kind = {}
    for name, seconds, status, expected in results:
        row = by_kind.setdefault(name, {"n": 0, "errors": 0, "ms": []})
        row["n"] += 1
        row["errors"] += status != expected
        if seconds is not None:
            row["ms"].append(seconds * 1000)
    fifth = next((rss for n, rss in samples if n >= len(results) // 5), samples[0][1])
    summary = {
        "requests": len(results), "clients": args.clients, "seconds": wall, "requests_per_s": len(results) / wall,
        "predictions": predictions, "predictions_per_s": predictions / wall,
        "p50_ms": percentile(ok_latency, 50), "p99_ms": percentile(ok_latency, 99),
        "p99_ms_all_requests": percentile(all_latency, 99), "errors": len(errors),
        "rss_mib": {"start": samples[0][1], "after_first_fifth": fifth, "end": samples[-1][1],
                    "max": max(rss for _, rss in samples)},
        "only": args.only, "server_cpu_s": cpu, "cpu_busy_before": busy, "machine": f"{os.cpu_count()} CPUs, {cpu_name()}",
        "kinds": {name: {"n": row["n"], "errors": row["errors"], "p50_ms": percentile(row["ms"], 50),
                         "p99_ms": percentile(row["ms"], 99)} for name, row in by_kind.items()},
        "first_errors": [f"{name}: got {status}, expected {expected}" for name, _, status, expected in errors[:5]],
    }
    mix = f"only {args.only} requests" if args.only else "the mix of the page's, JSON, upload and malformed requests"
    print(f"numpynn serve under load: {summary['requests']:,} requests from {args.clients} concurrent clients "
          f"on loopback (after {args.warmup} warm-up requests), {mix}")
    print(f"machine   {summary['machine']}; CPUs {busy:.0%} busy in the second before" if busy is not None
          else f"machine   {summary['machine']}")
    print(f"\n{'request':<18}{'n':>7}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in summary["kinds"].items():
        print(f"{name:<18}{row['n']:>7}{row['errors']:>8}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}")
    rss = summary["rss_mib"]
    print(f"\npredictions/s  {summary['predictions_per_s']:.0f}  ({predictions:,} predictions in {wall:.2f} s; "
          f"{summary['requests_per_s']:.0f} requests/s in all)")
    print(f"latency        p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms (predictions); "
          f"p99 {summary['p99_ms_all_requests']:.2f} ms over all requests")
    print(f"errors         {summary['errors']}" + ("" if not errors else f"  e.g. {summary['first_errors'][0]}"))
    print(f"server RSS     {rss['start']:.1f} MiB at the start, {rss['after_first_fifth']:.1f} after the first "
          f"fifth, {rss['end']:.1f} at the end (max {rss['max']:.1f})")
    print(f"server CPU     {cpu:.1f} s (with the warm-up), {cpu / wall:.2f} cores over the timed run" if wall else "")
    if args.json:
        write_json(args.json, {**summary, "rss_samples": samples})


if __name__ == "__main__":
    run_main(main, PROG)
