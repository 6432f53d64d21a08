"""The daemon's ``[schedules.NAME]``: a thread of the supervisor enqueues their slots.

It wakes at the next slot of any schedule, and at least every few seconds, reading
the supervisor's config each round, so a reload that adds, changes or removes a
schedule takes effect without a restart. Several daemons on one database may all run
it: each slot is enqueued by one of them (see :mod:`athenad.store.schedules`). Each
enqueued slot is one info line; a catch-up past its cap is one warning.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from athenad.config import Config, ScheduleConfig
from athenad.paths import Home
from athenad.store.contract import JobStore
from athenad.store.schedules import Outcome, SlotStore, enqueue_due, slot_store
from athenad.store.timetable import MAX_CATCH_UP, slot_text, timetable
from athenad.util.logs import LibraryLogger

# The longest sleep: how soon a reload's schedules are seen (reading the config is free).
MAX_WAIT_S = 5.0
MIN_WAIT_S = 0.005
RETRY_WAIT_S = 5.0  # after the database failed a round
STOP_WAIT_S = 5.0

log = LibraryLogger("athenad.daemon.scheduler")


class SchedulerThread:
    """Enqueues the due slots of ``config()``'s schedules until stopped."""

    def __init__(self, home: Home, config: Callable[[], Config]) -> None:
        self.home = home
        self.config = config
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.queue: JobStore | None = None
        self.slots: SlotStore | None = None
        self.database: tuple[str, str] | None = None
        self.warned: set[tuple[str, str]] = set()
        # Each schedule's last successful look (the store's clock): slots due since are
        # late, not missed, and all enqueued (see due_slots).
        self.watched: dict[str, dt.datetime] = {}

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                wait = MAX_WAIT_S
                try:
                    config = self.config()
                    if config.schedules:
                        wait = self._round(config)
                    else:
                        self._close()  # no schedules: no connection held
                except Exception as exc:  # the next round tries again
                    log.warning("schedules_failed", error=" ".join(str(exc).split()))
                    self._close()
                    self.watched.clear()  # slots due meanwhile were missed, not late
                    wait = RETRY_WAIT_S
                self.stopped.wait(wait)
        finally:
            self._close()

    def _round(self, config: Config) -> float:
        """Enqueue every schedule's due slots; returns the seconds until the next slot."""
        slots = self._open(config)
        now = slots.now()
        soonest: dt.datetime | None = None
        # A schedule dropped by a reload is not watched; if it comes back, it was down.
        self.watched = {name: at for name, at in self.watched.items() if name in config.schedules}
        for name, schedule in config.schedules.items():
            if self.stopped.is_set():
                break
            try:
                table = timetable(schedule)
                self._check_agent(config, name, schedule)
                outcome = enqueue_due(
                    slots, name, schedule, now, table=table, watched_since=self.watched.get(name)
                )
                self.watched[name] = now
                _report(name, schedule, outcome)
                upcoming = next(table.forwards(now))
            except Exception as exc:  # one schedule's trouble leaves the others running
                self.watched.pop(name, None)
                log.warning("schedule_failed", schedule=name, error=" ".join(str(exc).split()))
                continue
            soonest = upcoming if soonest is None else min(soonest, upcoming)
        if soonest is None:
            return MAX_WAIT_S
        until = (soonest - slots.now()).total_seconds()
        return min(max(until, MIN_WAIT_S), MAX_WAIT_S)

    def _check_agent(self, config: Config, name: str, schedule: ScheduleConfig) -> None:
        """Warn once per schedule and agent when no agent has that name (its jobs fail)."""
        if (name, schedule.agent) in self.warned or schedule.agent in config.agents:
            return
        from workers.registry import known_agents

        self.warned.add((name, schedule.agent))
        agents = known_agents(config)
        if schedule.agent not in agents:
            log.warning(
                "schedule_unknown_agent",
                schedule=name,
                agent=schedule.agent,
                known=sorted(agents),
            )

    def _open(self, config: Config) -> SlotStore:
        database = (config.daemon.database_url, config.daemon.database_schema)
        if self.slots is None or database != self.database:
            self._close()
            from athenad.store.backend import open_store

            self.queue = open_store(self.home, config.daemon)
            self.slots, self.database = slot_store(self.queue), database
        return self.slots

    def _close(self) -> None:
        if self.queue is not None:
            self.queue.close()
        self.queue = self.slots = None


def _report(name: str, schedule: ScheduleConfig, outcome: Outcome) -> None:
    """One info line per enqueued slot; a warning when a catch-up hit its cap."""
    missed = None if outcome.missed_after is None else slot_text(outcome.missed_after)
    if outcome.capped and outcome.enqueued:
        log.warning(
            "schedule_catch_up_capped",
            schedule=name,
            missed_after=missed,
            replayed=len(outcome.enqueued),
            first_replayed=slot_text(outcome.enqueued[0].slot),
            cap=MAX_CATCH_UP,
        )
    for item in outcome.enqueued:
        log.info(
            "schedule_enqueued",
            schedule=name,
            slot=slot_text(item.slot),
            job_id=item.job_id,
            agent=schedule.agent,
            queue=schedule.queue,
            duplicate=item.duplicate,
            # Without catch_up, earlier missed slots are left out: say so once.
            **({"skipped_missed_after": missed} if outcome.skipped else {}),
        )


def start_scheduler(home: Home, config: Callable[[], Config]) -> SchedulerThread:
    """Start enqueuing the slots of ``config()``'s schedules (read each round)."""
    thread = SchedulerThread(home, config)
    thread.start()
    return thread
