"""Schedules' rows in athena.db, and their slots' jobs inserted with the move of
``last_slot`` in one ``BEGIN IMMEDIATE`` transaction."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path

import apsw

from athenad.store.jobspec import Submitted
from athenad.store.named_sql import load_queries
from athenad.store.schedules import SLOT_JOB_MARGIN, ScheduleState, SlotJob, unique_key
from athenad.store.sqlite.connection import write_transaction
from athenad.store.sqlite.queries import QUERIES, SQL_DIR
from athenad.util.ids import new_job_id
from athenad.util.timefmt import format_epoch, format_ts, parse_ts
from athenad.util.wake import wake_idle

Q = load_queries(SQL_DIR / "schedules.sql")


class SqliteSlots:
    """Schedule rows on an open athena.db connection (a JobQueue's ``conn``);
    ``run_dir`` is where idle workers wait to be woken."""

    def __init__(self, conn: apsw.Connection, run_dir: Path) -> None:
        self.conn = conn
        self.run_dir = run_dir

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def state(self, name: str) -> ScheduleState:
        row = self._state(name)
        if row is None:
            with write_transaction(self.conn):
                self.conn.execute(Q["watch_schedule"], {"name": name, "now": format_ts(self.now())})
            row = self._state(name)
            assert row is not None  # rows are never deleted
        return row

    def _state(self, name: str) -> ScheduleState | None:
        for last_slot, updated_at in self.conn.execute(Q["schedule_state"], {"name": name}):
            return _row_state(last_slot, updated_at)
        return None

    def states(self) -> dict[str, ScheduleState]:
        return {
            str(name): _row_state(last_slot, updated_at)
            for name, last_slot, updated_at in self.conn.execute(Q["schedule_states"])
        }

    def enqueue_slots(
        self, name: str, expected: dt.datetime | None, jobs: Sequence[SlotJob]
    ) -> list[Submitted] | None:
        if not jobs:
            return []
        outcomes: list[Submitted] = []
        with write_transaction(self.conn):
            now = format_epoch(time.time())
            moved = self.conn.execute(
                Q["advance_schedule"],
                {
                    "name": name,
                    "expected": None if expected is None else format_ts(expected),
                    "slot": format_ts(jobs[-1].slot),
                    "now": now,
                },
            ).fetchall()
            if not moved:
                return None
            for job in jobs:
                row = dict(job.fields)
                live = self.conn.execute(
                    QUERIES["live_job_with_key"], {"key": row["unique_key"]}
                ).fetchone()
                if live is not None:
                    outcomes.append(Submitted(str(live[0]), duplicate=True))
                    continue
                row.update(
                    id=new_job_id(),
                    status="pending",
                    now=now,
                    run_after=now,
                    parent_job_id=None,
                    pending_parents=0,
                    session_id=None,
                    cancelled_by=None,
                    error=None,
                    completed_at=None,
                )
                self.conn.execute(QUERIES["insert_job"], row)
                outcomes.append(Submitted(row["id"]))
        made = sum(not outcome.duplicate for outcome in outcomes)
        if made:
            wake_idle(self.run_dir, made)
        return outcomes

    def slot_job(self, name: str, slot: dt.datetime) -> str | None:
        params = {"since": format_ts(slot - SLOT_JOB_MARGIN), "key": unique_key(name, slot)}
        row = self.conn.execute(Q["slot_job"], params).fetchone()
        return None if row is None else str(row[0])


def _row_state(last_slot: str | None, updated_at: str) -> ScheduleState:
    return ScheduleState(
        last_slot=None if last_slot is None else parse_ts(last_slot),
        updated_at=parse_ts(updated_at),
    )
