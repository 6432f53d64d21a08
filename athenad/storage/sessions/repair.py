"""Reading a whole session file, repairing it first when it is damaged.

A repair happens under the file's exclusive lock and is reported by one
:class:`~athenad.storage.sessions.files.SessionRepaired` warning:

* a last line without its newline is kept (the newline is added) when it is a whole,
  checksum-valid record; otherwise its bytes go to the quarantine sidecar and it is cut;
* a corrupt line is moved to the quarantine sidecar and the file rewritten without it;
* a corrupt header is rebuilt from what can still be read of it (name, tags, branch,
  cwd, created_at when the damaged text holds them), else ``created_at`` is taken
  from the first message; the warning says which.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import msgspec

from athenad.storage.sessions.files import (
    FORMAT_VERSION,
    SUFFIX,
    TORN_REASON,
    Header,
    Message,
    SessionRepaired,
    check_format,
    decode_line,
    decode_unterminated,
    encode_line,
    locked,
    quarantine,
    report_repair,
)
from athenad.util.fsutil import atomic_write
from athenad.util.logs import LibraryLogger

log = LibraryLogger("athenad.storage.sessions")


class ParsedFile(msgspec.Struct):
    header: Header | None
    messages: list[Message]
    bad: list[tuple[int, bytes, str]]  # (line number, raw line, reason)
    torn: bytes  # a last line without newline that is not a valid record
    unterminated: bool  # the last line is valid but lacks its newline


def parse(data: bytes) -> ParsedFile:
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    torn = data[end:]
    unterminated = decode_unterminated(torn) is not None
    if unterminated:
        lines.append(torn)
        torn = b""
    header: Header | None = None
    messages: list[Message] = []
    bad: list[tuple[int, bytes, str]] = []
    for number, line in enumerate(lines, start=1):
        try:
            record = decode_line(line)
        except ValueError as exc:
            bad.append((number, line, str(exc)))
            continue
        if isinstance(record, Header) and number == 1:
            header = record
        elif isinstance(record, Message):
            messages.append(record)
        else:
            bad.append((number, line, "a header line after the first line"))
    return ParsedFile(header, messages, bad, torn, unterminated)


def read_session(path: Path, *, durable: bool = True) -> tuple[Header, list[Message]]:
    """Read a session, repairing it first when needed (see the module docstring)."""
    with locked(path, exclusive=False) as fd:
        data = os.pread(fd, os.fstat(fd).st_size, 0)
    check_format(data[:4096], path)
    parsed = parse(data)
    if parsed.torn or parsed.unterminated or parsed.bad or parsed.header is None:
        try:
            parsed = _repair(path, durable=durable)
        except OSError as exc:
            # The disk refuses the repair (full, read-only): show what is readable now;
            # the file is unchanged and repaired by a later read or append.
            if parsed.header is None:
                parsed.header, _ = recover_header(path, parsed)
            log.warning("session_repair_failed", path=str(path), error=str(exc))
            warnings.warn(
                f"session {path.name[: -len(SUFFIX)]} has damaged lines that could not be "
                f"quarantined now ({exc.strerror or exc}); they are left out.",
                SessionRepaired,
                stacklevel=3,
            )
    assert parsed.header is not None
    return parsed.header, parsed.messages


def _repair(path: Path, *, durable: bool) -> ParsedFile:
    with locked(path, exclusive=True) as fd:
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        check_format(data[:4096], path)
        parsed = parse(data)
        quarantined: list[tuple[int | None, bytes, str]] = list(parsed.bad)
        if parsed.torn:
            quarantined.append((None, parsed.torn, TORN_REASON))
        if quarantined:
            quarantine(path, quarantined)
        header_note = None
        if parsed.header is None:
            parsed.header, header_note = recover_header(path, parsed)
        if parsed.bad or header_note is not None:
            # Rewrite without the bad lines; rename keeps readers from seeing half a file.
            lines = [encode_line(parsed.header)] + [encode_line(m) for m in parsed.messages]
            atomic_write(path, b"".join(lines))
        else:
            if parsed.torn:
                os.ftruncate(fd, len(data) - len(parsed.torn))
            elif parsed.unterminated:
                os.write(fd, b"\n")  # the fd is O_APPEND
            if durable:
                os.fsync(fd)
    if quarantined or header_note:
        report_repair(
            path,
            lines=[n for n, _, _ in parsed.bad],
            torn=len(parsed.torn),
            header_note=header_note,
            stacklevel=4,
        )
    return parsed


_STRING_FIELDS = ("name", "git_branch", "cwd", "created_at", "imported_from")
_STRING_RE = re.compile(r'"(' + "|".join(_STRING_FIELDS) + r')"\s*:\s*("(?:[^"\\]|\\.)*")')
_TAGS_RE = re.compile(r'"tags"\s*:\s*(\[[^\]]*\])')


def _salvage(raw: bytes) -> dict[str, Any]:
    """Header fields still readable in a damaged header line (JSON, or JSON-ish)."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        value = None
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        found = {k: value[k] for k in (*_STRING_FIELDS, "tags") if k in value}
    else:
        text = raw.decode("utf-8", "replace")
        for match in _STRING_RE.finditer(text):
            try:
                found.setdefault(match.group(1), msgspec.json.decode(match.group(2)))
            except msgspec.DecodeError:
                continue
        tags = _TAGS_RE.search(text)
        if tags:
            try:
                found["tags"] = msgspec.json.decode(tags.group(1))
            except msgspec.DecodeError:
                pass
    clean: dict[str, Any] = {
        k: v for k, v in found.items() if k in _STRING_FIELDS and isinstance(v, str)
    }
    tags = found.get("tags")
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        clean["tags"] = tags
    return clean


def recover_header(path: Path, parsed: ParsedFile) -> tuple[Header, str]:
    """A header rebuilt from a damaged first line and the messages; and what was done."""
    raw = next((line for number, line, _ in parsed.bad if number == 1), b"")
    fields = _salvage(raw) if raw else {}
    header = Header(format=FORMAT_VERSION, id=path.name[: -len(SUFFIX)], **fields)
    if fields:
        note = f"its header was damaged; recovered {', '.join(sorted(fields))} from it"
    else:
        note = "its header was damaged and nothing could be read from it"
    if not header.created_at and parsed.messages:
        header.created_at = parsed.messages[0].timestamp
        note += "; created_at is the first message's time"
    return header, note
