"""Analytics over athena.db: stats, the failed-job viewer, trends and metrics.

Every figure is computed with SQL on the live database (named queries in the
``analytics`` block of sql/queries.sql, model usage in sql/analytics_usage.sql; see
:mod:`athenad.analytics.usage`) and returned as plain dicts and lists, so the
CLI, the API and tests share one source. A window is the ``since`` timestamp from
:func:`athenad.util.timefmt.parse_since` (``None`` = all time) and filters on
``created_at``; throughput alone counts jobs by when they completed. Percentiles are
nearest-rank (the value at rank ``ceil(p * n)`` of the ordered durations).

The commands read through :func:`open_for_reading`, which never creates, migrates or
writes the database, so looking at a home cannot change it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import apsw

from athenad.analytics import usage
from athenad.analytics.readers import Reader, SqliteReader, open_for_reading
from athenad.store.contract import STATUSES, UNFINISHED
from athenad.store.sqlite.queue import JobQueue
from athenad.util.timefmt import format_ts, parse_ts, utc_now_text

__all__ = ["open_for_reading"]

BUCKETS = {"hour": 13, "day": 10}
OUTCOMES = ("completed", "failed", "cancelled")

Source = Reader | apsw.Connection | JobQueue


def as_reader(source: Source) -> Reader:
    """A reader from what the caller has: a reader, an apsw connection or a queue."""
    if isinstance(source, JobQueue):
        return SqliteReader(source.conn)
    if isinstance(source, apsw.Connection):
        return SqliteReader(source)
    return source


@contextlib.contextmanager
def snapshot(source: Source) -> Iterator[Reader]:
    """Run several reads in one read transaction so their figures agree."""
    with as_reader(source).snapshot() as reader:
        yield reader


def _seconds_between(earlier: str, later: str) -> float:
    return (parse_ts(later) - parse_ts(earlier)).total_seconds()


def first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


# ---- stats ----------------------------------------------------------------------------


def by_agent_type(source: Source, since: str | None) -> list[dict[str, Any]]:
    """Per agent type: jobs by outcome and duration figures of completed jobs, slowest first."""
    rows = as_reader(source).rows("analytics_by_agent_type", {"since": since or ""})
    for row in rows:
        if row["avg_ms"] is not None:
            row["avg_ms"] = round(row["avg_ms"], 1)
    return rows


def by_status(source: Source, since: str | None) -> dict[str, int]:
    """Jobs created in the window by status; every status is present."""
    counts = dict.fromkeys(STATUSES, 0)
    for row in as_reader(source).rows("analytics_status_counts", {"since": since or ""}):
        counts[str(row["status"])] = int(row["jobs"])
    return counts


def queue_summary(source: Source, now: str | None = None) -> dict[str, Any]:
    """The queue as it stands (not windowed), with the age of the oldest pending job."""
    now = now or utc_now_text()
    reader = as_reader(source)
    queue: dict[str, Any] = dict.fromkeys(UNFINISHED, 0)
    for row in reader.rows("queue_counts"):
        status, count = row.values()
        queue[str(status)] = int(count)
    oldest = reader.scalar("oldest_pending")
    queue["oldest_pending_age_s"] = (
        round(max(_seconds_between(oldest, now), 0.0), 1) if oldest else None
    )
    return queue


def running_jobs(source: Source) -> list[dict[str, Any]]:
    """Every running job with the worker that holds it and when its current run started."""
    return as_reader(source).rows("running_jobs")


def throughput(source: Source, since: str | None, now: str | None = None) -> dict[str, Any]:
    """Jobs completed in the window, and per minute; 'all' spans from the first job."""
    now = now or utc_now_text()
    reader = as_reader(source)
    completed = int(reader.scalar("analytics_completed_since", {"since": since or ""}) or 0)
    start = since or reader.scalar("analytics_first_created")
    window_s = round(max(_seconds_between(start, now), 0.0), 1) if start else 0.0
    per_minute = round(completed * 60 / window_s, 3) if window_s else 0.0
    return {"completed": completed, "window_s": window_s, "per_minute": per_minute}


def stats(
    source: Source,
    since: str | None = None,
    now: str | None = None,
    *,
    by: str = "agent",
    daily_usd: float | None = None,
) -> dict[str, Any]:
    """Everything ``athenactl stats`` shows, read in one snapshot of the database.

    ``usage`` is tokens and cost per agent type or model (``by``); ``budgets`` is the
    home's ``daily_usd`` with today's spending and the jobs a budget stopped.
    """
    now = now or utc_now_text()
    usage.grouping(by)  # a bad value fails before anything is read
    with snapshot(source) as reader:
        return {
            "by_agent_type": by_agent_type(reader, since),
            "by_status": by_status(reader, since),
            "queue": queue_summary(reader, now),
            "throughput": throughput(reader, since, now),
            "since": since,
            "usage": usage.usage_totals(reader, since, by),
            "budgets": usage.budgets(reader, since, daily_usd, now),
        }


# ---- failed jobs ----------------------------------------------------------------------


def failed_jobs(
    source: Source,
    since: str | None = None,
    *,
    type: str | None = None,
    agent_type: str | None = None,
    limit: int = 20,
    include_cancelled: bool = False,
) -> list[dict[str, Any]]:
    """Failed jobs (and cancelled ones if asked), newest first, with their first error line.

    A cancelled job carries ``cancelled_by`` (the ancestor whose failure cancelled it)
    and ``cause_error``, that ancestor's error.
    """
    params = {
        "since": since or "",
        "also": "cancelled" if include_cancelled else "failed",
        "type": type,
        "agent_type": agent_type,
        "limit": limit,
    }
    rows = as_reader(source).rows("analytics_failed_jobs", params)
    for row in rows:
        row["error_line"] = first_line(row["error"])
    return rows


# ---- trends ---------------------------------------------------------------------------


def _bucket_start(text: str, bucket: str) -> dt.datetime:
    moment = parse_ts(text)
    if bucket == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _key_start(key: str, bucket: str) -> dt.datetime:
    """The start of the bucket a SQL key names ('2026-11-26' or '2026-11-26 10')."""
    return parse_ts(key + (" 00:00:00" if bucket == "day" else ":00:00"))


def _bucket_label(moment: dt.datetime, bucket: str) -> str:
    return moment.strftime("%Y-%m-%d" if bucket == "day" else "%Y-%m-%d %H:00")


MAX_EMPTY_LEAD = 48  # empty buckets shown before a window's first job


def trends(
    source: Source,
    since: str | None,
    bucket: str = "hour",
    now: str | None = None,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """``[{"bucket", "jobs", "failed", "p95_ms", "tokens_in", "tokens_out", "cost_usd"}]``
    per hour or day, oldest first.

    Jobs count by creation time, tokens and cost by when they were spent. With ``by``
    ('agent' or 'model') each bucket also lists its ``usage`` rows per name. Buckets
    with nothing between the window's start (or the first job) and now are filled with
    zeros so charts keep a true time axis.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    now = now or utc_now_text()
    usage.grouping(by or "agent")  # a bad value fails before anything is read
    width = BUCKETS[bucket]
    params = {"since": since or "", "width": width}
    with snapshot(source) as reader:
        found = {row["bucket"]: row for row in reader.rows("analytics_trends", params)}
        spent = usage.usage_by_bucket(reader, since, width, by or "agent")
    if not found and not spent:
        return []
    keys = found.keys() | spent.keys()
    step = dt.timedelta(days=1) if bucket == "day" else dt.timedelta(hours=1)
    moment = _key_start(min(keys), bucket)
    if since:
        # The window's empty start counts too, but never more than MAX_EMPTY_LEAD buckets:
        # `--since 99999d` must not draw a century of zeros.
        moment = max(_bucket_start(since, bucket), moment - step * MAX_EMPTY_LEAD)
    last = max(_bucket_start(now, bucket), _key_start(max(keys), bucket))
    buckets = []
    while moment <= last:
        key = format_ts(moment)[:width]
        row = found.get(key, {})
        rows = spent.get(key, [])
        figures = {
            "bucket": _bucket_label(moment, bucket),
            "jobs": int(row.get("jobs") or 0),
            "failed": int(row.get("failed") or 0),
            "p95_ms": row.get("p95_ms"),
            **usage.bucket_totals(rows),
        }
        if by is not None:
            figures["usage"] = rows
        buckets.append(figures)
        moment += step
    return buckets
