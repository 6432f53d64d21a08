"""Job log lines and progress in athena.db, on a connection the caller already has."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw

from athenad.errors import JobNotFound
from athenad.storage.job_logs import READ_PAGE, LogLine, LogState, NewLine, Progress
from athenad.storage.job_logs import decode_fields as _fields
from athenad.store.named_sql import load_queries
from athenad.store.sqlite.connection import write_transaction
from athenad.util.timefmt import utc_now_text

Q = load_queries(Path(__file__).parents[1] / "sql" / "job_logs_sqlite.sql")


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"job {job_id!r} does not exist.")


class SqliteJobLogs:
    """Reads and short write transactions on ``conn`` (a worker's or a command's)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def _first(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        for row in self.conn.execute(Q[name], params):
            return tuple(row)
        return None

    def append(
        self,
        job_id: str,
        lines: Sequence[NewLine],
        *,
        max_bytes: int = 0,
        timeout_s: float = 30.0,
    ) -> int:
        kept = 0
        with write_transaction(self.conn, timeout_s=timeout_s):
            for line in lines:
                params = {
                    "job_id": job_id,
                    "size": line.size,
                    "max_bytes": max_bytes,
                    "capped": int(line.capped),
                }
                row = self._first("job_log_count_line", params)
                if row is None:
                    if self._first("job_log_drop_line", {"job_id": job_id}) is None:
                        raise _not_found(job_id)
                    continue
                self.conn.execute(
                    Q["job_log_insert"],
                    {
                        "job_id": job_id,
                        "seq": row[0],
                        "at": line.at,
                        "level": line.level,
                        "message": line.message,
                        "fields": line.fields,
                    },
                )
                kept += 1
        return kept

    def read(self, job_id: str, *, after: int = 0, limit: int = READ_PAGE) -> list[LogLine]:
        params = {"job_id": job_id, "after": after, "limit": limit}
        return [
            LogLine(seq, at, level, message, _fields(fields))
            for seq, at, level, message, fields in self.conn.execute(Q["job_log_lines"], params)
        ]

    def state(self, job_id: str) -> LogState:
        row = self._first("job_log_state", {"job_id": job_id})
        if row is None:
            raise _not_found(job_id)
        return LogState(*row)

    def set_progress(self, job_id: str, fraction: float | None, message: str | None) -> None:
        params = {"job_id": job_id, "fraction": fraction, "message": message}
        with write_transaction(self.conn):
            self.conn.execute(Q["job_set_progress"], {**params, "at": utc_now_text()})
            if self.conn.changes() != 1:
                raise _not_found(job_id)

    def running_progress(self) -> dict[str, Progress]:
        return {
            job_id: Progress(fraction, message, at)
            for job_id, fraction, message, at in self.conn.execute(Q["running_progress"])
        }
