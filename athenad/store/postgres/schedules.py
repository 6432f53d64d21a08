"""Schedules' rows on PostgreSQL, and their slots' jobs inserted with the move of
``last_slot`` in one transaction. Slots are due by the database's clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from athenad.errors import InvalidTransition
from athenad.store.jobspec import Submitted
from athenad.store.named_sql import load_queries
from athenad.store.postgres.queries import QUERIES, SQL_DIR
from athenad.store.schedules import SLOT_JOB_MARGIN, ScheduleState, SlotJob, unique_key
from athenad.util.ids import new_job_id

Q = load_queries(SQL_DIR / "schedules.sql")


class PostgresSlots:
    """Schedule rows in ``schema``, on a pool (a PostgresJobQueue's ``pool``)."""

    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    def _one(self, name: str, params: dict[str, Any]) -> Any:
        with self.pool.connection() as conn:
            return conn.execute(Q[name], params).fetchone()

    def now(self) -> dt.datetime:
        (now,) = self._one("schedules_now", {})
        return now.astimezone(dt.UTC)

    def state(self, name: str) -> ScheduleState:
        row = self._one("schedule_state", {"name": name})
        if row is None:
            with self.pool.connection() as conn:
                conn.execute(Q["watch_schedule"], {"name": name})
                row = conn.execute(Q["schedule_state"], {"name": name}).fetchone()
        return _row_state(*row)

    def states(self) -> dict[str, ScheduleState]:
        with self.pool.connection() as conn:
            rows = conn.execute(Q["schedule_states"]).fetchall()
        return {name: _row_state(last_slot, updated_at) for name, last_slot, updated_at in rows}

    def enqueue_slots(
        self, name: str, expected: dt.datetime | None, jobs: Sequence[SlotJob]
    ) -> list[Submitted] | None:
        if not jobs:
            return []
        outcomes: list[Submitted] = []
        with self.pool.connection() as conn:
            moved = conn.execute(
                Q["advance_schedule"],
                {"name": name, "expected": expected, "slot": jobs[-1].slot},
            ).fetchone()
            if moved is None:
                return None
            for job in jobs:
                outcomes.append(self._insert(conn, dict(job.fields)))
            if any(not outcome.duplicate for outcome in outcomes):
                # pg_notify in the transaction: delivered at commit, and only if it commits.
                conn.execute(QUERIES["notify_ready"], {"schema": self.schema})
        return outcomes

    @staticmethod
    def _insert(conn: psycopg.Connection[Any], row: dict[str, Any]) -> Submitted:
        # No priority: insert_job takes the queue's default itself.
        row.update(
            id=new_job_id(),
            status="pending",
            run_at=None,
            parent_job_id=None,
            pending_parents=0,
            session_id=None,
            cancelled_by=None,
            error=None,
        )
        if conn.execute(QUERIES["insert_job"], row).fetchone() is not None:
            return Submitted(row["id"])
        # A live job holds the slot's key (the row was moved back by hand, say).
        live = conn.execute(QUERIES["live_job_with_key"], {"key": row["unique_key"]}).fetchone()
        if live is None:
            raise InvalidTransition(
                f"unique key {row['unique_key']!r} was taken and released while its slot "
                "was being enqueued; the next look at the schedule tries again."
            )
        return Submitted(str(live[0]), duplicate=True)

    def slot_job(self, name: str, slot: dt.datetime) -> str | None:
        row = self._one(
            "slot_job", {"since": slot - SLOT_JOB_MARGIN, "key": unique_key(name, slot)}
        )
        return None if row is None else str(row[0])


def _row_state(last_slot: dt.datetime | None, updated_at: dt.datetime) -> ScheduleState:
    return ScheduleState(
        last_slot=None if last_slot is None else last_slot.astimezone(dt.UTC),
        updated_at=updated_at.astimezone(dt.UTC),
    )
