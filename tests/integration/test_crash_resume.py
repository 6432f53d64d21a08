"""Crash-resume through the real daemon: no work before the last checkpoint is redone.

A test agent appends every iteration it executes to a ledger file, so the test can
prove from the ledger which iterations ran twice after a SIGKILL.
"""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from athenad.storage.checkpoints import CheckpointStore
from athenad.store.sqlite.queue import JobQueue
from tests.conftest import cli, wait_until

pytestmark = pytest.mark.timeout(240)

AGENTS = textwrap.dedent(
    """
    import os, time
    from workers.base_agent import BaseAgent

    def ledger(ctx):
        path = ctx.payload["ledger"]
        total = ctx.payload["iterations"]
        start = ctx.checkpoint.iteration + 1 if ctx.checkpoint else 1
        acc = ctx.checkpoint.state["acc"] if ctx.checkpoint else 0
        for i in range(start, total + 1):
            with open(path, "a") as f:
                f.write(f"{os.getpid()} {i}\\n")
            time.sleep(ctx.payload.get("delay", 0.05))
            acc += i
            ctx.save_checkpoint(i, state={"acc": acc})
        return {"acc": acc}

    class Counter(BaseAgent):
        checkpoint_every = 3

        def step(self):
            with open(self.ctx.payload["ledger"], "a") as f:
                f.write(f"{os.getpid()} {self.iteration}\\n")
            self.messages.append({"role": "assistant", "content": f"step {self.iteration}"})
            time.sleep(0.05)
            return self.iteration >= self.ctx.payload["iterations"]

        def result(self):
            return {"steps": self.iteration, "messages": len(self.messages)}
    """
)


@pytest.fixture
def agents_home(home):
    (home.root / "resumeagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[agents]\nledger = "resumeagents:ledger"\ncounter = "resumeagents:Counter"\n'
    )
    return home


