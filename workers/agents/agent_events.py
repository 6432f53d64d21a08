"""Coding agents' JSON events as session messages.

Read here: Claude Code's ``--output-format stream-json`` events and its transcript lines
(``~/.claude/projects/*/*.jsonl``), which carry the same Anthropic messages, and Codex's
``exec --json`` events. Each becomes :class:`Entry` values, one per session message:

* ``role`` user, assistant, system or tool; ``content`` text;
* ``metadata["kind"]``: ``text``, ``thinking``, ``tool_use`` (content: the tool's input
  as JSON; ``tool``, ``tool_use_id``), ``tool_result`` (content: the output;
  ``tool_use_id``, ``is_error`` when true), ``summary``, ``error``, ``event`` (a known
  event that is no message: content is the event's JSON) or ``raw`` (a line or block
  not understood: content is its text, kept whole).

Nothing is dropped except a stream's in-progress updates (Codex ``item.updated``,
``item.started`` of items whose completion follows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT_BYTES = 1 << 20


@dataclass
class Entry:
    """One session message to be."""

    role: str
    content: str
    metadata: dict[str, Any]
    timestamp: str | None = None  # an ISO 8601 time, from a transcript

    def stored_metadata(self) -> dict[str, Any]:
        """The metadata as a session keeps it: keys without a value left out."""
        return {key: value for key, value in self.metadata.items() if value is not None}


@dataclass
class Usage:
    """One model's tokens (and cost when the agent said it) from one event."""

    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None = None


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)


