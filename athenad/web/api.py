"""The JSON API under ``/api/``: the same keys as the CLI's ``--json`` outputs.

Reads need nothing; POST actions need ``--allow-actions`` and ``Authorization: Bearer
<ATHENA_WEB_TOKEN>``, else 403. Unknown ids are 404 and bad parameters 400, each with
``{"error": "<one sentence>"}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from athenad.errors import AthenaError, InvalidInput
from athenad.web import actions, data
from athenad.web.auth import bearer_ok
from athenad.web.live import events, job_stream
from athenad.web.responses import (
    Json,
    error_message,
    error_status,
    form_fields,
    json_error,
    query,
    settings_of,
)

Handler = Callable[[Request], Any]


def answers(handler: Handler) -> Callable[[Request], Response]:
    """A sync endpoint whose value becomes JSON and whose Athena errors become statuses."""

    def endpoint(request: Request) -> Response:
        try:
            value = handler(request)
        except AthenaError as exc:
            return json_error(error_message(exc), error_status(exc))
        except ValueError as exc:  # the analytics' own checks of a bucket or grouping
            return json_error(f"{exc}.", 400)
        return value if isinstance(value, Response) else Json(value)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _since(request: Request, default: str) -> str | None:
    from athenad.util.timefmt import parse_since

    return parse_since(request.query_params.get("since") or default, "since")


def jobs(request: Request) -> Any:
    """Jobs newest first: status, type, agent, queue, q (id or error text), limit, offset."""
    where = data.JobFilter.parse(query(request))
    with data.reading(settings_of(request)) as reader:
        return data.list_jobs(reader, where)


def job(request: Request) -> Any:
    """One job, with ``athenactl show --json``'s keys."""
    with data.store(settings_of(request)) as queue:
        found = data.job_details(queue, request.path_params["job_id"])
    found.pop("step_list")
    found.pop("log_lines")
    return found


def job_logs(request: Request) -> Any:
    """The job's log lines after seq ``after`` (at most ``limit``), its status and drops."""
    params = query(request)
    after = data.whole_param(params, "after", 0, 0, 2**62)
    limit = data.whole_param(params, "limit", 1000, 1, 1000)
    with data.store(settings_of(request)) as queue:
        return data.job_logs(queue, request.path_params["job_id"], after, limit)


def job_steps(request: Request) -> Any:
    """``athenactl steps --json``."""
    from athenad.store.steps import step_store

    with data.store(settings_of(request)) as queue:
        job_id = request.path_params["job_id"]
        queue.get(job_id)  # an unknown id is a 404, not an empty list
        return step_store(queue).steps(job_id)


def job_checkpoints(request: Request) -> Any:
    """The job's checkpoints (iteration, created_at, size_bytes, valid, error)."""
    web = settings_of(request)
    with data.store(web) as queue:
        job_id = request.path_params["job_id"]
        queue.get(job_id)
        return data.checkpoints(web, queue, job_id)


def job_graph(request: Request) -> Any:
    """The workflow around the job: nodes, edges as [parent, child], truncated."""
    with data.reading(settings_of(request)) as reader:
        return data.workflow(reader, request.path_params["job_id"])


def stats(request: Request) -> Any:
    """``athenactl stats --json`` (since: 1d by default; by: agent or model)."""
    from athenad.analytics import queries as analytics

    web = settings_of(request)
    since = _since(request, "1d")
    by = request.query_params.get("by") or "agent"
    with data.reading(web) as reader:
        return analytics.stats(reader, since=since, by=by, daily_usd=web.daily_usd)


def trends(request: Request) -> Any:
    """``athenactl trends --json`` (since: 1d; bucket: hour or day)."""
    from athenad.analytics import queries as analytics

    since = _since(request, "1d")
    bucket = request.query_params.get("bucket") or "hour"
    with data.reading(settings_of(request)) as reader:
        return analytics.trends(reader, since, bucket)


def failed(request: Request) -> Any:
    """``athenactl failed --json`` (since: all; limit: 20)."""
    from athenad.analytics import queries as analytics

    limit = data.whole_param(query(request), "limit", 20, 1, data.MAX_LIMIT)
    with data.reading(settings_of(request)) as reader:
        return analytics.failed_jobs(reader, _since(request, "all"), limit=limit)


def failed_groups(request: Request) -> Any:
    """Failed jobs grouped by the first line of their error (since: 1d)."""
    with data.reading(settings_of(request)) as reader:
        return data.failed_groups(reader, _since(request, "1d"))


def queues(request: Request) -> Any:
    """``athenactl queue ls --json``."""
    with data.store(settings_of(request)) as queue:
        return queue.queues()


def status(request: Request) -> Any:
    """``athenactl status --json``: the daemon, its workers and hosts, the queue."""
    from athenad.daemon.status import collect_status

    return collect_status(settings_of(request).home)


def overview(request: Request) -> Any:
    """The overview page's figures: counts by status and queue, last hour and day."""
    with data.reading(settings_of(request)) as reader:
        return data.overview(reader)


