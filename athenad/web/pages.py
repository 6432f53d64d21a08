"""The HTML pages: overview, jobs, a job, its workflow graph, and the login form.

Each page renders complete without JavaScript; ``?fragment=1`` renders only its live
part, which static/live.js fetches again when a server-sent event says data changed.
Forms that change anything POST with the session's CSRF token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from athenad.errors import AthenaError, InvalidInput
from athenad.store.contract import STATUSES, UNFINISHED
from athenad.web import actions, auth, data, svg
from athenad.web.responses import (
    error_message,
    error_status,
    form_fields,
    form_lists,
    query,
    settings_of,
)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["urlencode_params"] = lambda params: urlencode(params)
templates.env.globals["STATUS_FILL"] = svg.STATUS_FILL


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


templates.env.filters["pretty"] = _json_text


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page with what every page needs: whether actions are on and the session's CSRF."""
    web = settings_of(request)
    nonce = auth.session_nonce(web, request)
    started = request.scope.get("athena_started", time.perf_counter())
    full = {
        "actions_enabled": web.actions_enabled,
        "logged_in": nonce is not None,
        "csrf": auth.csrf_token(web, nonce) if nonce else "",
        "statuses": STATUSES,
        "fragment": request.query_params.get("fragment") == "1",
        "elapsed_ms": lambda: round((time.perf_counter() - started) * 1000, 1),
        **context,
    }
    return templates.TemplateResponse(request, name, full, status_code=status)


def page(name: str, build: Any) -> Any:
    """A sync page endpoint: ``build(request)`` gives the context; errors get a page."""

    def endpoint(request: Request) -> Response:
        request.scope["athena_started"] = time.perf_counter()
        try:
            context = build(request)
        except AthenaError as exc:
            return render(request, "error.html", {"message": error_message(exc)}, error_status(exc))
        if isinstance(context, Response):
            return context
        return render(request, name, context)

    endpoint.__name__ = name.replace(".html", "")
    return endpoint


def overview(request: Request) -> dict[str, Any]:
    from athenad.daemon.status import collect_status

    web = settings_of(request)
    with data.reading(web) as reader:
        figures = data.overview(reader)
    status = collect_status(web.home)
    return {
        "figures": figures,
        "status": status,
        "unfinished": UNFINISHED,
        "hourly_chart": Markup(svg.bar_chart(figures["hourly"], title="jobs per hour, 24 h")),
        "minutely_chart": Markup(svg.bar_chart(figures["minutely"], title="jobs per minute, 1 h")),
        "live_url": "/?fragment=1",
    }


