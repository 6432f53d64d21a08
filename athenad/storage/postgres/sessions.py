"""Sessions in tables: a ``sessions`` row per conversation, a ``session_events`` row
per message.

A message gets its ``seq`` from the session's row (``last_seq + 1``), locked until the
append commits, and ``(session_id, seq)`` is unique: appenders in any process on any
host get one order and none is lost. Messages come back as the same records a session
file holds (same keys, timestamps and checksums), so exports are identical on both
backends and a session moves between them by export and import.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from psycopg_pool import ConnectionPool

from athenad.storage.sessions.files import (
    Header,
    Message,
    SessionNotFound,
    check_session_id,
    encode_line,
    is_valid_session_id,
    make_message,
)
from athenad.storage.sessions.gitinfo import current_branch
from athenad.storage.sessions.index import SessionInfo
from athenad.storage.sessions.manager import (
    Role,
    check_message,
    log,
    new_header,
    new_session_id,
)
from athenad.store.postgres.queries import QUERIES as Q
from athenad.util.timefmt import format_ts, parse_ts

_metadata_decoder = msgspec.json.Decoder(dict[str, Any] | None)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _metadata_text(metadata: dict[str, Any] | None) -> str | None:
    return None if metadata is None else msgspec.json.encode(metadata).decode()


def _as_stored(message: Message) -> Message:
    """The message as the table gives it back: its time to the millisecond, UTC.

    Messages this code made already are; an import's are normalised, and their
    checksum made again to match.
    """
    stamp = format_ts(parse_ts(message.timestamp))
    if stamp == message.timestamp and message.checksum:
        return message
    return make_message(message.seq, message.role, message.content, stamp, message.metadata)


def _info(row: tuple[Any, ...]) -> SessionInfo:
    sid, name, tags, branch, cwd, created, updated, count, size, imported_from = row
    return SessionInfo(
        id=sid,
        name=name,
        tags=list(tags),
        git_branch=branch,
        cwd=cwd,
        created_at=format_ts(created),
        updated_at=format_ts(updated),
        message_count=count,
        size=size,
        mtime_ns=(updated - _EPOCH) // _MICROSECOND * 1000,
        imported_from=imported_from,
    )


class PostgresSessionStore:
    """Every session in ``schema``, on connections from ``pool``."""

    def __init__(
        self, pool: ConnectionPool, schema: str, *, cwd: str | os.PathLike[str] | None = None
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.cwd = Path(cwd) if cwd is not None else None

    # ---- writing ----------------------------------------------------------------------

    def create_session(
        self,
        name: str | None = None,
        tags: Iterable[str] | str = (),
        git_branch: str | None = None,
        *,
        imported_from: str | None = None,
    ) -> str:
        """Create an empty session and return its id; the branch defaults to the cwd's."""
        header = new_header(name, tags, git_branch, imported_from, self.cwd)
        return self.write_new_session(header, [])

    def write_new_session(
        self, header: Header, messages: list[Message], *, session_id: str | None = None
    ) -> str:
        """Store a whole new session in one transaction (never replacing one); its id.

        ``session_id`` is tried first when given; if taken, a new id is made and the
        wanted one is recorded as ``imported_from``.
        """
        stored = [_as_stored(message) for message in messages]
        created = parse_ts(header.created_at)
        updated = parse_ts(stored[-1].timestamp) if stored else created
        wanted = session_id
        with self.pool.connection() as conn:
            while True:
                header.id = check_session_id(wanted) if wanted else new_session_id()
                size = len(encode_line(header)) + sum(len(encode_line(m)) for m in stored)
                row = {
                    "id": header.id,
                    "format": header.format,
                    "name": header.name,
                    "tags": list(header.tags),
                    "git_branch": header.git_branch,
                    "cwd": header.cwd,
                    "imported_from": header.imported_from,
                    "created_at": created,
                    "updated_at": updated,
                    "last_seq": len(stored),
                    "size_bytes": size,
                }
                if conn.execute(Q["insert_session"], row).fetchone() is not None:
                    break
                if wanted:
                    header.imported_from = wanted  # taken: keep where this came from
                wanted = None
            with conn.cursor() as cursor:
                cursor.executemany(
                    Q["insert_session_event"], [self._event(header.id, m) for m in stored]
                )
        log.info("session_created", session_id=header.id, git_branch=header.git_branch)
        return header.id

    @staticmethod
    def _event(session_id: str, message: Message) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "seq": message.seq,
            "role": message.role,
            "content": message.content,
            "metadata": _metadata_text(message.metadata),
            "checksum": message.checksum,
            "created_at": parse_ts(message.timestamp),
        }

    def add_message(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append one message in one transaction; returns it with its ``seq`` and checksum."""
        checked = check_message(role, content, metadata)
        check_session_id(session_id)
        with self.pool.connection() as conn:
            numbered = conn.execute(Q["next_session_seq"], {"id": session_id}).fetchone()
            if numbered is None:
                raise SessionNotFound(f"session {session_id!r} does not exist.")
            seq, at = numbered
            message = make_message(seq, checked.value, content, format_ts(at), metadata)
            params = self._event(session_id, message)
            params["line_bytes"] = len(encode_line(message))
            conn.execute(Q["append_session_event"], params)
        return message

    def delete_session(self, session_id: str) -> None:
        """Remove a session and its messages."""
        check_session_id(session_id)
        with self.pool.connection() as conn:
            if conn.execute(Q["delete_session"], {"id": session_id}).fetchone() is None:
                raise SessionNotFound(f"session {session_id!r} does not exist.")
        log.info("session_deleted", session_id=session_id)

    # ---- reading ----------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        """Whether a session has this id (a malformed id names none)."""
        if not is_valid_session_id(session_id):
            return False
        with self.pool.connection() as conn:
            return conn.execute(Q["session_exists"], {"id": session_id}).fetchone() is not None

    def read_session(self, session_id: str) -> tuple[Header, list[Message]]:
        """The header and every message, in order, as one consistent snapshot."""
        check_session_id(session_id)
        with self.pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = conn.execute(Q["session_header"], {"id": session_id}).fetchone()
            if found is None:
                raise SessionNotFound(f"session {session_id!r} does not exist.")
            rows = conn.execute(Q["session_events"], {"id": session_id}).fetchall()
        fmt, sid, name, tags, branch, cwd, created, imported_from = found
        header = Header(
            format=fmt,
            id=sid,
            name=name,
            tags=list(tags),
            git_branch=branch,
            cwd=cwd,
            created_at=format_ts(created),
            imported_from=imported_from,
        )
        return header, [self._message(row) for row in rows]

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        seq, role, at, content, checksum, metadata = row
        return Message(
            seq=seq,
            role=role,
            timestamp=format_ts(at),
            content=content,
            checksum=checksum,
            metadata=None if metadata is None else _metadata_decoder.decode(metadata),
        )

    def get_messages(self, session_id: str) -> list[Message]:
        """Every message of a session in sequence order."""
        return self.read_session(session_id)[1]

    def get_session(self, session_id: str) -> SessionInfo:
        """One session's metadata."""
        check_session_id(session_id)
        with self.pool.connection() as conn:
            row = conn.execute(Q["session_info"], {"id": session_id}).fetchone()
        if row is None:
            raise SessionNotFound(f"session {session_id!r} does not exist.")
        return _info(row)

    def list_sessions(self, git_branch: str | None = None) -> list[SessionInfo]:
        """Sessions (of one branch, or all), most recently active first."""
        with self.pool.connection() as conn:
            rows = conn.execute(Q["list_sessions"], {"git_branch": git_branch}).fetchall()
        return [_info(row) for row in rows]

    def resume_most_recent_session(self, git_branch: str | None = None) -> str | None:
        """The id of the most recently active session (of one branch), or None."""
        with self.pool.connection() as conn:
            row = conn.execute(Q["most_recent_session"], {"git_branch": git_branch}).fetchone()
        return None if row is None else str(row[0])

    def reindex(self) -> int:
        """Nothing to rebuild (the tables are the truth); returns the session count."""
        with self.pool.connection() as conn:
            (count,) = conn.execute(Q["count_sessions"]).fetchone() or (0,)
        return int(count)

    def current_branch(self) -> str | None:
        """The git branch of this store's working directory."""
        return current_branch(self.cwd or Path.cwd())
