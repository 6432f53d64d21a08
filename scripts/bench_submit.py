"""Measure jobs submitted one at a time while the workers run, beside Huey on SQLite.

Run ``python scripts/bench_submit.py`` (``--quick`` for a short run, ``--json PATH`` to
keep the figures). In one run, with 2 worker processes each:

1. Athena: ``athenad start --workers 2`` in a scratch home (``synchronous=NORMAL``);
   N no-op (``echo``) jobs submitted ONE BY ONE with ``JobQueue.submit`` in a loop
   while the workers run, until drained, in jobs/s (from the first submit to the last
   ``completed_at``); the same N with one bulk ``submit_many``, for comparison; p50/p99
   of a single ``submit()`` while the workers are busy (a backlog keeps them claiming);
   then 4 submitter processes at once, each submitting one by one: the longest single
   submit and how many failed with "database is locked". With ``--parts`` holding
   ``f``, the one-by-one figure again with ``synchronous=FULL``.
2. Huey on SQLite, installed into the benchmark's own virtualenv (``.venv-bench/``,
   created on first use; never a dependency of Athena), its consumer with 2 processes
   (``-w 2 -k process``): the same N no-op tasks, ``enqueue``d one by one, until
   drained, once with ``synchronous=NORMAL`` and once with SQLite's default (FULL).
   The last task touches a file; its time ends the run.

Targets: one by one at least 2x Huey with ``synchronous=NORMAL``, and no slower than
bulk by more than 2x; p99 of a single submit under 1 ms (a goal); with 4 submitters
no submit waits longer than 50 ms and none fails. Every daemon, consumer and scratch
directory the run creates is stopped or removed before it ends, also on failure.

The same file drives Huey under the benchmark's virtualenv (``--role huey``) and runs
each of the 4 submitters (``--role submitter``); the Huey side imports nothing from
Athena.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import BENCH_VENV, athenad, kill_daemon, peer_python, quantile, stop_group

HUEY_REQUIREMENT = "huey>=2.5,<4"

HUEY_FACTOR_TARGET = 2.0  # one-by-one Athena over Huey, both synchronous=NORMAL
BULK_FACTOR_TARGET = 2.0  # bulk jobs/s over one-by-one jobs/s, at most
P99_GOAL_MS = 1.0
MAX_WAIT_TARGET_MS = 50.0
SUBMITTERS = 4

WARMUP_JOBS = 500
DRAIN_POLL_S = 0.01
STEP_TIMEOUT_S = 300.0  # no drain or subprocess may take longer than this


# ---- Athena ----------------------------------------------------------------------------


@contextlib.contextmanager
def running_daemon(home: Path, workers: int, synchronous: str) -> Any:
    env = {**os.environ, "ATHENA_SYNCHRONOUS": synchronous}
    pid = int(athenad(home, env, "start", "--workers", str(workers)))
    try:
        yield pid
    finally:
        try:
            athenad(home, env, "stop", "--timeout", "10", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"   !! {exc}; killing the daemon")
            kill_daemon(pid)


def wait_drained(queue: Any, ids: list[str]) -> float:
    """Wait until none of the queue's jobs is pending or running; the last completed_at."""
    from athenad.util.timefmt import parse_ts

    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        counts = queue.counts()
        if counts["pending"] == 0 and counts["running"] == 0 and counts["blocked"] == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not drain {len(ids)} jobs in {STEP_TIMEOUT_S:g} s")
        time.sleep(DRAIN_POLL_S)
    finished = queue.states(ids)
    assert len(finished) == len(ids) and all(s[0] == "completed" for s in finished.values())
    (last,) = queue.conn.execute(
        "SELECT max(completed_at) FROM jobs WHERE id >= ? AND id <= ?", (min(ids), max(ids))
    ).fetchall()[0]
    return parse_ts(last).timestamp()


def one_by_one(queue: Any, jobs: int) -> tuple[float, list[float]]:
    """Jobs/s submitting ``jobs`` one at a time, until drained; each submit's seconds."""
    ids, waits = [], []
    started = time.time()
    for _ in range(jobs):
        t0 = time.perf_counter()
        ids.append(queue.submit("echo"))
        waits.append(time.perf_counter() - t0)
    return jobs / (wait_drained(queue, ids) - started), waits


def bulk(queue: Any, jobs: int) -> float:
    started = time.time()
    ids = queue.submit_many([{"type": "echo"} for _ in range(jobs)])
    return jobs / (wait_drained(queue, ids) - started)


