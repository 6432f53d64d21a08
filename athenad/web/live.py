"""Server-sent events: the pages' live parts listen here instead of reloading.

``/api/events`` sends ``state`` (jobs by status) whenever it changes and ``job`` for
each job whose status changed; its event ids are poll times, so a reconnect with
``Last-Event-ID`` gets what finished meanwhile. A job's
``/api/jobs/{id}/stream`` sends its new log lines as ``log`` events (the event id is
the line's seq, so a reconnect with ``Last-Event-ID`` resumes after it) and ``status``
when its status changes, then ``end`` once it finished. Both poll the database every
``poll_s``; ``?limit=N`` ends a stream after N events (for scripts and tests).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from athenad.errors import AthenaError, InvalidInput
from athenad.store.waiting import FINISHED
from athenad.web import data, sql
from athenad.web.responses import error_message, error_status, json_error, query, settings_of
from athenad.web.settings import WebSettings

KEEPALIVE_S = 15.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _event(name: str, payload: Any, event_id: int | str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(payload, default=str)}\n\n"


OVERLAP_S = 5.0  # a resume looks this much further back: clocks and commits lag a little


def _state(web: WebSettings) -> dict[str, int]:
    with data.reading(web) as reader:
        return data.status_counts(reader)


class JobWatch:
    """The job state changes one stream has not sent yet.

    Each poll reads every unfinished job and the jobs finished since the last poll
    (less OVERLAP_S), and yields those whose status differs from what was sent.
    """

    def __init__(self, web: WebSettings, since: str | None) -> None:
        self.web = web
        self.sent: dict[str, str] = {}
        self.since = since

    def poll(self) -> tuple[str, dict[str, int], list[dict[str, Any]]]:
        """(the poll's time, jobs by status, changed jobs as {id, status, type, queue})."""
        import datetime as dt

        from athenad.util.timefmt import format_ts, parse_ts, utc_now_text

        now = utc_now_text()
        with data.reading(self.web) as reader, reader.snapshot():
            counts = data.status_counts(reader)
            rows = sql.rows(reader, "unfinished_states")
            if self.since is not None:
                start = format_ts(parse_ts(self.since) - dt.timedelta(seconds=OVERLAP_S))
                rows += sql.rows(reader, "finished_since", {"since": start})
        changed = []
        for row in rows:
            if self.sent.get(row["id"]) != row["status"]:
                self.sent[row["id"]] = row["status"]
                changed.append({key: row[key] for key in ("id", "status", "type", "queue")})
        if len(self.sent) > 50_000:  # a long stream forgets finished jobs it reported
            self.sent = {row["id"]: row["status"] for row in rows}
        self.since = now
        return now, counts, changed


def _resume_point(request: Request) -> str | None:
    """Last-Event-ID: the time of the poll a client saw last (UTC text), if well formed."""
    from athenad.util.timefmt import parse_ts

    given = request.headers.get("last-event-id") or request.query_params.get("since")
    if not given:
        return None
    try:
        parse_ts(given)
    except ValueError:
        raise InvalidInput(
            f"Last-Event-ID must be an event id this server sent, not {given!r}."
        ) from None
    return given


async def events(request: Request) -> Response:
    """``state`` (jobs by status) now and on each change, and ``job`` ({id, status, type,
    queue}) for each job that changed status; with Last-Event-ID, the jobs finished
    since that event and every unfinished job come first."""
    web = settings_of(request)
    try:
        limit = data.whole_param(query(request), "limit", 0, 0, 10**6)
        resume = _resume_point(request)
        watch = JobWatch(web, resume)
        first = await run_in_threadpool(watch.poll)
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))
    if resume is None:
        first = (first[0], first[1], [])  # a fresh stream reports changes from now on

    async def stream() -> AsyncIterator[str]:
        counts: dict[str, int] | None = None
        sent, quiet, batch = 0, 0.0, first
        while True:
            at, now_counts, changed = batch
            for job in changed:
                sent += 1
                yield _event("job", job, at)
            if now_counts != counts:
                counts = now_counts
                sent += 1
                yield _event("state", {"by_status": counts}, at)
                quiet = 0.0
            if limit and sent >= limit:
                return
            quiet = 0.0 if changed else quiet + web.poll_s
            if quiet >= KEEPALIVE_S:  # a comment keeps proxies from closing the stream
                quiet = 0.0
                yield ": keepalive\n\n"
            await anyio.sleep(web.poll_s)
            if await request.is_disconnected():
                return
            batch = await run_in_threadpool(watch.poll)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


def _read_logs(web: WebSettings, job_id: str, after: int) -> dict[str, Any]:
    with data.store(web) as queue:
        return data.job_logs(queue, job_id, after)


async def job_stream(request: Request) -> Response:
    """A job's ``log`` lines after ``Last-Event-ID`` (or ``after``), ``status`` changes,
    and ``end`` when it finished."""
    web = settings_of(request)
    job_id = request.path_params["job_id"]
    params = query(request)
    try:
        limit = data.whole_param(params, "limit", 0, 0, 10**6)
        resume = request.headers.get("last-event-id") or params.get("after") or "0"
        after = data.whole_param({"after": resume}, "after", 0, 0, 2**62)
        first = await run_in_threadpool(_read_logs, web, job_id, after)
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))

    async def stream() -> AsyncIterator[str]:
        seen, status, sent, batch = after, None, 0, first
        while True:
            if batch["status"] != status:
                status = batch["status"]
                sent += 1
                yield _event("status", {"status": status})
            for line in batch["lines"]:
                seen = line["seq"]
                sent += 1
                yield _event("log", line, seen)
            if (limit and sent >= limit) or (status in FINISHED and not batch["lines"]):
                yield _event("end", {"status": status})
                return
            if not batch["lines"]:
                await anyio.sleep(web.poll_s)
            if await request.is_disconnected():
                return
            batch = await run_in_threadpool(_read_logs, web, job_id, seen)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)
