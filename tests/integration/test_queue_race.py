"""Several real worker processes race over one athena.db.

Each process runs this file as a script: it claims and completes jobs until none are
left, and writes what it saw (claims, timings, released children) to its own JSON
file. The test then checks the log against the database: every job was claimed
exactly once, and every fan-in child was released exactly once, by the completion of
its last parent, and claimed only after all its parents had completed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import NOTHING_WAITING

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3
SINGLES = 5_000
GROUPS = 500
PARENTS_PER_GROUP = 4


def work(db_path: str, out_path: str) -> None:
    """The racing worker: claim and complete until nothing is waiting, then report."""
    worker_id = f"racer-{os.getpid()}"
    claims: list[list] = []
    released: list[list] = []
    with JobQueue(db_path, fast_writes=True) as queue:
        while True:
            job = queue.claim(worker_id)
            claimed_ns = time.time_ns()
            if job is None:
                counts = queue.counts()
                if counts["pending"] == 0 and counts["blocked"] == 0:
                    break
                # Children wait on parents another racer still holds.
                time.sleep(0.001)
                continue
            completing_ns = time.time_ns()
            children = queue.complete(job.id, job.fence, {"by": worker_id})
            claims.append([job.id, job.fence, claimed_ns, completing_ns])
            released.extend([job.id, child] for child in children)
    Path(out_path).write_text(
        json.dumps({"worker_id": worker_id, "claims": claims, "released": released})
    )


def submit_work(db_path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """5,000 independent jobs and 500 fan-ins of four parents and one child, interleaved."""
    groups: dict[str, list[str]] = {}
    singles: list[str] = []
    per_round = SINGLES // GROUPS
    with JobQueue(db_path) as queue:
        for _ in range(10):
            batch: list[dict] = []
            fan_ins: list[int] = []
            for _ in range(GROUPS // 10):
                batch.extend({"type": "noop"} for _ in range(per_round))
                first = len(batch)
                batch.extend({"type": "parent"} for _ in range(PARENTS_PER_GROUP))
                batch.append({"type": "child", "after": list(range(first, len(batch)))})
                fan_ins.append(first)
            ids = queue.submit_many(batch)
            taken = {i for first in fan_ins for i in range(first, first + PARENTS_PER_GROUP + 1)}
            singles.extend(job_id for i, job_id in enumerate(ids) if i not in taken)
            for first in fan_ins:
                groups[ids[first + PARENTS_PER_GROUP]] = ids[first : first + PARENTS_PER_GROUP]
    return singles, groups


def run_racers(db_path: Path, out_dir: Path, count: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(db_path), str(out_dir / f"racer-{n}.json")],
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        for n in range(count)
    ]
    try:
        for proc in procs:
            assert proc.wait(timeout=90) == 0, "a racing worker crashed"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [json.loads((out_dir / f"racer-{n}.json").read_text()) for n in range(count)]


@pytest.mark.timeout(120)
def test_racing_workers_claim_each_job_once_and_release_each_fan_in_once(tmp_path):
    db_path = tmp_path / "athena.db"
    singles, groups = submit_work(db_path)
    all_ids = set(singles) | set(groups) | {p for parents in groups.values() for p in parents}
    assert len(all_ids) == SINGLES + GROUPS * (PARENTS_PER_GROUP + 1)

    reports = run_racers(db_path, tmp_path, WORKERS)

    # Every job claimed exactly once, with the first fence, by the worker the row names.
    claimed = [claim[0] for report in reports for claim in report["claims"]]
    assert len(claimed) == len(all_ids)
    assert set(claimed) == all_ids
    owner = {c[0]: r["worker_id"] for r in reports for c in r["claims"]}
    claim_ns = {c[0]: c[2] for r in reports for c in r["claims"]}
    completing_ns = {c[0]: c[3] for r in reports for c in r["claims"]}
    assert all(c[1] == 1 for r in reports for c in r["claims"])
    # The race was real: more than one process did a fair share of the work.
    assert sum(len(r["claims"]) > len(all_ids) // (4 * WORKERS) for r in reports) >= 2

    with JobQueue(db_path) as queue:
        rows = {job_id: queue.get(job_id) for job_id in all_ids}
        assert queue.counts() == {**NOTHING_WAITING, "blocked": 0, "pending": 0, "running": 0}
    for job_id, job in rows.items():
        assert (job["status"], job["attempts"], job["fence"]) == ("completed", 1, 1), job_id
        assert job["worker_id"] == owner[job_id]
        assert job["result"] == {"by": owner[job_id]}

    # Each child released exactly once, by the completion of its last parent.
    released = [pair for report in reports for pair in report["released"]]
    assert sorted(child for _, child in released) == sorted(groups)
    for parent, child in released:
        parents = groups[child]
        assert parent in parents
        last_done = max(rows[p]["completed_at"] for p in parents)
        assert rows[parent]["completed_at"] == last_done
        child_row = rows[child]
        assert sorted(child_row["parents"]) == sorted(parents)
        assert child_row["pending_parents"] == 0
        # Made ready at the last parent's completion, claimed no earlier.
        assert child_row["run_after"] == last_done
        assert child_row["started_at"] >= last_done
        # Across processes: the child's claim returned after every parent's
        # completion had begun (a wall-clock check independent of the database).
        assert all(claim_ns[child] > completing_ns[p] for p in parents)


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2])
