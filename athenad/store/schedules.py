"""Schedules' slots enqueued exactly once, however many daemons share the database.

The ``schedules`` table holds each schedule's last enqueued slot. A daemon reads it,
computes the due slots from it, then in one transaction moves it forward with a
compare-and-set (it must still hold what was read) and inserts the slots' jobs. Of two
daemons that read the same value only one commits; the other reads again and finds
nothing due. Each job's unique key ``schedule:NAME:SLOT`` is a second guard: a slot
whose job is still unfinished is never inserted twice.

A schedule first seen has no last slot: its slots count from that moment (the row's
``updated_at``), so adding one to athena.toml enqueues nothing from the past. Each
backend does the SQL in its ``schedules`` module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from athenad.store.jobspec import JobSpec, Submitted, checked_fields
from athenad.store.timetable import (
    MAX_CATCH_UP,
    Due,
    Timetable,
    due_slots,
    slot_text,
    timetable,
    upcoming,
    zone_of,
)

if TYPE_CHECKING:
    from athenad.config import ScheduleConfig
    from athenad.store.contract import JobStore

# Reads of a schedule's row after another daemon moved it first; a second read finds
# its slots enqueued, so more than a couple means something keeps changing it.
CAS_ATTEMPTS = 3
NEXT_RUNS = 3
# A slot's job is created after the slot; the margin covers a clock stepped back since.
SLOT_JOB_MARGIN = dt.timedelta(hours=1)


class ScheduleState(msgspec.Struct, frozen=True):
    """A schedule's row: the last slot enqueued (None: none yet), and when the row was
    last written (while ``last_slot`` is None: when the schedule was first seen)."""

    last_slot: dt.datetime | None
    updated_at: dt.datetime

    @property
    def after(self) -> dt.datetime:
        """Slots after this moment are still to enqueue."""
        return self.updated_at if self.last_slot is None else self.last_slot


class SlotJob(msgspec.Struct, frozen=True):
    """One slot and its job's checked columns (see :func:`slot_fields`)."""

    slot: dt.datetime
    fields: dict[str, Any]


class SlotStore(Protocol):
    """One backend's schedule rows, on the connection of an open queue."""

    def now(self) -> dt.datetime:
        """The database's clock (SQLite: this host's)."""
        ...

    def state(self, name: str) -> ScheduleState:
        """The schedule's row, made the first time (its slots count from then)."""
        ...

    def states(self) -> dict[str, ScheduleState]:
        """Every schedule's row; nothing is written."""
        ...

    def enqueue_slots(
        self, name: str, expected: dt.datetime | None, jobs: Sequence[SlotJob]
    ) -> list[Submitted] | None:
        """In one transaction: move ``last_slot`` from ``expected`` to the last job's
        slot and insert the jobs; None (and nothing written) when ``last_slot`` no
        longer holds ``expected``."""
        ...

    def slot_job(self, name: str, slot: dt.datetime) -> str | None:
        """The id of the newest job of a slot, if it is still there."""
        ...


class Enqueued(msgspec.Struct, frozen=True):
    """A slot this call enqueued: its job, or the live job that already held its key."""

    slot: dt.datetime
    job_id: str
    duplicate: bool = False


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one look at a schedule did: the slots it enqueued, and whether earlier
    missed slots were left out (see :class:`~athenad.store.timetable.Due`)."""

    enqueued: list[Enqueued]
    skipped: bool = False
    capped: bool = False
    missed_after: dt.datetime | None = None


def slot_store(queue: JobStore) -> SlotStore:
    """The schedule rows of an open queue's database, on the queue's connection."""
    from athenad.store.sqlite.queue import JobQueue

    if isinstance(queue, JobQueue):
        from athenad.store.sqlite.schedules import SqliteSlots

        return SqliteSlots(queue.conn, queue.run_dir)
    from athenad.store.postgres.queue import PostgresJobQueue
    from athenad.store.postgres.schedules import PostgresSlots

    if not isinstance(queue, PostgresJobQueue):
        raise TypeError(f"no schedule rows for a {type(queue).__name__}")
    return PostgresSlots(queue.pool, queue.schema)


def unique_key(name: str, slot: dt.datetime) -> str:
    """The unique key of a slot's job: ``schedule:NAME:2026-12-02T09:15:00Z``."""
    return f"schedule:{name}:{slot_text(slot)}"


def slot_fields(name: str, schedule: ScheduleConfig, slot: dt.datetime) -> dict[str, Any]:
    """The checked columns of a slot's job (priority None: the queue's default)."""
    spec = JobSpec(
        type=schedule.agent,
        payload=schedule.payload,
        priority=schedule.priority,
        queue=schedule.queue,
        unique_key=unique_key(name, slot),
    )
    return checked_fields(spec, 0)


def enqueue_due(
    store: SlotStore,
    name: str,
    schedule: ScheduleConfig,
    now: dt.datetime,
    *,
    table: Timetable | None = None,
    cap: int = MAX_CATCH_UP,
    watched_since: dt.datetime | None = None,
) -> Outcome:
    """Enqueue the slots of ``schedule`` due at ``now`` that no daemon enqueued yet;
    ``watched_since`` is the caller's last look at it (see :func:`due_slots`)."""
    table = table or timetable(schedule)
    for _attempt in range(CAS_ATTEMPTS):
        state = store.state(name)
        due: Due = due_slots(
            table,
            state.after,
            now,
            catch_up=schedule.catch_up,
            cap=cap,
            watched_since=watched_since,
        )
        if not due.slots:
            return Outcome(enqueued=[])
        jobs = [SlotJob(slot, slot_fields(name, schedule, slot)) for slot in due.slots]
        submitted = store.enqueue_slots(name, state.last_slot, jobs)
        if submitted is not None:
            return Outcome(
                enqueued=[
                    Enqueued(job.slot, outcome.id, outcome.duplicate)
                    for job, outcome in zip(jobs, submitted, strict=True)
                ],
                skipped=due.skipped,
                capped=due.capped,
                missed_after=state.after if due.skipped or due.capped else None,
            )
    return Outcome(enqueued=[])  # others keep moving it: their slots are enqueued


def describe(
    name: str,
    schedule: ScheduleConfig,
    state: ScheduleState | None,
    now: dt.datetime,
    last_job: str | None = None,
) -> dict[str, Any]:
    """A schedule as ``athenactl schedule list --json`` shows it; times are ISO 8601
    in its time zone (UTC with Z)."""
    zone = zone_of(schedule.timezone)
    last_slot = state.last_slot if state is not None else None
    return {
        "name": name,
        "agent": schedule.agent,
        "cron": schedule.cron,
        "every": schedule.every,
        "timezone": schedule.timezone,
        "queue": schedule.queue,
        "priority": schedule.priority,
        "catch_up": schedule.catch_up,
        "last_slot": None if last_slot is None else slot_text(last_slot, zone),
        "last_job_id": last_job,
        "next_runs": [
            slot_text(slot, zone) for slot in upcoming(timetable(schedule), now, NEXT_RUNS)
        ],
    }


def describe_all(
    schedules: dict[str, ScheduleConfig], store: SlotStore | None
) -> list[dict[str, Any]]:
    """Every configured schedule, by name, with its row when there is a database."""
    states = store.states() if store is not None else {}
    now = store.now() if store is not None else dt.datetime.now(dt.UTC)
    rows = []
    for name in sorted(schedules):
        state = states.get(name)
        last_job = None
        if store is not None and state is not None and state.last_slot is not None:
            last_job = store.slot_job(name, state.last_slot)
        rows.append(describe(name, schedules[name], state, now, last_job))
    return rows
