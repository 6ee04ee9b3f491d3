"""Relay benchmark: accepted records/s and latency of ``POST /referrals`` beside a bare endpoint.

    python bench/relay.py                                  # 3 runs x 200 requests, 1 and 20 records
    python bench/relay.py --records-per-request 1,20 --requests 300 --concurrency 8
    python bench/relay.py --store postgresql               # + the outbox on PostgreSQL, 1 and 2
                                                           #   relay processes, same run

Two servers run side by side on loopback, each a real uvicorn process:

* ``relay`` - ``fhir-iapt serve`` with an API key and the SQLite outbox (``synchronous=full``):
  each request is authenticated, read, converted (diabetes-csv), routed, committed to the
  outbox and answered 202. Delivery points at a port that takes connections and never
  answers (a socket the bench listens on and never accepts from), so the worker holds a few
  attempts open until they time out and does not compete with intake for the CPU. (A closed
  port would not do: every new message would get an immediate refused attempt, a retry and
  two writes, a stream of work that delivery to a real server does not look like either.)
* ``bare``  - a FastAPI endpoint on the same uvicorn that reads the body and answers 202: the
  floor for "an HTTP POST through FastAPI on this machine".

It prints, in this order:

1. how long the relay took to say ready on ``/readyz``, and the latency of the first POST after
   that (it also pays the one scrypt check of the bench's new API key);
2. per body size, ``--runs`` runs of ``--requests`` POSTs per server from ``--concurrency``
   threads (closed loop: each thread sends its next request when the last one answered), every
   relay request carrying records it has not seen (so none is a duplicate): records/s,
   p50/p95/p99 per run and their medians, and relay/bare ratios of the medians;
3. per body size, the relay's peak: one run at each of ``--peak-concurrency`` (closed loop), the
   best records/s taken as the peak; then ``--runs`` runs at half that load (open loop: requests
   sent on a fixed schedule at half the peak's requests/s, whatever the answers do, each request
   a task of one asyncio client), with the medians of p50/p95/p99 and p99/p50. A start more
   than 10 ms behind its schedule (the client itself starved) is counted as ``late``.

With ``--store postgresql`` a throwaway PostgreSQL cluster is made with the machine's
``initdb`` (durable: fsync on, ``synchronous_commit`` on; see ``tests/postgres_server.py``) and
two more relay processes run ``fhir-iapt serve`` on one config whose ``[store] url`` names it
(``synchronous=full``), each on its own port (``--port``), sharing the database and the data
directory. Section 2 then has, per run, four rows: ``bare``, ``sqlite`` (the relay above),
``pg x1`` (every request to one PostgreSQL relay process) and ``pg x2`` (the ``--concurrency``
threads split between the two processes, as a load balancer would), each relay row on records
no request carried before; with the medians' ratios to ``bare``, to ``sqlite`` and ``pg x2``
to ``pg x1``. Section 3 (the peak and half of it) is left out in that mode. While ``pg x1``
runs, the second process idles (its worker and ledger feed poll the shared database).

The machine is shared and noisy: read the medians and the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

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


def _start(
    command: list[str], url: str, log: Path, env: dict[str, str] | None = None
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


def _relay_config(
    workdir: Path, port: int, key_hash: str, destination_port: int, store_url: str | None = None
) -> Path:
    config = workdir / ("relay-pg.toml" if store_url else "relay.toml")
    store = f'data_dir = "data-pg"\nurl = "{store_url}"' if store_url else 'data_dir = "data"'
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
log_level = "warning"
shutdown_grace_seconds = 1
[store]
{store}
synchronous = "full"
[delivery]
backoff_initial = 3600
backoff_max = 3600
[[auth.api_keys]]
id = "bench"
hash = "{key_hash}"
scopes = ["referrals:write"]
[destinations.iapt]
base_url = "http://127.0.0.1:{destination_port}/fhir"
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


def _load(
    url: str | list[str], bodies: list[bytes], headers: dict[str, str], concurrency: int
) -> tuple[float, list[float]]:
    """POST every body once from ``concurrency`` threads, thread ``i`` to ``urls[i % n]``;
    (wall seconds, latencies)."""
    urls = [url] if isinstance(url, str) else url
    latencies: list[float] = []
    lock = threading.Lock()
    index = iter(range(len(bodies)))
    errors: list[str] = []

    def worker(url: str) -> None:
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

    threads = [
        threading.Thread(target=worker, args=(urls[i % len(urls)],)) for i in range(concurrency)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return wall, latencies


def _paced(
    url: str, bodies: list[bytes], headers: dict[str, str], rate: float
) -> tuple[float, list[float], int]:
    """POST every body on a fixed schedule, ``rate`` requests/s (open loop), each request its
    own task on one event loop (no sender threads contending for the GIL); (wall seconds,
    latencies, starts more than 10 ms behind their schedule)."""

    async def run() -> tuple[float, list[float], int]:
        latencies: list[float] = []
        errors: list[str] = []
        late = 0
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            loop = asyncio.get_running_loop()
            begin = loop.time() + 0.05

            async def one(i: int) -> None:
                nonlocal late
                wait = begin + i / rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -0.010:
                    late += 1
                start = time.perf_counter()
                try:
                    response = await http.post(url, content=bodies[i], headers=headers)
                except httpx.TransportError as exc:  # e.g. a keep-alive closed under overload
                    errors.append(f"{type(exc).__name__} after {time.perf_counter() - start:.1f} s")
                    return
                latencies.append(time.perf_counter() - start)
                if response.status_code != 202:
                    errors.append(f"{response.status_code} {response.text[:200]}")

            await asyncio.gather(*(one(i) for i in range(len(bodies))))
            wall = loop.time() - begin
        if errors:
            raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
        return wall, latencies, late

    return asyncio.run(run())


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
    return (
        f"  {name:<6} {f['records_s']:>10.1f} rec/s   p50 {f['p50_ms']:>8.2f} ms   "
        f"p95 {f['p95_ms']:>8.2f} ms   p99 {f['p99_ms']:>8.2f} ms"
    )


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


class _Rows:
    """Hands out export rows no earlier request carried."""

    def __init__(self, rows: list[str]) -> None:
        self.rows = rows
        self.cursor = 0

    def take(self, count: int) -> list[str]:
        chunk = self.rows[self.cursor : self.cursor + count]
        if len(chunk) < count:
            raise RuntimeError("the generated export is too short for these settings")
        self.cursor += count
        return chunk


def _serve_command(config: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from fhir_iapt.cli import main; main()",
        "serve",
        "--config",
        str(config),
        *extra,
    ]


def _postgresql(work: Path) -> Any:
    """A durable throwaway PostgreSQL cluster (tests/postgres_server.py), started."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from postgres_server import PostgresCluster

    cluster = PostgresCluster(durable=True)
    cluster.start()
    return cluster


