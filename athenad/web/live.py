"""Server-sent events: the pages' live parts listen here instead of reloading.

``/api/events`` sends ``state`` (jobs by status) whenever it changes; a job's
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

from athenad.errors import AthenaError
from athenad.store.waiting import FINISHED
from athenad.web import data
from athenad.web.responses import error_message, error_status, json_error, query, settings_of
from athenad.web.settings import WebSettings

KEEPALIVE_S = 15.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _event(name: str, payload: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(payload, default=str)}\n\n"


def _state(web: WebSettings) -> dict[str, int]:
    with data.reading(web) as reader:
        return data.status_counts(reader)


async def events(request: Request) -> Response:
    """``state`` events: ``{"by_status": {...}}`` now and on every change."""
    web = settings_of(request)
    try:
        limit = data._whole(query(request), "limit", 0, 0, 10**6)
        first = await run_in_threadpool(_state, web)
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))

    async def stream() -> AsyncIterator[str]:
        counts, sent, quiet = first, 1, 0.0
        yield _event("state", {"by_status": counts}, sent)
        while not limit or sent < limit:
            await anyio.sleep(web.poll_s)
            if await request.is_disconnected():
                return
            now = await run_in_threadpool(_state, web)
            if now != counts:
                counts, sent, quiet = now, sent + 1, 0.0
                yield _event("state", {"by_status": counts}, sent)
            else:
                quiet += web.poll_s
                if quiet >= KEEPALIVE_S:  # a comment keeps proxies from closing the stream
                    quiet = 0.0
                    yield ": keepalive\n\n"

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
        limit = data._whole(params, "limit", 0, 0, 10**6)
        resume = request.headers.get("last-event-id") or params.get("after") or "0"
        after = data._whole({"after": resume}, "after", 0, 0, 2**62)
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
