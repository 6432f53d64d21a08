"""What the pages and the API show, read from the home's database.

Lists, counts and figures come from a read-only reader (:func:`reading`); one job's
details, steps, logs and checkpoints from the store, as the CLI reads them. Every
function returns plain dicts with the keys of the matching ``--json`` output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

from athenad.analytics import queries as analytics
from athenad.analytics.readers import Reader, open_reader
from athenad.errors import InvalidInput
from athenad.store.contract import STATUSES, UNFINISHED, JobStore
from athenad.store.jobspec import decode_json
from athenad.util.timefmt import parse_since, parse_ts, utc_now_text
from athenad.web import sql
from athenad.web.settings import WebSettings

PAGE_SIZE = 50
MAX_LIMIT = 500
GRAPH_MAX_NODES = 300  # a larger workflow is drawn in part, and says so


@contextlib.contextmanager
def reading(web: WebSettings) -> Iterator[Reader]:
    """A read-only connection to the home's database, closed afterwards."""
    with open_reader(web.home, web.daemon) as reader:
        yield reader


_shared: dict[str, JobStore] = {}
_shared_lock = threading.Lock()


@contextlib.contextmanager
def store(web: WebSettings) -> Iterator[JobStore]:
    """The home's store, for one job's details and for actions.

    SQLite: a connection of this request's own (one is cheap, and a transaction must not
    be shared between threads). PostgreSQL: one store per server, its pool shared by
    every request, since a pool per request (and per poll of a log stream) would open
    connections and threads each time; :func:`close_shared` closes it.
    """
    from athenad.store.backend import SQLITE, backend_of, has_database, open_store

    if backend_of(web.daemon) != SQLITE:
        key = database_key(web)
        with _shared_lock:
            if key not in _shared:
                _shared[key] = open_store(web.home, web.daemon)
            shared = _shared[key]
        yield shared
        return
    if not has_database(web.home, web.daemon):
        raise InvalidInput(f"there is no athena.db in {web.home.root}.")
    with contextlib.closing(open_store(web.home, web.daemon)) as queue:
        yield queue


def close_shared(web: WebSettings) -> None:
    """Close the server's shared PostgreSQL store, if it opened one."""
    with _shared_lock:
        shared = _shared.pop(database_key(web), None)
    if shared is not None:
        shared.close()


@dataclasses.dataclass(frozen=True)
class JobFilter:
    """The jobs list's filters and page; built from query parameters, checked once."""

    status: str | None = None
    type: str | None = None
    agent: str | None = None
    queue: str | None = None
    q: str | None = None
    limit: int = PAGE_SIZE
    offset: int = 0

    @classmethod
    def parse(cls, params: dict[str, str]) -> JobFilter:
        """From query parameters; a bad value is one InvalidInput sentence."""
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}.")
        limit = whole_param(params, "limit", PAGE_SIZE, 1, MAX_LIMIT)
        offset = whole_param(params, "offset", 0, 0, 10**9)
        if "page" in params and "offset" not in params:
            offset = (whole_param(params, "page", 1, 1, 10**7) - 1) * limit
        return cls(
            status=status,
            type=params.get("type") or None,
            agent=params.get("agent") or None,
            queue=params.get("queue") or None,
            q=(params.get("q") or "").strip() or None,
            limit=limit,
            offset=offset,
        )

    def params(self) -> dict[str, Any]:
        pattern = None
        if self.q:
            # The text is matched as typed: LIKE's wildcards in it are escaped.
            escaped = self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
        return {
            "status": self.status,
            "type": self.type,
            "agent": self.agent,
            "queue": self.queue,
            "pattern": pattern,
            "limit": self.limit,
            "offset": self.offset,
        }

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters as query parameters (for links), with some changed."""
        values = {**dataclasses.asdict(self), **changes}
        values.pop("limit") if values["limit"] == PAGE_SIZE else None
        return {k: str(v) for k, v in values.items() if v not in (None, "", 0)}


def whole_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as a whole number in [low, high]; absent: ``default``."""
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {text!r}.") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, not {value}.")
    return value


