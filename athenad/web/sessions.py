"""Conversation sessions: a searchable list, a readable viewer and exports.

Read through the home's session store as ``athenactl sessions`` does (files under
.athena/sessions/, or the tables of the PostgreSQL database).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from athenad.errors import InvalidInput
from athenad.storage.contract import SessionStore
from athenad.web.settings import WebSettings

LIST_MAX = 500
MEDIA = {"md": "text/markdown", "json": "application/json", "jsonl": "application/x-ndjson"}


@contextlib.contextmanager
def session_store(web: WebSettings) -> Iterator[SessionStore | None]:
    """The home's sessions, or None when a home on files has none yet (nothing is
    created to look)."""
    from athenad.storage import open_stores
    from athenad.store.backend import SQLITE, backend_of

    if backend_of(web.daemon) == SQLITE and not web.home.state_dir.is_dir():
        yield None
        return
    stores = open_stores(web.home, web.daemon)
    try:
        yield stores.sessions
    finally:
        stores.close()


def _check_id(session_id: str) -> str:
    from athenad.storage.sessions.files import SessionNotFound, is_valid_session_id

    if not is_valid_session_id(session_id):
        raise SessionNotFound(f"session {session_id!r} does not exist.")
    return session_id


def list_sessions(web: WebSettings, q: str | None, branch: str | None) -> list[dict[str, Any]]:
    """``athenactl sessions list --json``'s rows, most recent first; ``q`` matches the
    id, name, branch or a tag (any case)."""
    with session_store(web) as store:
        infos = store.list_sessions(git_branch=branch or None) if store is not None else []
    rows = [msgspec.structs.asdict(info) for info in infos]
    if q:
        needle = q.lower()
        rows = [
            row
            for row in rows
            if any(
                needle in str(value).lower()
                for value in (row["id"], row["name"] or "", row["git_branch"] or "", *row["tags"])
            )
        ]
    return rows[:LIST_MAX]


def show_session(web: WebSettings, session_id: str) -> dict[str, Any]:
    """``athenactl sessions show --json``: ``{"session": {...}, "messages": [...]}``."""
    from athenad.storage.sessions.files import SessionNotFound

    _check_id(session_id)
    with session_store(web) as store:
        if store is None:
            raise SessionNotFound(f"session {session_id!r} does not exist.")
        messages = store.get_messages(session_id)
        info = store.get_session(session_id)
    return {
        "session": msgspec.structs.asdict(info),
        "messages": [msgspec.to_builtins(message) for message in messages],
    }


def export(web: WebSettings, session_id: str, fmt: str) -> str:
    from athenad.storage.sessions.files import SessionNotFound
    from athenad.storage.sessions.transfer import export_session

    _check_id(session_id)
    with session_store(web) as store:
        if store is None:
            raise SessionNotFound(f"session {session_id!r} does not exist.")
        return export_session(store, session_id, fmt)


def label(message: dict[str, Any]) -> str:
    """The role, and what the message is when more than text (``assistant (tool_use Bash)``)."""
    meta = message.get("metadata") or {}
    kind, tool = meta.get("kind"), meta.get("tool")
    if not isinstance(kind, str) or kind == "text":
        return str(message["role"])
    return (
        f"{message['role']} ({kind} {tool})"
        if isinstance(tool, str)
        else (f"{message['role']} ({kind})")
    )


# ---- routes -----------------------------------------------------------------------------


def api_list(request: Request) -> Any:
    """``athenactl sessions list --json`` (q: search; branch: one git branch)."""
    from athenad.web.responses import settings_of

    params = request.query_params
    return list_sessions(settings_of(request), params.get("q"), params.get("branch"))


def api_show(request: Request) -> Any:
    """``athenactl sessions show --json``: the session and its messages."""
    from athenad.web.responses import settings_of

    return show_session(settings_of(request), request.path_params["session_id"])


def api_export(request: Request) -> Any:
    """The session as ``format`` md, json or jsonl (default), as a download."""
    from athenad.web.responses import settings_of

    session_id = request.path_params["session_id"]
    fmt = request.query_params.get("format") or "jsonl"
    if fmt not in MEDIA:
        raise InvalidInput(f"format must be one of {', '.join(MEDIA)}, not {fmt!r}.")
    text = export(settings_of(request), session_id, fmt)
    disposition = f'attachment; filename="{session_id}.{fmt}"'
    return Response(text, media_type=MEDIA[fmt], headers={"Content-Disposition": disposition})


def api_routes() -> list[Route]:
    from athenad.web.api import answers

    return [
        Route("/api/sessions", answers(api_list), methods=["GET"]),
        Route("/api/sessions/{session_id}", answers(api_show), methods=["GET"]),
        Route("/api/sessions/{session_id}/export", answers(api_export), methods=["GET"]),
    ]


def page_routes() -> list[Route]:
    from athenad.web.pages import page
    from athenad.web.responses import settings_of

    def listing(request: Request) -> dict[str, Any]:
        q = request.query_params.get("q") or ""
        rows = list_sessions(settings_of(request), q, request.query_params.get("branch"))
        return {"sessions": rows, "q": q, "limit": LIST_MAX, "live_url": ""}

    def viewer(request: Request) -> dict[str, Any]:
        shown = show_session(settings_of(request), request.path_params["session_id"])
        for message in shown["messages"]:
            message["label"] = label(message)
        return {**shown, "live_url": ""}

    return [
        Route("/sessions", page("sessions.html", listing), methods=["GET"]),
        Route("/sessions/{session_id}", page("session.html", viewer), methods=["GET"]),
    ]
