"""Retention on a SQLite home: rows in athena.db, checkpoint and session files.

Each batch reads up to ``batch_size`` old jobs without dependents outside any write
transaction, then deletes those still eligible in one short ``BEGIN IMMEDIATE``
transaction, then removes their checkpoint files (after the commit: a crash in between
leaves files of jobs that are gone, never jobs whose checkpoints are gone).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import apsw

from athenad.paths import Home
from athenad.storage.checkpoints import FileCheckpointStore
from athenad.storage.sessions import SessionManager, SessionNotFound
from athenad.store.named_sql import load_queries
from athenad.store.retention import (
    PrunePlan,
    PruneReport,
    StopCheck,
    cutoff,
    job_cutoffs,
    pause_after,
)
from athenad.store.sqlite.connection import write_transaction
from athenad.store.sqlite.migrations import open_database
from athenad.store.sqlite.queries import SQL_DIR
from athenad.util.timefmt import parse_ts

Q = load_queries(SQL_DIR / "retention.sql")


class SqlitePruner:
    """Prunes one home: athena.db, ``.athena/checkpoints`` and ``.athena/sessions``."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.conn: apsw.Connection = open_database(home.db_path)

    def close(self) -> None:
        self.conn.close()

    def run(
        self, plan: PrunePlan, *, dry_run: bool, batch_size: int, should_stop: StopCheck
    ) -> PruneReport:
        now = dt.datetime.now(dt.UTC)
        params = {name: _text(value) for name, value in job_cutoffs(plan, now).items()}
        report = PruneReport(dry_run=dry_run, jobs=dict.fromkeys(plan.ages, 0))
        if plan.ages:
            if dry_run:
                self._preview_jobs(params, report)
            else:
                self._prune_jobs(params, batch_size, should_stop, report)
                report.kept = self._scalar("old_job_count", params)
        sessions_before = _text(cutoff(now, plan.session_age))
        if sessions_before is not None and not should_stop():
            report.sessions = self._prune_sessions(sessions_before, dry_run)
        return report

    # ---- jobs -------------------------------------------------------------------------

    def _prune_jobs(
        self, params: dict[str, Any], batch_size: int, should_stop: StopCheck, report: PruneReport
    ) -> None:
        files: dict[str, list[Path]] | None = None
        while not should_stop():
            ids = [
                row[0]
                for row in self.conn.execute(Q["old_leaf_jobs"], {**params, "batch": batch_size})
            ]
            if not ids:
                return
            with write_transaction(self.conn):
                started = time.monotonic()
                gone = [
                    (str(job_id), str(status))
                    for job_id, status in self.conn.execute(
                        Q["prune_jobs"], {**params, "ids": json.dumps(ids)}
                    )
                ]
            took = time.monotonic() - started
            if not gone:
                return  # every id changed under us (retried, say): the next prune sees them
            report.note_batch((status for _id, status in gone), took)
            if files is None:
                # One listing for the whole prune, made once there is something to remove.
                files = FileCheckpointStore(self.home.checkpoints_dir).files_by_job()
            report.checkpoints += _remove_files(files, (job_id for job_id, _status in gone))
            pause_after(took)

    def _preview_jobs(self, params: dict[str, Any], report: PruneReport) -> None:
        files = FileCheckpointStore(self.home.checkpoints_dir).files_by_job()
        total = 0
        for job_id, status in self.conn.execute(Q["prunable_jobs"], params):
            report.jobs[str(status)] += 1
            total += 1
            report.checkpoints += _count_checkpoints(files.get(str(job_id), ()))
        report.kept = self._scalar("old_job_count", params) - total

    def _scalar(self, name: str, params: dict[str, Any]) -> int:
        row = self.conn.execute(Q[name], params).fetchone()
        return int(row[0]) if row else 0

    # ---- sessions ---------------------------------------------------------------------

    def _prune_sessions(self, before: str, dry_run: bool) -> int:
        """Session files not updated since ``before`` that no unfinished job names."""
        manager = SessionManager(self.home.sessions_dir)
        old = [info.id for info in manager.list_sessions() if _older(info.updated_at, before)]
        if not old:
            return 0
        in_use = {row[0] for row in self.conn.execute(Q["sessions_in_use"])}
        old = [session_id for session_id in old if session_id not in in_use]
        if dry_run:
            return len(old)
        removed = 0
        for session_id in old:
            try:
                # Read again from the file: a message may have arrived since the listing.
                if _older(manager.get_session(session_id).updated_at, before):
                    manager.delete_session(session_id)
                    removed += 1
            except SessionNotFound:
                continue  # deleted meanwhile by someone else
        return removed


def _text(moment: dt.datetime | None) -> str | None:
    """A cutoff as athena.db's timestamp text ('0001-01-01 ...' for EARLIEST, padded)."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(sep=" ", timespec="milliseconds")[:23]


def _older(updated_at: str, before: str) -> bool:
    """Whether a session's time is before the cutoff; an unreadable time keeps it."""
    try:
        return parse_ts(updated_at) < parse_ts(before)
    except ValueError:
        return False


def _count_checkpoints(paths: Iterable[Path]) -> int:
    return sum(1 for path in paths if not path.name.endswith(".tmp"))


def _remove_files(files: dict[str, list[Path]], job_ids: Iterable[str]) -> int:
    """Remove the listed checkpoint files of ``job_ids``; returns how many checkpoints."""
    removed = 0
    for job_id in job_ids:
        for path in files.pop(job_id, ()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += not path.name.endswith(".tmp")
    return removed
