"""Export a session as Markdown, JSON or JSON Lines, and import any of those back.

* ``jsonl`` is the session file itself: a header line, then one line per message.
* ``json`` is one document: ``{"format": 1, "session": {header}, "messages": [...]}``
  where header and messages have the same keys as the lines of the session file.
* ``md`` is for reading; each message is preceded by an HTML comment carrying its
  role, timestamp and length (``<!-- athena-message {...} -->``), invisible when
  rendered, so the file imports back exactly.

An import keeps roles, contents, timestamps and metadata; messages are numbered
afresh from 1. The original id is kept unless it is taken, in which case the session
gets a new id and ``imported_from`` names the original.
"""

from __future__ import annotations

from typing import Any

import msgspec

from athenad.errors import InvalidInput
from athenad.sessions.files import FORMAT_VERSION, Header, Message, encode_line, make_message
from athenad.sessions.manager import SessionManager, coerce_role
from athenad.timefmt import utc_now_text

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


def export_session(manager: SessionManager, session_id: str, fmt: str) -> str:
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


def import_session(manager: SessionManager, data: bytes | str, source: str = "input") -> str:
    """Create a session from an export in any of our formats; returns its id."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    header, messages = parse_export(text, source)
    new_header = Header(
        format=FORMAT_VERSION,
        id="",
        name=header.name,
        tags=list(header.tags),
        git_branch=header.git_branch,
        cwd=header.cwd,
        created_at=header.created_at or utc_now_text(),
        imported_from=header.imported_from,
    )
    made = []
    for seq, loose in enumerate(messages, start=1):
        role = coerce_role(loose.role).value
        made.append(make_message(seq, role, loose.content, loose.timestamp, loose.metadata))
    wanted = header.id
    valid_id = True
    try:
        manager.path_for(wanted or "")
    except InvalidInput:
        valid_id = False
    if not valid_id and wanted:
        new_header.imported_from = wanted
    return manager.write_new_session(new_header, made, session_id=wanted if valid_id else None)


def parse_export(text: str, source: str) -> tuple[_LooseHeader, list[_LooseMessage]]:
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
        return document.session, document.messages
    if _SESSION_MARK in text:
        return _parse_markdown(text, source)
    raise InvalidInput(f"{source} is not a session export (md, json or jsonl).")


def _parse_jsonl(text: str, source: str) -> tuple[_LooseHeader, list[_LooseMessage]]:
    lines = [line for line in text.split("\n") if line.strip()]
    try:
        header = msgspec.json.decode(lines[0], type=_LooseHeader)
        messages = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                messages.append(msgspec.json.decode(line, type=_LooseMessage))
            except msgspec.DecodeError as exc:
                raise InvalidInput(f"line {number} of {source} is not a message: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the first line of {source} is not a session header: {exc}.") from None
    return header, messages


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


def _parse_markdown(text: str, source: str) -> tuple[_LooseHeader, list[_LooseMessage]]:
    head_at = text.find(_SESSION_MARK)
    raw_header, pos = _marker(text, head_at, _SESSION_MARK, source)
    header = msgspec.convert(raw_header, _LooseHeader)
    messages = []
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
    return header, messages
