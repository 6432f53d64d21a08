"""The ``llm`` agent's parts without a daemon: tool schemas, payload checks, sessions as
chat, and the SDK's requests and errors against the test server over real HTTP."""

from __future__ import annotations

import enum
from typing import Any, Literal

import pytest

from athenad.config import LlmConfig
from athenad.errors import FinalFailure, ModelRefused, RateLimited
from athenad.storage.sessions import SessionManager
from tests.support.fake_openai import FakeOpenAI
from workers.agents.llm_client import (
    ModelCallFailed,
    make_client,
    retry_after,
    stream_completion,
)
from workers.agents.llm_payload import BadPayload, parse_request
from workers.agents.llm_session import SessionWriter, open_session, to_chat
from workers.agents.llm_tools import Tool as ToolSpec
from workers.agents.llm_tools import ToolError, function_schema, json_schema, run_tool

pytestmark = pytest.mark.timeout(60)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def search(
    query: str,
    limit: int = 10,
    tags: list[str] | None = None,
    exact: bool = False,
    colour: Colour = Colour.RED,
    mode: Literal["fast", "deep"] = "fast",
    extra: dict[str, float] | None = None,
    **rest: Any,
) -> list[str]:
    """Search the notes.

    Longer text about searching.

    Args:
        query: what to look for.
        limit: at most this many
            results.
        tags (list): only notes with these tags.

    Returns:
        the matching notes.
    """
    return [query] * limit


def test_a_schema_comes_from_the_signature_and_the_docstring() -> None:
    schema = function_schema("search", search)
    assert schema["name"] == "search"
    assert schema["description"] == "Search the notes. Longer text about searching."
    params = schema["parameters"]
    assert params["required"] == ["query"]
    assert params["properties"] == {
        "query": {"type": "string", "description": "what to look for."},
        "limit": {"type": "integer", "description": "at most this many results.", "default": 10},
        "tags": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "only notes with these tags.",
            "default": None,
        },
        "exact": {"type": "boolean", "default": False},
        "colour": {"enum": ["red", "blue"], "default": "red"},
        "mode": {"enum": ["fast", "deep"], "default": "fast"},
        "extra": {
            "type": ["object", "null"],
            "additionalProperties": {"type": "number"},
            "default": None,
        },
    }


def test_sphinx_docstrings_unions_and_explicit_schemas() -> None:
    def scale(x: float, by: int | str = 2) -> float:
        """Scale a number.

        :param x: the number.
        :param by: the factor.
        """
        return x

    params = function_schema("scale", scale)["parameters"]
    assert params["properties"]["x"] == {"type": "number", "description": "the number."}
    assert params["properties"]["by"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]

    def raw(**kwargs: Any) -> None:
        """Raw."""

    raw.schema = {"type": "object", "properties": {"q": {"type": "string"}}}  # type: ignore[attr-defined]
    assert function_schema("raw", raw)["parameters"] == raw.schema  # type: ignore[attr-defined]
    assert json_schema(Any) == {} and json_schema(tuple[int, ...]) == {
        "type": "array",
        "items": {"type": "integer"},
    }


def test_a_parameter_json_cannot_carry_is_refused_clearly() -> None:
    def bad(when: complex) -> None:
        """Bad."""

    with pytest.raises(ToolError, match="parameter 'when' has type <class 'complex'>"):
        function_schema("bad", bad)


def test_a_tool_error_goes_back_to_the_model() -> None:
    def divide(a: int, b: int) -> float:
        return a / b

    tools = {"divide": ToolSpec("divide", divide, function_schema("divide", divide))}
    assert run_tool(tools, "divide", '{"a": 6, "b": 3}') == {"content": "2.0"}
    assert run_tool(tools, "divide", '{"a": 1, "b": 0}') == {
        "content": "error: ZeroDivisionError: division by zero",
        "is_error": True,
    }
    assert run_tool(tools, "divide", "{oops")["content"].startswith("error: the arguments are")
    assert run_tool(tools, "nope", "{}")["content"] == (
        "error: there is no tool named 'nope'; the tools are: divide."
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, 'llm needs {"prompt": "..."} or {"messages": [...]} in its payload.'),
        ([1], 'llm needs a payload object: {"prompt": "...", "model": "..."}.'),
        ({"prompt": ""}, "\"prompt\" must be non-empty text, not ''."),
        ({"prompt": "x", "max_tokens": 0}, '"max_tokens" must be a whole number from 1'),
        ({"prompt": "x", "temperature": 3}, '"temperature" must be a number from 0 to 2, not 3.'),
        ({"prompt": "x", "tools": ["rm"]}, "tool 'rm' is not registered in [tools] of athena.toml"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 'messages[0] must be {"role"'),
    ],
)
def test_a_bad_payload_is_one_clear_final_error(payload: Any, message: str) -> None:
    settings = LlmConfig(model="m")
    with pytest.raises(BadPayload) as caught:
        parse_request(payload, settings, {"add": "tools:add"})
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, FinalFailure)


