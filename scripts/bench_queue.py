"""Measure the job queue against the raw SQLite ceiling and its own targets.

Run ``python scripts/bench_queue.py`` (``--help`` for sizes). It prints:

(a) the ceiling: two processes claiming and completing rows of a minimal table with
    plain apsw, with one transaction per step, and with the completion and the next
    claim in one transaction (with the workers' busy handler, so the ceiling is fair:
    with 20-microsecond retries instead, raw SQLite does about 17,000 and 27,000);
(b) the queue: two processes looping ``claim``/``complete`` on no-op jobs through
    :class:`JobQueue` (``fast_writes=True``), and looping ``complete_and_claim``;
(c) what a claim costs with a million (mostly completed) jobs in the table versus
    ten thousand;
(d) how long ``submit_many`` takes for ten thousand jobs in one batch.

Each figure is printed beside its target and the ratio figure/target.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import apsw

from athenad.store.sqlite.connection import BUSY_TIMEOUT_MS, busy_handler
from athenad.store.sqlite.queue import JobQueue

THROUGHPUT_TARGET = 10_000.0  # jobs/s, two processes
CLAIM_RATIO_TARGET = 1.2  # claim cost at 1M rows / at 10k rows
SUBMIT_TARGET_S = 0.5  # submit_many of 10,000 jobs

RAW_SCHEMA = """
CREATE TABLE q (id INTEGER PRIMARY KEY, status TEXT NOT NULL, worker INTEGER);
CREATE INDEX q_pending ON q (id) WHERE status = 'pending';
"""
RAW_CLAIM = """
UPDATE q SET status = 'running', worker = ?
WHERE id = (SELECT id FROM q WHERE status = 'pending' ORDER BY id LIMIT 1)
RETURNING id
"""
RAW_COMPLETE = "UPDATE q SET status = 'done' WHERE id = ?"

# Completed filler rows for (c), built inside SQLite so a million take seconds.
FILLER_SQL = """
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO jobs (
    id, type, agent_type, payload, status, priority, created_at, started_at,
    completed_at, duration_ms, attempts, run_after, result, fence
)
SELECT printf('0%014d', i), 'filler', 'filler', 'null', 'completed', 0,
       strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d seconds', :count - i)),
       strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d seconds', :count - i)),
       strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d seconds', :count - i)),
       5, 1,
       strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d seconds', :count - i)),
       'null', 1
FROM n
"""


def _raw_connection(path: str) -> apsw.Connection:
    conn = apsw.Connection(path)
    # The same busy handler as the queue's workers, so the ceiling is a fair one.
    conn.set_busy_handler(busy_handler(BUSY_TIMEOUT_MS))
    conn.pragma("journal_mode", "wal")
    conn.pragma("synchronous", "NORMAL")
    return conn


def _raw_loop(conn: apsw.Connection, shared: bool) -> int:
    me = mp.current_process().pid
    done = 0
    if not shared:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(RAW_CLAIM, (me,)).fetchall()
            conn.execute("COMMIT")
            if not row:
                return done
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(RAW_COMPLETE, (row[0][0],))
            conn.execute("COMMIT")
            done += 1
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(RAW_CLAIM, (me,)).fetchall()
    conn.execute("COMMIT")
    while row:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(RAW_COMPLETE, (row[0][0],))
        row = conn.execute(RAW_CLAIM, (me,)).fetchall()
        conn.execute("COMMIT")
        done += 1
    return done


def _queue_loop(queue: JobQueue, shared: bool) -> int:
    worker = f"bench-{mp.current_process().pid}"
    done = 0
    if not shared:
        while (job := queue.claim(worker)) is not None:
            queue.complete(job.id, job.fence, None)
            done += 1
        return done
    job = queue.claim(worker)
    while job is not None:
        _, job = queue.complete_and_claim(job.id, job.fence, None, worker)
        done += 1
    return done


def _racer(kind: str, shared: bool, path: str, barrier, results) -> None:
    """One racing process: open, wait for the others, drain the queue, report."""
    if kind == "raw":
        conn = _raw_connection(path)
        barrier.wait()
        started = time.monotonic()
        done = _raw_loop(conn, shared)
    else:
        queue = JobQueue(path, fast_writes=True)
        barrier.wait()
        started = time.monotonic()
        done = _queue_loop(queue, shared)
    results.put((done, started, time.monotonic()))


def race(kind: str, shared: bool, path: Path, procs: int) -> tuple[float, int]:
    """Run ``procs`` racing processes over the prepared database; (jobs/s, jobs done)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_racer, args=(kind, shared, str(path), barrier, results))
        for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    done = sum(r[0] for r in reports)
    wall = max(r[2] for r in reports) - min(r[1] for r in reports)
    return done / wall, done


def prepare_raw(path: Path, jobs: int) -> None:
    conn = _raw_connection(str(path))
    conn.execute(RAW_SCHEMA)
    with conn:
        conn.executemany("INSERT INTO q (status) VALUES ('pending')", [()] * jobs)
    conn.close()


def prepare_queue(path: Path, jobs: int) -> None:
    with JobQueue(path) as queue:
        queue.submit_many([{"type": "noop"}] * jobs)


