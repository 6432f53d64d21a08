"""A worker's hold on its job: timeouts that arrive late, leases it cannot renew, and
writes it makes after another worker took the job over."""

from __future__ import annotations

import signal
import time

import pytest
from structlog.testing import capture_logs

from athenad.config import Config, DaemonConfig
from athenad.errors import DatabaseBusy, StaleFence
from athenad.paths import Home
from athenad.store.sqlite.queue import JobQueue
from workers.context import JobContext
from workers.interrupts import JobLost
from workers.worker import Worker


class Registry:
    """Hands out one agent function for every agent type."""

    def __init__(self, agent) -> None:
        self.agent = agent

    def get(self, agent_type: str):
        return self.agent


@pytest.fixture
def worker(tmp_path):
    home = Home.resolve(tmp_path).ensure()
    worker = Worker(home, Config(daemon=DaemonConfig(lease=3.0)))
    worker.queue = JobQueue(home.db_path, run_dir=home.run_dir)
    control_queue = worker.control_queue = JobQueue(home.db_path, run_dir=home.run_dir)
    previous = signal.signal(signal.SIGALRM, worker._on_alarm)
    yield worker
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
    worker.queue.close()
    control_queue.close()


def claim(worker: Worker):
    job = worker.queue.claim(worker.worker_id, lease_s=worker.config.daemon.lease)
    assert job is not None
    return job


def test_a_late_alarm_of_an_earlier_job_never_reaches_the_next(worker):
    worker.queue.submit("first", timeout_s=30)
    worker.queue.submit("second")
    first = claim(worker)
    worker.registry = Registry(lambda ctx: "done")
    assert worker.execute(first) == ("ok", "done")
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # disarmed with its job
    worker.report(first, ("ok", "done"))

    second = claim(worker)  # no timeout of its own
    # The first job's SIGALRM is handled only now, while the second job's agent runs.
    worker.registry = Registry(lambda ctx: worker._on_alarm(signal.SIGALRM, None) or "fine")
    worker.timeout_for = first
    assert worker.execute(second) == ("ok", "fine")


def test_a_timeout_is_reported_with_its_seconds(worker):
    worker.queue.submit("slow", timeout_s=0.05)
    job = claim(worker)

    def spin(ctx):
        while True:
            pass

    worker.registry = Registry(spin)
    outcome = worker.execute(job)
    assert outcome == ("timeout", 0.05)
    worker.report(job, outcome)
    row = worker.queue.get(job.id)
    assert row["status"] == "failed" and row["error"] == "timed out after 0.05 s"


def test_a_timeout_without_seconds_is_still_reported(worker):
    worker.queue.submit("odd")
    job = claim(worker)
    worker.report(job, ("timeout", None))
    assert worker.queue.get(job.id)["error"] == "timed out"


class FailingRenewals:
    """A control connection whose lease renewals fail the way a busy disk makes them."""

    def __init__(self, queue: JobQueue, error: Exception) -> None:
        self.queue = queue
        self.error = error
        self.renewals = 0

    def renew_lease(self, job_id, fence, *, lease_s, timeout_s):
        self.renewals += 1
        raise self.error

    def job_control(self, job_id):
        return self.queue.job_control(job_id)


def begin(worker: Worker, job) -> list:
    sent: list = []
    worker.interrupt_agent = lambda interrupt, target=None: sent.append((interrupt, target))
    worker.control.begin(job, worker.config.daemon.lease)
    return sent


def test_a_failed_renewal_is_logged_retried_and_the_job_given_up_in_time(worker):
    worker.queue.submit("long")
    job = claim(worker)
    failing = FailingRenewals(worker.queue, DatabaseBusy("athena.db stayed locked"))
    worker.control_queue = failing
    sent = begin(worker, job)
    start = worker.control.started
    with capture_logs() as logs:
        worker.control_tick(start + 1.1)  # first renewal is due after lease/3 = 1 s
        worker.control_tick(start + 1.5)  # the next try is a second later
        worker.control_tick(start + 2.2)
    events = [entry["event"] for entry in logs]
    assert events.count("lease_renewal_failed") == 2
    assert failing.renewals == 2
    assert sent == []  # the lease still runs: keep trying
    with capture_logs() as logs:
        worker.control_tick(job.lease_started + 2.95)
    assert [entry["event"] for entry in logs] == ["job_given_up"]
    assert len(sent) == 1 and isinstance(sent[0][0], JobLost) and sent[0][1] is job
    worker.control_tick(job.lease_started + 3.5)
    assert len(sent) == 1  # given up once


def test_a_job_taken_over_is_given_up_at_once(worker):
    worker.queue.submit("long")
    job = claim(worker)
    worker.control_queue = FailingRenewals(worker.queue, StaleFence("taken"))
    sent = begin(worker, job)
    with capture_logs() as logs:
        worker.control_tick(worker.control.started + 1.1)
    assert "job_given_up" in [entry["event"] for entry in logs]
    assert isinstance(sent[0][0], JobLost)


def test_an_unexpected_error_in_the_control_thread_is_logged(worker):
    worker.queue.submit("long")
    job = claim(worker)

    class Broken:
        def job_control(self, job_id):
            raise OSError("disk I/O error")

        def renew_lease(self, *args, **kwargs):
            return False

    worker.control_queue = Broken()
    begin(worker, job)
    with capture_logs() as logs:
        worker.control_tick(worker.control.started + 0.5)
    failed = [entry for entry in logs if entry["event"] == "job_control_read_failed"]
    assert failed and "disk I/O error" in failed[0]["error"]


def test_a_renewal_moves_the_lease_on(worker):
    worker.queue.submit("long")
    job = claim(worker)
    begin(worker, job)
    before = worker.queue.get(job.id)["lease_expires_at"]
    time.sleep(0.01)  # the stored lease is wall-clock time, to the millisecond
    now = worker.control.started + 1.1
    worker.control_tick(now)
    assert worker.control.lease_ends == pytest.approx(now + 3.0)
    assert worker.queue.get(job.id)["lease_expires_at"] > before


def take_over(worker: Worker, job):
    """The lease lapsed: a daemon requeued the job and another worker claimed it."""
    assert worker.queue.rescue(job.id, job.fence, reason="lease expired") == "pending"
    other = worker.queue.claim("elsewhere:1:0")
    assert other is not None and other.fence > job.fence
    return other


def test_a_late_completion_is_a_logged_no_op(worker):
    worker.queue.submit("work")
    job = claim(worker)
    other = take_over(worker, job)
    with capture_logs() as logs:
        worker.report(job, ("ok", "late"), claim_next=True)
    assert [entry["event"] for entry in logs] == ["job_lost"]
    row = worker.queue.get(job.id)
    assert (row["status"], row["fence"], row["result"]) == ("running", other.fence, None)


def test_a_late_checkpoint_stops_the_agent_and_leaves_the_new_holder_alone(worker):
    worker.queue.submit("work")
    job = claim(worker)
    other = take_over(worker, job)
    worker.queue.record_checkpoint(job.id, other.fence, 1)
    ctx = JobContext(job, worker)
    with pytest.raises(JobLost):
        ctx.save_checkpoint(2, {"late": True})
    assert worker.queue.get(job.id)["checkpoint_iteration"] == 1
    assert worker.checkpoints.load_latest(job.id) is None  # the late file was removed

    def agent(ctx):
        try:
            ctx.save_checkpoint(3, {"late": True})
        except Exception:  # an agent's broad except cannot keep it running
            return "kept going"

    worker.registry = Registry(agent)
    assert worker.execute(job) == ("lost", "another worker holds the job now")
