"""One streamed chat completion through the official ``openai`` SDK, and what its
errors mean for the job.

* 429, and any other refusal that carries ``Retry-After``: :class:`RateLimited` (the job
  waits without spending an attempt, and its queue with it);
* 400, 401, 403, 404, 422 (a bad key, an unknown model, a request the provider will
  never take): :class:`ModelRefused` with the provider's message (final);
* a timeout, a dropped connection, a 5xx without ``Retry-After``: :class:`ModelCallFailed`
  (a retryable failure).
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from athenad.config import LlmConfig
from athenad.errors import AthenaError, FinalFailure, ModelRefused, RateLimited

if TYPE_CHECKING:
    import openai

DEFAULT_RETRY_AFTER_S = 30.0
MAX_RETRY_AFTER_S = 86400.0
FINAL_STATUSES = frozenset({400, 401, 403, 404, 422})


class ModelCallFailed(AthenaError):
    """The model call failed for now (a timeout, a lost connection, a server error)."""


def make_client(settings: LlmConfig) -> openai.OpenAI:
    """A client for ``[llm]``: the key from the variable ``api_key_env`` names.

    ``api_key_env = ""`` is for endpoints that take no key (a local server). The SDK's
    own retries are off: the queue retries, and holds the queue on a rate limit.
    """
    import openai  # imported on first use: it takes a while, and most jobs never call it

    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env)
        if not key:
            raise FinalFailure(
                f"the environment variable {settings.api_key_env} ([llm] api_key_env) is not "
                "set for the workers; set it where athenad starts."
            )
    else:
        key = "none"
    return openai.OpenAI(
        base_url=settings.base_url, api_key=key, timeout=settings.timeout, max_retries=0
    )


def stream_completion(
    client: openai.OpenAI,
    request: dict[str, Any],
    on_text: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Stream one completion and assemble it: ``{"content", "tool_calls", "finish_reason",
    "served_by", "tokens_in", "tokens_out", "usage_reported"}``.

    ``on_text(chars)`` is told how much text has come so far. Provider errors come out
    already mapped (:func:`provider_error`).
    """
    import openai

    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    served_by: str | None = None
    usage: Any = None
    chars = 0
    try:
        with client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        ) as stream:
            for chunk in stream:
                served_by = chunk.model or served_by
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        chars += len(delta.content)
                        if on_text is not None:
                            on_text(chars)
                    for part in delta.tool_calls or []:
                        call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                        if part.id:
                            call["id"] = part.id
                        if part.function is not None:
                            call["name"] += part.function.name or ""
                            call["arguments"] += part.function.arguments or ""
                    finish = choice.finish_reason or finish
    except openai.APIError as exc:
        raise provider_error(exc, client) from exc
    return {
        "content": "".join(text) if text else None,
        "tool_calls": [calls[index] for index in sorted(calls)],
        "finish_reason": finish,
        "served_by": served_by,
        "tokens_in": int(getattr(usage, "prompt_tokens", 0) or 0),
        "tokens_out": int(getattr(usage, "completion_tokens", 0) or 0),
        "usage_reported": usage is not None,
    }


def provider_error(exc: openai.APIError, client: openai.OpenAI) -> AthenaError:
    """What a provider's error means for the job."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ModelCallFailed(f"the model did not answer within {client.timeout} s.")
    if isinstance(exc, openai.APIConnectionError):
        return ModelCallFailed(f"cannot reach {client.base_url}: {exc}")
    if not isinstance(exc, openai.APIStatusError):
        return ModelCallFailed(f"the model's answer broke off: {_message(exc)}")
    status, message = exc.status_code, _message(exc)
    wait = retry_after(exc.response.headers)
    if status == 429 or (wait is not None and status not in FINAL_STATUSES):
        seconds = DEFAULT_RETRY_AFTER_S if wait is None else wait
        return RateLimited(
            seconds, f"the provider answered {status} ({message}); retry after {seconds:g} s"
        )
    if status in FINAL_STATUSES:
        return ModelRefused(f"the provider refused the request ({status}): {message}")
    return ModelCallFailed(f"the provider answered {status}: {message}")


def _message(exc: openai.APIError) -> str:
    """The provider's own words: ``{"error": {"message": ...}}`` when it sent that."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def retry_after(headers: Any) -> float | None:
    """Seconds to wait by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return _bounded(float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(moment.timestamp() - time.time())


def _bounded(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
