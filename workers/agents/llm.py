"""The built-in ``llm`` agent: a conversation with any OpenAI-compatible endpoint.

``athenactl submit llm --payload '{"prompt": "...", "model": "...", "session": "ID"}'``
(also ``messages``, ``system``, ``max_tokens``, ``temperature``, ``tools``, ``max_turns``).

Each model call and each tool call is a durable step (``ctx.step``): a job run again
after its worker died replays the finished turns from their records and asks the model
only for what it had not answered yet. Each finished part is appended to the job's
session (made when the payload names none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from athenad.errors import AthenaError, FinalFailure
from workers.agents.llm_client import make_client, stream_completion
from workers.agents.llm_payload import LlmRequest, parse_request
from workers.agents.llm_session import Chat, SessionWriter, open_session
from workers.agents.llm_tools import Tool, load_tools, run_tool

if TYPE_CHECKING:
    import openai

    from workers.context import JobContext

PROGRESS_EVERY_S = 0.5


class _Unrecorded(BaseException):
    """Carries a provider's error out of a model step without it being recorded.

    The call did not finish, so the next run must make it again; a recorded failure
    would be replayed instead (a rate-limited job keeps its attempt number). A
    BaseException passes through ``ctx.step`` as a crash would: nothing is written.
    """

    def __init__(self, error: AthenaError) -> None:
        super().__init__(error)
        self.error = error


class Conversation:
    """One job's model <-> tool loop."""

    def __init__(self, ctx: JobContext, request: LlmRequest, tools: dict[str, Tool]) -> None:
        self.ctx = ctx
        self.request = request
        self.tools = tools
        self._client: openai.OpenAI | None = None

    def ask_model(self, turn: int, messages: list[Chat]) -> dict[str, Any]:
        """The model's next answer, as a step; its usage is recorded once, when made."""
        try:
            return dict(self.ctx.step("model", self._call_model, turn, messages))
        except _Unrecorded as carried:
            raise carried.error from None

    def _call_model(self, turn: int, messages: list[Chat]) -> dict[str, Any]:
        ctx, request = self.ctx, self.request
        try:
            ctx.check_budget()
            if self._client is None:
                self._client = make_client(ctx.config.llm)
            answer = stream_completion(self._client, self._wire(messages), self._progress(turn))
        except AthenaError as exc:
            raise _Unrecorded(exc) from exc
        if not answer["usage_reported"]:
            ctx.log.warning("model_usage_missing", model=request.model, turn=turn)
        # Recorded here, inside the step: a replay returns the answer without charging.
        answer["cost_usd"] = ctx.record_usage(
            request.model, answer["tokens_in"], answer["tokens_out"]
        )
        return answer

    def _wire(self, messages: list[Chat]) -> dict[str, Any]:
        request = self.request
        wire: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.max_tokens is not None:
            wire["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            wire["temperature"] = request.temperature
        if self.tools:
            wire["tools"] = [tool.spec() for tool in self.tools.values()]
        return wire

    def _progress(self, turn: int) -> Callable[[int], None]:
        last = 0.0

        def report(chars: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:  # a short write each time: a few a second
                last = now
                self.ctx.progress(None, f"turn {turn}: {chars} characters")

        return report

    def call_tool(self, call: dict[str, str]) -> dict[str, Any]:
        """A tool's result, as a step: a finished tool call never runs again."""
        name = call["name"] or "unnamed"
        return dict(self.ctx.step(f"tool {name}", run_tool, self.tools, name, call["arguments"]))


def llm(ctx: JobContext) -> dict[str, Any]:
    """Talk to the model in ``[llm]`` of athena.toml until it answers without a tool call."""
    config = ctx.config
    request = parse_request(ctx.payload, config.llm, config.tools)
    tools = load_tools(request.tools, config.tools, ctx.home.root)
    chat = Conversation(ctx, request, tools)
    opened = ctx.step(
        "session", open_session, ctx.sessions, request.session or ctx.session_id, ctx.job_id
    )
    session_id = str(opened["id"])
    log = SessionWriter(ctx.sessions, session_id, ctx.job_id)
    messages = _opening(request, opened["history"], log)
    totals = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "tool_calls": 0}
    for turn in range(1, request.max_turns + 1):
        answer = chat.ask_model(turn, messages)
        for key in ("tokens_in", "tokens_out", "cost_usd"):
            totals[key] += answer[key]
        calls = answer["tool_calls"]
        messages.append(_assistant(answer))
        if answer["content"] or not calls:
            log.append(
                f"turn {turn}",
                "assistant",
                answer["content"] or "",
                model=request.model,
                tokens_in=answer["tokens_in"],
                tokens_out=answer["tokens_out"],
                cost_usd=answer["cost_usd"],
            )
        for index, call in enumerate(calls):
            log.append(
                f"turn {turn} call {index}",  # ids may be missing or repeat across providers
                "assistant",
                f"{call['name']}({call['arguments']})",
                tool_call=call,
            )
        if not calls:
            return {
                "content": answer["content"] or "",
                "session": session_id,
                "model": request.model,
                "turns": turn,
                "finish_reason": answer["finish_reason"],
                **totals,
            }
        if turn == request.max_turns:
            break
        for index, call in enumerate(calls):
            result = chat.call_tool(call)
            totals["tool_calls"] += 1
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": result["content"]}
            )
            log.append(
                f"turn {turn} result {index}",
                "tool",
                result["content"],
                tool_call_id=call["id"],
                name=call["name"],
                is_error=bool(result.get("is_error")),
            )
        ctx.progress(None, f"turn {turn}: {len(calls)} tool call(s) answered")
    raise FinalFailure(
        f"the model still asked for tools after {request.max_turns} turns (max_turns); "
        f"the conversation so far is in session {session_id}."
    )


def _opening(request: LlmRequest, history: list[Chat], log: SessionWriter) -> list[Chat]:
    """The messages of the first model call; the new ones go to the session too."""
    messages: list[Chat] = []
    if request.system is not None:
        # The job's system prompt stands in for any the session had; the session keeps
        # it once, not again for each job that gives the same one.
        said = any(m["role"] == "system" and m["content"] == request.system for m in history)
        messages.append({"role": "system", "content": request.system})
        history = [m for m in history if m["role"] != "system"]
        if not said:
            log.append("system", "system", request.system)
    messages.extend(history)
    for index, given in enumerate(request.messages):
        messages.append(dict(given))
        log.append(f"message {index}", given["role"], given["content"])
    if request.prompt is not None:
        messages.append({"role": "user", "content": request.prompt})
        log.append("prompt", "user", request.prompt)
    return messages


def _assistant(answer: dict[str, Any]) -> Chat:
    message: Chat = {"role": "assistant", "content": answer["content"]}
    if answer["tool_calls"]:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in answer["tool_calls"]
        ]
    return message
