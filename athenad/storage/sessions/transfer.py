"""Export a session as Markdown, JSON or JSON Lines, and import any of those back.

* ``jsonl`` is the session file itself: a header line, then one line per message.
* ``json`` is one document: ``{"format": 1, "session": {header}, "messages": [...]}``
  where header and messages have the same keys as the lines of the session file.
* ``md`` is for reading; each message is preceded by an HTML comment carrying its
  role, timestamp and length (``<!-- athena-message {...} -->``), invisible when
  rendered, so the file imports back exactly.

An import keeps roles, contents, timestamps and metadata; messages are numbered
afresh from 1. The original id is kept unless it is taken, in which case the session
gets a new id and ``imported_from`` names the original. Both work on any session
store, so a session exported from files imports into PostgreSQL and back unchanged.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import msgspec

from athenad.errors import InvalidInput
from athenad.storage.contract import SessionStore
from athenad.storage.sessions.files import (
    FORMAT_VERSION,
    Header,
    Message,
    check_text,
    encode_line,
    is_valid_session_id,
    make_message,
)
from athenad.storage.sessions.manager import coerce_role
from athenad.util.timefmt import format_ts, utc_now_text

FORMATS = ("md", "json", "jsonl")
EXPORT_FORMAT = 1
_SESSION_MARK = "<!-- athena-session "
_MESSAGE_MARK = "<!-- athena-message "
_END_MARK = " -->"


class ExportDocument(msgspec.Struct):
    format: int
    session: Header
    messages: list[Message]


class _LooseHeader(msgspec.Struct):
    id: str | None = None
    name: str | None = None
    tags: list[str] = []
    git_branch: str | None = None
    cwd: str | None = None
    created_at: str | None = None
    imported_from: str | None = None


class _LooseMessage(msgspec.Struct):
    role: str
    content: str
    timestamp: str | None = None
    metadata: dict[str, Any] | None = None


class _LooseDocument(msgspec.Struct):
    format: int
    session: _LooseHeader
    messages: list[_LooseMessage]


_encoder = msgspec.json.Encoder()


def export_session(manager: SessionStore, session_id: str, fmt: str) -> str:
    """The session as text in ``fmt`` (md, json or jsonl)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"export format {fmt!r} is not one of {', '.join(FORMATS)}.")
    header, messages = manager.read_session(session_id)
    if fmt == "jsonl":
        return b"".join([encode_line(header), *(encode_line(m) for m in messages)]).decode()
    if fmt == "json":
        document = ExportDocument(EXPORT_FORMAT, header, messages)
        return msgspec.json.format(_encoder.encode(document), indent=2).decode() + "\n"
    return _to_markdown(header, messages)


def _to_markdown(header: Header, messages: list[Message]) -> str:
    out = [f"# {header.name or header.id}", ""]
    out.append(f"{_SESSION_MARK}{_encoder.encode(header).decode()}{_END_MARK}")
    out.append("")
    out.append(f"- id: `{header.id}`")
    out.append(f"- branch: {header.git_branch or '-'}")
    out.append(f"- created: {header.created_at} UTC")
    if header.tags:
        out.append(f"- tags: {', '.join(header.tags)}")
    out.append("")
    for message in messages:
        meta = {"seq": message.seq, "role": message.role, "timestamp": message.timestamp}
        meta["chars"] = len(message.content)
        if message.metadata is not None:
            meta["metadata"] = message.metadata
        out.append(f"## {message.role} · {message.timestamp} UTC")
        out.append("")
        out.append(f"{_MESSAGE_MARK}{_encoder.encode(meta).decode()}{_END_MARK}")
        out.append("")
        out.append(message.content)
        out.append("")
    return "\n".join(out)


