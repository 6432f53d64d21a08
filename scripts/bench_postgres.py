"""Measure Athena on PostgreSQL, beside procrastinate on the same server.

Run ``python scripts/bench_postgres.py`` (``--quick`` for a short run, ``--json PATH``
to keep the figures). The server is ``--url`` (default ``$ATHENA_TEST_DATABASE_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test``). In one run it measures:

1. Athena: ``athenad start`` with 2 workers in a scratch home and a fresh schema;
   enqueue then drain N no-op (``echo``) jobs, in jobs/s (from the submit to the last
   ``completed_at``); then the idle submit-to-start latency, p50 and p99: one job is
   submitted to the idle daemon and its ``started_at`` (the database's ``now()``) is
   compared with the moment of the submit (this machine's clock: the server runs on
   it, so both are the same clock).
2. procrastinate, installed into the benchmark's own virtualenv (``.venv-bench/``,
   created on first use; never a dependency of Athena), in a fresh database with its
   own schema: the same two figures, with 2 worker processes of concurrency 1 (the
   same shape as Athena's: two OS processes, one job in flight in each) and an
   ``async`` no-op task (its cheapest kind: no thread hop). Start time is the
   ``started`` event procrastinate writes with the database's ``now()`` as it claims.
3. What one claim + complete costs through ``PostgresJobQueue`` with 10k and with 1M
   finished jobs in the table (bulk-inserted with ``generate_series`` into a fresh
   schema built by Athena's migrations, then ``VACUUM ANALYZE``d as autovacuum would),
   both medians and their ratio. The two tables take turns, a block of cycles each, so
   the load of a shared machine weighs on both alike.

Targets: Athena's throughput at least 2x procrastinate's, p50 start under 10 ms, claim
cost with 1M finished rows at most 1.2x that with 10k. Every schema, database and
process the run creates is dropped or stopped before it ends, also on failure.

The same file runs procrastinate's side under the benchmark's virtualenv
(``--role driver`` and ``--role worker``): that side imports nothing from Athena.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from bench_support import BENCH_VENV, athenad, kill_daemon, peer_python, quantile, stop_group
from psycopg import sql
from psycopg.conninfo import make_conninfo

DEFAULT_URL = os.environ.get(
    "ATHENA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PROCRASTINATE_REQUIREMENT = "procrastinate>=3,<4"

THROUGHPUT_FACTOR_TARGET = 2.0  # Athena's jobs/s over procrastinate's
P50_TARGET_MS = 10.0
CLAIM_RATIO_TARGET = 1.2

WARMUP_JOBS = 500
IDLE_GAP_S = 0.03  # between latency samples: every worker is back in its idle wait
POLL_S = 0.002  # how often a sample looks for its job's start (not part of the figure)
DRAIN_POLL_S = 0.02  # a light poll: this process shares the cores with the workers
STEP_TIMEOUT_S = 300.0  # no single drain or subprocess may take longer than this

# Finished filler rows for the claim cost, built inside the server. Their ids sort
# before every real id (those start with the millisecond clock, not '0').
FILLER_SQL = """
INSERT INTO jobs (
    id, type, agent_type, payload, status, priority, created_at, started_at,
    completed_at, duration_ms, attempts, run_after, run_started_at, result, fence
)
SELECT '0' || lpad(i::text, 14, '0'), 'filler', 'filler', 'null', 'completed', 0,
       t, t, t, 5, 1, t, t, 'null', 1
FROM generate_series(1, %(count)s) AS i,
     LATERAL (SELECT now() - make_interval(secs => %(count)s - i)) AS at (t)
