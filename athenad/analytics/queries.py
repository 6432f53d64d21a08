"""Analytics over athena.db: stats, the failed-job viewer, trends and metrics.

Every figure is computed with SQL on the live database (named queries in the
``analytics`` block of sql/queries.sql) and returned as plain dicts and lists, so the
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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apsw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from athenad.errors import AthenaError, DatabaseUnusable
from athenad.store.sqlite.connection import connect
from athenad.store.sqlite.migrations import current_version, latest_version
from athenad.store.sqlite.queries import QUERIES as Q
from athenad.store.sqlite.queue import STATUSES, JobQueue
from athenad.util.timefmt import format_ts, parse_ts, utc_now_text

BUCKETS = {"hour": 13, "day": 10}
OUTCOMES = ("completed", "failed", "cancelled")
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))

Source = apsw.Connection | JobQueue


def _conn(source: Source) -> apsw.Connection:
    return source.conn if isinstance(source, JobQueue) else source


@contextlib.contextmanager
def open_for_reading(path: Path) -> Iterator[apsw.Connection]:
    """athena.db for looking only: not created, not migrated, not written, always closed.

    An older schema is read as it stands; a query it cannot answer (a table or column
    a later migration adds) becomes one clear error instead of an SQL message.
    """
    if not path.exists():
        raise AthenaError(
            f"there is no athena.db in {path.parent} (pass --home or set ATHENA_HOME)."
        )
    conn = connect(path)
    try:
        conn.pragma("query_only", True)
        version = _readable_version(conn, path)
        try:
            yield conn
        except apsw.SQLError:
            if version < latest_version():
                raise DatabaseUnusable(_too_old(path, version)) from None
            raise
    finally:
        conn.close()


def _readable_version(conn: apsw.Connection, path: Path) -> int:
    """The schema version, refusing one newer than this Athena knows."""
    version, latest = current_version(conn), latest_version()
    if version > latest:
        raise DatabaseUnusable(
            f"{path} has schema version {version}, newer than this Athena knows ({latest}); "
            "upgrade Athena."
        )
    return version


def _too_old(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, older than this Athena reads "
        f"({latest_version()}); start (or restart) athenad to upgrade it."
    )


@contextlib.contextmanager
def snapshot(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """Run several reads in one read transaction so their figures agree."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # a failed statement may have ended it already
            conn.execute("ROLLBACK")
        raise
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
    for status, count in conn.execute(Q["analytics_status_counts"], {"since": since or ""}):
        counts[str(status)] = int(count)
    return counts


def queue_summary(conn: apsw.Connection, now: str | None = None) -> dict[str, Any]:
    """The queue as it stands (not windowed), with the age of the oldest pending job."""
    now = now or utc_now_text()
    queue: dict[str, Any] = {"blocked": 0, "pending": 0, "running": 0}
    for status, count in conn.execute(Q["queue_counts"]):
        queue[str(status)] = count
    oldest = _scalar(conn, "oldest_pending")
    queue["oldest_pending_age_s"] = (
        round(max(_seconds_between(oldest, now), 0.0), 1) if oldest else None
    )
    return queue


def running_jobs(conn: apsw.Connection) -> list[dict[str, Any]]:
    """Every running job with the worker that holds it and when its current run started."""
    return _rows(conn, "running_jobs", {})


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

EVENT_HELP = {
    "submitted": "Jobs submitted, by agent type.",
    "completed": "Jobs that completed, by agent type.",
    "failed": "Jobs that failed after their last attempt, by agent type (again after a retry).",
    "cancelled": "Jobs cancelled, by agent type (again after a retry).",
}


def metrics(source: Source, window_since: str | None, now: str | None = None) -> dict:
    """The figures ``athenactl metrics`` exposes.

    ``counters`` (per agent type and event: count and duration sum) are kept by
    triggers in ``job_counters`` and never go down, even when rows are deleted.
    ``jobs`` (rows by status) and the oldest pending age are how things stand now;
    duration quantiles cover the window.
    """
    now = now or utc_now_text()
    with snapshot(_conn(source)) as conn:
        queue = queue_summary(conn, now)
        return {
            "jobs": by_status(conn, None),
            "oldest_pending_age_s": queue["oldest_pending_age_s"],
            "counters": _rows(conn, "analytics_job_counters", {}),
            "quantiles": {row["agent_type"]: row for row in by_agent_type(conn, window_since)},
        }


def _number(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def _gauges(figures: dict[str, Any], extra_gauges: dict[str, tuple]) -> Iterator[Metric]:
    for name, (help_text, value) in extra_gauges.items():
        yield GaugeMetricFamily(name, help_text, value=_number(value))
    jobs = GaugeMetricFamily("athena_jobs", "Jobs in athena.db by status.", labels=["status"])
    for status, count in figures["jobs"].items():
        jobs.add_metric([status], count)
    yield jobs
    yield GaugeMetricFamily(
        "athena_oldest_pending_age_seconds",
        "Age of the oldest pending job.",
        value=_number(figures["oldest_pending_age_s"]),
    )


def _counted(figures: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{agent_type: {event: row}}`` from the counter rows."""
    counted: dict[str, dict[str, dict[str, Any]]] = {}
    for row in figures["counters"]:
        counted.setdefault(row["agent_type"], {})[row["event"]] = row
    return counted


def _counters(counted: dict[str, dict[str, dict[str, Any]]]) -> Iterator[Metric]:
    """One counter per event; every agent type seen gets every event, 0 included, so
    ``rate()`` sees a job type's first failure as an increase."""
    for event, help_text in EVENT_HELP.items():
        family = CounterMetricFamily(f"athena_jobs_{event}", help_text, labels=["agent_type"])
        for agent_type, events in sorted(counted.items()):
            family.add_metric([agent_type], events.get(event, {}).get("count", 0))
        yield family


def _duration_summary(figures: dict[str, Any], counted: dict[str, dict]) -> Metric:
    """Completed jobs' durations: quantiles over the window, count and sum for all time."""
    summary = Metric(
        "athena_job_duration_ms",
        "Duration of completed jobs in milliseconds; quantiles over the recent window.",
        "summary",
    )
    quantiles = figures["quantiles"]
    for agent_type in sorted(set(counted) | set(quantiles)):
        window = quantiles.get(agent_type, {})
        for quantile, key in QUANTILES:
            labels = {"agent_type": agent_type, "quantile": quantile}
            summary.add_sample("athena_job_duration_ms", labels, _number(window.get(key)))
        completed = counted.get(agent_type, {}).get("completed", {})
        labels = {"agent_type": agent_type}
        summary.add_sample(
            "athena_job_duration_ms_sum", labels, completed.get("duration_ms_sum", 0)
        )
        summary.add_sample("athena_job_duration_ms_count", labels, completed.get("count", 0))
    return summary


class _Families:
    """A collector of metric families computed beforehand, for one render."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def prometheus_text(figures: dict[str, Any], extra_gauges: dict[str, tuple] | None = None) -> str:
    """Render :func:`metrics` in the Prometheus text exposition format.

    ``extra_gauges`` maps a metric name to ``(help, value)``, e.g. daemon liveness.
    """
    counted = _counted(figures)
    families = [
        *_gauges(figures, extra_gauges or {}),
        *_counters(counted),
        _duration_summary(figures, counted),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode("utf-8")
