"""The ``llm`` agent's payload, checked: one clear sentence for whatever is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from athenad.config import LlmConfig
from athenad.errors import FinalFailure, InvalidInput

KEYS = (
    "prompt",
    "messages",
    "system",
    "model",
    "max_tokens",
    "temperature",
    "tools",
    "max_turns",
    "session",
)
MESSAGE_ROLES = ("system", "user", "assistant")


class BadPayload(InvalidInput, FinalFailure):
    """The llm job's payload is not valid (the job fails without a retry)."""


@dataclass(frozen=True)
class LlmRequest:
    """What one ``llm`` job asks for."""

    model: str
    prompt: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: list[str] = field(default_factory=list)
    max_turns: int = 10
    session: str | None = None


def parse_request(payload: Any, settings: LlmConfig, tools: Mapping[str, str]) -> LlmRequest:
    """Check the payload (a prompt as plain text is allowed) against ``[llm]``/``[tools]``."""
    if isinstance(payload, str):
        payload = {"prompt": payload}
    if not isinstance(payload, dict):
        raise BadPayload('llm needs a payload object: {"prompt": "...", "model": "..."}.')
    unknown = sorted(set(payload) - set(KEYS))
    if unknown:
        raise BadPayload(
            f"llm does not know payload key {unknown[0]!r}; it knows {', '.join(KEYS)}."
        )
    prompt = _text(payload, "prompt")
    messages = _messages(payload.get("messages"))
    if prompt is None and not messages:
        raise BadPayload('llm needs {"prompt": "..."} or {"messages": [...]} in its payload.')
    model = _text(payload, "model") or settings.model
    if not model:
        raise BadPayload(
            'llm needs a model: give "model" in the payload or set model in [llm] of athena.toml.'
        )
    names = payload.get("tools") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BadPayload('"tools" must be a list of tool names from [tools] of athena.toml.')
    for name in names:
        if name not in tools:
            known = ", ".join(sorted(tools)) or "none"
            raise BadPayload(
                f"tool {name!r} is not registered in [tools] of athena.toml; registered: {known}."
            )
    return LlmRequest(
        model=model,
        prompt=prompt,
        messages=messages,
        system=_text(payload, "system"),
        max_tokens=_whole(payload, "max_tokens", 1, 10_000_000),
        temperature=_number(payload, "temperature", 0.0, 2.0),
        tools=list(dict.fromkeys(names)),
        max_turns=_whole(payload, "max_turns", 1, 1000) or settings.max_turns,
        session=_text(payload, "session"),
    )


def _text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadPayload(f'"{key}" must be non-empty text, not {value!r}.')
    return value


def _whole(payload: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadPayload(f'"{key}" must be a whole number from {low} to {high:,}, not {value!r}.')
    return value


def _number(payload: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadPayload(f'"{key}" must be a number from {low:g} to {high:g}, not {value!r}.')
    return float(value)


def _messages(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayload('"messages" must be a list of {"role": ..., "content": ...} objects.')
    messages = []
    for index, item in enumerate(value):
        role = item.get("role") if isinstance(item, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if role not in MESSAGE_ROLES or not isinstance(content, str):
            raise BadPayload(
                f'messages[{index}] must be {{"role": one of {", ".join(MESSAGE_ROLES)}, '
                f'"content": text}}, not {item!r}.'
            )
        messages.append({"role": role, "content": content})
    return messages
