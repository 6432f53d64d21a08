"""The daemon's own pruning by ``[retention]``, on a thread of the supervisor.

A thread, like the presence record, so a prune of a large backlog never holds up the
supervisor's loop (reaping workers, sweeping leases). It prunes at once, then every
half of the shortest age set (between 1 s and 60 s): no job outlives its age by more
than that. It reads the supervisor's config each round, so a reload that sets, changes
or removes ``[retention]`` takes effect without a restart. Several daemons on one
database may all prune: each batch deletes only rows that are still eligible, so no
job is deleted or counted twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from athenad.config import Config
from athenad.paths import Home
from athenad.store.retention import PrunePlan, Pruner, make_plan, open_pruner, run_plan
from athenad.util.logs import LibraryLogger

MIN_EVERY_S = 1.0
MAX_EVERY_S = 60.0
IDLE_EVERY_S = 5.0  # without [retention]: how soon a reload that sets it is noticed
STOP_WAIT_S = 5.0

log = LibraryLogger("athenad.daemon.retention")


def prune_every(plan: PrunePlan) -> float:
    """Seconds between prunes: half the shortest age, within 1 s .. 60 s."""
    ages = [*plan.ages.values(), *([plan.session_age] if plan.session_age is not None else [])]
    return min(max(min(ages) / 2, MIN_EVERY_S), MAX_EVERY_S)


def plan_of(config: Config) -> PrunePlan | None:
    """The plan ``[retention]`` sets, or None when it sets no age."""
    retention = config.retention
    if not retention.ages() and retention.session_age() is None:
        return None
    return make_plan(retention)


class RetentionThread:
    """Prunes a home by ``config()``'s ``[retention]`` until stopped; ``stop()`` ends it
    between batches."""

    def __init__(self, home: Home, config: Callable[[], Config]) -> None:
        self.home = home
        self.config = config
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self.pruner: Pruner | None = None
        self.database: tuple[str, str] | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                started = time.monotonic()
                every = IDLE_EVERY_S
                try:
                    config = self.config()
                    plan = plan_of(config)
                    if plan is not None:
                        every = prune_every(plan)
                        self._prune_once(config, plan)
                except Exception as exc:  # the next round tries again; nothing is half-done
                    log.warning("prune_failed", error=" ".join(str(exc).split()))
                    self._close()
                self.stopped.wait(max(every - (time.monotonic() - started), 0.0))
        finally:
            self._close()

    def _prune_once(self, config: Config, plan: PrunePlan) -> None:
        database = (config.daemon.database_url, config.daemon.database_schema)
        if self.pruner is None or database != self.database:
            self._close()
            self.pruner, self.database = open_pruner(self.home, config), database
        report = run_plan(self.pruner, plan, should_stop=self.stopped.is_set)
        if report.jobs_total or report.sessions:
            log.info(
                "pruned",
                jobs=report.jobs,
                checkpoints=report.checkpoints,
                sessions=report.sessions,
                kept=report.kept,
                batches=report.batches,
                longest_batch_ms=report.longest_batch_ms,
                elapsed_ms=report.elapsed_ms,
            )

    def _close(self) -> None:
        if self.pruner is not None:
            self.pruner.close()
            self.pruner = None


def start_retention(home: Home, config: Callable[[], Config]) -> RetentionThread:
    """Start pruning ``home`` by the ``[retention]`` of ``config()`` (read each round)."""
    thread = RetentionThread(home, config)
    thread.start()
    return thread
