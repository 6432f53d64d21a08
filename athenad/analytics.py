"""Analytics over athena.db: stats, the failed-job viewer, trends and metrics.

Every figure is computed with SQL on the live database (named queries in the
``analytics`` block of sql/queries.sql) and returned as plain dicts and lists, so the
CLI, the API and tests share one source. A window is the ``since`` timestamp from
:func:`athenad.timefmt.parse_since` (``None`` = all time) and filters on
``created_at``; throughput alone counts jobs by when they completed. Percentiles are
nearest-rank (the value at rank ``ceil(p * n)`` of the ordered durations).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import apsw

from athenad.jobs import STATUSES, JobQueue
from athenad.queries import QUERIES as Q
from athenad.timefmt import format_ts, parse_ts, utc_now_text

BUCKETS = {"hour": 13, "day": 10}
OUTCOMES = ("completed", "failed", "cancelled")
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))

Source = apsw.Connection | JobQueue


def _conn(source: Source) -> apsw.Connection:
    return source.conn if isinstance(source, JobQueue) else source


@contextlib.contextmanager
def snapshot(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """Run several reads in one read transaction so their figures agree."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _rows(conn: apsw.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(Q[name], params)
    names: list[str] | None = None
    rows = []
    for row in cursor:
        names = names or [d[0] for d in cursor.getdescription()]
        rows.append(dict(zip(names, row, strict=True)))
    return rows


def _scalar(conn: apsw.Connection, name: str, params: dict[str, Any] | None = None) -> Any:
    for row in conn.execute(Q[name], params or {}):
        return row[0]
    return None


def _seconds_between(earlier: str, later: str) -> float:
    return (parse_ts(later) - parse_ts(earlier)).total_seconds()


def first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


# ---- stats ----------------------------------------------------------------------------


def by_agent_type(conn: apsw.Connection, since: str | None) -> list[dict[str, Any]]:
    """Per agent type: jobs by outcome and duration figures of completed jobs, slowest first."""
    rows = _rows(conn, "analytics_by_agent_type", {"since": since or ""})
    for row in rows:
        if row["avg_ms"] is not None:
            row["avg_ms"] = round(row["avg_ms"], 1)
    return rows


def by_status(conn: apsw.Connection, since: str | None) -> dict[str, int]:
    """Jobs created in the window by status; every status is present."""
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(conn.execute(Q["analytics_status_counts"], {"since": since or ""}).fetchall())
    return counts


def queue_summary(conn: apsw.Connection, now: str | None = None) -> dict[str, Any]:
    """The queue as it stands (not windowed), with the age of the oldest pending job."""
    now = now or utc_now_text()
    queue: dict[str, Any] = {"blocked": 0, "pending": 0, "running": 0}
    queue.update(conn.execute(Q["queue_counts"]).fetchall())
    oldest = _scalar(conn, "oldest_pending")
    queue["oldest_pending_age_s"] = (
        round(max(_seconds_between(oldest, now), 0.0), 1) if oldest else None
    )
    return queue


def throughput(conn: apsw.Connection, since: str | None, now: str | None = None) -> dict:
    """Jobs completed in the window, and per minute; 'all' spans from the first job."""
    now = now or utc_now_text()
    completed = int(_scalar(conn, "analytics_completed_since", {"since": since or ""}) or 0)
    start = since or _scalar(conn, "analytics_first_created")
    window_s = round(max(_seconds_between(start, now), 0.0), 1) if start else 0.0
    per_minute = round(completed * 60 / window_s, 3) if window_s else 0.0
    return {"completed": completed, "window_s": window_s, "per_minute": per_minute}