def _ratios(name: str, of: dict[str, float], to: str, base: dict[str, float]) -> str:
    return (
        f"  ratio  {name}/{to} throughput {of['records_s'] / base['records_s']:.3f}   "
        f"p50 x{of['p50_ms'] / base['p50_ms']:.1f}   "
        f"p99 x{of['p99_ms'] / base['p99_ms']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="POSTs per server per run")
    parser.add_argument(
        "--records-per-request", default="1,20", help="comma-separated sizes, e.g. 1,20"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--peak-concurrency",
        default="1,2,4,8,16",
        help="closed-loop concurrencies tried to find the relay's peak",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="postgresql: also the outbox on PostgreSQL, 1 and 2 relay processes, in this run",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    sizes = [int(s) for s in args.records_per_request.split(",")]
    levels = [int(c) for c in args.peak_concurrency.split(",")]
    on_postgresql = args.store == "postgresql"

    from fhir_iapt.relay.security import new_api_key

    token, key_hash = new_api_key("bench")
    processes: list[subprocess.Popen[bytes]] = []
    cluster: Any = None
    with tempfile.TemporaryDirectory(prefix="fhir-iapt-relay-bench-") as tmp:
        work = Path(tmp)
        if on_postgresql:
            per_size = args.requests * 4 * args.runs  # bare, sqlite, pg x1, pg x2: unseen records
        else:
            per_size = args.requests * (2 * args.runs + len(levels))
        total_rows = 256 + sum(per_size * n for n in sizes)  # + first POSTs and warm-ups
        csv_path = work / "export.csv"
        generate(csv_path, total_rows)
        rows = _Rows(csv_path.read_text(encoding="utf-8").splitlines()[1:])
        relay_port, bare_port = _free_port(), _free_port()
        relay_url, bare_url = f"http://127.0.0.1:{relay_port}", f"http://127.0.0.1:{bare_port}"
        relay_post = f"{relay_url}/referrals?mapping=diabetes-csv"
        bare_post = f"{bare_url}/referrals"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_IAPT_")}
        silent = socket.socket()  # the destination: takes connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1024)
        config = _relay_config(work, relay_port, key_hash, silent.getsockname()[1])
        try:
            print("starting the relay (it warms up before /readyz says ready) ...", flush=True)
            started = time.monotonic()
            processes.append(_start(_serve_command(config), relay_url, work / "relay.log", env))
            print(f"relay ready after {time.monotonic() - started:.1f} s")
            processes.append(
                _start(
                    [sys.executable, __file__, "--serve-bare", str(bare_port)],
                    bare_url,
                    work / "bare.log",
                )
            )
            pg_posts: list[str] = []
            if on_postgresql:
                cluster = _postgresql(work)
                database = cluster.create_database()
                pg_config = _relay_config(
                    work, 0, key_hash, silent.getsockname()[1], cluster.url(database)
                )
                for n in range(2):
                    port = _free_port()
                    url = f"http://127.0.0.1:{port}"
                    started = time.monotonic()
                    processes.append(
                        _start(
                            _serve_command(pg_config, "--port", str(port)),
                            url,
                            work / f"relay-pg-{n}.log",
                            env,
                        )
                    )
                    print(
                        f"PostgreSQL relay process {n + 1} ready after"
                        f" {time.monotonic() - started:.1f} s"
                    )
                    pg_posts.append(f"{url}/referrals?mapping=diabetes-csv")
            relay_headers = {"Content-Type": "text/csv", "Authorization": f"Bearer {token}"}
            bare_headers = {"Content-Type": "text/csv"}
            for post in [relay_post, *pg_posts]:
                _, first = _load(post, _bodies(rows.take(1), 1), relay_headers, 1)
                print(
                    f"first POST after ready: {first[0] * 1000:.1f} ms "
                    "(includes the one scrypt check of a new API key)"
                )
                _load(post, _bodies(rows.take(50), 1), relay_headers, 2)
            _load(bare_post, _bodies(rows.take(50), 1), bare_headers, 2)
            if on_postgresql:
                servers = {
                    "sqlite": [relay_post],
                    "pg x1": pg_posts[:1],
                    "pg x2": pg_posts,
                }
                for size in sizes:
                    _compare(args, rows, size, bare_post, bare_headers, servers, relay_headers)
                return
            for size in sizes:
                results: dict[str, list[dict[str, float]]] = {"bare": [], "relay": []}
                print(
                    f"\n{args.requests} requests x {size} record(s), concurrency {args.concurrency}"
                )
                for run in range(1, args.runs + 1):
                    chunk = rows.take(args.requests * size)
                    bodies = _bodies(chunk, size)
                    wall, lat = _load(bare_post, bodies, bare_headers, args.concurrency)
                    results["bare"].append(_figures(len(chunk), wall, lat))
                    wall, lat = _load(relay_post, bodies, relay_headers, args.concurrency)
                    results["relay"].append(_figures(len(chunk), wall, lat))
                    print(f" run {run}")
                    print(_row("bare", results["bare"][-1]))
                    print(_row("relay", results["relay"][-1]))
                b, r = _median(results["bare"]), _median(results["relay"])
                print(" median")
                print(_row("bare", b))
                print(_row("relay", r))
                print(_ratios("relay", r, "bare", b))

                print(f"\n relay peak, {args.requests} requests x {size} record(s) per level")
                peak: tuple[float, int] = (0.0, 0)
                for level in levels:
                    chunk = rows.take(args.requests * size)
                    wall, lat = _load(relay_post, _bodies(chunk, size), relay_headers, level)
                    f = _figures(len(chunk), wall, lat)
                    print(_row(f"c={level}", f))
                    peak = max(peak, (f["records_s"], level))
                rate = peak[0] / size / 2
                print(
                    f" relay at half the peak ({peak[0]:.1f} rec/s at concurrency {peak[1]}):"
                    f" {rate:.1f} requests/s on a fixed schedule"
                )
                half: list[dict[str, float]] = []
                for run in range(1, args.runs + 1):
                    chunk = rows.take(args.requests * size)
                    wall, lat, late = _paced(relay_post, _bodies(chunk, size), relay_headers, rate)
                    half.append(_figures(len(chunk), wall, lat))
                    print(_row(f"run {run}", half[-1]) + f"   late {late}")
                h = _median(half)
                print(_row("median", h))
                print(f"  p99/p50 at half the peak {h['p99_ms'] / h['p50_ms']:.1f}")
        finally:
            for process in processes:
                _stop(process)
            silent.close()
            if cluster is not None:
                cluster.stop()


def _compare(
    args: argparse.Namespace,
    rows: _Rows,
    size: int,
    bare_post: str,
    bare_headers: dict[str, str],
    servers: dict[str, list[str]],
    relay_headers: dict[str, str],
) -> None:
    """Section 2 with every store side by side: per run the bare endpoint and each relay
    server on records none has seen; medians and their ratios."""
    results: dict[str, list[dict[str, float]]] = {"bare": [], **{name: [] for name in servers}}
    print(f"\n{args.requests} requests x {size} record(s), concurrency {args.concurrency}")
    for run in range(1, args.runs + 1):
        print(f" run {run}")
        bodies = _bodies(rows.take(args.requests * size), size)
        wall, lat = _load(bare_post, bodies, bare_headers, args.concurrency)
        results["bare"].append(_figures(args.requests * size, wall, lat))
        print(_row("bare", results["bare"][-1]))
        for name, urls in servers.items():
            chunk = rows.take(args.requests * size)
            wall, lat = _load(urls, _bodies(chunk, size), relay_headers, args.concurrency)
            results[name].append(_figures(len(chunk), wall, lat))
            print(_row(name, results[name][-1]))
    medians = {name: _median(runs) for name, runs in results.items()}
    print(" median")
    for name, figures in medians.items():
        print(_row(name, figures))
    for name in servers:
        print(_ratios(name, medians[name], "bare", medians["bare"]))
    for name in ("pg x1", "pg x2"):
        print(_ratios(name, medians[name], "sqlite", medians["sqlite"]))
    print(_ratios("pg x2", medians["pg x2"], "pg x1", medians["pg x1"]))


if __name__ == "__main__":
    main()
