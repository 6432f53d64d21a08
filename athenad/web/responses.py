"""JSON responses and the HTTP status of Athena's errors, for the API and the pages."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from athenad.errors import (
    AthenaError,
    DatabaseBusy,
    DatabaseUnusable,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
)
from athenad.web.settings import WebSettings

_encode = msgspec.json.Encoder(enc_hook=str).encode


class Json(Response):
    """A JSON body encoded with msgspec, so the stores' structs and dates encode too."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


def error_status(exc: AthenaError) -> int:
    """404 for an unknown id, 400 for bad input, 409 for a change the job's state refuses."""
    from athenad.storage.sessions.files import SessionNotFound

    if isinstance(exc, JobNotFound | SessionNotFound):
        return 404
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, InvalidTransition):
        return 409
    if isinstance(exc, DatabaseBusy | DatabaseUnusable):
        return 503
    return 400


def error_message(exc: AthenaError) -> str:
    return str(getattr(exc, "message", None) or exc)


def json_error(message: str, status: int) -> Json:
    return Json({"error": message}, status_code=status)


def settings_of(request: Request) -> WebSettings:
    web: WebSettings = request.app.state.web
    return web


def query(request: Request) -> dict[str, str]:
    """The query parameters, the last of a repeated one winning."""
    return dict(request.query_params.items())


async def form_lists(request: Request) -> dict[str, list[str]]:
    """A urlencoded form's fields with every value of a repeated one."""
    from urllib.parse import parse_qs

    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form's fields, the last of a repeated one winning.

    Parsed here rather than by Starlette, which needs python-multipart for any form:
    the dashboard's forms send no files.
    """
    from urllib.parse import parse_qsl

    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))
