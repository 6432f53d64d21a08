"""Each job's log lines and progress, kept in the queue's own database.

Lines live in the ``job_logs`` table beside the job's row, so either backend serves
them to any host, and a pruned job takes its lines along (``ON DELETE CASCADE``).
Appending a line numbers it from ``jobs.log_seq`` and adds its size to
``jobs.log_bytes`` in the same transaction as the insert; a line that would take the
log past the cap (``[daemon] job_log_max_bytes``) is only counted in
``jobs.log_dropped``. Progress is the job's ``progress``, ``progress_message`` and
``progress_at`` columns.

:func:`open_job_logs` gives the store of a queue, on the queue's own connection
(SQLite) or pool (PostgreSQL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from athenad.errors import InvalidInput
from athenad.util.timefmt import utc_now_text

LEVELS = ("debug", "info", "warning", "error", "critical")
READ_PAGE = 1000  # lines read per query; a reader pages on from the last seq it has
_encode = msgspec.json.Encoder().encode
_lenient_encode = msgspec.json.Encoder(enc_hook=repr).encode
_decode = msgspec.json.Decoder().decode


class JobLogError(InvalidInput, ValueError):
    """A log line or a progress report that cannot be stored."""


class NewLine(msgspec.Struct, frozen=True):
    """A line to append; ``fields`` is JSON text already (checked when it was made)."""

    at: str
    level: str
    message: str
    fields: str | None = None
    # False: kept even past the cap (the worker's lines saying how a run began and ended).
    capped: bool = True

    @property
    def size(self) -> int:
        return len(self.message.encode()) + len(self.fields or "")


class LogLine(msgspec.Struct, frozen=True):
    """A stored line, as ``athenactl logs --json`` prints it."""

    seq: int
    at: str
    level: str
    message: str
    fields: dict[str, Any] | None = None


class LogState(msgspec.Struct, frozen=True):
    """What a reader needs besides the lines: the job's status, counts and progress."""

    status: str
    lines: int
    bytes: int
    dropped: int
    progress: float | None = None
    progress_message: str | None = None
    progress_at: str | None = None


class Progress(msgspec.Struct, frozen=True):
    fraction: float | None
    message: str | None
    at: str | None


class JobLogStore(Protocol):
    """The log lines and progress of jobs in one database."""

    def append(
        self,
        job_id: str,
        lines: Sequence[NewLine],
        *,
        max_bytes: int = 0,
        timeout_s: float = 30.0,
    ) -> int:
        """Append lines in one transaction; returns how many were kept (the rest were
        dropped past ``max_bytes``, 0 = no cap). Raises JobNotFound for an unknown job."""
        ...

    def read(self, job_id: str, *, after: int = 0, limit: int = READ_PAGE) -> list[LogLine]:
        """Lines with seq > ``after``, oldest first (an unknown job has none)."""
        ...

    def state(self, job_id: str) -> LogState:
        """Status, counts and progress; raises JobNotFound for an unknown job."""
        ...

    def set_progress(self, job_id: str, fraction: float | None, message: str | None) -> None:
        """Record progress (None keeps that part as it was); JobNotFound if unknown."""
        ...

    def running_progress(self) -> dict[str, Progress]:
        """The progress each running job reported during its current run, by job id."""
        ...


def open_job_logs(queue: Any) -> JobLogStore | None:
    """The log store on a queue's pool (PostgreSQL) or connection (SQLite); None for
    a queue that has neither (a stand-in in tests)."""
    pool = getattr(queue, "pool", None)
    if pool is not None:
        from athenad.storage.job_logs.postgres import PostgresJobLogs

        return PostgresJobLogs(pool)
    conn = getattr(queue, "conn", None)
    if conn is not None:
        from athenad.storage.job_logs.sqlite import SqliteJobLogs

        return SqliteJobLogs(conn)
    return None


def running_progress(reader: Any) -> dict[str, Progress]:
    """The progress of running jobs through an analytics reader's connection (``top``)."""
    import apsw

    conn = reader.conn
    if isinstance(conn, apsw.Connection):
        from athenad.storage.job_logs.sqlite import SqliteJobLogs

        return SqliteJobLogs(conn).running_progress()
    from athenad.storage.job_logs.postgres import running_progress_on

    return running_progress_on(conn)


def note_rescue(queue: Any, job_id: str, status: str, reason: str) -> None:
    """The daemon's line in a job's log when it takes the job back from a worker that
    died or stopped renewing its lease; a line the database refuses is only skipped."""
    store = open_job_logs(queue)
    if store is None or not status:
        return
    message = f"job requeued: {reason}" if status == "pending" else f"job {status}: {reason}"
    try:
        store.append(job_id, [new_line(message, "warning", capped=False)], timeout_s=1.0)
    except Exception as exc:  # the rescue itself is done; its line matters less
        from athenad.util.logs import LibraryLogger

        LibraryLogger(__name__).warning("job_log_write_failed", job_id=job_id, error=str(exc))


# ---- making lines ---------------------------------------------------------------------


def check_level(level: Any) -> str:
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise JobLogError(f"log level {level!r} is not one of {', '.join(LEVELS)}.")
    return level.lower()


def encode_fields(fields: Mapping[str, Any] | None, *, lenient: bool = False) -> str | None:
    """Fields as JSON text (None when there are none).

    Strict, a value msgspec cannot encode is one error naming its field; ``lenient``
    (structlog-style calls, which never refused a value) stores such a value's repr.
    """
    if not fields:
        return None
    if lenient:
        try:
            return _lenient_encode(fields).decode()
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            return _encode({str(key): repr(value) for key, value in fields.items()}).decode()
    try:
        return _encode(fields).decode()
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        pass
    for key, value in fields.items():
        try:
            _encode(value)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            raise JobLogError(
                f"log field {key!r} cannot be stored as JSON ({exc}); pass strings, numbers, "
                "booleans, None, or lists and dicts of them."
            ) from None
    raise JobLogError("the log fields cannot be stored as JSON.")


def new_line(
    message: Any,
    level: Any = "info",
    fields: Mapping[str, Any] | None = None,
    *,
    at: str | None = None,
    capped: bool = True,
    lenient: bool = False,
) -> NewLine:
    """A checked line: a known level, a text message, JSON-encodable fields."""
    if not isinstance(message, str):
        raise JobLogError(f"a log message must be text, not {type(message).__name__}.")
    return NewLine(
        at=at or utc_now_text(),
        level=check_level(level),
        message=message,
        fields=encode_fields(fields, lenient=lenient),
        capped=capped,
    )


def decode_fields(text: str | None) -> dict[str, Any] | None:
    return None if text is None else _decode(text)


def check_progress(fraction: Any, message: Any) -> tuple[float | None, str | None]:
    """``fraction`` a number from 0 to 1 (or None), ``message`` text (or None)."""
    if fraction is not None:
        ok = isinstance(fraction, int | float) and not isinstance(fraction, bool)
        if not ok or not math.isfinite(fraction) or not 0 <= fraction <= 1:
            raise JobLogError(f"progress must be a number from 0 to 1, not {fraction!r}.")
        fraction = float(fraction)
    if message is not None and not isinstance(message, str):
        raise JobLogError(f"a progress message must be text, not {type(message).__name__}.")
    return fraction, message
