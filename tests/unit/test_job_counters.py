"""Job counters: counted once per event, never lowered by a DELETE or a retry."""

from __future__ import annotations

import apsw
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from athenad.cli.analytics_cmd import metrics_command
from athenad.daemon.slots import SlotsRecord, write_slots
from athenad.paths import Home
from athenad.store.sqlite.migrations import (
    available_migrations,
    current_version,
    latest_version,
    open_database,
)
from athenad.store.sqlite.queries import QUERIES
from athenad.store.sqlite.queue import JobQueue


def counters(conn: apsw.Connection) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(agent_type, event): (count, duration_ms_sum)}``, as the metrics read them."""
    rows = conn.execute(QUERIES["analytics_job_counters"])
    return {(agent, event): (count, total) for agent, event, count, total in rows}


def counts(conn: apsw.Connection) -> dict[tuple[str, str], int]:
    return {key: count for key, (count, _total) in counters(conn).items()}


def run_one(queue: JobQueue, outcome: str = "complete") -> str:
    job = queue.claim("w1")
    assert job is not None
    if outcome == "complete":
        queue.complete(job.id, job.fence, {"ok": True})
    else:
        queue.fail(job.id, job.fence, "RuntimeError: boom")
    return job.id


def scrape(home: Home) -> dict[str, dict]:
    """``athenactl metrics`` parsed by prometheus_client: {family: {"type", "samples"}}."""
    result = CliRunner().invoke(metrics_command, ["--home", str(home.root)])
    assert result.exit_code == 0, result.output
    return {
        family.name: {
            "type": family.type,
            "samples": {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for sample in family.samples
            },
        }
        for family in text_string_to_metric_families(result.stdout)
    }


def counter_samples(families: dict[str, dict]) -> dict[tuple, float]:
    return {
        key: value
        for family in families.values()
        if family["type"] == "counter"
        for key, value in family["samples"].items()
    }


def delete_every_job(conn: apsw.Connection) -> None:
    # Edges first: job_parents references jobs on both ends.
    conn.execute("DELETE FROM job_parents; DELETE FROM jobs")


def test_counters_do_not_go_down_when_rows_are_deleted(home: Home, queue: JobQueue) -> None:
    for _ in range(3):
        queue.submit("explore")
        run_one(queue)
    parent = queue.submit("plan")
    queue.submit("report", after=[parent])
    run_one(queue, "fail")
    before = scrape(home)
    assert counter_samples(before), "no counters exposed"

    delete_every_job(queue.conn)
    after = scrape(home)

    for key, value in counter_samples(before).items():
        assert counter_samples(after).get(key, 0) >= value, key
    samples = after["athena_jobs_completed"]["samples"]
    assert samples[("athena_jobs_completed_total", (("agent_type", "explore"),))] == 3
    samples = after["athena_jobs_submitted"]["samples"]
    assert samples[("athena_jobs_submitted_total", (("agent_type", "report"),))] == 1
    # Gauges tell how things stand now: nothing is left.
    assert set(after["athena_jobs"]["samples"].values()) == {0}


def test_each_event_is_counted_once(queue: JobQueue) -> None:
    done = queue.submit("explore")
    run_one(queue)
    # Later writes to a finished row (or a status set to what it already is) add nothing.
    queue.conn.execute(
        "UPDATE jobs SET status = 'completed', result = 'null' WHERE id = ?", (done,)
    )
    flaky = queue.submit("plan", max_attempts=2, backoff_s=0)
    child = queue.submit("report", after=[flaky])
    run_one(queue, "fail")  # first attempt: back to pending, not a failure yet
    assert counts(queue.conn).get(("plan", "failed"), 0) == 0
    run_one(queue, "fail")  # last attempt: failed, and its child cancelled
    late = queue.submit("report", after=[flaky])  # born cancelled: the parent failed
    assert queue.get(late)["status"] == "cancelled"
    assert counts(queue.conn) == {
        ("explore", "submitted"): 1,
        ("explore", "completed"): 1,
        ("plan", "submitted"): 1,
        ("plan", "failed"): 1,
        ("report", "submitted"): 2,
        ("report", "cancelled"): 2,
    }
    # A retry runs the job again: each time it ends is an event of its own.
    queue.retry(flaky)
    assert queue.get(child)["status"] == "blocked"
    run_one(queue, "fail")
    run_one(queue, "fail")
    assert counts(queue.conn)[("plan", "failed")] == 2
    assert counts(queue.conn)[("plan", "submitted")] == 1


def test_completed_durations_are_summed(queue: JobQueue) -> None:
    for _ in range(2):
        queue.submit("explore")
        run_one(queue)
    by_hand = queue.submit("explore")
    queue.conn.execute(
        "UPDATE jobs SET status = 'completed', duration_ms = 450 WHERE id = ?", (by_hand,)
    )
    (total,) = queue.conn.execute(
        "SELECT sum(duration_ms) FROM jobs WHERE status = 'completed'"
    ).fetchone()
    assert total >= 450
    assert counters(queue.conn)[("explore", "completed")] == (3, total)


def build_version(path, version: int) -> apsw.Connection:
    """A database migrated only up to ``version``, as an older Athena left it."""
    conn = apsw.Connection(str(path))
    for number, _name, sql in available_migrations()[:version]:
        conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {number}")
    return conn


INSERT_OLD_JOB = """
INSERT INTO jobs (id, type, agent_type, status, created_at, run_after, duration_ms)
VALUES (:id, :agent, :agent, :status, '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', :d)
"""


def test_an_upgraded_database_counts_the_rows_it_holds(tmp_path) -> None:
    path = tmp_path / "athena.db"
    old = build_version(path, 4)
    rows = [
        ("explore", "completed", 100),
        ("explore", "completed", 250),
        ("explore", "failed", 40),
        ("explore", "pending", None),
        ("plan", "cancelled", None),
        ("plan", "running", None),
    ]
    for number, (agent, status, duration) in enumerate(rows):
        old.execute(
            INSERT_OLD_JOB, {"id": f"j{number}", "agent": agent, "status": status, "d": duration}
        )
    old.close()

    conn = open_database(path)
    assert current_version(conn) == latest_version()
    assert counters(conn) == {
        ("explore", "submitted"): (4, 0),
        ("explore", "completed"): (2, 350),
        ("explore", "failed"): (1, 40),
        ("plan", "submitted"): (2, 0),
        ("plan", "cancelled"): (1, 0),
    }
    # From here they carry on from what the rows show.
    conn.execute("UPDATE jobs SET status = 'completed', duration_ms = 10 WHERE id = 'j3'")
    assert counters(conn)[("explore", "completed")] == (3, 360)
    conn.close()


def test_exposition_parses_with_the_types_prometheus_expects(home: Home, queue: JobQueue) -> None:
    queue.submit("explore")
    run_one(queue)
    queue.submit("plan", agent_type='odd"agent')
    run_one(queue, "fail")
    families = scrape(home)
    kinds = {name: family["type"] for name, family in families.items()}
    assert kinds == {
        "athena_daemon_up": "gauge",
        "athena_workers": "gauge",
        "athena_jobs": "gauge",
        "athena_oldest_pending_age_seconds": "gauge",
        "athena_jobs_submitted": "counter",
        "athena_jobs_completed": "counter",
        "athena_jobs_failed": "counter",
        "athena_jobs_cancelled": "counter",
        "athena_job_duration_ms": "summary",
        "athena_tokens": "counter",
        "athena_cost_usd": "counter",
        "athena_worker_crashes": "counter",
    }
    failed = families["athena_jobs_failed"]["samples"]
    # Every agent type seen gets every counter, so a first failure is an increase from 0.
    assert failed == {
        ("athena_jobs_failed_total", (("agent_type", "explore"),)): 0,
        ("athena_jobs_failed_total", (("agent_type", 'odd"agent'),)): 1,
    }
    summary = families["athena_job_duration_ms"]["samples"]
    assert summary[("athena_job_duration_ms_count", (("agent_type", "explore"),))] == 1


@pytest.mark.parametrize("event", ["completed", "failed", "cancelled"])
def test_a_status_set_by_hand_counts_too(queue: JobQueue, event: str) -> None:
    job_id = queue.submit("explore")
    queue.conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (event, job_id))
    queue.conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (event, job_id))
    assert counts(queue.conn)[("explore", event)] == 1


def test_worker_crashes_are_the_supervisors_recorded_totals(home: Home, queue: JobQueue) -> None:
    crashes = scrape(home)["athena_worker_crashes"]["samples"]
    # Shown at 0 before any crash, so rate() sees the first one as an increase.
    assert crashes == {
        ("athena_worker_crashes_total", (("reason", "SIGKILL"),)): 0,
        ("athena_worker_crashes_total", (("reason", "exit"),)): 0,
    }
    write_slots(home, SlotsRecord(pid=42, crashes_total={"SIGKILL": 7, "SIGSEGV": 1}))
    crashes = scrape(home)["athena_worker_crashes"]["samples"]
    assert crashes == {
        ("athena_worker_crashes_total", (("reason", "SIGKILL"),)): 7,
        ("athena_worker_crashes_total", (("reason", "SIGSEGV"),)): 1,
        ("athena_worker_crashes_total", (("reason", "exit"),)): 0,
    }
