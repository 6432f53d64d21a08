"""Unlucky timings inside a worker, made to happen on purpose."""

from __future__ import annotations

import apsw
import pytest

from athenad.config import Config
from athenad.paths import Home
from athenad.store.sqlite import connection as db
from athenad.store.sqlite.queue import ClaimedJob
from workers.interrupts import Cancelled
from workers.worker import Worker


class InterruptAfterBegin:
    """A connection whose BEGIN succeeds and then an interrupt lands, as a signal might."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, *args):
        result = self.conn.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE":
            raise Cancelled()
        return result


def test_interrupt_right_after_begin_rolls_back(tmp_path):
    conn = db.connect(tmp_path / "athena.db")
    with pytest.raises(Cancelled), db.write_transaction(InterruptAfterBegin(conn)):
        pass
    assert not conn.in_transaction
    with db.write_transaction(conn):  # the write lock was released
        conn.execute("SELECT 1")


def job(job_id: str) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        type="echo",
        agent_type="echo",
        payload=None,
        attempt=1,
        max_attempts=1,
        fence=1,
        timeout_s=None,
        checkpoint_iteration=None,
        session_id=None,
        priority=0,
        interruptions=0,
    )


class FinishedJobs:
    """job_control as seen a moment after the job completed (and cancel was asked)."""

    def job_control(self, job_id: str):
        return (1, "completed", True)


def test_control_thread_never_acts_on_the_next_job(tmp_path):
    worker = Worker(Home.resolve(tmp_path).ensure(), Config())
    worker.control_queue = FinishedJobs()
    sent = []
    worker.interrupt_agent = lambda interrupt, target=None: sent.append((interrupt, target))
    finished, current = job("a" * 15), job("b" * 15)
    worker.control.begin(current, 60.0)  # the main thread moved on before the read returned
    worker._watch_job(finished, now=100.0, grace=1.0)
    assert sent == []
    assert worker.control.cancel_requested is False and worker.control.lost is False


def test_interrupt_for_a_finished_job_is_dropped(tmp_path):
    worker = Worker(Home.resolve(tmp_path).ensure(), Config())
    finished, current = job("a" * 15), job("b" * 15)
    worker.control.begin(current, 60.0)
    worker.running = current
    worker.pending_interrupt = (finished, Cancelled())
    worker._on_interrupt(0, None)  # must not raise into the current job
    worker.pending_interrupt = (current, Cancelled())
    with pytest.raises(Cancelled):
        worker._on_interrupt(0, None)