def busy_submits(queue: Any, samples: int) -> list[float]:
    """Seconds of single submits while a backlog keeps both workers claiming."""
    backlog = queue.submit_many([{"type": "echo"} for _ in range(samples * 3)])
    waits, ids = [], []
    for _ in range(samples):
        t0 = time.perf_counter()
        ids.append(queue.submit("echo"))
        waits.append(time.perf_counter() - t0)
    busy_left = queue.counts()["pending"]
    wait_drained(queue, backlog + ids)
    if busy_left == 0:
        print("   !! the backlog ran out before the samples ended")
    return waits


def many_submitters(home: Path, jobs_each: int, synchronous: str) -> dict[str, Any]:
    """SUBMITTERS processes at once, each submitting one by one; their waits and errors."""
    from athenad.store.sqlite.queue import JobQueue

    command = [sys.executable, __file__, "--role", "submitter", "--home", str(home)]
    command += ["--jobs", str(jobs_each), "--synchronous", synchronous]
    go = time.time() + 1.0  # all start together, once every interpreter is up
    procs = [
        subprocess.Popen([*command, "--go", str(go)], stdout=subprocess.PIPE, text=True)
        for _ in range(SUBMITTERS)
    ]
    outs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    ids = [job for out in outs for job in out["ids"]]
    with JobQueue(home / "athena.db", synchronous=synchronous) as queue:
        ended = wait_drained(queue, ids)
    waits = [w for out in outs for w in out["waits"]]
    return {
        "submitters": SUBMITTERS,
        "jobs": len(ids),
        "jobs_per_s": len(ids) / (ended - min(out["started"] for out in outs)),
        "max_wait_ms": max(waits) * 1000,
        "p99_ms": quantile(waits, 99) * 1000,
        "locked_errors": sum(out["locked"] for out in outs),
        "other_errors": sum(out["errors"] for out in outs),
    }


def run_submitter(home: Path, jobs: int, synchronous: str, go: float) -> None:
    """One of the many submitters: ``jobs`` submits one by one; prints JSON."""
    import apsw

    from athenad.errors import DatabaseBusy
    from athenad.store.sqlite.queue import JobQueue

    ids: list[str] = []
    waits: list[float] = []
    locked = errors = 0
    with JobQueue(home / "athena.db", synchronous=synchronous) as queue:
        time.sleep(max(0.0, go - time.time()))
        started = time.time()
        for _ in range(jobs):
            t0 = time.perf_counter()
            try:
                ids.append(queue.submit("echo"))
            except (apsw.BusyError, DatabaseBusy):
                locked += 1
            except Exception:
                errors += 1
            waits.append(time.perf_counter() - t0)
    print(json.dumps({"ids": ids, "waits": waits, "locked": locked, "errors": errors,
                      "started": started}))  # fmt: skip