def prometheus(request: Request) -> Any:
    """``athenactl metrics``: Prometheus text (window: 1h by default)."""
    from starlette.responses import PlainTextResponse

    from athenad.analytics import metrics
    from athenad.daemon.slots import crash_totals
    from athenad.daemon.status import worker_processes
    from athenad.paths import read_pid
    from athenad.util.timefmt import parse_since

    web = settings_of(request)
    lower = parse_since(request.query_params.get("window") or "1h", "window")
    with data.reading(web) as reader:
        figures = metrics.metrics(reader, lower)
    pid = read_pid(web.home)
    gauges = {
        "athena_daemon_up": ("1 if the athenad supervisor is running.", int(pid is not None)),
        "athena_workers": ("Live worker processes.", len(worker_processes(pid)) if pid else 0),
    }
    text = metrics.prometheus_text(figures, gauges, crash_totals(web.home))
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def healthz(request: Request) -> Any:
    """200 when the database answers."""
    with data.reading(settings_of(request)) as reader:
        data.status_counts(reader)
    return {"ok": True}


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object body, or a form; an empty body is no fields."""
    raw = await request.body()
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        import json

        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict):
                return value
        raise InvalidInput("the request body must be a JSON object.")
    return await form_fields(request)


async def job_action(request: Request) -> Response:
    """POST cancel, retry, approve, reject (note) or send (key, payload) on a job."""
    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    if not bearer_ok(web, request):
        return _refused(web.actions_enabled)
    try:
        fields = await _body(request)
        result = await run_in_threadpool(
            actions.job_action,
            web,
            request.path_params["job_id"],
            request.path_params["action"],
            fields,
        )
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))
    return Json(result)


async def submit(request: Request) -> Response:
    """POST a task (``{"type", "payload", "after", "queue", "priority", ...}``) or
    ``{"tasks": [...]}``: ``[{"id", "duplicate"}]``, in the tasks' order."""
    import json

    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    if not bearer_ok(web, request):
        return _refused(web.actions_enabled)
    try:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise InvalidInput(
                'the request body must be a JSON task or {"tasks": [...]}.'
            ) from None
        outcomes = await run_in_threadpool(actions.submit, web, body)
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))
    return Json(outcomes, status_code=201)


async def bulk_action(request: Request) -> Response:
    """POST ``{"action": "cancel" | "retry", "ids": [...]}``: ``{"results": [{"id",
    "status"} | {"id", "error"}]}``."""
    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    if not bearer_ok(web, request):
        return _refused(web.actions_enabled)
    try:
        fields = await _body(request)
        ids = fields.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput("ids must be a list of job ids.")
        results = await run_in_threadpool(
            actions.bulk_action, web, ids, str(fields.get("action") or "")
        )
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))
    return Json({"results": results})


async def queue_action(request: Request) -> Response:
    """POST pause or resume on a queue."""
    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    if not bearer_ok(web, request):
        return _refused(web.actions_enabled)
    try:
        result = await run_in_threadpool(
            actions.queue_action, web, request.path_params["name"], request.path_params["action"]
        )
    except AthenaError as exc:
        return json_error(error_message(exc), error_status(exc))
    return Json(result)


def _refused(enabled: bool) -> Response:
    if not enabled:
        return json_error(
            "actions are off: start athenactl web with --allow-actions and ATHENA_WEB_TOKEN set.",
            403,
        )
    return json_error("this action needs the header Authorization: Bearer <ATHENA_WEB_TOKEN>.", 403)


def routes() -> list[Route]:
    """The API's routes, with /api/openapi.json describing them all."""
    from athenad.web.openapi import endpoint
    from athenad.web.sessions import api_routes

    found = [*_routes(), *api_routes()]
    found.append(Route("/api/openapi.json", endpoint(found), methods=["GET"]))
    return found


def _routes() -> list[Route]:
    get = ["GET"]
    return [
        Route("/healthz", answers(healthz), methods=get),
        Route("/metrics", answers(prometheus), methods=get),
        Route("/api/jobs", answers(jobs), methods=get),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/bulk", bulk_action, methods=["POST"]),
        Route("/api/jobs/{job_id}", answers(job), methods=get),
        Route("/api/jobs/{job_id}/logs", answers(job_logs), methods=get),
        Route("/api/jobs/{job_id}/steps", answers(job_steps), methods=get),
        Route("/api/jobs/{job_id}/checkpoints", answers(job_checkpoints), methods=get),
        Route("/api/jobs/{job_id}/graph", answers(job_graph), methods=get),
        Route("/api/jobs/{job_id}/stream", job_stream, methods=get),
        Route("/api/jobs/{job_id}/{action}", job_action, methods=["POST"]),
        Route("/api/queues", answers(queues), methods=get),
        Route("/api/queues/{name}/{action}", queue_action, methods=["POST"]),
        Route("/api/stats", answers(stats), methods=get),
        Route("/api/trends", answers(trends), methods=get),
        Route("/api/failed", answers(failed), methods=get),
        Route("/api/failed/groups", answers(failed_groups), methods=get),
        Route("/api/status", answers(status), methods=get),
        Route("/api/overview", answers(overview), methods=get),
        Route("/api/events", events, methods=get),
    ]
