"""The Starlette application: pages, the JSON API, and the packaged static files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athenad.web import api, data, pages
from athenad.web.responses import json_error
from athenad.web.settings import WebSettings

STATIC = Path(__file__).parent / "static"


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class Guard:
    """Pages load only this server's own scripts and no other site may frame them (a
    clickjacked button would be an action); a loopback server answers only loopback
    names. Plain ASGI, so event streams pass through untouched and see disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        web: WebSettings = scope["app"].state.web  # Starlette puts itself in the scope
        allowed = web.allowed_hosts
        if allowed is not None:
            host = Headers(scope=scope).get("host", "")
            if host_name(host) not in allowed:
                refusal = json_error("this server answers only requests for its own address.", 421)
                await refusal(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8765`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return json_error("there is no such endpoint.", 404)
    return pages.not_found(request)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return json_error(f"{request.method} is not allowed here.", 405)


def build_app(web: WebSettings) -> Starlette:
    """The dashboard of ``web.home`` (or its database_url)."""
    routes = [
        *api.routes(),
        *pages.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        data.close_shared(web)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Guard)],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.web = web
    return app
