"""A small OpenAI-compatible chat completions server for tests (standard library only).

It answers ``POST /v1/chat/completions`` over real HTTP on 127.0.0.1, streamed (SSE
``data: {...}`` chunks, usage in the last one when asked, then ``data: [DONE]``) or not,
and logs every request (``server.requests``, or ``GET /_log``).

The model is deterministic. It reads the last user message; each of its lines
``call NAME {json}`` is a tool call the model makes, one per turn, when the request
offers tools; then it answers ``You said: <message>`` (plus ``| tool results: ...``
when tools answered). Usage: a token per word of the request, a token per word of the
answer (5 for a tool call).

Scripted trouble: ``fail_next(status, retry_after=...)`` (429, 500, ...), ``slow_next``
(a delay before the answer), ``hold(n)`` (request n waits until ``release()``); a key
other than ``api_key`` gets 401 and a model not in ``models`` 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL_CALL_TOKENS = 5
HOLD_LIMIT_S = 60.0


@dataclass
class Fault:
    """What the server does to one upcoming chat request."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0


def words(text: str | None) -> int:
    return len((text or "").split())


def plan_of(prompt: str) -> list[tuple[str, str]]:
    """The tool calls a prompt asks for: lines ``call NAME {json}``."""
    calls = []
    for line in prompt.splitlines():
        parts = line.strip().split(" ", 2)
        if len(parts) >= 2 and parts[0] == "call":
            calls.append((parts[1], parts[2] if len(parts) == 3 else "{}"))
    return calls


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The deterministic model: ``{"content": ..., "tool_calls": [...]}``."""
    messages = body.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    prompt = str(messages[last_user].get("content") or "") if last_user >= 0 else ""
    results = [str(m.get("content")) for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    plan = plan_of(prompt) if body.get("tools") else []
    if len(results) < len(plan):
        name, arguments = plan[len(results)]
        call = {"id": f"call-{len(results) + 1}", "name": name, "arguments": arguments}
        return {"content": None, "tool_calls": [call]}
    text = f"You said: {prompt}"
    if results:
        text += " | tool results: " + ", ".join(results)
    return {"content": text, "tool_calls": []}


def usage(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, int]:
    prompt_tokens = sum(words(str(m.get("content") or "")) for m in body.get("messages") or [])
    completion = TOOL_CALL_TOKENS if reply["tool_calls"] else words(reply["content"])
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def stream_chunks(body: dict[str, Any], reply: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The answer as chat.completion.chunk objects, split the way real servers split."""
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
    base["model"] = body.get("model")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if reply["content"]:
        pieces = reply["content"].split(" ")
        for index, piece in enumerate(pieces):
            yield chunk({"content": piece if index == 0 else " " + piece})
    for index, call in enumerate(reply["tool_calls"]):
        head = {"id": call["id"], "type": "function", "function": {"name": call["name"]}}
        yield chunk({"tool_calls": [{"index": index, **head}]})
        half = len(call["arguments"]) // 2
        for part in (call["arguments"][:half], call["arguments"][half:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, "tool_calls" if reply["tool_calls"] else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": usage(body, reply)}


def completion(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply["content"]}
    if reply["tool_calls"]:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in reply["tool_calls"]
        ]
    finish = "tool_calls" if reply["tool_calls"] else "stop"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(body, reply),
    }


class FakeOpenAI:
    """The server, serving from a thread; ``with FakeOpenAI() as server: ...``."""

    def __init__(self, api_key: str = "test-key", models: tuple[str, ...] = ("fake-1",)) -> None:
        self.api_key = api_key
        self.models = set(models)
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        self._holds: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ---- scripting ------------------------------------------------------------------

    def fail_next(self, status: int, retry_after: str | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(status=status, retry_after=retry_after))

    def slow_next(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(delay=seconds))

    def hold(self, number: int) -> None:
        """Chat request ``number`` (1 for the first) waits until :meth:`release`."""
        self._holds[number] = threading.Event()

    def release(self) -> None:
        for event in self._holds.values():
            event.set()

    # ---- the log --------------------------------------------------------------------

    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.requests if r["path"].endswith("/chat/completions")]

    def wait_for_requests(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.chat_requests()
            if len(seen) >= count:
                return seen
            time.sleep(0.02)
        raise AssertionError(f"the server saw {len(self.chat_requests())} of {count} requests")

    def _log(self, entry: dict[str, Any]) -> int:
        with self._lock:
            entry["n"] = len(self.requests) + 1
            self.requests.append(entry)
            return int(entry["n"])

    def _chat_number(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["path"].endswith("/chat/completions"))


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is server.requests

        def do_GET(self) -> None:
            if self.path == "/_log":
                self._json(200, server.requests)
            elif self.path.endswith("/models"):
                models = [{"id": m, "object": "model", "owned_by": "test"} for m in server.models]
                self._json(200, {"object": "list", "data": models})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            entry = {
                "path": self.path,
                "at": time.time(),
                "model": body.get("model"),
                "messages": body.get("messages"),
                "tools": [t["function"]["name"] for t in body.get("tools") or []],
                "tool_specs": body.get("tools") or [],
                "stream": bool(body.get("stream")),
                "status": None,
            }
            server._log(entry)
            if not self.path.endswith("/chat/completions"):
                return self._reply(entry, 404, {"error": {"message": "not found"}})
            hold = server._holds.get(server._chat_number())
            if hold is not None:
                hold.wait(HOLD_LIMIT_S)
            if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                error = {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
                return self._reply(entry, 401, {"error": error})
            if body.get("model") not in server.models:
                error = {
                    "message": f"The model `{body.get('model')}` does not exist.",
                    "type": "invalid_request_error",
                    "code": "model_not_found",
                }
                return self._reply(entry, 404, {"error": error})
            fault = server.faults.popleft() if server.faults else None
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                error = {"message": f"scripted failure {fault.status}", "type": "scripted"}
                return self._reply(entry, fault.status, {"error": error}, headers)
            reply = answer(body)
            if not body.get("stream"):
                return self._reply(entry, 200, completion(body, reply))
            entry["status"] = 200
            self._start(200, "text/event-stream")
            try:
                for chunk in stream_chunks(body, reply):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                entry["status"] = "disconnected"

        def _reply(
            self,
            entry: dict[str, Any],
            status: int,
            payload: Any,
            headers: dict[str, str] | None = None,
        ) -> None:
            entry["status"] = status
            self._json(status, payload, headers)

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self._start(
                    status,
                    "application/json",
                    {"Content-Length": str(len(data)), **(headers or {})},
                )
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (it timed out, or its worker was killed)

        def _start(self, status: int, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()

    return Handler