def bench_athena(
    jobs: int, samples: int, workers: int, synchronous: str, *, full: bool
) -> dict[str, Any]:
    from athenad.paths import Home
    from athenad.store.sqlite.queue import JobQueue

    print(f"Athena ({synchronous}): {workers} workers, {jobs:,} no-op jobs")
    result: dict[str, Any] = {"workers": workers, "jobs": jobs, "synchronous": synchronous}
    with tempfile.TemporaryDirectory(prefix="athena-bench-") as scratch:
        home = Home.resolve(Path(scratch) / "home").ensure()
        with (
            running_daemon(home.root, workers, synchronous),
            JobQueue(home.db_path, synchronous=synchronous) as queue,
        ):
            one_by_one(queue, WARMUP_JOBS)  # imports, caches
            rate, waits = one_by_one(queue, jobs)
            result["one_by_one_jobs_per_s"] = rate
            result["one_by_one_submit_p50_ms"] = statistics.median(waits) * 1000
            result["one_by_one_submit_p99_ms"] = quantile(waits, 99) * 1000
            if full:
                result["bulk_jobs_per_s"] = bulk(queue, jobs)
                busy = busy_submits(queue, samples)
                result["busy_submit_p50_ms"] = statistics.median(busy) * 1000
                result["busy_submit_p99_ms"] = quantile(busy, 99) * 1000
                result["busy_samples"] = samples
        if full:
            print(f"   {SUBMITTERS} submitters at once")
            with running_daemon(home.root, workers, synchronous):
                result["many"] = many_submitters(home.root, jobs // SUBMITTERS, synchronous)
    return result


# ---- Huey (in the benchmark's virtualenv) ---------------------------------------------

HUEY_APP = """
import os
import sqlite3

from huey import Huey
from huey.storage import SqliteStorage

SYNCHRONOUS = os.environ.get("BENCH_HUEY_SYNCHRONOUS")


class Storage(SqliteStorage):
    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        if SYNCHRONOUS:
            conn.execute(f"pragma synchronous={SYNCHRONOUS}")
        return conn


huey = Huey("bench", storage_class=Storage, filename=os.environ["BENCH_HUEY_DB"])


@huey.task()
def noop(marker=None):
    if marker:
        with open(marker, "w"):
            pass
"""


def bench_huey(jobs: int, workers: int, synchronous: str | None, venv: Path) -> dict[str, Any]:
    python = peer_python(venv, "huey", HUEY_REQUIREMENT)
    label = synchronous or "default (FULL)"
    print(f"Huey ({label}): consumer -w {workers} -k process, {jobs:,} no-op tasks")
    with tempfile.TemporaryDirectory(prefix="athena-bench-huey-") as scratch:
        args = [str(python), __file__, "--role", "huey", "--scratch", scratch]
        args += ["--jobs", str(jobs), "--workers", str(workers)]
        if synchronous:
            args += ["--synchronous", synchronous]
        driver = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, _ = driver.communicate(timeout=STEP_TIMEOUT_S)
        finally:
            stop_group(driver)
        if driver.returncode != 0:
            raise RuntimeError(f"the Huey driver exited with {driver.returncode}")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    figures["synchronous"] = synchronous or "FULL (default)"
    return figures


def drive_huey(scratch: Path, jobs: int, workers: int, synchronous: str | None) -> dict[str, Any]:
    """Huey's side, run under the benchmark's virtualenv: one by one, until drained."""
    import importlib

    (scratch / "bench_huey_app.py").write_text(HUEY_APP, encoding="utf-8")
    env = {**os.environ, "BENCH_HUEY_DB": str(scratch / "huey.db"), "PYTHONPATH": str(scratch)}
    if synchronous:
        env["BENCH_HUEY_SYNCHRONOUS"] = synchronous
    os.environ.update(env)
    sys.path.insert(0, str(scratch))
    huey_package = importlib.import_module("huey")
    bench_huey_app = importlib.import_module("bench_huey_app")

    consumer_command = [sys.executable, "-m", "huey.bin.huey_consumer", "bench_huey_app.huey"]
    consumer_command += ["-w", str(workers), "-k", "process", "-q"]
    consumer = subprocess.Popen(
        consumer_command,
        cwd=scratch,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def run(count: int, tag: str) -> tuple[float, list[float]]:
        marker = scratch / f"done-{tag}"
        waits = []
        started = time.time()
        for i in range(count):
            t0 = time.perf_counter()
            bench_huey_app.noop(str(marker) if i == count - 1 else None)
            waits.append(time.perf_counter() - t0)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not marker.exists():
            if consumer.poll() is not None:
                raise RuntimeError(f"the Huey consumer exited with {consumer.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Huey did not drain {count} tasks in {STEP_TIMEOUT_S:g} s")
            time.sleep(DRAIN_POLL_S)
        return count / (marker.stat().st_mtime - started), waits

    try:
        run(WARMUP_JOBS, "warmup")
        rate, waits = run(jobs, "timed")
    finally:
        stop_group(consumer)
    return {
        "version": huey_package.__version__,
        "workers": workers,
        "jobs": jobs,
        "one_by_one_jobs_per_s": rate,
        "one_by_one_submit_p50_ms": statistics.median(waits) * 1000,
        "one_by_one_submit_p99_ms": quantile(waits, 99) * 1000,
    }


# ---- the report ------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report(results: dict[str, Any]) -> str:
    """The figures as a markdown table, each beside its target."""
    athena = results.get("athena")
    athena_full = results.get("athena_full")
    huey_normal, huey_full = results.get("huey_normal"), results.get("huey_full")
    lines = [
        "| figure | value | target | met |",
        "| --- | ---: | --- | --- |",
    ]
    if athena:
        rate = athena["one_by_one_jobs_per_s"]
        target, met = f">= {HUEY_FACTOR_TARGET:g}x Huey NORMAL", "-"
        if huey_normal:
            factor = rate / huey_normal["one_by_one_jobs_per_s"]
            target += f" ({factor:.2f}x)"
            met = _met(factor >= HUEY_FACTOR_TARGET)
        lines.append(
            f"| Athena, one by one + drain, NORMAL (jobs/s) | {rate:,.0f} | {target} | {met} |"
        )
        if "bulk_jobs_per_s" in athena:
            bulk_rate = athena["bulk_jobs_per_s"]
            factor = bulk_rate / rate
            lines.append(
                f"| Athena, bulk submit_many + drain, NORMAL (jobs/s) | {bulk_rate:,.0f} "
                f"| one by one >= bulk / {BULK_FACTOR_TARGET:g} ({factor:.2f}x) "
                f"| {_met(factor <= BULK_FACTOR_TARGET)} |"
            )
    if athena_full:
        rate = athena_full["one_by_one_jobs_per_s"]
        target, met = "", ""
        if huey_full:
            target = f"({rate / huey_full['one_by_one_jobs_per_s']:.2f}x Huey FULL)"
        lines.append(
            f"| Athena, one by one + drain, FULL (jobs/s) | {rate:,.0f} | {target} | {met} |"
        )
    for part, label in ((huey_normal, "NORMAL"), (huey_full, "default FULL")):
        if part:
            lines.append(
                f"| Huey {part['version']}, enqueue one by one + drain, {label} (jobs/s) "
                f"| {part['one_by_one_jobs_per_s']:,.0f} | | |"
            )
    if athena:
        lines.append(
            f"| Athena submit() during the one-by-one run, p50 / p99 (ms) "
            f"| {athena['one_by_one_submit_p50_ms']:.3f} / "
            f"{athena['one_by_one_submit_p99_ms']:.3f} | | |"
        )
        if "busy_submit_p99_ms" in athena:
            p99 = athena["busy_submit_p99_ms"]
            lines.append(
                f"| Athena submit(), workers busy (backlog), p50 / p99 (ms) "
                f"| {athena['busy_submit_p50_ms']:.3f} / {p99:.3f} "
                f"| p99 < {P99_GOAL_MS:g} ms (goal) | {_met(p99 < P99_GOAL_MS)} |"
            )
        many = athena.get("many")
        if many:
            ok = many["max_wait_ms"] <= MAX_WAIT_TARGET_MS
            lines.append(
                f"| {many['submitters']} submitters one by one: longest submit (ms) "
                f"| {many['max_wait_ms']:.1f} | <= {MAX_WAIT_TARGET_MS:g} ms | {_met(ok)} |"
            )
            errors = many["locked_errors"] + many["other_errors"]
            lines.append(
                f"| {many['submitters']} submitters: 'database is locked' / other errors "
                f"| {many['locked_errors']} / {many['other_errors']} | none "
                f"| {_met(errors == 0)} |"
            )
            lines.append(
                f"| {many['submitters']} submitters: p99 submit (ms), jobs/s until drained "
                f"| {many['p99_ms']:.2f}, {many['jobs_per_s']:,.0f} | | |"
            )
    for part, label in ((huey_normal, "NORMAL"), (huey_full, "FULL")):
        if part:
            lines.append(
                f"| Huey enqueue() during its run, {label}, p50 / p99 (ms) "
                f"| {part['one_by_one_submit_p50_ms']:.3f} / "
                f"{part['one_by_one_submit_p99_ms']:.3f} | | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=None, help="no-op jobs per run (5,000)")
    parser.add_argument("--samples", type=int, default=None, help="busy submit samples (2,000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--parts", default="ahf", help="a=Athena, h=Huey, f=Athena FULL")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--venv", type=Path, default=BENCH_VENV, help="Huey's virtualenv")
    parser.add_argument("--role", choices=("main", "huey", "submitter"), default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--synchronous", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.jobs = args.jobs or (1_000 if args.quick else 5_000)
    args.samples = args.samples or (300 if args.quick else 2_000)
    if args.role == "huey":
        print(json.dumps(drive_huey(args.scratch, args.jobs, args.workers, args.synchronous)))
        return
    if args.role == "submitter":
        run_submitter(args.home, args.jobs, args.synchronous or "NORMAL", args.go)
        return

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "targets": {
            "one_by_one_vs_huey_normal": HUEY_FACTOR_TARGET,
            "bulk_over_one_by_one_at_most": BULK_FACTOR_TARGET,
            "busy_submit_p99_ms_goal": P99_GOAL_MS,
            "many_submitters_max_wait_ms": MAX_WAIT_TARGET_MS,
        },
    }
    if "a" in args.parts:
        results["athena"] = bench_athena(args.jobs, args.samples, args.workers, "NORMAL", full=True)
    if "h" in args.parts:
        results["huey_normal"] = bench_huey(args.jobs, args.workers, "NORMAL", args.venv)
        results["huey_full"] = bench_huey(args.jobs, args.workers, None, args.venv)
    if "f" in args.parts:
        results["athena_full"] = bench_athena(
            args.jobs, args.samples, args.workers, "FULL", full=False
        )
    print()
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
