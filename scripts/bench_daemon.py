"""Measure the real daemon: throughput, idle submit-to-start latency, memory.

Run ``python scripts/bench_daemon.py``. It starts ``athenad`` with 2 workers in a
scratch home and prints:

- enqueue + drain of N no-op (``echo``) jobs through the daemon, in jobs/s, beside
  the raw SQLite ceiling measured in the same run (two processes, plain apsw,
  completion and next claim in one transaction) — target 5,000/s, goal 10,000/s;
  and the drain alone (first start to last completion: the work the ceiling does);
- idle submit-to-start latency, p50 and p99 (target p50 <= 10 ms, goal 5 ms): a job
  is submitted to an idle daemon and its ``started_at`` is compared with the moment
  of the submit (both from this machine's clock);
- RSS of the supervisor and of an idle worker.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queue import prepare_raw, race  # noqa: E402

from athenad.paths import Home  # noqa: E402
from athenad.store.sqlite.queue import JobQueue  # noqa: E402
from athenad.util.timefmt import parse_ts  # noqa: E402


def start_daemon(home: Path, workers: int) -> int:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "athenad.cli.daemon",
            "start",
            "--home",
            str(home),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


def stop_daemon(home: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "athenad.cli.daemon", "stop", "--home", str(home)],
        capture_output=True,
        check=True,
    )


def drain_rate(queue: JobQueue, jobs: int) -> float:
    """Enqueue (one submit_many) then drain: jobs/s from the submit to the last job."""
    return drain_rates(queue, jobs)[0]


def drain_rates(queue: JobQueue, jobs: int) -> tuple[float, float]:
    """(enqueue + drain, drain alone) in jobs/s. The drain alone runs from the first
    job's start to the last one's completion (as the workers recorded them), the same
    work the raw ceiling measures: claims and completions of rows already there."""
    started = time.perf_counter()
    ids = queue.submit_many([{"type": "echo"} for _ in range(jobs)])
    while True:
        counts = queue.counts()
        if counts["pending"] == 0 and counts["running"] == 0:
            break
        time.sleep(0.02)  # a light poll: this process shares the 2 cores with the workers
    elapsed = time.perf_counter() - started
    rows = [queue.get(job_id) for job_id in ids]
    assert all(row["status"] == "completed" for row in rows)
    first = min(parse_ts(row["started_at"]).timestamp() for row in rows)
    last = max(parse_ts(row["completed_at"]).timestamp() for row in rows)
    return jobs / elapsed, jobs / (last - first)


def submit_to_start(queue: JobQueue, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples):
        time.sleep(0.02)  # let every worker go idle
        submitted = time.time()
        job_id = queue.submit("echo")
        while (row := queue.get(job_id))["started_at"] is None:
            time.sleep(0.0005)
        latencies.append((parse_ts(row["started_at"]).timestamp() - submitted) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="athena-bench-") as scratch:
        work = Path(scratch)
        raw = work / "raw.db"
        prepare_raw(raw, args.jobs * 4)
        ceiling, _ = race("raw", True, raw, 2)
        home = Home.resolve(work / "home").ensure()
        pid = start_daemon(home.root, args.workers)
        try:
            with JobQueue(home.db_path) as queue:
                drain_rate(queue, 500)  # warm up imports and caches
                rate, drained = drain_rates(queue, args.jobs)
                latencies = submit_to_start(queue, args.samples)
            supervisor = psutil.Process(pid)
            workers = supervisor.children()
            rss_supervisor = supervisor.memory_info().rss / 2**20
            rss_worker = min(w.memory_info().rss for w in workers) / 2**20
        finally:
            stop_daemon(home.root)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"raw SQLite ceiling (2 procs, shared txn) {ceiling:10,.0f} jobs/s")
    print(
        f"daemon enqueue+drain of {args.jobs} no-op jobs {rate:10,.0f} jobs/s"
        f"   target 5,000 (x{rate / 5000:.2f}), goal 10,000; {rate / ceiling:.0%} of the ceiling"
    )
    print(
        f"daemon drain alone (first start to last end) {drained:10,.0f} jobs/s"
        f"   {drained / ceiling:.0%} of the ceiling (target 60%)"
    )
    print(
        f"idle submit-to-start p50               {statistics.median(latencies):10.2f} ms"
        f"   target 10 ms, goal 5 ms"
    )
    print(f"idle submit-to-start p99               {quantiles[98]:10.2f} ms")
    print(f"RSS supervisor                         {rss_supervisor:10.1f} MiB")
    print(f"RSS idle worker                        {rss_worker:10.1f} MiB")


if __name__ == "__main__":
    main()
