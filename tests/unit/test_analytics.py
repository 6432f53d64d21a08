"""Analytics figures agree with plain SQL on the same database."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from athenad.analytics import queries as analytics
from athenad.store.sqlite.queue import STATUSES, JobQueue
from athenad.util.timefmt import format_ts, parse_since
from tests.conftest import NOTHING_WAITING


def ago(**delta: float) -> str:
    # Relative to the moment of the call: the suite may run long after this module loads.
    return format_ts(dt.datetime.now(dt.UTC) - dt.timedelta(**delta))


def nearest_rank(values: list[int], p: float) -> int | None:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1] if ordered else None


def put(queue: JobQueue, agent_type: str, status: str, created: str, **columns) -> str:
    """Submit a job, then set its state with plain SQL so the test decides every figure."""
    job_id = queue.submit(f"{agent_type}-task", {"n": 1}, agent_type=agent_type)
    columns = {"status": status, "created_at": created, **columns}
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    queue.conn.execute(f"UPDATE jobs SET {assignments} WHERE id = :id", {**columns, "id": job_id})
    return job_id


@pytest.fixture
def filled(queue: JobQueue) -> JobQueue:
    """Three agent types over the last three days, every status, known durations."""
    for i, duration in enumerate([120, 80, 400, 95, 3000, 60, 75, 210]):
        put(
            queue,
            "explore",
            "completed",
            ago(hours=i + 1),
            completed_at=ago(hours=i),
            duration_ms=duration,
        )
    for i, duration in enumerate([1500, 2500]):
        put(
            queue,
            "plan",
            "completed",
            ago(hours=30 + i),
            completed_at=ago(minutes=30),
            duration_ms=duration,
        )
    put(queue, "plan", "failed", ago(hours=2), error="ValueError: bad plan\nmore", attempts=3)
    put(queue, "review", "cancelled", ago(hours=3), error="cancelled")
    put(queue, "review", "pending", ago(minutes=50))
    put(queue, "review", "blocked", ago(minutes=40))
    put(queue, "explore", "running", ago(minutes=5), started_at=ago(minutes=4))
    put(queue, "explore", "completed", ago(days=3), completed_at=ago(days=3), duration_ms=9)
    return queue


def sql_agent_figures(queue: JobQueue, since: str) -> dict[str, dict]:
    """The figures as a person would write them in the sqlite3 shell."""
    rows = queue.conn.execute(
        """SELECT agent_type, count(*), sum(status = 'completed'), sum(status = 'failed'),
                  sum(status = 'cancelled'),
                  avg(CASE WHEN status = 'completed' THEN duration_ms END),
                  min(CASE WHEN status = 'completed' THEN duration_ms END),
                  max(CASE WHEN status = 'completed' THEN duration_ms END)
           FROM jobs WHERE created_at > ? GROUP BY agent_type""",
        (since,),
    ).fetchall()
    figures = {}
    for agent, jobs, done, failed, cancelled, avg, low, high in rows:
        durations = [
            d
            for (d,) in queue.conn.execute(
                "SELECT duration_ms FROM jobs WHERE agent_type = ? AND status = 'completed' "
                "AND created_at > ?",
                (agent, since),
            )
        ]
        figures[agent] = {
            "agent_type": agent,
            "jobs": jobs,
            "completed": done,
            "failed": failed,
            "cancelled": cancelled,
            "avg_ms": None if avg is None else round(avg, 1),
            "min_ms": low,
            "max_ms": high,
            "p50_ms": nearest_rank(durations, 0.5),
            "p95_ms": nearest_rank(durations, 0.95),
        }
    return figures


@pytest.mark.parametrize("window", ["1h", "1d", "7d", "all"])
def test_stats_agree_with_direct_sql(filled: JobQueue, window: str) -> None:
    since = parse_since(window)
    figures = analytics.stats(filled, since=since)
    assert figures["since"] == since
    by_agent = {row["agent_type"]: row for row in figures["by_agent_type"]}
    assert by_agent == sql_agent_figures(filled, since or "")
    expected_status = dict.fromkeys(STATUSES, 0)
    expected_status.update(
        filled.conn.execute(
            "SELECT status, count(*) FROM jobs WHERE created_at > ? GROUP BY status", (since or "",)
        ).fetchall()
    )
    assert figures["by_status"] == expected_status


def test_stats_known_values(filled: JobQueue) -> None:
    figures = analytics.stats(filled, since=parse_since("1d"))
    explore = next(r for r in figures["by_agent_type"] if r["agent_type"] == "explore")
    # 60 75 80 95 120 210 400 3000: rank ceil(.5*8)=4 -> 95, rank ceil(.95*8)=8 -> 3000.
    assert (explore["jobs"], explore["completed"], explore["p50_ms"], explore["p95_ms"]) == (
        9,
        8,
        95,
        3000,
    )
    assert (explore["min_ms"], explore["max_ms"], explore["avg_ms"]) == (60, 3000, 505.0)
    # Slowest first: explore averages 505 ms; plan and review have no completed job in 1d.
    assert [r["agent_type"] for r in figures["by_agent_type"]] == ["explore", "plan", "review"]
    assert figures["by_agent_type"][2]["avg_ms"] is None
    assert figures["queue"]["blocked"] == figures["queue"]["pending"] == 1
    assert figures["queue"]["running"] == 1
    assert 50 * 60 - 5 <= figures["queue"]["oldest_pending_age_s"] <= 50 * 60 + 60


def test_throughput_counts_completions_in_the_window(filled: JobQueue) -> None:
    since = parse_since("1d")
    rate = analytics.stats(filled, since=since)["throughput"]
    # The plan jobs were created 30 h ago but completed 30 min ago: they count.
    (expected,) = filled.conn.execute(
        "SELECT count(*) FROM jobs WHERE status = 'completed' AND completed_at > ?", (since,)
    ).fetchone()
    assert rate["completed"] == expected == 10
    assert rate["window_s"] == pytest.approx(86400, abs=2)
    assert rate["per_minute"] == pytest.approx(10 / 1440, abs=1e-3)


def test_empty_database(queue: JobQueue) -> None:
    for since in (None, parse_since("1d")):
        figures = analytics.stats(queue, since=since)
        assert figures["by_agent_type"] == []
        assert figures["by_status"] == dict.fromkeys(STATUSES, 0)
        assert figures["queue"] == {**NOTHING_WAITING, "oldest_pending_age_s": None}
        assert figures["throughput"]["completed"] == 0
        assert figures["throughput"]["per_minute"] == 0
    assert analytics.trends(queue, parse_since("7d"), "day") == []
    assert analytics.failed_jobs(queue) == []


def test_window_with_no_jobs(queue: JobQueue) -> None:
    put(queue, "explore", "completed", ago(days=10), completed_at=ago(days=10), duration_ms=5)
    put(queue, "explore", "pending", ago(days=9))
    figures = analytics.stats(queue, since=parse_since("1h"))
    assert figures["by_agent_type"] == []
    assert figures["by_status"] == dict.fromkeys(STATUSES, 0)
    assert figures["throughput"]["completed"] == 0
    # The queue is how things stand now, whatever the window.
    assert figures["queue"]["pending"] == 1
    assert figures["queue"]["oldest_pending_age_s"] >= 9 * 86400
    assert analytics.trends(queue, parse_since("1h"), "hour") == []


def test_failed_viewer_shows_errors_and_cancel_causes(queue: JobQueue) -> None:
    parent = queue.submit("fetch", agent_type="explore")
    child = queue.submit("summarise", after=[parent])
    claimed = queue.claim("w1")
    assert claimed.id == parent
    queue.fail(parent, claimed.fence, "RuntimeError: network down\nline two", "Traceback ...")
    only_failed = analytics.failed_jobs(queue)
    assert [row["id"] for row in only_failed] == [parent]
    assert only_failed[0]["error_line"] == "RuntimeError: network down"
    assert only_failed[0]["attempts"] == 1
    both = analytics.failed_jobs(queue, include_cancelled=True)
    cancelled = next(row for row in both if row["id"] == child)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_by"] == parent
    assert cancelled["cause_error"].startswith("RuntimeError: network down")
    assert analytics.failed_jobs(queue, type="summarise") == []
    assert analytics.failed_jobs(queue, agent_type="nope") == []


def test_failed_viewer_limit_and_order(queue: JobQueue) -> None:
    ids = [put(queue, "plan", "failed", ago(hours=h), error=f"e{h}") for h in (5, 1, 3)]
    rows = analytics.failed_jobs(queue, limit=2)
    assert [row["id"] for row in rows] == [ids[1], ids[2]]
    assert analytics.failed_jobs(queue, parse_since("2h"))[0]["error"] == "e1"


def test_trends_buckets_agree_with_sql(filled: JobQueue) -> None:
    since = parse_since("2d")
    buckets = analytics.trends(filled, since, "hour")
    # Every hour from the window's start to now, gaps filled with zeros.
    assert 48 <= len(buckets) <= 49
    keys = {"bucket", "jobs", "failed", "p95_ms", "tokens_in", "tokens_out", "cost_usd"}
    assert all(set(b) == keys for b in buckets)
    assert (
        sum(b["jobs"] for b in buckets)
        == filled.conn.execute(
            "SELECT count(*) FROM jobs WHERE created_at > ?", (since,)
        ).fetchone()[0]
    )
    for b in buckets:
        key = b["bucket"][:13]
        durations = [
            d
            for (d,) in filled.conn.execute(
                "SELECT duration_ms FROM jobs WHERE status = 'completed' "
                "AND substr(created_at, 1, 13) = ? AND created_at > ?",
                (key, since),
            )
        ]
        assert b["p95_ms"] == nearest_rank(durations, 0.95)
        assert (
            b["failed"]
            == filled.conn.execute(
                "SELECT count(*) FROM jobs WHERE status = 'failed' "
                "AND substr(created_at, 1, 13) = ? AND created_at > ?",
                (key, since),
            ).fetchone()[0]
        )
    days = analytics.trends(filled, parse_since("7d"), "day")
    assert [b["bucket"] for b in days][-1] == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert sum(b["jobs"] for b in days) == 16


def test_trends_rejects_unknown_bucket(queue: JobQueue) -> None:
    with pytest.raises(ValueError):
        analytics.trends(queue, None, "week")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=60))
def test_sql_percentiles_are_nearest_rank(tmp_path_factory, durations: list[int]) -> None:
    path = tmp_path_factory.mktemp("pct") / "athena.db"
    with JobQueue(path) as queue:
        for duration in durations:
            put(
                queue,
                "x",
                "completed",
                ago(minutes=1),
                completed_at=ago(seconds=1),
                duration_ms=duration,
            )
        (row,) = analytics.stats(queue)["by_agent_type"]
    assert row["p50_ms"] == nearest_rank(durations, 0.5)
    assert row["p95_ms"] == nearest_rank(durations, 0.95)
    assert (row["min_ms"], row["max_ms"]) == (min(durations), max(durations))