def claim_cost(path: Path, total: int, pending: int) -> float:
    """Median microseconds per claim with ``total`` jobs of which ``pending`` are ready."""
    with JobQueue(path) as queue:
        with queue.conn:
            queue.conn.execute(FILLER_SQL, {"count": total - pending})
        queue.submit_many([{"type": "noop"}] * pending)
        queue.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    samples = []
    with JobQueue(path, fast_writes=True) as queue:
        while True:
            started = time.perf_counter()
            job = queue.claim("bench")
            elapsed = time.perf_counter() - started
            if job is None:
                break
            samples.append(elapsed)
            queue.complete(job.id, job.fence, None)
    return statistics.median(samples) * 1e6


def submit_time(path: Path, batch: int, rounds: int) -> float:
    """Best of ``rounds`` seconds for one submit_many of ``batch`` jobs."""
    best = float("inf")
    with JobQueue(path) as queue:
        for _ in range(rounds):
            tasks = [{"type": "noop", "payload": {"n": n}} for n in range(batch)]
            started = time.perf_counter()
            queue.submit_many(tasks)
            best = min(best, time.perf_counter() - started)
    return best


def row(name: str, value: float, unit: str, target: str = "", ratio: float | None = None) -> None:
    """One figure; with a target, the ratio figure/target and whether it is met."""
    shown = f"{value:>12,.1f}" if value >= 100 or unit == "%" else f"{value:>12.3f}"
    line = f"{name:<40} {shown} {unit:<6}"
    if ratio is not None:
        # Throughput targets are floors; the others are ceilings.
        ok = ratio >= 1 if target.startswith(">=") else ratio <= 1
        line += f"  target {target:<10} ratio {ratio:5.2f}  {'ok' if ok else 'MISS'}"
    print(line)


def ceiling(args: argparse.Namespace, work: Path) -> dict[bool, float]:
    """(a) plain apsw on a minimal table: what SQLite itself allows on this machine."""
    print(f"(a) raw SQLite ceiling, {args.procs} processes, {args.jobs:,} rows")
    rates = {}
    for shared in (False, True):
        path = work / f"raw-{shared}.db"
        prepare_raw(path, args.jobs)
        rates[shared], _ = race("raw", shared, path, args.procs)
    row("raw claim + complete (2 tx)", rates[False], "jobs/s")
    row("raw complete + next claim (1 tx)", rates[True], "jobs/s")
    return rates


def throughput(args: argparse.Namespace, work: Path, ceilings: dict[bool, float]) -> None:
    """(b) the same race through JobQueue."""
    print(f"(b) JobQueue, {args.procs} processes, {args.jobs:,} no-op jobs")
    target = f">= {THROUGHPUT_TARGET:,.0f}"
    for shared, name in ((False, "claim + complete"), (True, "complete_and_claim")):
        path = work / f"queue-{shared}.db"
        prepare_queue(path, args.jobs)
        rate, done = race("queue", shared, path, args.procs)
        if done != args.jobs:
            print(f"   !! {done} jobs done, expected {args.jobs}")
        row(f"queue {name}", rate, "jobs/s", target, rate / THROUGHPUT_TARGET)
        if shared in ceilings:
            row("   share of the raw ceiling", 100 * rate / ceilings[shared], "%")


def claim_scaling(args: argparse.Namespace, work: Path) -> None:
    """(c) a claim must not slow down as finished jobs pile up."""
    print(f"(c) claim cost, {args.pending:,} ready jobs among {args.small:,} vs {args.big:,}")
    small = claim_cost(work / "small.db", args.small, args.pending)
    started = time.perf_counter()
    big = claim_cost(work / "big.db", args.big, args.pending)
    row("   (filling + draining the big table)", time.perf_counter() - started, "s")
    row(f"median claim, {args.small:,} rows", small, "us")
    row(f"median claim, {args.big:,} rows", big, "us")
    ratio = big / small
    row("claim cost big/small", ratio, "x", f"<= {CLAIM_RATIO_TARGET}", ratio / CLAIM_RATIO_TARGET)


def submitting(args: argparse.Namespace, work: Path) -> None:
    """(d) one large batch in one transaction."""
    print(f"(d) submit_many of {args.batch:,} jobs in one batch (best of {args.rounds})")
    seconds = submit_time(work / "submit.db", args.batch, args.rounds)
    target = f"< {SUBMIT_TARGET_S}"
    row(f"submit_many({args.batch:,})", seconds, "s", target, seconds / SUBMIT_TARGET_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput run")
    parser.add_argument("--procs", type=int, default=2, help="racing processes")
    parser.add_argument("--big", type=int, default=1_000_000, help="rows for the large table")
    parser.add_argument("--small", type=int, default=10_000, help="rows for the small table")
    parser.add_argument("--pending", type=int, default=2_000, help="ready jobs claimed in (c)")
    parser.add_argument("--batch", type=int, default=10_000, help="submit_many batch size")
    parser.add_argument("--rounds", type=int, default=3, help="submit_many repetitions")
    parser.add_argument("--parts", default="abcd", help="which parts to run, e.g. 'ab'")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        ceilings = ceiling(args, work) if "a" in args.parts else {}
        if "b" in args.parts:
            throughput(args, work, ceilings)
        if "c" in args.parts:
            claim_scaling(args, work)
        if "d" in args.parts:
            submitting(args, work)


if __name__ == "__main__":
    main()