"""


def pg_version(url: str) -> str:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def scratch_schema(url: str, label: str) -> Iterator[str]:
    """A fresh schema name on the server, dropped afterwards (with all it holds)."""
    schema = f"athena_bench_{label}_{secrets.token_hex(4)}"
    try:
        yield schema
    finally:
        drop_schema(url, schema)


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """The URL of a fresh database on the server, dropped afterwards."""
    name = f"bench_procrastinate_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(url, dbname=name)
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ---- Athena ----------------------------------------------------------------------------


def athena_drain(queue: Any, server: psycopg.Connection[Any], jobs: int) -> float:
    """Jobs/s for enqueueing then draining ``jobs`` no-op jobs through the daemon."""
    started = time.time()
    ids = queue.submit_many([{"type": "echo"} for _ in range(jobs)])
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        counts = queue.counts()
        if counts["pending"] == 0 and counts["running"] == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not drain {jobs} jobs in {STEP_TIMEOUT_S:g} s")
        time.sleep(DRAIN_POLL_S)
    row = server.execute(
        "SELECT extract(epoch FROM max(completed_at)), count(*) FILTER "
        "(WHERE status = 'completed') FROM jobs WHERE id >= %s AND id <= %s",
        (min(ids), max(ids)),
    ).fetchone()
    assert row is not None and row[1] == jobs, f"{row} of {jobs} jobs completed"
    return jobs / (float(row[0]) - started)


def athena_latencies(queue: Any, server: psycopg.Connection[Any], samples: int) -> list[float]:
    """Milliseconds from each submit to the job's started_at, the daemon idle before each."""
    latencies = []
    for _ in range(samples):
        time.sleep(IDLE_GAP_S)
        submitted = time.time()
        job_id = queue.submit("echo")
        deadline = time.monotonic() + 10
        while True:
            row = server.execute(
                "SELECT extract(epoch FROM started_at) FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
            if row is not None and row[0] is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not start within 10 s")
            time.sleep(POLL_S)
        latencies.append((float(row[0]) - submitted) * 1000)
    return latencies


def bench_athena(url: str, jobs: int, samples: int, workers: int) -> dict[str, Any]:
    from athenad.paths import Home
    from athenad.store.postgres.queue import PostgresJobQueue

    print(f"Athena: {workers} workers, {jobs:,} no-op jobs, {samples} latency samples")
    with (
        scratch_schema(url, "daemon") as schema,
        tempfile.TemporaryDirectory(prefix="athena-bench-") as scratch,
    ):
        home = Home.resolve(Path(scratch) / "home").ensure()
        env = {**os.environ, "ATHENA_DATABASE_URL": url, "ATHENA_DATABASE_SCHEMA": schema}
        pid = int(athenad(home.root, env, "start", "--workers", str(workers)))
        try:
            with (
                PostgresJobQueue(url, schema=schema) as queue,
                psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as server,
            ):
                athena_drain(queue, server, WARMUP_JOBS)  # imports, caches, plans
                rate = athena_drain(queue, server, jobs)
                latencies = athena_latencies(queue, server, samples)
        finally:
            try:
                athenad(home.root, env, "stop", "--timeout", "10", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"   !! {exc}; killing the daemon")
                kill_daemon(pid)
    return {
        "workers": workers,
        "jobs": jobs,
        "jobs_per_s": rate,
        "samples": samples,
        "start_p50_ms": statistics.median(latencies),
        "start_p99_ms": quantile(latencies, 99),
    }


# ---- the claim cost --------------------------------------------------------------------


def fill(url: str, schema: str, finished: int, ready: int) -> Any:
    """A queue in ``schema`` with ``finished`` completed jobs and ``ready`` pending ones."""
    from athenad.store.postgres.queue import PostgresJobQueue

    queue = PostgresJobQueue(url, schema=schema)  # builds the schema by its migrations
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as server:
        server.execute(FILLER_SQL, {"count": finished})
        queue.submit_many([{"type": "noop"}] * ready)
        server.execute("VACUUM ANALYZE jobs")
    return queue


def cycle_times(queue: Any, cycles: int) -> list[float]:
    """Seconds of each of ``cycles`` claim + complete cycles."""
    samples = []
    for _ in range(cycles):
        started = time.perf_counter()
        job = queue.claim("bench")
        assert job is not None, "a ready job was not claimed"
        queue.complete(job.id, job.fence, None)
        samples.append(time.perf_counter() - started)
    return samples


def bench_claim_cost(url: str, small: int, big: int, cycles: int) -> dict[str, Any]:
    """Median claim + complete with ``small`` and ``big`` finished jobs present.

    The two tables take turns, a block of cycles each, so a load that comes and goes
    on a shared machine weighs on both alike.
    """
    print(f"claim + complete: {cycles:,} cycles with {small:,} and {big:,} finished jobs")
    block = max(1, cycles // 10)
    with scratch_schema(url, "small") as small_schema, scratch_schema(url, "big") as big_schema:
        started = time.perf_counter()
        queues = {small: fill(url, small_schema, small, cycles)}
        queues[big] = fill(url, big_schema, big, cycles)
        print(f"   (filling and vacuuming took {time.perf_counter() - started:.1f} s)")
        samples: dict[int, list[float]] = {small: [], big: []}
        try:
            for done in range(0, cycles, block):
                for rows, queue in queues.items():
                    samples[rows] += cycle_times(queue, min(block, cycles - done))
        finally:
            for queue in queues.values():
                queue.close()
    small_us = statistics.median(samples[small]) * 1e6
    big_us = statistics.median(samples[big]) * 1e6
    return {
        "cycles": cycles,
        "small_rows": small,
        "big_rows": big,
        "small_us": small_us,
        "big_us": big_us,
        "ratio": big_us / small_us,
    }


# ---- procrastinate: the driver side (in the benchmark's virtualenv) ----------------------


def bench_procrastinate(
    url: str, jobs: int, samples: int, processes: int, concurrency: int, venv: Path
) -> dict[str, Any]:
    python = peer_python(venv, "procrastinate", PROCRASTINATE_REQUIREMENT)
    print(
        f"procrastinate: {processes} worker processes of concurrency {concurrency}, "
        f"{jobs:,} no-op jobs, {samples} latency samples"
    )
    with scratch_database(url) as db_url:
        args = [str(python), __file__, "--role", "driver", "--url", db_url, "--jobs", str(jobs)]
        args += ["--samples", str(samples), "--workers", str(processes)]
        args += ["--concurrency", str(concurrency)]
        # Its own process group: on a timeout the driver and its workers go together.
        driver = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, _ = driver.communicate(timeout=STEP_TIMEOUT_S)
        finally:
            stop_group(driver)
        if driver.returncode != 0:
            raise RuntimeError(f"the procrastinate driver exited with {driver.returncode}")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def _procrastinate_app(db_url: str) -> Any:
    import logging

    import procrastinate

    # It warns that the app lives in __main__: harmless here, the task has its own name.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=db_url))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app


def run_procrastinate_worker(db_url: str, concurrency: int) -> None:
    app = _procrastinate_app(db_url)
    app.run_worker(concurrency=concurrency, listen_notify=True, name=f"bench-{os.getpid()}")


async def _procrastinate_drive(args: argparse.Namespace) -> dict[str, Any]:
    import procrastinate

    app = _procrastinate_app(args.url)
    noop = app.tasks["noop"]
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        command = [sys.executable, __file__, "--role", "worker", "--url", args.url]
        command += ["--concurrency", str(args.concurrency)]
        workers = [subprocess.Popen(command) for _ in range(args.workers)]
        try:
            with psycopg.connect(args.url, autocommit=True) as server:
                _wait_for_workers(server, args.workers)

                async def drain(jobs: int) -> float:
                    started = time.time()
                    ids = await noop.batch_defer_async(*[{} for _ in range(jobs)])
                    deadline = time.monotonic() + STEP_TIMEOUT_S
                    while True:
                        row = server.execute(
                            "SELECT count(*) FROM procrastinate_jobs "
                            "WHERE status IN ('todo', 'doing') AND id >= %s AND id <= %s",
                            (min(ids), max(ids)),
                        ).fetchone()
                        if row is not None and row[0] == 0:
                            break
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{jobs} jobs were not drained in time")
                        await asyncio.sleep(DRAIN_POLL_S)
                    row = server.execute(
                        "SELECT extract(epoch FROM max(at)), count(*) FROM procrastinate_events "
                        "WHERE type = 'succeeded' AND job_id >= %s AND job_id <= %s",
                        (min(ids), max(ids)),
                    ).fetchone()
                    assert row is not None and row[1] == jobs, f"{row} of {jobs} succeeded"
                    return jobs / (float(row[0]) - started)

                await drain(WARMUP_JOBS)
                rate = await drain(args.jobs)
                latencies = []
                for _ in range(args.samples):
                    await asyncio.sleep(IDLE_GAP_S)
                    submitted = time.time()
                    job_id = await noop.defer_async()
                    deadline = time.monotonic() + 10
                    while True:
                        row = server.execute(
                            "SELECT extract(epoch FROM at) FROM procrastinate_events "
                            "WHERE job_id = %s AND type = 'started'",
                            (job_id,),
                        ).fetchone()
                        if row is not None:
                            break
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"job {job_id} did not start within 10 s")
                        await asyncio.sleep(POLL_S)
                    latencies.append((float(row[0]) - submitted) * 1000)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
    return {
        "version": procrastinate.__version__,
        "processes": args.workers,
        "concurrency": args.concurrency,
        "jobs": args.jobs,
        "jobs_per_s": rate,
        "samples": args.samples,
        "start_p50_ms": statistics.median(latencies),
        "start_p99_ms": quantile(latencies, 99),
    }


def _wait_for_workers(server: psycopg.Connection[Any], count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = server.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        if row is not None and row[0] >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{count} procrastinate workers did not start within 60 s")


# ---- the report --------------------------------------------------------------------------


def _figure(part: dict[str, Any] | None, key: str, form: str) -> str:
    return format(part[key], form) if part else "-"


def report(results: dict[str, Any]) -> str:
    """The figures as a markdown table, each beside its target."""
    athena, other, claim = (results.get(k) for k in ("athena", "procrastinate", "claim_cost"))
    lines = [
        "| figure | Athena | procrastinate | target | met |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    if athena or other:
        shape = athena or other
        assert shape is not None
        # Jobs in flight at once: Athena's worker processes, procrastinate's processes x
        # their concurrency.
        in_flight = athena["workers"] if athena else shape["processes"] * shape["concurrency"]
        target, met = f">= {THROUGHPUT_FACTOR_TARGET:g}x procrastinate", "-"
        if athena and other:
            factor = athena["jobs_per_s"] / other["jobs_per_s"]
            target += f" ({factor:.2f}x)"
            met = "yes" if factor >= THROUGHPUT_FACTOR_TARGET else "**no**"
        lines.append(
            f"| no-op jobs/s, {in_flight} workers, "
            f"enqueue + drain {shape['jobs']:,} "
            f"| {_figure(athena, 'jobs_per_s', ',.0f')} | {_figure(other, 'jobs_per_s', ',.0f')} "
            f"| {target} | {met} |"
        )
        met = "-" if not athena else "yes" if athena["start_p50_ms"] < P50_TARGET_MS else "**no**"
        lines.append(
            f"| idle submit-to-start p50 (ms) | {_figure(athena, 'start_p50_ms', '.2f')} "
            f"| {_figure(other, 'start_p50_ms', '.2f')} | < {P50_TARGET_MS:g} ms | {met} |"
        )
        lines.append(
            f"| idle submit-to-start p99 (ms) | {_figure(athena, 'start_p99_ms', '.2f')} "
            f"| {_figure(other, 'start_p99_ms', '.2f')} | | |"
        )
    if claim:
        for key in ("small", "big"):
            lines.append(
                f"| claim + complete, {claim[f'{key}_rows']:,} finished jobs (us, median) "
                f"| {claim[f'{key}_us']:,.0f} | | | |"
            )
        ratio = claim["ratio"]
        lines.append(
            f"| claim cost, {claim['big_rows']:,} / {claim['small_rows']:,} finished "
            f"| {ratio:.2f}x | | <= {CLAIM_RATIO_TARGET:g}x "
            f"| {'yes' if ratio <= CLAIM_RATIO_TARGET else '**no**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="the PostgreSQL server to use")
    parser.add_argument("--jobs", type=int, default=None, help="no-op jobs per drain (10,000)")
    parser.add_argument("--samples", type=int, default=None, help="latency samples (200)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=1, help="procrastinate's, per process")
    parser.add_argument("--small", type=int, default=10_000, help="finished rows, small table")
    parser.add_argument("--big", type=int, default=None, help="finished rows, big (1,000,000)")
    parser.add_argument("--cycles", type=int, default=None, help="claim+complete cycles (2,000)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--parts", default="apc", help="a=Athena, p=procrastinate, c=claim")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--venv", type=Path, default=BENCH_VENV, help="procrastinate's venv")
    parser.add_argument("--role", choices=("main", "driver", "worker"), default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.role == "worker":
        run_procrastinate_worker(args.url, args.concurrency)
        return
    quick = args.quick
    args.jobs = args.jobs or (2_000 if quick else 10_000)
    args.samples = args.samples or (50 if quick else 200)
    args.big = args.big or (200_000 if quick else 1_000_000)
    args.cycles = args.cycles or (500 if quick else 2_000)
    if args.role == "driver":
        print(json.dumps(asyncio.run(_procrastinate_drive(args))))
        return

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "postgres": pg_version(args.url)},
        "targets": {
            "throughput_vs_procrastinate": THROUGHPUT_FACTOR_TARGET,
            "start_p50_ms": P50_TARGET_MS,
            "claim_cost_ratio": CLAIM_RATIO_TARGET,
        },
    }
    if "a" in args.parts:
        results["athena"] = bench_athena(args.url, args.jobs, args.samples, args.workers)
    if "p" in args.parts:
        results["procrastinate"] = bench_procrastinate(
            args.url, args.jobs, args.samples, args.workers, args.concurrency, args.venv
        )
    if "c" in args.parts:
        results["claim_cost"] = bench_claim_cost(args.url, args.small, args.big, args.cycles)
    print()
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