def jobs(request: Request) -> dict[str, Any]:
    params = query(request)
    where = data.JobFilter.parse(params)
    with data.reading(settings_of(request)) as reader:
        listing = data.list_jobs(reader, where)
        choices = data.filter_choices(reader, data.database_key(settings_of(request)))
    page_no = where.offset // where.limit + 1
    pages = max((listing["total"] + where.limit - 1) // where.limit, 1)
    fragment_query = {**where.query(), "fragment": "1"}
    return {
        "listing": listing,
        "where": where,
        "choices": choices,
        "page_no": page_no,
        "pages": pages,
        "prev_query": where.query(offset=max(where.offset - where.limit, 0)),
        "next_query": where.query(offset=where.offset + where.limit),
        "live_url": "/jobs?" + urlencode(fragment_query),
        "back": "/jobs?" + urlencode(where.query()),
        "notice": request.query_params.get("done"),
    }


def job(request: Request) -> dict[str, Any]:
    web = settings_of(request)
    job_id = request.path_params["job_id"]
    with data.store(web) as queue:
        details = data.job_details(queue, job_id)
        logs = data.job_logs(queue, job_id)
        checkpoints = data.checkpoints(web, queue, job_id)
    with data.reading(web) as reader:
        parents = data.brief(reader, details["parents"])
        children = data.children(reader, job_id)
    return {
        "job": details,
        "logs": logs,
        "last_seq": logs["lines"][-1]["seq"] if logs["lines"] else 0,
        "checkpoints": checkpoints,
        "parents": parents,
        "children": children,
        "notice": request.query_params.get("done"),
        "live_url": f"/jobs/{job_id}?fragment=1",
    }


def failed(request: Request) -> dict[str, Any]:
    from athenad.util.timefmt import parse_since

    window = request.query_params.get("since") or "1d"
    since = parse_since(window, "since")
    with data.reading(settings_of(request)) as reader:
        grouped = data.failed_groups(reader, since)
    return {"grouped": grouped, "window": window, "live_url": f"/failed?since={window}&fragment=1"}


def workflow(request: Request) -> dict[str, Any]:
    job_id = request.path_params["job_id"]
    with data.reading(settings_of(request)) as reader:
        graph = data.workflow(reader, job_id)
    return {
        "job_id": job_id,
        "graph": graph,
        "svg": Markup(svg.dag(graph, job_id)),
        "live_url": f"/jobs/{job_id}/graph?fragment=1",
    }


def login_form(request: Request) -> dict[str, Any]:
    return {"error": None, "next": request.query_params.get("next") or "/"}


async def login(request: Request) -> Response:
    """Check the token from the form; a match sets the session cookie."""
    web = settings_of(request)
    form = await form_fields(request)
    target = _local(str(form.get("next") or "/"))
    if not auth.token_ok(web, str(form.get("token") or "")):
        message = (
            "the token is not right."
            if web.actions_enabled
            else "actions are off: start athenactl web with --allow-actions and ATHENA_WEB_TOKEN."
        )
        return render(request, "login.html", {"error": message, "next": target}, 403)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.COOKIE, auth.new_session(web), httponly=True, samesite="strict", path="/"
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


def _local(target: str) -> str:
    """Only a path on this server: a login must not redirect elsewhere."""
    # Browsers read "/\\host" as "//host", another site: no backslash at all.
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if local else "/"


async def job_action(request: Request) -> Response:
    job_id, action = request.path_params["job_id"], request.path_params["action"]
    return await _act(request, f"/jobs/{job_id}", actions.job_action, job_id, action)


async def queue_action(request: Request) -> Response:
    name, action = request.path_params["name"], request.path_params["action"]

    def run(web: Any, name: str, action: str, _form: dict[str, Any]) -> dict[str, Any]:
        return actions.queue_action(web, name, action)

    return await _act(request, "/", run, name, action)


async def _act(request: Request, back: str, run: Any, target: str, action: str) -> Response:
    """Check the session and its CSRF token, run the action, go back to the page."""
    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    form = await form_fields(request)
    if not web.actions_enabled:
        return render(request, "error.html", {"message": "actions are off."}, 403)
    if not auth.csrf_ok(web, request, form.get("csrf", "")):
        message = "log in first, and send the form from its page (the CSRF token is not right)."
        return render(request, "error.html", {"message": message}, 403)
    try:
        result = await run_in_threadpool(run, web, target, action, form)
    except AthenaError as exc:
        return render(request, "error.html", {"message": error_message(exc)}, error_status(exc))
    outcome = result.get("status") or result.get("decision") or result.get("outcome") or ""
    done = f"{action}: {outcome or result.get('state', '')}"
    return RedirectResponse(f"{_local(back)}?{urlencode({'done': done})}", status_code=303)


async def bulk_action(request: Request) -> Response:
    """Cancel or retry the jobs ticked in the jobs table."""
    from starlette.concurrency import run_in_threadpool

    web = settings_of(request)
    fields = await form_lists(request)
    back = _local((fields.get("back") or ["/jobs"])[-1])
    if not web.actions_enabled:
        return render(request, "error.html", {"message": "actions are off."}, 403)
    if not auth.csrf_ok(web, request, (fields.get("csrf") or [""])[-1]):
        message = "log in first, and send the form from its page (the CSRF token is not right)."
        return render(request, "error.html", {"message": message}, 403)
    action = (fields.get("action") or [""])[-1]
    try:
        results = await run_in_threadpool(actions.bulk_action, web, fields.get("ids", []), action)
    except AthenaError as exc:
        return render(request, "error.html", {"message": error_message(exc)}, error_status(exc))
    refused = sum(1 for result in results if "error" in result)
    done = f"{action}: {len(results) - refused} job(s)" + (
        f", {refused} refused" if refused else ""
    )
    joiner = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{joiner}{urlencode({'done': done})}", status_code=303)


def not_found(request: Request) -> Response:
    error = InvalidInput("there is no such page.")
    return render(request, "error.html", {"message": error_message(error)}, 404)


def routes() -> list[Route]:
    from athenad.web.sessions import page_routes

    return [
        *page_routes(),
        Route("/", page("overview.html", overview), methods=["GET"]),
        Route("/jobs", page("jobs.html", jobs), methods=["GET"]),
        Route("/failed", page("failed.html", failed), methods=["GET"]),
        Route("/jobs/bulk", bulk_action, methods=["POST"]),
        Route("/jobs/{job_id}", page("job.html", job), methods=["GET"]),
        Route("/jobs/{job_id}/graph", page("workflow.html", workflow), methods=["GET"]),
        Route("/jobs/{job_id}/{action}", job_action, methods=["POST"]),
        Route("/queues/{name}/{action}", queue_action, methods=["POST"]),
        Route("/login", page("login.html", login_form), methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
