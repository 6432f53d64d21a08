"""The Starlette application: pages, the JSON API, and the packaged static files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from athenad.web import api, pages
from athenad.web.responses import json_error, settings_of
from athenad.web.settings import WebSettings

STATIC = Path(__file__).parent / "static"


class Headers(BaseHTTPMiddleware):
    """Headers every answer carries: pages load only this server's own scripts, and no
    other site may frame them (clickjacking a button would be an action)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        allowed = settings_of(request).allowed_hosts
        if allowed is not None and host_name(request.headers.get("host", "")) not in allowed:
            return json_error("this server answers only requests for its own address.", 421)
        response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


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
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Headers)],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.web = web
    return app
