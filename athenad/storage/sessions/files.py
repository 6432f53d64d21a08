"""One session = one append-only JSON Lines file, ``<sessions>/<id>.jsonl``.

The first line is the header, every later line one message::

    {"type":"header","format":1,"id":"session-...","name":"PR review","tags":["review"],
     "git_branch":"main","cwd":"/src/app","created_at":"2026-11-26 10:00:00.123",
     "imported_from":null}
    {"type":"message","seq":1,"role":"user","timestamp":"2026-11-26 10:00:01.456",
     "content":"Review PR #123","checksum":"5b1e0c2a"}

``seq`` starts at 1 and is assigned under an exclusive ``flock`` on the file, so
appenders in several processes get one total order. Appending reads only the tail
of the file (to find the last ``seq``), never the whole file, so the 10,000th message
costs what the first did. A last line without its newline is kept (the newline is
added) when it is a whole, checksum-valid record; a truly torn one (a crash mid-write)
is cut by the next append or read, its bytes saved to ``<id>.quarantine.jsonl``. A
corrupt line elsewhere is moved there too; the session file keeps every good line.
Each repair is reported by one :class:`SessionRepaired` warning.

The header's ``format`` is the file format's major version: a file written in a
newer format than this code reads is refused (:class:`UnsupportedFormat`), never
repaired.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from athenad.errors import AthenaError, InvalidInput, WriteFailed
from athenad.util.logs import LibraryLogger
from athenad.util.timefmt import utc_now_text

log = LibraryLogger("athenad.storage.sessions")

FORMAT_VERSION = 1
SUFFIX = ".jsonl"
QUARANTINE_SUFFIX = ".quarantine.jsonl"
CHECKPOINT_SUFFIX = ".checkpoint.json"
# Lowercase letters and digits only: no dots, slashes or separators, so an id can
# never name a path outside the sessions directory.
SESSION_ID_RE = re.compile(r"session-[0-9a-z]{1,40}")
SESSION_FILE_RE = re.compile(r"(session-[0-9a-z]{1,40})\.jsonl")
_TAIL_BYTES = 4096


class SessionNotFound(AthenaError):
    """No session has this id."""


class SessionRepaired(UserWarning):
    """A session file had damaged lines; they were cut or quarantined."""


class SessionWriteError(WriteFailed):
    """The session could not be written; what it held before is unchanged."""


def write_reason(exc: OSError) -> str:
    """Why the disk refused a write, as the end of a sentence."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return (exc.strerror or str(exc)).lower()


class UnsupportedFormat(AthenaError):
    """The session file was written in a newer format than this version reads."""


class Header(msgspec.Struct, tag="header", tag_field="type"):
    format: int
    id: str
    name: str | None = None
    tags: list[str] = []
    git_branch: str | None = None
    cwd: str | None = None
    created_at: str = ""
    imported_from: str | None = None
    # crc32 (hex) of the fields above, set when the line is written; a header written
    # before it existed has none and is taken as it reads.
    checksum: str = ""


def header_checksum(header: Header) -> str:
    canonical = msgspec.json.encode(
        [
            header.format,
            header.id,
            header.name,
            header.tags,
            header.git_branch,
            header.cwd,
            header.created_at,
            header.imported_from,
        ]
    )
    return f"{zlib.crc32(canonical):08x}"


class Message(msgspec.Struct, tag="message", tag_field="type", omit_defaults=True):
    """One message: ``seq`` orders it, ``checksum`` (crc32, hex) guards it."""

    seq: int
    role: str
    timestamp: str
    content: str
    checksum: str = ""
    metadata: dict[str, Any] | None = None


_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(Header | Message)


def is_valid_session_id(text: Any) -> bool:
    """True when ``text`` is a well-formed session id (``session-`` + [0-9a-z])."""
    return isinstance(text, str) and SESSION_ID_RE.fullmatch(text) is not None