def import_session(manager: SessionStore, data: bytes | str, source: str = "input") -> str:
    """Create a session from an export in any of our formats; returns its id.

    Every field is checked first (text is UTF-8, timestamps are times, roles are
    known); the first problem is an InvalidInput naming the line or message.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{source} is not UTF-8 text (byte {exc.start} is not), so not a session export."
            ) from None
    else:
        text = data
    header, messages, places = parse_export(text, source)
    new_header = _checked_header(header, f"the header of {source}")
    made = []
    for seq, (loose, where) in enumerate(zip(messages, places, strict=True), start=1):
        made.append(_checked_message(seq, loose, where))
    wanted = header.id
    valid_id = is_valid_session_id(wanted)
    if not valid_id and wanted:
        new_header.imported_from = wanted
    return manager.write_new_session(new_header, made, session_id=wanted if valid_id else None)


def _invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}")


def _checked_time(value: Any, where: str, what: str) -> str:
    """A timestamp in our text form (UTC), from any ISO 8601 time; else InvalidInput."""
    try:
        if not isinstance(value, str):
            raise ValueError
        moment = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _invalid(
            where, f"{what} {value!r} is not a time like '2026-11-26 10:00:00.123'."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)  # our own timestamps are UTC, unmarked
    return format_ts(moment)


def _checked_str(value: Any, where: str, what: str) -> Any:
    if value is None:
        return None
    try:
        return check_text(value, what)
    except InvalidInput as exc:
        raise _invalid(where, exc.message) from None


def _checked_header(header: _LooseHeader, where: str) -> Header:
    for tag in header.tags:
        if not isinstance(tag, str) or not tag.strip():
            raise _invalid(where, f"tag {tag!r} is not a non-empty string.")
        _checked_str(tag, where, "a tag")
    created = header.created_at
    return Header(
        format=FORMAT_VERSION,
        id="",
        name=_checked_str(header.name, where, "the name"),
        tags=list(dict.fromkeys(header.tags)),
        git_branch=_checked_str(header.git_branch, where, "the branch"),
        cwd=_checked_str(header.cwd, where, "the cwd"),
        created_at=utc_now_text()
        if created is None
        else _checked_time(created, where, "created_at"),
        imported_from=_checked_str(header.imported_from, where, "imported_from"),
    )


def _checked_message(seq: int, loose: _LooseMessage, where: str) -> Message:
    try:
        role = coerce_role(loose.role).value
    except InvalidInput as exc:
        raise _invalid(where, exc.message) from None
    content = _checked_str(loose.content, where, "the content")
    stamp = None if loose.timestamp is None else _checked_time(loose.timestamp, where, "timestamp")
    if loose.metadata is not None and not isinstance(loose.metadata, dict):
        raise _invalid(where, "metadata must be a JSON object.")
    return make_message(seq, role, content, stamp, loose.metadata)


Parsed = tuple[_LooseHeader, list[_LooseMessage], list[str]]


def parse_export(text: str, source: str) -> Parsed:
    """Recognise and read one of our export formats."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        first_line = stripped.split("\n", 1)[0]
        try:
            kind = msgspec.json.decode(first_line).get("type")
        except (msgspec.DecodeError, AttributeError):
            kind = None
        if kind == "header":
            return _parse_jsonl(stripped, source)
        try:
            document = msgspec.json.decode(stripped, type=_LooseDocument)
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"{source} is not a session export in JSON: {exc}.") from None
        places = [f"message {n} of {source}" for n in range(1, len(document.messages) + 1)]
        return document.session, document.messages, places
    if _SESSION_MARK in text:
        return _parse_markdown(text, source)
    raise InvalidInput(f"{source} is not a session export (md, json or jsonl).")


def _parse_jsonl(text: str, source: str) -> Parsed:
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    try:
        header = msgspec.json.decode(lines[0][1], type=_LooseHeader)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the first line of {source} is not a session header: {exc}.") from None
    messages, places = [], []
    for number, line in lines[1:]:
        try:
            messages.append(msgspec.json.decode(line, type=_LooseMessage))
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"line {number} of {source} is not a message: {exc}.") from None
        places.append(f"line {number} of {source}")
    return header, messages, places


def _marker(text: str, start: int, mark: str, source: str) -> tuple[dict[str, Any], int]:
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    line = text[start + len(mark) : end]
    if not line.endswith(_END_MARK):
        raise InvalidInput(f"{source} has a damaged marker at character {start}.")
    try:
        value = msgspec.json.decode(line[: -len(_END_MARK)])
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{source} has a damaged marker at character {start}: {exc}.") from None
    return value, end + 1


def _parse_markdown(text: str, source: str) -> Parsed:
    head_at = text.find(_SESSION_MARK)
    raw_header, pos = _marker(text, head_at, _SESSION_MARK, source)
    try:
        header = msgspec.convert(raw_header, _LooseHeader)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the session marker of {source} is not a header: {exc}.") from None
    messages, places = [], []
    while True:
        at = text.find("\n" + _MESSAGE_MARK, pos)
        if at < 0:
            break
        meta, pos = _marker(text, at + 1, _MESSAGE_MARK, source)
        if text[pos : pos + 1] == "\n":
            pos += 1  # the blank line after the marker
        chars = meta.get("chars")
        if not isinstance(chars, int) or pos + chars > len(text):
            raise InvalidInput(f"{source} has a message marker with a wrong length.")
        content = text[pos : pos + chars]
        pos += chars
        try:
            messages.append(
                _LooseMessage(
                    role=meta["role"],
                    content=content,
                    timestamp=meta.get("timestamp"),
                    metadata=meta.get("metadata"),
                )
            )
        except KeyError:
            raise InvalidInput(f"{source} has a message marker without a role.") from None
        line = text.count("\n", 0, at + 1) + 1
        places.append(f"message {len(messages)} (line {line}) of {source}")
    return header, messages, places
