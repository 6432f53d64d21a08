"""ctx.log, ctx.progress and the worker's own lines about each run, through a real worker
on SQLite (no daemon): which lines are stored, in what order, and what is refused."""

from __future__ import annotations

import signal

import pytest
from structlog.testing import capture_logs

from athenad.config import Config, DaemonConfig
from athenad.paths import Home
from athenad.storage.job_logs import JobLogError, open_job_logs
from athenad.store.jobspec import ClaimedJob
from athenad.store.sqlite.queue import JobQueue
from workers.worker import Worker


class Registry:
    def __init__(self, agent) -> None:
        self.agent = agent

    def get(self, agent_type: str):
        return self.agent


@pytest.fixture
def worker(tmp_path):
    home = Home.resolve(tmp_path).ensure()
    worker = Worker(home, Config(daemon=DaemonConfig(job_log_max_bytes="200")))
    worker.queue = JobQueue(home.db_path, run_dir=home.run_dir)
    control = worker.control_queue = JobQueue(home.db_path, run_dir=home.run_dir)
    previous = signal.signal(signal.SIGALRM, worker._on_alarm)
    yield worker
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
    worker.queue.close()
    control.close()


def run(worker: Worker, agent, **submit) -> str:
    """Submit one job, run it with ``agent`` and record its outcome; returns its id."""
    job_id = worker.queue.submit("work", **submit)
    job = worker.queue.claim(worker.worker_id, lease_s=30)
    assert job is not None and job.id == job_id
    worker.registry = Registry(agent)
    worker.report_until_stored(job, worker.execute(job))
    return job_id


def lines(worker: Worker, job_id: str) -> list[tuple[str, str]]:
    store = open_job_logs(worker.queue)
    assert store is not None
    return [(line.level, line.message) for line in store.read(job_id)]


def test_a_quick_quiet_success_stores_nothing(worker):
    job_id = run(worker, lambda ctx: "done")
    assert lines(worker, job_id) == []
    assert worker.queue.get(job_id)["log_seq"] == 0


def test_agent_lines_come_after_started_and_before_completed(worker):
    def agent(ctx):
        ctx.log("fetching", url="https://example.org")
        ctx.log.info("parsed", rows=3)
        ctx.log("odd answer", level="warning")
        return "ok"

    job_id = run(worker, agent)
    assert lines(worker, job_id) == [
        ("info", "job started"),
        ("info", "fetching"),
        ("info", "parsed"),
        ("warning", "odd answer"),
        ("info", "job completed"),
    ]
    store = open_job_logs(worker.queue)
    assert store is not None
    stored = store.read(job_id)
    assert stored[0].fields == {"attempt": 1, "max_attempts": 1, "worker_pid": worker.pid}
    assert stored[1].fields == {"url": "https://example.org"}
    assert stored[2].fields == {"rows": 3}


def test_a_failure_is_always_stored_with_its_start(worker):
    def agent(ctx):
        raise RuntimeError("kaput")

    job_id = run(worker, agent, max_attempts=2)
    assert lines(worker, job_id) == [
        ("info", "job started"),
        ("error", "job failed: RuntimeError: kaput"),
    ]


def test_a_bad_field_or_progress_is_a_clear_error_in_the_agent(worker):
    seen: list[str] = []

    def agent(ctx):
        for call in (
            lambda: ctx.log("hi", when=object()),
            lambda: ctx.log("hi", level="loud"),
            lambda: ctx.progress(1.5),
            lambda: ctx.progress(float("nan")),
            lambda: ctx.progress(True),
            lambda: ctx.progress(0.5, message=3),
        ):
            try:
                call()
            except JobLogError as exc:
                assert isinstance(exc, ValueError)
                seen.append(exc.message)
        ctx.log.info("lenient", when=object())  # the structlog style never refused a value
        return "ok"

    job_id = run(worker, agent)
    assert len(seen) == 6
    assert "log field 'when'" in seen[0] and "log level 'loud'" in seen[1]
    assert "from 0 to 1" in seen[2] and "must be text" in seen[5]
    assert [message for _level, message in lines(worker, job_id)] == [
        "job started",
        "lenient",
        "job completed",
    ]


def test_progress_is_stored_and_a_part_left_out_is_kept(worker):
    def agent(ctx):
        ctx.progress(0.25, "downloading")
        ctx.progress(0.5)
        return "ok"

    job_id = run(worker, agent)
    row = worker.queue.get(job_id)
    assert (row["progress"], row["progress_message"]) == (0.5, "downloading")
    assert row["progress_at"] is not None


def test_past_the_cap_lines_are_dropped_but_the_end_is_kept(worker):
    def agent(ctx):
        for n in range(20):
            ctx.log(f"line {n:02d} " + "x" * 20)
        raise RuntimeError("after all that")

    job_id = run(worker, agent)
    row = worker.queue.get(job_id)
    stored = lines(worker, job_id)
    assert stored[0] == ("info", "job started") and stored[-1][0] == "error"
    assert row["log_dropped"] == 20 - (len(stored) - 2) > 0
    assert row["log_seq"] == len(stored)


def test_the_control_thread_stores_started_for_a_run_that_goes_on(worker):
    def agent(ctx):
        job = worker.control.job
        worker.control_tick(worker.control.started + 0.5)  # what the thread does a tick in
        assert lines(worker, job.id) == [("info", "job started")]
        return "ok"

    job_id = run(worker, agent)
    assert lines(worker, job_id) == [("info", "job started"), ("info", "job completed")]


def test_a_database_that_refuses_a_line_never_fails_the_job(worker):
    class Refusing:
        def append(self, *args, **kwargs):
            raise OSError("disk I/O error")

    worker.job_log.store = Refusing()

    def agent(ctx):
        ctx.log("lost line")
        return "fine"

    with capture_logs() as logs:
        job_id = run(worker, agent)
    assert worker.queue.get(job_id)["status"] == "completed"
    assert any(entry["event"] == "job_log_write_failed" for entry in logs)


@pytest.mark.parametrize(
    ("kind", "detail", "level", "message"),
    [
        ("ok", None, "info", "job completed"),
        ("error", ("ValueError: bad\nmore", "tb"), "error", "job failed: ValueError: bad"),
        ("unrunnable", "no agent 'x'", "error", "job cannot run: no agent 'x'"),
        ("timeout", 2.5, "error", "job timed out after 2.5 s"),
        ("timeout", None, "error", "job timed out"),
        ("cancelled", None, "warning", "job cancelled"),
        ("interrupted", None, "warning", "job requeued: the worker is stopping"),
        ("lost", "its lease lapsed", "warning", "job given up: its lease lapsed"),
        (
            "rate_limited",
            (30.0, "rate limited (until 10:00)"),
            "warning",
            "job requeued: rate limited (until 10:00)",
        ),
        ("rejected", "rejected: no", "error", "job failed: rejected: no"),
        ("something_new", None, "warning", "job ended: something_new"),
    ],
)
def test_each_way_a_run_ends_has_its_line(kind, detail, level, message):
    from workers.job_log import _end_line

    job = ClaimedJob(
        id="j",
        type="t",
        agent_type="t",
        payload=None,
        attempt=1,
        max_attempts=3,
        fence=1,
        timeout_s=None,
        checkpoint_iteration=None,
        session_id=None,
        priority=0,
        interruptions=0,
    )
    line = _end_line(job, kind, detail, 0.25)
    assert (line.level, line.message) == (level, message)
    assert line.capped is False  # kept past the cap: the log always says how a run ended
