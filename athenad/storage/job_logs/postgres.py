"""Job log lines and progress in PostgreSQL, on the queue's pool (one pool a process)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from athenad.errors import JobNotFound
from athenad.storage.job_logs import READ_PAGE, LogLine, LogState, NewLine, Progress
from athenad.storage.job_logs import decode_fields as _fields
from athenad.store.named_sql import load_queries
from athenad.util.timefmt import format_ts, parse_ts

Q = load_queries(Path(__file__).parents[1] / "sql" / "job_logs_postgres.sql")


def _text(moment: dt.datetime | None) -> str | None:
    return None if moment is None else format_ts(moment)


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"job {job_id!r} does not exist.")


def running_progress_on(conn: Any) -> dict[str, Progress]:
    """:meth:`PostgresJobLogs.running_progress` on a connection of the caller's."""
    rows = conn.execute(Q["running_progress"]).fetchall()
    return {
        job_id: Progress(fraction, message, _text(at)) for job_id, fraction, message, at in rows
    }


class PostgresJobLogs:
    """Each call is one transaction on a connection borrowed from ``pool``."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def append(
        self,
        job_id: str,
        lines: Sequence[NewLine],
        *,
        max_bytes: int = 0,
        timeout_s: float = 30.0,
    ) -> int:
        kept = 0
        # Updating the job's row locks it: appenders on any host number lines in turn.
        with self.pool.connection(timeout=timeout_s) as conn:
            for line in lines:
                params = {
                    "job_id": job_id,
                    "size": line.size,
                    "max_bytes": max_bytes,
                    "capped": line.capped,
                }
                row = conn.execute(Q["job_log_count_line"], params).fetchone()
                if row is None:
                    if conn.execute(Q["job_log_drop_line"], {"job_id": job_id}).fetchone() is None:
                        raise _not_found(job_id)
                    continue
                conn.execute(
                    Q["job_log_insert"],
                    {
                        "job_id": job_id,
                        "seq": row[0],
                        "at": parse_ts(line.at),
                        "level": line.level,
                        "message": line.message,
                        "fields": line.fields,
                    },
                )
                kept += 1
        return kept

    def read(self, job_id: str, *, after: int = 0, limit: int = READ_PAGE) -> list[LogLine]:
        params = {"job_id": job_id, "after": after, "limit": limit}
        with self.pool.connection() as conn:
            rows = conn.execute(Q["job_log_lines"], params).fetchall()
        return [
            LogLine(seq, format_ts(at), level, message, _fields(fields))
            for seq, at, level, message, fields in rows
        ]

    def state(self, job_id: str) -> LogState:
        with self.pool.connection() as conn:
            row = conn.execute(Q["job_log_state"], {"job_id": job_id}).fetchone()
        if row is None:
            raise _not_found(job_id)
        status, lines, size, dropped, fraction, message, at = row
        return LogState(status, lines, size, dropped, fraction, message, _text(at))

    def set_progress(self, job_id: str, fraction: float | None, message: str | None) -> None:
        params = {"job_id": job_id, "fraction": fraction, "message": message}
        with self.pool.connection() as conn:
            if conn.execute(Q["job_set_progress"], params).rowcount != 1:
                raise _not_found(job_id)

    def running_progress(self) -> dict[str, Progress]:
        with self.pool.connection() as conn:
            return running_progress_on(conn)