def check_text(value: Any, what: str) -> str:
    """Return ``value`` if it is a str that encodes as UTF-8, else raise InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes from argv or a file arrive as lone surrogates.
        raise InvalidInput(f"{what} is not valid UTF-8 text.") from None
    return value


class _FormatOnly(msgspec.Struct):
    format: int = FORMAT_VERSION


_format_decoder = msgspec.json.Decoder(_FormatOnly)


def check_format(start: bytes, path: Path) -> None:
    """Refuse a file whose header names a newer format (a damaged header passes)."""
    first = start.split(b"\n", 1)[0]
    try:
        version = _format_decoder.decode(first).format
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if version > FORMAT_VERSION:
        raise UnsupportedFormat(
            f"session {path.name[: -len(SUFFIX)]!r} is in format {version}, newer than "
            f"this version of Athena reads ({FORMAT_VERSION}); upgrade Athena to use it."
        )


def check_session_id(session_id: Any) -> str:
    """Return the id if it matches ``session-[0-9a-z]+``, else raise InvalidInput."""
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise InvalidInput(
            f"{session_id!r} is not a session id (expected 'session-' then lowercase "
            "letters and digits)."
        )
    return session_id


def checksum(seq: int, role: str, timestamp: str, content: str, metadata: Any) -> str:
    canonical = msgspec.json.encode([seq, role, timestamp, content, metadata], order="sorted")
    return f"{zlib.crc32(canonical):08x}"


def make_message(
    seq: int, role: str, content: str, timestamp: str | None = None, metadata: Any = None
) -> Message:
    stamp = timestamp or utc_now_text()
    return Message(
        seq=seq,
        role=role,
        timestamp=stamp,
        content=content,
        checksum=checksum(seq, role, stamp, content, metadata),
        metadata=metadata,
    )


def encode_line(record: Header | Message) -> bytes:
    if isinstance(record, Header):
        record = msgspec.structs.replace(record, checksum=header_checksum(record))
    return _encoder.encode(record) + b"\n"


def decode_line(line: bytes) -> Header | Message:
    """Decode one line; raise ValueError when it is not valid or its checksum is wrong."""
    try:
        record = _line_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    if isinstance(record, Message):
        expected = checksum(
            record.seq, record.role, record.timestamp, record.content, record.metadata
        )
        if record.checksum != expected:
            raise ValueError(f"checksum {record.checksum!r} does not match {expected!r}")
    elif record.checksum:
        if record.checksum != (expected := header_checksum(record)):
            raise ValueError(f"header checksum {record.checksum!r} does not match {expected!r}")
        # The checksum guards the line on disk; the header read back is the same on
        # every store (encode_line computes it again when the header is written).
        record = msgspec.structs.replace(record, checksum="")
    return record


@contextlib.contextmanager
def locked(path: Path, exclusive: bool) -> Iterator[int]:
    """Open ``path`` and flock it; reopen if a repair replaced the file meanwhile."""
    flags = os.O_RDWR | os.O_APPEND if exclusive else os.O_RDONLY
    while True:
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise SessionNotFound(
                f"session {path.name[: -len(SUFFIX)]!r} does not exist."
            ) from None
        except OSError as exc:
            if not exclusive:
                raise
            raise SessionWriteError(
                f"session {path.name[: -len(SUFFIX)]} cannot be written because "
                f"{write_reason(exc)}; it is unchanged."
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # closing drops the lock
    try:
        yield fd
    finally:
        os.close(fd)


def read_tail(fd: int, size: int, nbytes: int = _TAIL_BYTES) -> tuple[int, bytes]:
    """The last ``nbytes`` (grown until a line start is inside) and their offset."""
    while True:
        start = max(0, size - nbytes)
        data = os.pread(fd, size - start, start)
        if start == 0 or b"\n" in data[:-1]:
            return start, data
        nbytes *= 4


def last_record(fd: int, size: int) -> tuple[Header | Message | None, int]:
    """The last complete valid record and the length of file up to the last newline."""
    start, data = read_tail(fd, size)
    end = data.rfind(b"\n") + 1
    complete = start + end
    lines = data[:end].split(b"\n")[:-1]
    # The first line of a tail read can be partial unless it begins the file.
    candidates = lines if start == 0 else lines[1:]
    for line in reversed(candidates):
        try:
            return decode_line(line), complete
        except ValueError:
            continue
    # No valid line in the tail: look at the whole file (rare, only after damage).
    whole = os.pread(fd, complete, 0).split(b"\n")[:-1]
    for line in reversed(whole):
        try:
            return decode_line(line), complete
        except ValueError:
            continue
    return None, complete


class QuarantinedLine(msgspec.Struct):
    """One line of ``<id>.quarantine.jsonl``; ``line`` is None for a torn last line."""

    quarantined_at: str
    line: int | None
    reason: str
    raw: str


def quarantine(path: Path, bad: list[tuple[int | None, bytes, str]]) -> None:
    """Append damaged lines to the session's quarantine sidecar (fsynced)."""
    sidecar = path.with_name(path.name[: -len(SUFFIX)] + QUARANTINE_SUFFIX)
    now = utc_now_text()
    records = [
        QuarantinedLine(now, number, reason, raw.decode("utf-8", "backslashreplace"))
        for number, raw, reason in bad
    ]
    with open(sidecar, "ab") as handle:
        handle.write(b"".join(_encoder.encode(r) + b"\n" for r in records))
        handle.flush()
        os.fsync(handle.fileno())