def dumps(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _event(raw: str, name: str, kind: str = "event") -> Entry:
    """A whole event kept as a system message: its JSON is the content."""
    return Entry("system", raw, {"kind": kind, "event": name})


# ---- Anthropic message content (Claude Code's stream and transcripts) ----------------


def result_text(content: Any) -> str:
    """A tool result's content as text: a string, the text of text blocks, else JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in content
    ):
        return "\n".join(b["text"] for b in content)
    return dumps(content)


def block_entries(role: str, content: Any) -> list[Entry]:
    """The entries of a message's content: a string, or a list of content blocks."""
    if isinstance(content, str):
        return [Entry(role, content, {"kind": "text"})]
    if not isinstance(content, list):
        return [Entry(role, dumps(content), {"kind": "raw"})]
    entries = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            entries.append(Entry(role, block["text"], {"kind": "text"}))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            entries.append(Entry(role, block["thinking"], {"kind": "thinking"}))
        elif kind in ("tool_use", "server_tool_use") and isinstance(block.get("name"), str):
            meta = {"kind": "tool_use", "tool": block["name"], "tool_use_id": block.get("id")}
            entries.append(Entry(role, dumps(block.get("input", {})), meta))
        elif kind == "tool_result":
            meta = {"kind": "tool_result", "tool_use_id": block.get("tool_use_id")}
            if block.get("is_error") is True:
                meta["is_error"] = True
            entries.append(Entry("tool", result_text(block.get("content")), meta))
        else:  # images, redacted thinking, blocks of later versions: kept as they came
            entries.append(Entry(role, dumps(block), {"kind": "raw", "block": kind}))
    return entries


def claude_usage(usage: Any, model: str, cost: float | None = None) -> Usage | None:
    """Tokens of an Anthropic ``usage`` object; input counts cache writes and reads."""
    if not isinstance(usage, dict):
        return None
    tokens_in = sum(
        _int(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(model, tokens_in, _int(usage.get("output_tokens")), cost)


def _cost(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else None


# ---- streams ----------------------------------------------------------------------------


class EventParser:
    """Reads an agent's stdout line by line; keeps its final message, error, usage."""

    def __init__(self, model: str) -> None:
        self.model = model  # reported with usage when the events name none
        self.final: str | None = None
        self.error: str | None = None
        self.agent_session: str | None = None  # the agent's own id of its session

    def feed(self, line: bytes) -> Parsed:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            return Parsed()
        try:
            obj = json.loads(text)
        except ValueError:
            return Parsed([Entry("system", text, {"kind": "raw", "event": "output"})])
        if not isinstance(obj, dict):
            return Parsed([Entry("system", text, {"kind": "raw"})])
        return self.event(obj, text)

    def event(self, obj: dict[str, Any], raw: str) -> Parsed:
        return Parsed([_event(raw, str(obj.get("type")), "raw")])

    def finish(self) -> Parsed:
        """What the end of the output adds (usage never reported, collected text)."""
        return Parsed()


class ClaudeStreamParser(EventParser):
    """``claude -p --output-format stream-json --verbose``: system/init, assistant and
    user messages, then a result with the final text, usage and total cost."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._message_usage: dict[str, Usage] = {}  # by message id: a message repeats it
        self._result_seen = False

    def event(self, obj: dict[str, Any], raw: str) -> Parsed:
        kind = obj.get("type")
        if kind == "system":
            if obj.get("subtype") == "init":
                model = obj.get("model")
                self.model = model if isinstance(model, str) and model else self.model
                self.agent_session = obj.get("session_id") or self.agent_session
            entry = _event(raw, "system")
            entry.metadata["subtype"] = obj.get("subtype")
            return Parsed([entry])
        message = obj.get("message")
        if kind in ("assistant", "user") and isinstance(message, dict):
            return Parsed(self._message(kind, message, obj.get("parent_tool_use_id")))
        if kind == "result":
            return self._result(obj, raw)
        return super().event(obj, raw)

    def _message(self, role: str, message: dict[str, Any], parent: Any) -> list[Entry]:
        entries = block_entries(role, message.get("content"))
        model = message.get("model") if isinstance(message.get("model"), str) else None
        for entry in entries:
            if parent:
                entry.metadata["parent_tool_use_id"] = parent  # a subagent's message
            if model and role == "assistant":
                entry.metadata["model"] = model
        if role == "assistant":
            usage = claude_usage(message.get("usage"), model or self.model)
            if usage is not None:
                self._message_usage[str(message.get("id"))] = usage
            texts = [e.content for e in entries if e.metadata["kind"] == "text"]
            if texts and not parent:
                self.final = texts[-1]
        return entries

    def _result(self, obj: dict[str, Any], raw: str) -> Parsed:
        self._result_seen = True
        if isinstance(obj.get("result"), str):
            self.final = obj["result"]
        if obj.get("is_error") is True:
            reported = f"claude reported {obj.get('subtype') or 'an error'}"
            self.error = f"{reported}: {self.final}" if self.final else reported
        self.agent_session = obj.get("session_id") or self.agent_session
        entry = _event(raw, "result")
        return Parsed([entry], self._result_usage(obj))

    def _result_usage(self, obj: dict[str, Any]) -> list[Usage]:
        by_model = obj.get("modelUsage")
        if isinstance(by_model, dict) and by_model:
            found = []
            for model, usage in by_model.items():
                if not isinstance(usage, dict):
                    continue
                tokens_in = sum(
                    _int(usage.get(k))
                    for k in ("inputTokens", "cacheCreationInputTokens", "cacheReadInputTokens")
                )
                found.append(
                    Usage(
                        model,
                        tokens_in,
                        _int(usage.get("outputTokens")),
                        _cost(usage.get("costUSD")),
                    )
                )
            # The main model last: the job's row shows the model it used last.
            found.sort(key=lambda u: u.model == self.model)
            if found:
                return found
        usage = claude_usage(obj.get("usage"), self.model, _cost(obj.get("total_cost_usd")))
        return [usage] if usage is not None else []

    def finish(self) -> Parsed:
        if self._result_seen or not self._message_usage:
            return Parsed()
        # Stopped before its result: the tokens its messages reported were still spent.
        totals: dict[str, Usage] = {}
        for usage in self._message_usage.values():
            total = totals.setdefault(usage.model, Usage(usage.model, 0, 0))
            total.tokens_in += usage.tokens_in
            total.tokens_out += usage.tokens_out
        return Parsed(usage=list(totals.values()))


class CodexParser(EventParser):
    """``codex exec --json``: thread, turn and item events; usage on ``turn.completed``
    (and on ``token_count`` events of earlier versions)."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._started: set[str] = set()

    def event(self, obj: dict[str, Any], raw: str) -> Parsed:
        kind = obj.get("type")
        if kind is None and isinstance(obj.get("msg"), dict):
            return self._legacy(obj["msg"], raw)
        item = obj.get("item")
        if kind in ("item.started", "item.updated", "item.completed") and isinstance(item, dict):
            return Parsed(self._item(kind, item, raw))
        if kind == "thread.started":
            self.agent_session = obj.get("thread_id") or self.agent_session
            return Parsed([_event(raw, kind)])
        if kind in ("turn.started", "turn.completed", "token_count"):
            usage = obj.get("usage") if kind == "turn.completed" else obj
            return Parsed([_event(raw, kind)], self._usage(usage))
        if kind in ("turn.failed", "error"):
            error = obj.get("error")
            message = error.get("message") if isinstance(error, dict) else obj.get("message")
            self.error = str(message or kind)
            return Parsed([Entry("system", self.error, {"kind": "error", "event": kind})])
        return super().event(obj, raw)

    def _usage(self, usage: Any) -> list[Usage]:
        if not isinstance(usage, dict) or "input_tokens" not in usage:
            return []
        # OpenAI's input_tokens already include the cached ones.
        return [
            Usage(self.model, _int(usage.get("input_tokens")), _int(usage.get("output_tokens")))
        ]

    def _item(self, kind: str, item: dict[str, Any], raw: str) -> list[Entry]:
        item_type, item_id = item.get("type"), str(item.get("id"))
        if kind != "item.completed":
            if kind == "item.started" and item_type in ("command_execution", "mcp_tool_call"):
                self._started.add(item_id)
                return [self._tool_use(item)]
            return []  # progress of an item whose completed form follows
        entries = []
        if item_type == "agent_message" and isinstance(item.get("text"), str):
            self.final = item["text"]
            entries.append(Entry("assistant", item["text"], {"kind": "text"}))
        elif item_type == "reasoning" and isinstance(item.get("text"), str):
            entries.append(Entry("assistant", item["text"], {"kind": "thinking"}))
        elif item_type in ("command_execution", "mcp_tool_call"):
            if item_id not in self._started:
                entries.append(self._tool_use(item))
            entries.append(self._tool_result(item))
        elif item_type == "file_change":
            changes = item.get("changes")
            changes = changes if isinstance(changes, list) else []
            text = "\n".join(
                f"{c.get('kind')} {c.get('path')}" for c in changes if isinstance(c, dict)
            )
            meta = {"kind": "tool_result", "tool": "file_change", "status": item.get("status")}
            entries.append(Entry("tool", text, meta))
        elif item_type == "web_search":
            meta = {"kind": "tool_use", "tool": "web_search", "tool_use_id": item_id}
            entries.append(Entry("assistant", str(item.get("query", "")), meta))
        elif item_type == "error":
            entries.append(Entry("system", str(item.get("message", "")), {"kind": "error"}))
        else:  # todo lists and item types of later versions
            entries.append(Entry("system", raw, {"kind": "raw", "event": f"item:{item_type}"}))
        return entries

    @staticmethod
    def _tool_use(item: dict[str, Any]) -> Entry:
        if item.get("type") == "command_execution":
            tool, content = "shell", str(item.get("command", ""))
        else:
            tool = f"{item.get('server')}/{item.get('tool')}"
            content = dumps(item.get("arguments", {}))
        return Entry(
            "assistant", content, {"kind": "tool_use", "tool": tool, "tool_use_id": item.get("id")}
        )

    @staticmethod
    def _tool_result(item: dict[str, Any]) -> Entry:
        meta: dict[str, Any] = {"kind": "tool_result", "tool_use_id": item.get("id")}
        if item.get("type") == "command_execution":
            content = str(item.get("aggregated_output") or "")
            meta["exit_code"] = item.get("exit_code")
            failed = item.get("exit_code") not in (0, None)
        else:
            error = item.get("error")
            content = result_text(item.get("result")) if error is None else str(error)
            failed = error is not None
        if failed or item.get("status") == "failed":
            meta["is_error"] = True
        return Entry("tool", content, meta)

    def _legacy(self, msg: dict[str, Any], raw: str) -> Parsed:
        """Codex before the thread/turn/item events: ``{"id": .., "msg": {...}}``."""
        kind = msg.get("type")
        if kind == "agent_message" and isinstance(msg.get("message"), str):
            self.final = msg["message"]
            return Parsed([Entry("assistant", msg["message"], {"kind": "text"})])
        if kind == "token_count":
            return Parsed([_event(raw, kind)], self._usage(msg))
        if kind == "task_complete" and isinstance(msg.get("last_agent_message"), str):
            self.final = msg["last_agent_message"]
        if kind == "error":
            self.error = str(msg.get("message") or kind)
        return Parsed([_event(raw, f"msg:{kind}", "raw")])


class TextParser(EventParser):
    """Any command: its whole standard output (up to 1 MiB, the end kept) is the answer."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._lines: list[str] = []
        self._size = 0

    def feed(self, line: bytes) -> Parsed:
        self._lines.append(line.decode("utf-8", errors="replace"))
        self._size += len(line) + 1
        while self._size > MAX_TEXT_BYTES and len(self._lines) > 1:
            self._size -= len(self._lines.pop(0).encode()) + 1
        return Parsed()

    def finish(self) -> Parsed:
        text = "\n".join(self._lines).strip("\n")
        self.final = text
        return Parsed([Entry("assistant", text, {"kind": "text"})] if text else [])


PARSERS: dict[str, type[EventParser]] = {
    "claude-stream-json": ClaudeStreamParser,
    "codex-json": CodexParser,
    "text": TextParser,
}


# ---- Claude Code transcripts ------------------------------------------------------------


def transcript_entries(obj: dict[str, Any], raw: str) -> list[Entry]:
    """The entries of one line of a Claude Code transcript (its timestamp on each).

    user and assistant lines give their message's blocks (with ``uuid``,
    ``parent_uuid``, and the model and ``usage`` on an assistant line's first entry);
    summary and system lines one system entry; any other line one raw entry.
    """
    kind = obj.get("type")
    stamp = obj.get("timestamp") if isinstance(obj.get("timestamp"), str) else None
    message = obj.get("message")
    if kind in ("user", "assistant") and isinstance(message, dict):
        entries = block_entries(kind, message.get("content"))
        for entry in entries:
            entry.metadata["uuid"] = obj.get("uuid")
            if obj.get("parentUuid"):
                entry.metadata["parent_uuid"] = obj["parentUuid"]
            for key, name in (("isSidechain", "sidechain"), ("isMeta", "meta")):
                if obj.get(key) is True:
                    entry.metadata[name] = True
        if entries and kind == "assistant":
            # Claude Code writes one line per block, each repeating its message's usage:
            # the message id tells repeats apart.
            first = entries[0].metadata
            for key, name in (("model", "model"), ("id", "message_id"), ("usage", "usage")):
                if message.get(key) is not None:
                    first[name] = message[key]
    elif kind == "summary" and isinstance(obj.get("summary"), str):
        meta = {"kind": "summary", "leaf_uuid": obj.get("leafUuid")}
        entries = [Entry("system", obj["summary"], meta)]
    elif kind == "system" and isinstance(obj.get("content"), str):
        meta = {"kind": "text", "subtype": obj.get("subtype"), "uuid": obj.get("uuid")}
        entries = [Entry("system", obj["content"], meta)]
    else:
        entries = [Entry("system", raw, {"kind": "raw", "event": kind})]
    for entry in entries:
        entry.timestamp = stamp
    return entries


def count_raw(entries: Iterable[Entry]) -> int:
    return sum(1 for e in entries if e.metadata.get("kind") == "raw")
