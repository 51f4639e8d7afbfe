"""Service benchmark: read latency under load, submit→RUNNING, event latency (real processes).

    .venv/bin/python -m bench.service [--repeats 3] [--clients 50] [--requests 20] [--no-redis] [--no-postgres]
                                      [--api-workers 1,2] [--only-api-workers]

Everything runs on loopback: a uvicorn API (``tests/utils/live_api.py``) and a Celery worker
subprocess (``tests/utils/live_worker.py``), in three shapes: Redis broker (a private DB of
127.0.0.1:6379) with the SQLite store; Redis with a fresh Postgres database as the store (the
scaled-out shape; server as in ``tests/utils/postgres.py``); the embedded SQLite broker. And the
50-client reads again with 1, 2, ... API processes (``--api-workers``) on one store. Measured:

- ``GET /jobs/{id}`` and ``GET /jobs/{id}/metrics`` p50/p99 with ``--clients`` concurrent clients
  (asyncio, one connection each), ``--requests`` requests per client and endpoint.
- submit→RUNNING: from sending ``POST /jobs`` to the job's ``started_at`` (the claim), by the
  API's own timestamps (``started_at - created_at``) and as a polling client observes it.
- event latency: engine ``Event.ts`` (set when the engine emits) → an SSE client receives it,
  through the worker's batching sink, the API's store and the SSE poll.

Medians over ``--repeats``; JSON to ``bench/out/service.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._timing import environment, write_json  # noqa: E402
from tests.service.harness import synthetic_spec  # noqa: E402
from tests.utils.live_api import LiveApi, live_api  # noqa: E402
from tests.utils.live_worker import start_worker  # noqa: E402
from tests.utils.postgres import SERVER_URL, connect_server, fresh_database  # noqa: E402
from tests.utils.redis_server import SHARED, delete_celery_keys, pick_empty_db, shared_redis_available  # noqa: E402

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


def percentile(xs: list[float], q: float) -> float:
    """``q``-th percentile (0–100) by linear interpolation between order statistics."""
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def wait_finished(http: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish")


def finished_read_job(http: httpx.Client) -> str:
    """Run the job the read benchmarks read (300 steps, two feature losses) and return its id."""
    jid = str(http.post("/jobs", json=synthetic_spec(steps=300, log_every=5, losses=("procrustes", "gram"))).json()["id"])
    wait_finished(http, jid)
    return jid


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# ---- reads under load ---------------------------------------------------------------------------
async def _client(base: str, headers: dict[str, str], job_id: str, n: int, out: dict[str, list[float]]) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        (await http.get("/healthz")).raise_for_status()  # connect first: time requests, not TCP setup
        for _ in range(n):
            for name, path in (("job", f"/jobs/{job_id}"), ("metrics", f"/jobs/{job_id}/metrics")):
                t0 = time.perf_counter()
                r = await http.get(path)
                out[name].append(time.perf_counter() - t0)
                r.raise_for_status()


def read_latency(api: LiveApi, job_id: str, clients: int, requests: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"job": [], "metrics": []}

    async def run() -> None:
        await asyncio.gather(*(_client(f"{api.base_url}/api/v1", api.headers, job_id, requests, out)
                               for _ in range(clients)))

    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(run())
    wall = time.perf_counter() - t0
    # The load generator's own CPU share of the wall time: near 1.0 means it, not the API, limits.
    res = {"throughput_rps": (len(out["job"]) + len(out["metrics"])) / wall,
           "client_cpu_share": (time.process_time() - c0) / wall}
    for name, xs in out.items():
        res[f"{name}_p50_ms"] = percentile(xs, 50) * 1e3
        res[f"{name}_p99_ms"] = percentile(xs, 99) * 1e3
    return res


# ---- submit → RUNNING ---------------------------------------------------------------------------
def submit_to_running(http: httpx.Client) -> dict[str, float]:
    t0 = time.time()
    job_id = http.post("/jobs", json=synthetic_spec(steps=5, log_every=5, checkpoint_every=None)).json()["id"]
    observed = None
    while observed is None:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] != "QUEUED":
            observed = time.time() - t0
        else:
            time.sleep(0.005)
    job = wait_finished(http, job_id)
    time.sleep(1.5)  # the worker forks a fresh child after each job (max_tasks_per_child=1)
    return {"server_ms": (_ts(job["started_at"]) - _ts(job["created_at"])) * 1e3, "observed_ms": observed * 1e3}


# ---- event latency ---------------------------------------------------------------------------------
def event_latency(api: LiveApi, http: httpx.Client) -> dict[str, float]:
    spec = synthetic_spec(steps=300, log_every=5, checkpoint_every=100)
    job_id = http.post("/jobs", json=spec).json()["id"]
    lat: list[float] = []
    connected = time.time()
    with httpx.stream("GET", f"{api.base_url}/api/v1/jobs/{job_id}/events", headers=api.headers,
                      timeout=httpx.Timeout(30, read=60)) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                now = time.time()
                ev = json.loads(line[5:])
                if ev["type"] in ("metric", "progress", "log", "gram", "checkpoint") and ev["ts"] >= connected:
                    lat.append(now - ev["ts"])
    time.sleep(0.5)
    return {"median_ms": statistics.median(lat) * 1e3, "p95_ms": percentile(lat, 95) * 1e3,
            "max_ms": max(lat) * 1e3, "events": len(lat)}


# ---- driver ------------------------------------------------------------------------------------------
def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def bench_broker(label: str, broker_url: str | None, home: Path, args: argparse.Namespace,
                 database_url: str | None = None) -> dict[str, Any]:
    env: dict[str, str] = {}  # production defaults (reaper every 5 s, heartbeat every 2 s)
    if broker_url:
        env["GEOKD_BROKER_URL"] = broker_url
    if database_url:
        env["GEOKD_DATABASE_URL"] = database_url
    with live_api(home, env=env) as api:
        worker = start_worker(api.base_url, api.worker_token, home / "worker",
                              broker_url or f"sqla+sqlite:///{home / 'broker.db'}", extra_env=env)
        http = httpx.Client(base_url=f"{api.base_url}/api/v1", headers=api.headers, timeout=30)
        try:
            submit_to_running(http)  # warm-up: first child fork, first claim
            res: dict[str, Any] = {
                "submit_to_running": median_of([submit_to_running(http) for _ in range(args.submits)]),
                "event_latency": median_of([event_latency(api, http) for _ in range(args.repeats)]),
            }
            if not args.skip_reads and label in ("redis", "postgres"):
                jid = finished_read_job(http)
                read_latency(api, jid, 5, 2)  # warm-up
                res["reads"] = median_of([read_latency(api, jid, args.clients, args.requests)
                                          for _ in range(args.repeats)])
                # One client: the service time itself, without queueing behind 49 others.
                res["reads_1_client"] = median_of([read_latency(api, jid, 1, 50) for _ in range(args.repeats)])
                res["reads"]["metric_points"] = sum(
                    len(s["steps"]) for s in http.get(f"/jobs/{jid}/metrics").json()["series"].values())
            return res
        finally:
            http.close()
            worker.kill()


def reads_by_api_workers(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    """50-client reads of one finished job with 1, 2, ... API processes (``geokd api --workers``).

    One store (embedded broker, SQLite): a real worker runs the job once, then the API restarts
    on that store with each process count in turn, ``--repeats`` interleaved rounds.
    """
    with live_api(home) as api:
        worker = start_worker(api.base_url, api.worker_token, home / "worker", f"sqla+sqlite:///{home / 'broker.db'}")
        try:
            with httpx.Client(base_url=f"{api.base_url}/api/v1", headers=api.headers, timeout=30) as http:
                jid = finished_read_job(http)
        finally:
            worker.kill()
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.api_workers}
    singles: dict[int, list[dict[str, float]]] = {n: [] for n in args.api_workers}
    for _ in range(args.repeats):
        for n in args.api_workers:
            with live_api(home, workers=n) as api:
                read_latency(api, jid, 5, 2)  # warm-up: every process imports and opens its pool
                runs[n].append(read_latency(api, jid, args.clients, args.requests))
                singles[n].append(read_latency(api, jid, 1, 50))
    return {str(n): {"reads": median_of(runs[n]), "reads_1_client": median_of(singles[n])} for n in args.api_workers}


def workers_table(by_workers: dict[str, Any], clients: int) -> str:
    base = by_workers[next(iter(by_workers))]["reads"]["throughput_rps"]
    rows = [f"| API processes | GET /jobs/{{id}} p50 / p99 ms ({clients} clients) | GET /jobs/{{id}}/metrics p50 / "
            "p99 ms | req/s | vs first | load generator CPU share | 1-client GET /jobs/{id} p50 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for n, r in by_workers.items():
        m, one = r["reads"], r["reads_1_client"]
        rows.append(f"| {n} | {m['job_p50_ms']:.0f} / {m['job_p99_ms']:.0f} | {m['metrics_p50_ms']:.0f} / "
                    f"{m['metrics_p99_ms']:.0f} | {m['throughput_rps']:.0f} | {m['throughput_rps'] / base:.2f}× "
                    f"| {m['client_cpu_share']:.2f} | {one['job_p50_ms']:.1f} |")
    return "\n".join(rows)


def table(results: dict[str, Any]) -> str:
    rows = ["| measurement | Redis broker, SQLite store | Redis broker, Postgres store | embedded broker, SQLite store "
            "| target |", "|---|---|---|---|---|"]
    r, pg, e = results.get("redis", {}), results.get("postgres", {}), results.get("embedded", {})

    def cell(d: dict[str, Any], *keys: str) -> str:
        for k in keys:
            d = d.get(k, {}) if isinstance(d, dict) else {}
        return f"{d:.1f}" if isinstance(d, float) else "–"

    def both(d: dict[str, Any], group: str, a: str, b: str) -> str:
        return f"{cell(d, group, a)} / {cell(d, group, b)}"

    c = results["params"]["clients"]
    for label, group, a, b, target in [
        (f"GET /jobs/{{id}} p50 / p99 ms ({c} clients)", "reads", "job_p50_ms", "job_p99_ms", "p99 < 50"),
        (f"GET /jobs/{{id}}/metrics p50 / p99 ms ({c} clients)", "reads", "metrics_p50_ms", "metrics_p99_ms",
         "p99 < 50"),
        ("GET /jobs/{id} p50 / p99 ms (1 client)", "reads_1_client", "job_p50_ms", "job_p99_ms", ""),
        ("GET /jobs/{id}/metrics p50 / p99 ms (1 client)", "reads_1_client", "metrics_p50_ms", "metrics_p99_ms", ""),
        ("event latency median / p95 ms (emit→SSE)", "event_latency", "median_ms", "p95_ms", "< 1000"),
    ]:
        rows.append(f"| {label} | {both(r, group, a, b)} | {both(pg, group, a, b)} | {both(e, group, a, b)} "
                    f"| {target} |")
    for label, group, key, target in [
        ("reads throughput req/s", "reads", "throughput_rps", ""),
        ("submit→RUNNING ms (API timestamps)", "submit_to_running", "server_ms", "< 1000 (Redis)"),
        ("submit→RUNNING ms (client polling)", "submit_to_running", "observed_ms", ""),
    ]:
        rows.append(f"| {label} | {cell(r, group, key)} | {cell(pg, group, key)} | {cell(e, group, key)} | {target} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--submits", type=int, default=5, help="submit→RUNNING samples per broker")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=20, help="requests per client and endpoint")
    p.add_argument("--no-redis", action="store_true")
    p.add_argument("--no-postgres", action="store_true", help="skip the Redis + Postgres store shape")
    p.add_argument("--skip-reads", action="store_true")
    p.add_argument("--api-workers", type=lambda v: [int(x) for x in v.split(",") if x], default=[1, 2],
                   help="API process counts compared on 50-client reads (comma list; '' skips)")
    p.add_argument("--only-api-workers", action="store_true", help="run only the API-process comparison")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "service.json")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"params": vars(args) | {"out": str(args.out)}, "environment": environment()}
    with tempfile.TemporaryDirectory(prefix="geokd-bench-") as tmp:
        if args.api_workers and not args.skip_reads:
            results["reads_by_api_workers"] = reads_by_api_workers(Path(tmp) / "api-workers", args)
            results["workers_table"] = workers_table(results["reads_by_api_workers"], args.clients)
            print(results["workers_table"])
        if args.only_api_workers:
            write_json(results, args.out)
            return results
        if not args.no_redis and shared_redis_available():
            url = f"{SHARED}/{pick_empty_db()}"
            try:
                results["redis"] = bench_broker("redis", url, Path(tmp) / "redis", args)
                if not args.no_postgres:
                    results["postgres_server"] = SERVER_URL
                    try:
                        server = connect_server()
                    except Exception as exc:  # psycopg missing or no server: the other shapes still run
                        results["postgres_skipped"] = f"{type(exc).__name__}: {exc}"
                        print(f"Postgres shape skipped: {results['postgres_skipped']}", file=sys.stderr)
                    else:
                        with server, fresh_database(server) as db_url:
                            results["postgres"] = bench_broker("postgres", url, Path(tmp) / "postgres", args, db_url)
            finally:
                delete_celery_keys(url)
        results["embedded"] = bench_broker("embedded", None, Path(tmp) / "embedded", args)
    results["table"] = table(results)
    write_json(results, args.out)
    print(results["table"])
    return results


if __name__ == "__main__":
    main()
