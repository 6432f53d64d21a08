"""Retention on PostgreSQL: jobs, their checkpoint rows and sessions, all in tables.

Each batch is one transaction: the jobs (locked with SKIP LOCKED, so daemons on several
hosts pruning at once split the work instead of waiting on each other) and their
checkpoints go together. Cutoffs come from the database's clock, as every other time.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from athenad.store.named_sql import load_queries
from athenad.store.postgres.queries import SQL_DIR
from athenad.store.retention import (
    PrunePlan,
    PruneReport,
    StopCheck,
    cutoff,
    job_cutoffs,
    pause_after,
)

Q = load_queries(SQL_DIR / "retention.sql")


class PostgresPruner:
    """Prunes the tables of ``schema`` on a small pool of its own."""

    def __init__(self, url: str, schema: str) -> None:
        from athenad.storage.postgres import postgres_pool

        self.pool = postgres_pool(url, schema)

    def close(self) -> None:
        self.pool.close()

    def _rows(self, name: str, params: dict[str, Any]) -> list[Any]:
        with self.pool.connection() as conn:
            return conn.execute(Q[name], params).fetchall()

    def run(
        self, plan: PrunePlan, *, dry_run: bool, batch_size: int, should_stop: StopCheck
    ) -> PruneReport:
        (now,) = self._rows("retention_now", {})[0]
        params: dict[str, Any] = job_cutoffs(plan, now)
        report = PruneReport(dry_run=dry_run, jobs=dict.fromkeys(plan.ages, 0))
        if plan.ages:
            if dry_run:
                self._preview_jobs(params, report)
            else:
                self._prune_jobs(params, batch_size, should_stop, report)
                report.kept = int(self._rows("old_job_count", params)[0][0])
        sessions_before = cutoff(now, plan.session_age)
        if sessions_before is not None and not should_stop():
            report.sessions = self._prune_sessions(
                {"sessions_before": sessions_before, "batch": batch_size}, dry_run, should_stop
            )
        return report

    def _prune_jobs(
        self, params: dict[str, Any], batch_size: int, should_stop: StopCheck, report: PruneReport
    ) -> None:
        while not should_stop():
            with self.pool.connection() as conn:
                started = time.monotonic()
                gone = conn.execute(Q["prune_jobs"], {**params, "batch": batch_size}).fetchall()
                if gone:
                    ids = [job_id for job_id, _status in gone]
                    report.checkpoints += conn.execute(
                        Q["prune_checkpoints"], {"ids": ids}
                    ).rowcount
            took = time.monotonic() - started  # the commit included
            if not gone:
                return
            report.note_batch((status for _id, status in gone), took)
            pause_after(took)

    def _preview_jobs(self, params: dict[str, Any], report: PruneReport) -> None:
        counts = {what: int(n) for what, n in self._rows("prunable_jobs", params)}
        for status in report.jobs:
            report.jobs[status] = counts.get(status, 0)
        report.checkpoints = counts.get("checkpoints", 0)
        report.kept = counts.get("old", 0) - report.jobs_total

    def _prune_sessions(
        self, params: dict[str, dt.datetime | int], dry_run: bool, should_stop: StopCheck
    ) -> int:
        if dry_run:
            return int(self._rows("prunable_sessions", params)[0][0])
        removed = 0
        while not should_stop():
            gone = self._rows("prune_sessions", params)
            if not gone:
                break
            removed += len(gone)
        return removed