def job_row(row: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    """A jobs-table row as the store gives it: payload and result decoded, parents listed."""
    from athenad.cli.ctl import SHOW_KEYS

    job = dict(row)
    job["payload"] = decode_json(job.get("payload"))
    job["result"] = decode_json(job.get("result"))
    job["parents"] = parents
    return {key: job.get(key) for key in SHOW_KEYS}


def list_jobs(reader: Reader, where: JobFilter) -> dict[str, Any]:
    """``{"jobs": [...], "total", "limit", "offset"}``; each job has ``athenactl ls
    --json``'s keys."""
    params = where.params()
    with reader.snapshot():
        found = sql.rows(reader, "jobs_page", params)
        total = int(sql.rows(reader, "jobs_total", params)[0]["n"])
        parents: dict[str, list[str]] = {row["id"]: [] for row in found}
        if parents:
            for edge in sql.rows(reader, "parents_of", {"ids": list(parents)}):
                parents[edge["job_id"]].append(edge["parent_id"])
    jobs = [job_row(row, sorted(parents[row["id"]])) for row in found]
    return {"jobs": jobs, "total": total, "limit": where.limit, "offset": where.offset}


def database_key(web: WebSettings) -> str:
    """Which database the settings name, as a key for what is cached of it."""
    return f"{web.home.db_path}|{web.daemon.database_url}|{web.daemon.database_schema}"


CHOICES_TTL_S = 30.0
_choices: dict[str, tuple[float, dict[str, list[str]]]] = {}


def filter_choices(reader: Reader, key: str = "") -> dict[str, list[str]]:
    """The agent types and queues that jobs name, for the filter form.

    Kept for CHOICES_TTL_S per database (``key``): listing them reads the whole jobs
    table, and they seldom change.
    """
    cached = _choices.get(key)
    if key and cached and time.monotonic() - cached[0] < CHOICES_TTL_S:
        return cached[1]
    choices = {
        "agents": [row["agent_type"] for row in sql.rows(reader, "agent_types")],
        "queues": [row["queue"] for row in sql.rows(reader, "queue_names")],
    }
    _choices[key] = (time.monotonic(), choices)
    return choices


def children(reader: Reader, job_id: str) -> list[dict[str, Any]]:
    """The jobs that wait for this one: id, type, status."""
    ids = [edge["job_id"] for edge in sql.rows(reader, "children_of", {"ids": [job_id]})]
    return brief(reader, ids)


def brief(reader: Reader, ids: list[str]) -> list[dict[str, Any]]:
    """id, type, status, queue and created_at of the given jobs, in id order."""
    if not ids:
        return []
    return sorted(sql.rows(reader, "brief_jobs", {"ids": ids}), key=lambda row: row["id"])


def workflow(reader: Reader, job_id: str) -> dict[str, Any]:
    """The jobs connected to ``job_id`` through dependencies, either way, and the edges.

    ``{"nodes": [{id, type, status, queue, created_at}], "edges": [[parent, child]],
    "truncated": bool}``; at most GRAPH_MAX_NODES nodes, nearest first.
    """
    seen = {job_id}
    edges: set[tuple[str, str]] = set()
    frontier = [job_id]
    truncated = False
    with reader.snapshot():
        while frontier and not truncated:
            found = sql.rows(reader, "parents_of", {"ids": frontier}) + sql.rows(
                reader, "children_of", {"ids": frontier}
            )
            frontier = []
            for edge in found:
                pair = (edge["parent_id"], edge["job_id"])
                for node in pair:
                    if node in seen:
                        continue
                    if len(seen) >= GRAPH_MAX_NODES:
                        truncated = True
                        break
                    seen.add(node)
                    frontier.append(node)
                if pair[0] in seen and pair[1] in seen:
                    edges.add(pair)
        nodes = brief(reader, sorted(seen))
    if job_id not in {node["id"] for node in nodes}:
        from athenad.errors import JobNotFound

        raise JobNotFound(f"job {job_id!r} does not exist.")
    return {"nodes": nodes, "edges": sorted(map(list, edges)), "truncated": truncated}


def queue_counts(reader: Reader) -> dict[str, dict[str, Any]]:
    """{queue: {unfinished status: jobs, ..., "paused": bool}} for queues with unfinished
    jobs or paused."""
    counts: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return counts.setdefault(name, {**dict.fromkeys(UNFINISHED, 0), "paused": False})

    for row in sql.rows(reader, "queue_status_counts"):
        entry(row["queue"])[row["status"]] = int(row["n"])
    for row in sql.rows(reader, "paused_queues"):
        entry(row["name"])["paused"] = True
    return dict(sorted(counts.items()))


UNITS = {  # query, step, its key's format, its label's format
    "hour": ("hourly", dt.timedelta(hours=1), "%Y-%m-%d %H", "%Y-%m-%d %H:00"),
    "minute": ("minutely", dt.timedelta(minutes=1), "%Y-%m-%d %H:%M", "%H:%M"),
}


def created_per(reader: Reader, now: dt.datetime, unit: str, count: int) -> list[dict[str, Any]]:
    """``[{"bucket", "jobs", "failed"}]`` per hour or minute of creation time for the last
    ``count`` of them, oldest first, empty ones included.

    Lighter than the analytics' trends (no percentiles), as the overview redraws often.
    """
    name, step, key_format, label_format = UNITS[unit]
    start = now.replace(second=0, microsecond=0)
    if unit == "hour":
        start = start.replace(minute=0)
    start -= step * (count - 1)
    found = {
        row["bucket"]: row
        for row in sql.rows(reader, name, {"since": start.strftime("%Y-%m-%d %H:%M:%S")})
    }
    buckets = []
    for index in range(count):
        moment = start + step * index
        row = found.get(moment.strftime(key_format), {})
        buckets.append(
            {
                "bucket": moment.strftime(label_format),
                "jobs": int(row.get("jobs") or 0),
                "failed": int(row.get("failed") or 0),
            }
        )
    return buckets


def status_counts(reader: Reader) -> dict[str, int]:
    """Jobs by status over every job; every status is present."""
    counts = dict.fromkeys(STATUSES, 0)
    for row in sql.rows(reader, "status_counts"):
        counts[row["status"]] = int(row["n"])
    return counts


def overview(reader: Reader) -> dict[str, Any]:
    """Counts by status and queue, the last hour's and day's outcomes, hourly trends."""
    now = utc_now_text()
    hour, day = parse_since("1h"), parse_since("1d")
    with reader.snapshot():
        figures = {
            "by_status": status_counts(reader),
            "by_queue": queue_counts(reader),
            "queue": analytics.queue_summary(reader, now),
            "last_hour": _window(reader, hour, now),
            "last_day": _window(reader, day, now),
            "hourly": created_per(reader, parse_ts(now), "hour", 24),
            "minutely": created_per(reader, parse_ts(now), "minute", 60),
        }
    return figures


def _window(reader: Reader, since: str | None, now: str) -> dict[str, Any]:
    outcomes = analytics.by_status(reader, since)
    return {
        "since": since,
        "created": sum(outcomes.values()),
        "failed": outcomes["failed"],
        "throughput": analytics.throughput(reader, since, now),
    }


FAILED_SCAN = 1000  # the newest failures grouped on the failed page


def failed_groups(reader: Reader, since: str | None) -> dict[str, Any]:
    """The newest failed jobs grouped by the first line of their error, most first.

    ``{"groups": [{"error", "jobs", "last_at", "types", "ids"}], "scanned",
    "complete"}``; ``complete`` is false when more than FAILED_SCAN failed.
    """
    rows = analytics.failed_jobs(reader, since, limit=FAILED_SCAN)
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        line = row["error_line"] or "(no error recorded)"
        group = groups.setdefault(
            line, {"error": line, "jobs": 0, "last_at": None, "types": set(), "ids": []}
        )
        group["jobs"] += 1
        moment = row["completed_at"] or row["created_at"]
        group["last_at"] = max(group["last_at"] or moment, moment)
        group["types"].add(row["type"])
        if len(group["ids"]) < 5:
            group["ids"].append(row["id"])
    ordered = sorted(groups.values(), key=lambda g: (-g["jobs"], g["error"]))
    for group in ordered:
        group["types"] = sorted(group["types"])
    return {"groups": ordered, "scanned": len(rows), "complete": len(rows) < FAILED_SCAN}


def job_details(queue: JobStore, job_id: str) -> dict[str, Any]:
    """``athenactl show --json``'s job with its steps, checkpoints and log state."""
    from athenad.cli.ctl import SHOW_KEYS
    from athenad.storage.job_logs import open_job_logs
    from athenad.store.steps import step_store

    row = queue.get(job_id)
    job: dict[str, Any] = {key: row.get(key) for key in SHOW_KEYS}
    steps = step_store(queue).steps(job_id)
    job["step_list"], job["steps"] = steps, len(steps)
    logs = open_job_logs(queue)
    job["log_lines"] = logs.state(job_id).lines if logs is not None else 0
    return job


def job_logs(queue: JobStore, job_id: str, after: int = 0, limit: int = 1000) -> dict[str, Any]:
    """``{"lines": [{seq, at, level, message, fields}], "status", "dropped"}`` after seq
    ``after``."""
    import msgspec

    from athenad.storage.job_logs import open_job_logs

    logs = open_job_logs(queue)
    assert logs is not None  # both backends' queues have one
    state = logs.state(job_id)  # first: a job that ended has stored every line by then
    lines = logs.read(job_id, after=after, limit=limit)
    return {
        "lines": [msgspec.structs.asdict(line) for line in lines],
        "status": state.status,
        "dropped": state.dropped,
    }


def checkpoints(web: WebSettings, queue: JobStore, job_id: str) -> list[dict[str, Any]]:
    """The job's checkpoints: iteration, created_at, size_bytes, valid, error."""
    from athenad.storage import open_stores

    with contextlib.closing(open_stores(web.home, web.daemon, queue=queue)) as stores:
        infos = stores.checkpoints.list(job_id)
    return [
        {
            "iteration": info.iteration,
            "created_at": info.created_at,
            "size_bytes": info.size_bytes,
            "valid": info.valid,
            "error": info.error,
        }
        for info in infos
    ]


def now_text() -> str:
    return utc_now_text()