def test_a_model_is_needed_and_plain_text_is_a_prompt() -> None:
    with pytest.raises(BadPayload, match='give "model" in the payload or set model in'):
        parse_request({"prompt": "hi"}, LlmConfig(), {})
    request = parse_request("hi", LlmConfig(model="m", max_turns=4), {})
    assert (request.prompt, request.model, request.max_turns) == ("hi", "m", 4)


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_a_session_reads_back_as_chat_and_parts_are_appended_once(tmp_path) -> None:
    store = SessionManager(tmp_path)
    opened = open_session(store, None, "job-1")
    writer = SessionWriter(store, opened["id"], "job-1")
    writer.append("prompt", "user", "add 1 and 2")
    call = {"id": "c1", "name": "add", "arguments": '{"a": 1, "b": 2}'}
    writer.append("turn 1 call c1", "assistant", "add(...)", tool_call=call)
    writer.append("turn 1 result c1", "tool", "3", tool_call_id="c1", name="add")
    writer.append("turn 2", "assistant", "3")
    # A rerun of the same job appends nothing it already appended.
    again = SessionWriter(store, opened["id"], "job-1")
    for part in ("prompt", "turn 1 call c1", "turn 2"):
        again.append(part, "user", "dup")
    store.add_message(opened["id"], "tool", "imported result")
    assert to_chat(store.get_messages(opened["id"])) == [
        {"role": "user", "content": "add 1 and 2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "assistant", "content": "3"},
        {"role": "user", "content": "(tool result) imported result"},
    ]
    with pytest.raises(BadPayload, match="session 'session-nope' does not exist."):
        open_session(store, "session-nope", "job-2")


# ---- the SDK against the server -----------------------------------------------------


@pytest.fixture
def server():
    with FakeOpenAI(api_key="k", models=("fake-1",)) as running:
        yield running


def client_for(server: FakeOpenAI, monkeypatch, key: str = "k", timeout: float = 2):
    monkeypatch.setenv("LLM_TEST_KEY", key)
    return make_client(
        LlmConfig(base_url=server.base_url, api_key_env="LLM_TEST_KEY", timeout=timeout)
    )


def ask(client, text: str = "hi", model: str = "fake-1") -> dict:
    return stream_completion(
        client, {"model": model, "messages": [{"role": "user", "content": text}]}
    )


def test_a_streamed_answer_is_assembled_with_its_usage(server, monkeypatch) -> None:
    client = client_for(server, monkeypatch)
    seen: list[int] = []
    answer = stream_completion(
        client,
        {"model": "fake-1", "messages": [{"role": "user", "content": "one two three"}]},
        seen.append,
    )
    assert answer["content"] == "You said: one two three"
    assert (answer["tokens_in"], answer["tokens_out"], answer["usage_reported"]) == (3, 5, True)
    assert seen[-1] == len(answer["content"])
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    call = stream_completion(
        client,
        {
            "model": "fake-1",
            "messages": [{"role": "user", "content": 'call add {"a": 1}'}],
            "tools": tools,
        },
    )
    assert call["tool_calls"] == [{"id": "call-1", "name": "add", "arguments": '{"a": 1}'}]
    assert call["finish_reason"] == "tool_calls" and call["content"] is None


def test_provider_errors_mean_wait_retry_or_give_up(server, monkeypatch) -> None:
    client = client_for(server, monkeypatch)
    server.fail_next(429, retry_after="3")
    with pytest.raises(RateLimited) as limited:
        ask(client)
    assert limited.value.retry_after == 3.0
    server.fail_next(429)
    with pytest.raises(RateLimited) as limited:
        ask(client)
    assert limited.value.retry_after == 30.0  # no Retry-After: a default wait
    server.fail_next(503, retry_after="1")
    with pytest.raises(RateLimited):
        ask(client)
    server.fail_next(500)
    with pytest.raises(ModelCallFailed, match="the provider answered 500: scripted failure 500"):
        ask(client)
    with pytest.raises(ModelRefused, match=r"\(404\): The model `other` does not exist."):
        ask(client, model="other")
    server.slow_next(2)
    with pytest.raises(ModelCallFailed, match="did not answer within 0.5 s"):
        ask(client_for(server, monkeypatch, timeout=0.5))
    with pytest.raises(ModelRefused, match=r"\(401\): Incorrect API key provided."):
        ask(client_for(server, monkeypatch, key="wrong"))
    assert len(server.chat_requests()) == 7  # the SDK's own retries are off


def test_a_missing_key_variable_is_a_final_failure(monkeypatch) -> None:
    monkeypatch.delenv("LLM_TEST_NO_KEY", raising=False)
    with pytest.raises(FinalFailure, match="LLM_TEST_NO_KEY .* is not set for the workers"):
        make_client(LlmConfig(api_key_env="LLM_TEST_NO_KEY"))
    assert make_client(LlmConfig(api_key_env="")).api_key == "none"