def stats(source: Source, since: str | None = None, now: str | None = None) -> dict[str, Any]:
    """Everything ``athenactl stats`` shows, read in one snapshot of the database."""
    now = now or utc_now_text()
    with snapshot(_conn(source)) as conn:
        return {
            "by_agent_type": by_agent_type(conn, since),
            "by_status": by_status(conn, since),
            "queue": queue_summary(conn, now),
            "throughput": throughput(conn, since, now),
            "since": since,
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
    rows = _rows(_conn(source), "analytics_failed_jobs", params)
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
    source: Source, since: str | None, bucket: str = "hour", now: str | None = None
) -> list[dict[str, Any]]:
    """``[{"bucket", "jobs", "failed", "p95_ms"}]`` per hour or day of creation, oldest first.

    Buckets with no jobs between the window's start (or the first job) and now are
    filled with zeros so charts keep a true time axis.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    now = now or utc_now_text()
    width = BUCKETS[bucket]
    found = {}
    for row in _rows(_conn(source), "analytics_trends", {"since": since or "", "width": width}):
        found[row["bucket"]] = row
    if not found:
        return []
    step = dt.timedelta(days=1) if bucket == "day" else dt.timedelta(hours=1)
    moment = _key_start(min(found), bucket)
    if since:
        # The window's empty start counts too, but never more than MAX_EMPTY_LEAD buckets:
        # `--since 99999d` must not draw a century of zeros.
        moment = max(_bucket_start(since, bucket), moment - step * MAX_EMPTY_LEAD)
    last = max(_bucket_start(now, bucket), _key_start(max(found), bucket))
    buckets = []
    while moment <= last:
        key = format_ts(moment)[:width]
        row = found.get(key, {})
        buckets.append(
            {
                "bucket": _bucket_label(moment, bucket),
                "jobs": int(row.get("jobs") or 0),
                "failed": int(row.get("failed") or 0),
                "p95_ms": row.get("p95_ms"),
            }
        )
        moment += step
    return buckets


# ---- metrics --------------------------------------------------------------------------


def metrics(source: Source, window_since: str | None, now: str | None = None) -> dict:
    """The figures ``athenactl metrics`` exposes.

    ``jobs`` (every status, all time) and ``totals`` (finished jobs per agent type and
    outcome, with duration sums) are cumulative; duration quantiles cover the window.
    """
    now = now or utc_now_text()
    with snapshot(_conn(source)) as conn:
        queue = queue_summary(conn, now)
        return {
            "jobs": by_status(conn, None),
            "oldest_pending_age_s": queue["oldest_pending_age_s"],
            "totals": _rows(conn, "analytics_outcome_totals", {}),
            "quantiles": {row["agent_type"]: row for row in by_agent_type(conn, window_since)},
        }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items()) + "}"


def _number(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def prometheus_text(figures: dict[str, Any], extra_gauges: dict[str, tuple] | None = None) -> str:
    """Render :func:`metrics` in the Prometheus text exposition format (version 0.0.4).

    ``extra_gauges`` maps a metric name to ``(help, value)``, e.g. daemon liveness.
    """
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    for name, (help_text, value) in (extra_gauges or {}).items():
        family(name, "gauge", help_text)
        out.append(f"{name} {_number(value)}")
    family("athena_jobs", "gauge", "Jobs in athena.db by status.")
    for status, count in figures["jobs"].items():
        out.append(f"athena_jobs{_labels(status=status)} {count}")
    family("athena_oldest_pending_age_seconds", "gauge", "Age of the oldest pending job.")
    out.append(f"athena_oldest_pending_age_seconds {_number(figures['oldest_pending_age_s'])}")
    family("athena_jobs_total", "counter", "Finished jobs by agent type and outcome.")
    sums: dict[str, tuple[int, float]] = {}
    for row in figures["totals"]:
        labels = _labels(agent_type=row["agent_type"], outcome=row["status"])
        out.append(f"athena_jobs_total{labels} {row['jobs']}")
        if row["status"] == "completed":
            sums[row["agent_type"]] = (row["jobs"], row["duration_sum"])
    family(
        "athena_job_duration_ms",
        "summary",
        "Duration of completed jobs in milliseconds; quantiles over the recent window.",
    )
    for agent_type in sorted(set(sums) | set(figures["quantiles"])):
        window = figures["quantiles"].get(agent_type, {})
        for quantile, key in QUANTILES:
            labels = _labels(agent_type=agent_type, quantile=quantile)
            out.append(f"athena_job_duration_ms{labels} {_number(window.get(key))}")
        count, total = sums.get(agent_type, (0, 0.0))
        out.append(f"athena_job_duration_ms_sum{_labels(agent_type=agent_type)} {_number(total)}")
        out.append(f"athena_job_duration_ms_count{_labels(agent_type=agent_type)} {count}")
    return "\n".join(out) + "\n"