def submit(home, agent, payload) -> str:
    import json

    done = cli("athenactl", "submit", agent, "--payload", json.dumps(payload), home=home)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ledger_entries(path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def wait_for_iteration(path, at_least: int) -> None:
    wait_until(
        lambda: path.exists() and len(path.read_text().splitlines()) >= at_least,
        timeout=30,
        what=f"iteration {at_least}",
    )


def finished(home, job_id):
    with JobQueue(home.db_path) as queue:
        return wait_until(
            lambda: queue.get(job_id)["status"] in ("completed", "failed") and queue.get(job_id),
            timeout=150,  # every iteration fsyncs a checkpoint: slow on a busy disk
            what="the job to finish",
        )


def test_worker_sigkilled_mid_run_resumes_from_last_checkpoint(
    agents_home, daemon_factory, tmp_path
):
    home = agents_home
    daemon_factory(workers=2)
    ledger = tmp_path / "ledger.txt"
    job = submit(home, "ledger", {"ledger": str(ledger), "iterations": 40})
    wait_for_iteration(ledger, 12)
    victim = ledger_entries(ledger)[-1][0]
    os.kill(victim, signal.SIGKILL)
    row = finished(home, job)
    assert row["status"] == "completed"
    assert row["result"] == {"acc": sum(range(1, 41))}
    entries = ledger_entries(ledger)
    iterations = [i for _pid, i in entries]
    assert sorted(set(iterations)) == list(range(1, 41))
    repeated = [i for i in set(iterations) if iterations.count(i) > 1]
    assert len(repeated) <= 1, f"more than the in-flight iteration ran twice: {repeated}"
    assert {pid for pid, _ in entries} - {victim}, "another process finished the job"
    assert row["worker_pid"] != victim and row["checkpoint_iteration"] == 40
    # After completion only the final checkpoint is kept.
    assert [c.iteration for c in CheckpointStore(home.checkpoints_dir).list(job)] == [40]


def test_supervisor_sigkilled_then_restart_resumes(agents_home, daemon_factory, tmp_path):
    home = agents_home
    first = daemon_factory(workers=1)
    ledger = tmp_path / "ledger.txt"
    job = submit(home, "ledger", {"ledger": str(ledger), "iterations": 30, "delay": 0.1})
    wait_for_iteration(ledger, 8)
    first.kill_all()  # the supervisor and its workers at once, like a power cut
    first.proc.wait(timeout=10)
    done_before = max(i for _pid, i in ledger_entries(ledger))
    daemon_factory(workers=1)
    row = finished(home, job)
    assert row["status"] == "completed" and row["result"] == {"acc": sum(range(1, 31))}
    iterations = [i for _pid, i in ledger_entries(ledger)]
    assert sorted(set(iterations)) == list(range(1, 31))
    assert sum(1 for i in set(iterations) if iterations.count(i) > 1) <= 1
    assert min(i for i in iterations[iterations.index(done_before) + 1 :]) >= done_before


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(
    agents_home, daemon_factory, tmp_path
):
    home = agents_home
    ledger = tmp_path / "ledger.txt"
    with JobQueue(home.db_path) as queue:
        job = queue.submit("ledger", {"ledger": str(ledger), "iterations": 10})
        claimed = queue.claim("crashed-worker", 999_999)
        store = CheckpointStore(home.checkpoints_dir)
        acc = 0
        for i in range(1, 6):
            acc += i
            store.save(job, i, {"acc": acc}, None)
            queue.record_checkpoint(job, claimed.fence, i)
        newest = home.checkpoints_dir / f"job-{job}-iter5.json"
        data = bytearray(newest.read_bytes())
        data[-5] ^= 0x01  # a bit flip in the body
        newest.write_bytes(bytes(data))
    daemon_factory(workers=1)  # finds the job held by a dead pid and requeues it
    row = finished(home, job)
    assert row["status"] == "completed" and row["result"] == {"acc": sum(range(1, 11))}
    # Iteration 5's file is corrupt, so the job resumes after iteration 4.
    assert [i for _pid, i in ledger_entries(ledger)] == list(range(5, 11))
    assert row["resumed_from"] == 4 and "iteration 5 was not valid" in row["checkpoint_note"]


def test_all_checkpoints_corrupt_restarts_from_scratch(agents_home, daemon_factory, tmp_path):
    home = agents_home
    ledger = tmp_path / "ledger.txt"
    with JobQueue(home.db_path) as queue:
        job = queue.submit("ledger", {"ledger": str(ledger), "iterations": 6})
        claimed = queue.claim("crashed-worker", 999_999)
        store = CheckpointStore(home.checkpoints_dir)
        for i in (1, 2):
            store.save(job, i, {"acc": 999}, None)
            queue.record_checkpoint(job, claimed.fence, i)
            path = home.checkpoints_dir / f"job-{job}-iter{i}.json"
            path.write_bytes(path.read_bytes()[:-10])  # torn
    daemon_factory(workers=1)
    row = finished(home, job)
    assert row["status"] == "completed" and row["result"] == {"acc": sum(range(1, 7))}
    assert [i for _pid, i in ledger_entries(ledger)] == list(range(1, 7))
    assert row["resumed_from"] == 0 and "started from scratch" in row["checkpoint_note"]


def test_base_agent_resumes_after_graceful_stop(agents_home, daemon_factory, tmp_path):
    home = agents_home
    daemon = daemon_factory(workers=1)
    ledger = tmp_path / "ledger.txt"
    job = submit(home, "counter", {"ledger": str(ledger), "iterations": 60})
    wait_for_iteration(ledger, 5)
    assert cli("athenad", "stop", "--timeout", "20", home=home).returncode == 0
    daemon.proc.wait(timeout=10)
    with JobQueue(home.db_path) as queue:
        stopped = queue.get(job)
    assert stopped["status"] == "pending" and stopped["checkpoint_iteration"] is not None
    saved_at = stopped["checkpoint_iteration"]
    daemon_factory(workers=1)
    row = finished(home, job)
    assert row["status"] == "completed"
    assert row["result"] == {"steps": 60, "messages": 60}
    iterations = [i for _pid, i in ledger_entries(ledger)]
    assert sorted(set(iterations)) == list(range(1, 61))
    assert iterations.count(saved_at + 1) == 1  # the stop saved exactly where it was


def test_repeated_kills_at_random_points_give_the_uninterrupted_result(
    agents_home, daemon_factory, tmp_path
):
    import random

    home = agents_home
    daemon_factory(workers=2)
    ledger = tmp_path / "ledger.txt"
    job = submit(home, "ledger", {"ledger": str(ledger), "iterations": 60, "delay": 0.02})
    rng = random.Random(20261126)
    for target in sorted(rng.sample(range(5, 50), 3)):
        wait_for_iteration(ledger, target)
        with JobQueue(home.db_path) as queue:
            row = queue.get(job)
        if row["status"] == "running":
            os.kill(row["worker_pid"], signal.SIGKILL)
    row = finished(home, job)
    assert row["status"] == "completed"
    assert row["result"] == {"acc": sum(range(1, 61))}  # what an uninterrupted run returns
    iterations = [i for _pid, i in ledger_entries(ledger)]
    assert sorted(set(iterations)) == list(range(1, 61))
    # Each kill may redo at most the iteration that was in flight.
    assert len(iterations) - 60 <= 3
    assert row["interruptions"] <= 3 and row["attempts"] == 1
