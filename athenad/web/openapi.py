"""``/api/openapi.json``: the API described from its own routes, so it cannot drift.

Paths, methods and summaries come from the routes and their endpoints' docstrings;
query parameters from QUERY below, which a test checks against the routes.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from athenad.web.responses import Json

_TEXT: dict[str, Any] = {"type": "string"}
_WHOLE: dict[str, Any] = {"type": "integer", "minimum": 0}
JOB_FILTERS: dict[str, dict[str, Any]] = {
    "status": _TEXT,
    "type": _TEXT,
    "agent": _TEXT,
    "queue": _TEXT,
    "q": _TEXT,
    "limit": _WHOLE,
    "offset": _WHOLE,
    "page": _WHOLE,
}
QUERY: dict[str, dict[str, dict[str, Any]]] = {
    "/api/jobs": JOB_FILTERS,
    "/api/jobs/{job_id}/logs": {"after": _WHOLE, "limit": _WHOLE},
    "/api/jobs/{job_id}/stream": {"after": _WHOLE, "limit": _WHOLE},
    "/api/stats": {"since": _TEXT, "by": {"type": "string", "enum": ["agent", "model"]}},
    "/api/trends": {"since": _TEXT, "bucket": {"type": "string", "enum": ["hour", "day"]}},
    "/api/failed": {"since": _TEXT, "limit": _WHOLE},
    "/api/failed/groups": {"since": _TEXT},
    "/api/events": {"limit": _WHOLE},
    "/metrics": {"window": _TEXT},
    "/api/sessions": {"q": _TEXT, "branch": _TEXT},
    "/api/sessions/{session_id}/export": {
        "format": {"type": "string", "enum": ["jsonl", "md", "json"]}
    },
}
ERROR = {
    "description": "One sentence saying what is wrong.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}


def _media(path: str) -> str:
    if path.endswith(("/stream", "/events")):
        return "text/event-stream"
    if path.endswith("/export"):
        return "application/x-ndjson"
    return "text/plain" if path == "/metrics" else "application/json"


def document(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API routes among ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not route.path.startswith(("/api/", "/healthz", "/metrics")):
            continue
        doc = (route.endpoint.__doc__ or "").strip()
        for method in sorted((route.methods or set()) - {"HEAD"}):
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": _TEXT}
                for name in re.findall(r"{(\w+)}", route.path)
            ]
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in QUERY.get(route.path, {}).items()
            ]
            operation: dict[str, Any] = {
                "summary": " ".join(doc.split("\n\n")[0].split()),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "OK", "content": {_media(route.path): {}}},
                    "400": ERROR,
                    "404": ERROR,
                },
            }
            if method == "POST":
                operation["security"] = [{"token": []}]
                operation["responses"]["403"] = ERROR
                operation["responses"]["409"] = ERROR
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Athena", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ATHENA_WEB_TOKEN, with athenactl web --allow-actions.",
                }
            }
        },
    }


def endpoint(routes: list[Route]) -> Any:
    """The endpoint serving the document of ``routes``, built when first asked for (so
    the list may include the endpoint's own route)."""
    spec: dict[str, Any] = {}

    def openapi(request: Request) -> Json:
        """The OpenAPI document of this API."""
        if not spec:
            spec.update(document(routes))
        return Json(spec)

    return openapi
