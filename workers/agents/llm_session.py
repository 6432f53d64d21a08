"""The ``llm`` agent's conversation as a session: read it as chat messages, append turns.

How a conversation is stored, one session message each:

* the user's prompt and given messages, and the system prompt: their role and text;
* the model's answer: ``assistant`` with its text, ``metadata`` ``model``,
  ``tokens_in``, ``tokens_out``, ``cost_usd``;
* each tool call: ``assistant`` with ``name({arguments})`` as text, ``metadata``
  ``tool_call`` (``id``, ``name``, ``arguments``);
* each tool result: ``tool`` with the result, ``metadata`` ``tool_call_id``, ``name``.

Every message the agent appends carries ``job_id`` and ``part`` in its metadata, so a job
run again after a crash appends only the parts its session does not have yet.
"""

from __future__ import annotations

from typing import Any

from athenad.storage.contract import SessionStore
from athenad.storage.sessions import Message

Chat = dict[str, Any]  # one message as the chat completions API takes it


def open_session(store: SessionStore, session_id: str | None, job_id: str) -> dict[str, Any]:
    """The session to use (made when none is given) and its conversation so far.

    Run as a step: a job run again gets the same session and the same history, not the
    history plus what its first run appended.
    """
    if session_id is None:
        new_id = store.create_session(name=f"llm {job_id}", tags=("llm",))
        return {"id": new_id, "history": []}
    if not store.exists(session_id):
        from workers.agents.llm_payload import BadPayload

        raise BadPayload(f"session {session_id!r} does not exist.")
    return {"id": session_id, "history": to_chat(store.get_messages(session_id))}


def to_chat(messages: list[Message]) -> list[Chat]:
    """A session's messages as chat messages (tool calls folded into their answer)."""
    chat: list[Chat] = []
    for message in messages:
        meta = message.metadata or {}
        call = meta.get("tool_call")
        if message.role == "assistant" and isinstance(call, dict):
            wire = {
                "id": str(call.get("id", "")),
                "type": "function",
                "function": {
                    "name": str(call.get("name", "")),
                    "arguments": str(call.get("arguments", "")),
                },
            }
            if chat and chat[-1]["role"] == "assistant":
                chat[-1].setdefault("tool_calls", []).append(wire)
            else:
                chat.append({"role": "assistant", "content": None, "tool_calls": [wire]})
        elif message.role == "tool":
            if meta.get("tool_call_id"):
                chat.append(
                    {
                        "role": "tool",
                        "tool_call_id": meta["tool_call_id"],
                        "content": message.content,
                    }
                )
            else:
                # A tool result from elsewhere (an import) answers no call the model made.
                chat.append({"role": "user", "content": f"(tool result) {message.content}"})
        else:
            chat.append({"role": message.role, "content": message.content})
    return chat


class SessionWriter:
    """Appends a job's parts to its session, each once even when the job runs again."""

    def __init__(self, store: SessionStore, session_id: str, job_id: str) -> None:
        self.store = store
        self.session_id = session_id
        self.job_id = job_id
        self._present: set[str] | None = None

    def _parts_present(self) -> set[str]:
        if self._present is None:
            # Read once per run: on a first run nothing of this job is there yet; on a
            # rerun this finds what the earlier run appended before it stopped.
            self._present = {
                str(m.metadata.get("part"))
                for m in self.store.get_messages(self.session_id)
                if m.metadata and m.metadata.get("job_id") == self.job_id
            }
        return self._present

    def append(self, part: str, role: str, content: str, **metadata: Any) -> None:
        present = self._parts_present()
        if part in present:
            return
        meta = {**metadata, "job_id": self.job_id, "part": part}
        self.store.add_message(self.session_id, role, content, meta)
        present.add(part)