def decode_unterminated(tail: bytes) -> Header | Message | None:
    """The record of a last line without its newline, if it is complete and valid."""
    if not tail.strip():
        return None
    try:
        return decode_line(tail)
    except ValueError:
        return None


TORN_REASON = "torn last line (no newline, not a complete record)"


def append_message(
    path: Path,
    role: str,
    content: str,
    metadata: Any = None,
    *,
    durable: bool = False,
) -> Message:
    """Append one message under the exclusive lock.

    A last line without its newline is completed when it is a whole valid record,
    else its bytes go to the quarantine sidecar (one warning) and it is cut.
    """
    with locked(path, exclusive=True) as fd:
        check_format(os.pread(fd, _TAIL_BYTES, 0), path)
        size = os.fstat(fd).st_size
        record, complete = last_record(fd, size)
        try:
            if complete < size:
                tail = os.pread(fd, size - complete, complete)
                finished = decode_unterminated(tail)
                if finished is not None:
                    os.write(fd, b"\n")
                    record = finished
                else:
                    quarantine(path, [(None, tail, TORN_REASON)])
                    os.ftruncate(fd, complete)
                    report_repair(path, torn=len(tail))
            seq = record.seq + 1 if isinstance(record, Message) else 1
            message = make_message(seq, role, content, metadata=metadata)
            before = os.fstat(fd).st_size
            try:
                write_all(fd, encode_line(message))
                if durable:
                    os.fsync(fd)
            except OSError:
                # A short write (the disk filled up mid-line) must not leave half a line.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                raise
        except OSError as exc:
            raise SessionWriteError(
                f"the message was not added to session {path.name[: -len(SUFFIX)]} because "
                f"{write_reason(exc)}; the session is unchanged."
            ) from None
    return message


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (``os.write`` may write fewer than asked, as on a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def report_repair(
    path: Path,
    *,
    lines: list[int] | None = None,
    torn: int = 0,
    header_note: str | None = None,
    stacklevel: int = 3,
) -> None:
    """One warning (and one log event) for one repair of a session file."""
    session_id = path.name[: -len(SUFFIX)]
    sidecar = f"{session_id}{QUARANTINE_SUFFIX}"
    parts = []
    if lines:
        numbers = ", ".join(str(n) for n in lines)
        parts.append(f"line(s) {numbers} were damaged and moved to {sidecar}")
    if torn:
        parts.append(f"a torn last line ({torn} bytes) was cut and saved to {sidecar}")
    if header_note:
        parts.append(header_note)
    text = f"session {session_id}: " + "; ".join(parts) + "."
    # Info, not warning: the warning below is the one report a user sees.
    log.info("session_repaired", path=str(path), lines=lines or [], torn_bytes=torn)
    warnings.warn(text, SessionRepaired, stacklevel=stacklevel)


def read_header(path: Path) -> Header:
    """The header (first line) of a session file, without a lock or a repair."""
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        record = decode_line(first.rstrip(b"\n"))
    except ValueError:
        record = None
    if isinstance(record, Header):
        return record
    return Header(format=FORMAT_VERSION, id=path.name[: -len(SUFFIX)])
