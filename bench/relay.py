"""Relay benchmark: accepted records/s and latency of ``POST /referrals`` beside a bare endpoint.

    python bench/relay.py                                  # 3 runs x 200 requests, 1 record each
    python bench/relay.py --records-per-request 1,20 --requests 300 --concurrency 8

Two servers run side by side on loopback, each a real uvicorn process:

* ``relay`` - ``fhir-iapt serve`` with an API key and the SQLite outbox (``synchronous=full``):
  each request is authenticated, read, converted (diabetes-csv), routed, committed to the
  outbox and answered 202. Delivery points at a closed port with a long backoff, so the
  worker does not compete with intake for the CPU.
* ``bare``  - a FastAPI endpoint on the same uvicorn that reads the body and answers 202: the
  floor for "an HTTP POST through FastAPI on this machine".

Each run sends ``--requests`` POSTs per server from ``--concurrency`` threads (bounded count,
loopback only), every relay request carrying records it has not seen (so none is a duplicate).
It prints per run and the median over runs: records/s, p50/p95/p99 latency, and relay/bare
ratios. The machine is shared and noisy: read the medians and the ratios.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import COLUMNS, generate  # the convert bench's export generator

_READY_TIMEOUT = 600.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the bare endpoint (run in its own process with --serve-bare) -----------------------------


bare_app = FastAPI()


@bare_app.post("/referrals", status_code=202)
async def bare_referrals(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":[]}', status_code=202, media_type="application/json")


@bare_app.get("/readyz")
async def bare_readyz() -> dict[str, str]:
    return {"status": "ready"}


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- processes -------------------------------------------------------------------------------


def _start(command: list[str], url: str, log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited; see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{url} not ready within {_READY_TIMEOUT}s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _relay_config(workdir: Path, port: int, key_hash: str) -> Path:
    config = workdir / "relay.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
log_level = "warning"
[store]
data_dir = "data"
synchronous = "full"
[delivery]
backoff_initial = 3600
backoff_max = 3600
[[auth.api_keys]]
id = "bench"
hash = "{key_hash}"
scopes = ["referrals:write"]
[destinations.iapt]
base_url = "http://127.0.0.1:{_free_port()}/fhir"
""",
        encoding="utf-8",
    )
    return config


# --- load ------------------------------------------------------------------------------------


def _bodies(rows: list[str], per_request: int) -> list[bytes]:
    header = ",".join(COLUMNS)
    return [
        ("\n".join([header, *rows[i : i + per_request]]) + "\n").encode("utf-8")
        for i in range(0, len(rows), per_request)
    ]


def _load(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int
          ) -> tuple[float, list[float]]:
    """POST every body once from ``concurrency`` threads; (wall seconds, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    index = iter(range(len(bodies)))
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    i = next(index, None)
                if i is None:
                    return
                start = time.perf_counter()
                response = http.post(url, content=bodies[i], headers=headers)
                took = time.perf_counter() - start
                if response.status_code != 202:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return wall, latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(records: int, wall: float, latencies: list[float]) -> dict[str, float]:
    return {
        "records_s": records / wall,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _row(name: str, f: dict[str, float]) -> str:
    return (f"  {name:<6} {f['records_s']:>10.1f} rec/s   p50 {f['p50_ms']:>8.2f} ms   "
            f"p95 {f['p95_ms']:>8.2f} ms   p99 {f['p99_ms']:>8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="POSTs per server per run")
    parser.add_argument("--records-per-request", default="1",
                        help="comma-separated sizes, e.g. 1,20")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    sizes = [int(s) for s in args.records_per_request.split(",")]

    from fhir_iapt.relay.security import new_api_key

    token, key_hash = new_api_key("bench")
    with tempfile.TemporaryDirectory(prefix="fhir-iapt-relay-bench-") as tmp:
        work = Path(tmp)
        total_rows = 50 + sum(args.runs * args.requests * n for n in sizes)
        csv_path = work / "export.csv"
        generate(csv_path, total_rows)
        rows = csv_path.read_text(encoding="utf-8").splitlines()[1:]
        relay_port, bare_port = _free_port(), _free_port()
        relay_url, bare_url = f"http://127.0.0.1:{relay_port}", f"http://127.0.0.1:{bare_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_IAPT_")}
        print("starting the relay (builds its validator before it is ready) ...", flush=True)
        relay = _start(
            [sys.executable, "-c", "from fhir_iapt.cli import main; main()", "serve",
             "--config", str(_relay_config(work, relay_port, key_hash))],
            relay_url, work / "relay.log", env,
        )
        bare = _start([sys.executable, __file__, "--serve-bare", str(bare_port)], bare_url,
                      work / "bare.log")
        try:
            relay_headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {token}"}
            bare_headers = {"Content-Type": "text/csv"}
            warm = _bodies(rows[:50], 1)
            cursor = 50
            _load(f"{relay_url}/referrals?mapping=diabetes-csv", warm, relay_headers, 2)
            _load(f"{bare_url}/referrals", warm, bare_headers, 2)
            for size in sizes:
                results: dict[str, list[dict[str, float]]] = {"bare": [], "relay": []}
                print(f"\n{args.requests} requests x {size} record(s), "
                      f"concurrency {args.concurrency}")
                for run in range(1, args.runs + 1):
                    chunk = rows[cursor : cursor + args.requests * size]
                    cursor += args.requests * size
                    bodies = _bodies(chunk, size)
                    records = len(chunk)
                    wall, lat = _load(f"{bare_url}/referrals", bodies, bare_headers,
                                      args.concurrency)
                    results["bare"].append(_figures(records, wall, lat))
                    wall, lat = _load(f"{relay_url}/referrals?mapping=diabetes-csv", bodies,
                                      relay_headers, args.concurrency)
                    results["relay"].append(_figures(records, wall, lat))
                    print(f" run {run}")
                    print(_row("bare", results["bare"][-1]))
                    print(_row("relay", results["relay"][-1]))
                median = {
                    name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    for name, runs in results.items()
                }
                print(" median")
                print(_row("bare", median["bare"]))
                print(_row("relay", median["relay"]))
                b, r = median["bare"], median["relay"]
                print(f"  ratio  relay/bare throughput {r['records_s'] / b['records_s']:.3f}   "
                      f"p50 x{r['p50_ms'] / b['p50_ms']:.1f}   "
                      f"p99 x{r['p99_ms'] / b['p99_ms']:.1f}")
        finally:
            _stop(relay)
            _stop(bare)


if __name__ == "__main__":
    main()
