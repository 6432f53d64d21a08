"""Claude Code transcripts as Athena sessions (``athenactl sessions import-claude``).

Claude Code keeps each conversation as JSON Lines under ``~/.claude/projects/``: user
and assistant lines carrying an Anthropic message, with ``uuid``, ``parentUuid``,
``sessionId``, ``timestamp``, ``cwd``, ``gitBranch``; and summary, system and other
lines. Each file becomes one session (messages as :mod:`workers.agents.agent_events`
reads them; a line it does not understand is kept whole as a ``raw`` message).

A session remembers its transcript as ``imported_from = "claude-code:<sessionId>"``
(``.../agent-<agentId>`` for a subagent's file, which shares its parent's sessionId).
Importing a file again finds that session: unchanged, nothing is written; changed (a
conversation that went on), the session is rewritten from the file under the same
id, so its timestamps stay the transcript's. Works on any session store.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from athenad.errors import InvalidInput
from athenad.storage.contract import SessionStore
from athenad.storage.sessions.files import FORMAT_VERSION, Header, Message, make_message
from athenad.util.timefmt import format_ts, utc_now_text

# The parsers live with the cli-agent runner, which reads the same messages.
from workers.agents.agent_events import Entry, transcript_entries

KEY_PREFIX = "claude-code:"
TAG = "claude-code"
NAME_CHARS = 80


@dataclass
class Transcript:
    """One file, read: what the session will hold."""

    key: str
    claude_session_id: str
    header: Header
    messages: list[Message]
    raw_events: int
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass
class FileResult:
    """What importing one file did. JSON keys as the fields."""

    file: str
    status: str  # created, updated or unchanged
    id: str
    claude_session_id: str
    messages: int
    raw_events: int
    tokens_in: int
    tokens_out: int


@dataclass
class ImportReport:
    files: list[FileResult] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        counts = {s: sum(r.status == s for r in self.files) for s in STATUSES}
        return {
            "files": [vars(r) for r in self.files],
            **counts,
            "messages": sum(r.messages for r in self.files),
            "raw_events": sum(r.raw_events for r in self.files),
            "errors": self.errors,
        }


STATUSES = ("created", "updated", "unchanged")


def find_transcripts(paths: list[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """The files to read: each file named, and every ``*.jsonl`` under each folder
    (recursively, in name order); a path that names nothing is an error of its own."""
    found: list[Path] = []
    errors: list[dict[str, str]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
            if not inside:
                errors.append({"file": given, "error": f"{given} holds no .jsonl file."})
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            errors.append({"file": given, "error": f"{given} does not exist."})
    return list(dict.fromkeys(found)), errors


def _time(value: Any) -> str | None:
    """Our timestamp text from an ISO 8601 time (UTC when it names no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return format_ts(moment)


def _first(objects: list[dict[str, Any]], key: str) -> Any:
    return next((o[key] for o in objects if isinstance(o.get(key), str) and o[key]), None)


def read_transcript(path: Path, source: str) -> Transcript:
    """Read one transcript; InvalidInput (naming ``source``) when it is not one."""
    lines = [(n, line) for n, line in enumerate(path.read_bytes().split(b"\n"), 1) if line.strip()]
    if not lines:
        raise InvalidInput(f"{source} is empty.")
    parsed: list[tuple[int, str, dict[str, Any] | None]] = []
    for number, line in lines:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        parsed.append((number, text, obj if isinstance(obj, dict) else None))
    objects = [obj for _n, _t, obj in parsed if obj is not None]
    if not objects:
        raise InvalidInput(f"{source} is not JSON Lines: line {lines[0][0]} is not a JSON object.")
    claude_id = _first(objects, "sessionId")
    if claude_id is None:
        raise InvalidInput(f"{source} is not a Claude Code transcript: no line has a sessionId.")
    key = KEY_PREFIX + claude_id
    owner = next(o for o in objects if o.get("sessionId") == claude_id)
    if owner.get("isSidechain") is True and isinstance(owner.get("agentId"), str):
        key += f"/agent-{owner['agentId']}"
    created = next((t for o in objects if (t := _time(o.get("timestamp")))), None)
    header = Header(
        format=FORMAT_VERSION,
        id="",
        name=None,
        tags=[TAG],
        git_branch=_first(objects, "gitBranch"),
        cwd=_first(objects, "cwd"),
        created_at=created or utc_now_text(),
        imported_from=key,
    )
    messages, usage = _messages(parsed, header)
    header.name = _name(messages)
    raw = sum(1 for m in messages if (m.metadata or {}).get("kind") == "raw")
    return Transcript(key, claude_id, header, messages, raw, *usage)


def _messages(
    parsed: list[tuple[int, str, dict[str, Any] | None]], header: Header
) -> tuple[list[Message], tuple[int, int]]:
    messages: list[Message] = []
    usage: dict[str, tuple[int, int]] = {}  # by message id: lines repeat it
    stamp = header.created_at
    for number, text, obj in parsed:
        if obj is None:
            entries = [Entry("system", text, {"kind": "raw", "line": number})]
        else:
            entries = transcript_entries(obj, text)
            for entry in entries:
                # Where a line differs from the session's, it says so itself.
                if obj.get("cwd") and obj.get("cwd") != header.cwd:
                    entry.metadata["cwd"] = obj["cwd"]
                if obj.get("gitBranch") and obj.get("gitBranch") != header.git_branch:
                    entry.metadata["git_branch"] = obj["gitBranch"]
                if entry.metadata.get("kind") == "raw":
                    entry.metadata["line"] = number
        for entry in entries:
            stamp = _time(entry.timestamp) or stamp
            messages.append(_message(len(messages) + 1, entry, stamp, number, text))
            counted = entry.metadata.get("usage")
            if isinstance(counted, dict):
                usage[str(entry.metadata.get("message_id") or len(usage))] = (
                    sum(
                        _count(counted.get(k))
                        for k in (
                            "input_tokens",
                            "cache_creation_input_tokens",
                            "cache_read_input_tokens",
                        )
                    ),
                    _count(counted.get("output_tokens")),
                )
    totals = (sum(u[0] for u in usage.values()), sum(u[1] for u in usage.values()))
    return messages, totals


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _message(seq: int, entry: Entry, stamp: str, number: int, line: str) -> Message:
    """The entry as a message; a line whose text a session cannot hold (a lone
    surrogate from a ``\\ud800`` escape) is kept raw, as its JSON text."""
    message = make_message(seq, entry.role, entry.content, stamp, entry.stored_metadata())
    try:
        msgspec.json.encode(message)
    except (UnicodeEncodeError, msgspec.EncodeError):
        metadata = {"kind": "raw", "line": number}
        message = make_message(seq, "system", line, stamp, metadata)
    return message


def _name(messages: list[Message]) -> str | None:
    """The transcript's last summary, else the start of its first prompt."""
    summaries = [m for m in messages if (m.metadata or {}).get("kind") == "summary"]
    if summaries:
        return summaries[-1].content[:NAME_CHARS]
    for m in messages:
        meta = m.metadata or {}
        if m.role == "user" and meta.get("kind") == "text" and not meta.get("meta"):
            first = m.content.strip().split("\n", 1)[0]
            if first:
                return first[:NAME_CHARS]
    return None


def _same(old: tuple[Header, list[Message]], new: Transcript) -> bool:
    header, messages = old
    return [m.checksum for m in messages] == [m.checksum for m in new.messages] and (
        header.name,
        header.git_branch,
        header.cwd,
        header.created_at,
    ) == (new.header.name, new.header.git_branch, new.header.cwd, new.header.created_at)


def imported_sessions(store: SessionStore) -> dict[str, str]:
    """{imported_from: session id} of the sessions already imported from Claude Code."""
    return {
        info.imported_from: info.id
        for info in reversed(store.list_sessions())  # the most recent wins a (rare) tie
        if info.imported_from and info.imported_from.startswith(KEY_PREFIX)
    }


def import_transcript(
    store: SessionStore, transcript: Transcript, known: dict[str, str]
) -> tuple[str, str]:
    """Create or rewrite the transcript's session; (status, session id)."""
    existing = known.get(transcript.key)
    if existing is not None and store.exists(existing):
        if _same(store.read_session(existing), transcript):
            return "unchanged", existing
        store.delete_session(existing)
        session_id = store.write_new_session(
            transcript.header, transcript.messages, session_id=existing
        )
        status = "updated"
    else:
        session_id = store.write_new_session(transcript.header, transcript.messages)
        status = "created"
    known[transcript.key] = session_id
    return status, session_id


def import_claude(store: SessionStore, paths: list[str]) -> ImportReport:
    """Import every transcript the paths name; each file's problem is reported alone."""
    files, errors = find_transcripts(paths)
    report = ImportReport(errors=errors)
    known = imported_sessions(store) if files else {}
    for path in files:
        source = str(path)
        try:
            transcript = read_transcript(path, source)
            status, session_id = import_transcript(store, transcript, known)
        except InvalidInput as exc:
            report.errors.append({"file": source, "error": exc.message})
            continue
        except OSError as exc:
            report.errors.append({"file": source, "error": f"{source}: {exc.strerror or exc}."})
            continue
        report.files.append(
            FileResult(
                file=source,
                status=status,
                id=session_id,
                claude_session_id=transcript.claude_session_id,
                messages=len(transcript.messages),
                raw_events=transcript.raw_events,
                tokens_in=transcript.tokens_in,
                tokens_out=transcript.tokens_out,
            )
        )
    return report
