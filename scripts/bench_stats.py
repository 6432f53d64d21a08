"""Time ``athenactl stats --since 1d`` over a database of 1,000,000 jobs.

Builds the database with plain SQL in one transaction (or reuses ``--db PATH`` when it
already holds jobs), then prints the time of :func:`athenad.analytics.stats` and of the
CLI end to end, beside the database size.

    python scripts/bench_stats.py                 # temp database, 1,000,000 jobs
    python scripts/bench_stats.py --db /tmp/a.db  # build once, reuse afterwards
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from athenad.analytics import queries as analytics
from athenad.store.sqlite.migrations import open_database
from athenad.util.timefmt import parse_since

# Jobs spread over the last 30 days, 2.6 s apart; a few agent types with their own
# duration ranges; ~90% completed, ~6% failed, ~2% cancelled, the newest still waiting.
# Pseudo-random figures come from multiplicative hashing of n, so every build is the same.
BUILD_SQL = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count),
shaped AS (
    SELECT n,
           (n * 2654435761) % 1000 AS roll,
           (n * 40503) % 9973 AS jitter,
           julianday('now') - 30.0 + n * (30.0 / :count) AS created_jd,
           CASE n % 5 WHEN 0 THEN 'explore' WHEN 1 THEN 'plan' WHEN 2 THEN 'review'
                      WHEN 3 THEN 'test' ELSE 'shell' END AS agent_type
    FROM seq
),
timed AS (
    SELECT *,
           CASE WHEN n > :count - 300 THEN (CASE n % 3 WHEN 0 THEN 'pending'
                                                  WHEN 1 THEN 'blocked' ELSE 'running' END)
                WHEN roll < 60 THEN 'failed'
                WHEN roll < 80 THEN 'cancelled'
                ELSE 'completed' END AS status,
           CASE agent_type WHEN 'explore' THEN 300 + jitter / 2 WHEN 'plan' THEN 1200 + jitter
                           WHEN 'review' THEN 800 + jitter / 3 WHEN 'test' THEN 5000 + jitter * 3
                           ELSE 50 + jitter / 10 END AS duration_ms
    FROM shaped
)
INSERT INTO jobs (id, type, agent_type, payload, status, created_at, run_after, started_at,
                  completed_at, duration_ms, attempts, max_attempts, result, error)
SELECT printf('bench%010d', n),
       agent_type || '-task',
       agent_type,
       '{"prompt":"look at module ' || (n % 977) || '","depth":' || (n % 7) || '}',
       status,
       strftime('%Y-%m-%d %H:%M:%f', created_jd),
       strftime('%Y-%m-%d %H:%M:%f', created_jd),
       CASE WHEN status IN ('completed', 'failed', 'running')
            THEN strftime('%Y-%m-%d %H:%M:%f', created_jd + 0.5 / 86400) END,
       CASE WHEN status IN ('completed', 'failed')
            THEN strftime('%Y-%m-%d %H:%M:%f', created_jd + (500 + duration_ms) / 86400000.0) END,
       CASE WHEN status IN ('completed', 'failed') THEN duration_ms END,
       CASE WHEN status IN ('completed', 'failed', 'running') THEN 1 + (roll % 3 = 0) ELSE 0 END,
       3,
       CASE WHEN status = 'completed' THEN '{"ok":true,"files":' || (n % 40) || '}' END,
       CASE WHEN status = 'failed' THEN 'RuntimeError: agent gave up after ' || (n % 9) || ' tries'
            WHEN status = 'cancelled' THEN 'cancelled: a parent job failed' END
    FROM timed
"""


def build(path: Path, count: int) -> None:
    conn = open_database(path)
    have = conn.execute("SELECT count(*) FROM jobs").fetchall()[0][0]
    if have >= count:
        print(f"reusing {path} with {have:,} jobs")
        conn.close()
        return
    if have:
        raise SystemExit(f"{path} holds {have:,} jobs, fewer than {count:,}; use a new path")
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(BUILD_SQL, {"count": count})
    conn.execute("COMMIT")
    conn.pragma("wal_checkpoint", "TRUNCATE")
    conn.close()
    print(f"built {count:,} jobs in {time.perf_counter() - started:.1f} s")


def time_function(path: Path, rounds: int) -> list[float]:
    conn = open_database(path)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        analytics.stats(conn, since=parse_since("1d"))
        timings.append((time.perf_counter() - started) * 1000)
    conn.close()
    return timings


def time_cli(path: Path, rounds: int) -> list[float]:
    code = (
        "import sys; from athenad.cli.analytics_cmd import stats_command; "
        "stats_command(sys.argv[1:])"
    )
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, "--home", str(path.parent), "--since", "1d", "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database to build or reuse (named athena.db)")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.db is None:
        folder = Path(tempfile.mkdtemp(prefix="athena-bench-"))
        args.db = folder / "athena.db"
    if args.db.name != "athena.db":
        raise SystemExit("--db must name a file called athena.db (the CLI looks for that name)")
    build(args.db, args.jobs)
    size_mb = os.path.getsize(args.db) / 1e6
    function_ms = time_function(args.db, args.rounds)
    cli_ms = time_cli(args.db, args.rounds)
    print(f"database: {args.db} ({size_mb:,.1f} MB)")
    print(
        f"stats --since 1d, function: median {statistics.median(function_ms):.1f} ms, "
        f"max {max(function_ms):.1f} ms over {args.rounds} rounds"
    )
    print(
        f"stats --since 1d, CLI end to end (new process): median "
        f"{statistics.median(cli_ms):.1f} ms, max {max(cli_ms):.1f} ms"
    )
    print(f"target <= 500 ms: {'met' if statistics.median(cli_ms) <= 500 else 'NOT met'}")


if __name__ == "__main__":
    main()
