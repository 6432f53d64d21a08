"""stats, failed, trends and metrics give the same figures from either backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from athenad.analytics import metrics
from athenad.analytics import queries as analytics
from athenad.analytics.readers import Reader, SqliteReader, open_for_reading


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(a queue, a function opening a read-only reader of the same database)."""
    if request.param == "sqlite":
        from athenad.store.sqlite.queue import JobQueue

        path = tmp_path / "athena.db"
        queue: Any = JobQueue(path, run_dir=tmp_path / "run")

        @contextlib.contextmanager
        def reading() -> Iterator[Reader]:
            with open_for_reading(path) as conn:
                yield SqliteReader(conn)
    else:
        from athenad.analytics.postgres_reader import open_server_reader
        from athenad.store.postgres.queue import PostgresJobQueue

        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        queue = PostgresJobQueue(url, schema=schema)

        def reading() -> contextlib.AbstractContextManager[Reader]:
            return open_server_reader(url, schema)

    yield queue, reading
    queue.close()


def run(queue: Any, outcome: str) -> str:
    job = queue.claim("host:1:0")
    assert job is not None
    if outcome == "complete":
        queue.complete(job.id, job.fence, {"ok": True})
    else:
        queue.fail(job.id, job.fence, f"RuntimeError: {outcome}\nmore detail", retryable=False)
    return job.id


def fill(queue: Any) -> dict[str, str]:
    """Three explores completed, a plan failed (its report cancelled), one pending."""
    for _ in range(3):
        queue.submit("explore")
        run(queue, "complete")
    plan = queue.submit("plan", priority=5)
    report = queue.submit("report", after=[plan])
    run(queue, "boom")
    waiting = queue.submit("explore")
    return {"plan": plan, "report": report, "waiting": waiting}


def test_stats_agree(backend):
    queue, reading = backend
    fill(queue)
    with reading() as reader:
        figures = analytics.stats(reader, since=None)
    by_type = {row["agent_type"]: row for row in figures["by_agent_type"]}
    assert {name: row["jobs"] for name, row in by_type.items()} == {
        "explore": 4,
        "plan": 1,
        "report": 1,
    }
    assert (by_type["explore"]["completed"], by_type["plan"]["failed"]) == (3, 1)
    assert by_type["report"]["cancelled"] == 1
    assert isinstance(by_type["explore"]["p95_ms"], int)
    assert figures["by_status"] == {
        "scheduled": 0,
        "awaiting_approval": 0,
        "waiting": 0,
        "blocked": 0,
        "pending": 1,
        "running": 0,
        "completed": 3,
        "failed": 1,
        "cancelled": 1,
    }
    assert figures["queue"]["pending"] == 1
    assert figures["queue"]["oldest_pending_age_s"] >= 0
    assert figures["throughput"]["completed"] == 3


def test_failed_jobs_agree(backend):
    queue, reading = backend
    ids = fill(queue)
    with reading() as reader:
        failed = analytics.failed_jobs(reader, None, include_cancelled=True)
    assert [row["id"] for row in failed] == [ids["report"], ids["plan"]]
    assert failed[1]["error_line"] == "RuntimeError: boom"
    assert failed[0]["cancelled_by"] == ids["plan"] and failed[0]["cause_status"] == "failed"
    assert isinstance(failed[0]["created_at"], str) and len(failed[0]["created_at"]) == 23


def test_trends_agree(backend):
    queue, reading = backend
    fill(queue)
    with reading() as reader:
        buckets = analytics.trends(reader, None, "hour")
    assert sum(bucket["jobs"] for bucket in buckets) == 6
    assert sum(bucket["failed"] for bucket in buckets) == 1


def test_metrics_agree(backend):
    queue, reading = backend
    ids = fill(queue)
    queue.retry(ids["plan"])  # its failure stays counted
    with reading() as reader:
        figures = metrics.metrics(reader, None)
    counted = {(row["agent_type"], row["event"]): row["count"] for row in figures["counters"]}
    assert counted[("explore", "submitted")] == 4
    assert counted[("explore", "completed")] == 3
    assert counted[("plan", "failed")] == 1
    text = metrics.prometheus_text(figures)
    assert 'athena_jobs_failed_total{agent_type="plan"} 1.0' in text
