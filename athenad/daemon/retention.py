"""The daemon's own pruning by ``[retention]``, on a thread of the supervisor.

A thread, like the presence record, so a prune of a large backlog never holds up the
supervisor's loop (reaping workers, sweeping leases). It prunes at once, then every
half of the shortest age set (between 1 s and 60 s): no job outlives its age by more
than that. Several daemons on one database may all prune: each batch deletes only rows
that are still eligible, so they never count or delete a job twice.
"""

from __future__ import annotations

import threading
import time

from athenad.config import Config
from athenad.paths import Home
from athenad.store.retention import PrunePlan, Pruner, make_plan, open_pruner, run_plan
from athenad.util.logs import LibraryLogger

MIN_EVERY_S = 1.0
MAX_EVERY_S = 60.0
STOP_WAIT_S = 5.0

log = LibraryLogger("athenad.daemon.retention")


def prune_every(plan: PrunePlan) -> float:
    """Seconds between prunes: half the shortest age, within 1 s .. 60 s."""
    ages = [*plan.ages.values(), *([plan.session_age] if plan.session_age is not None else [])]
    return min(max(min(ages) / 2, MIN_EVERY_S), MAX_EVERY_S)


class RetentionThread:
    """Prunes a home by its plan until stopped; ``stop()`` ends it between batches."""

    def __init__(self, home: Home, config: Config, plan: PrunePlan) -> None:
        self.home = home
        self.config = config
        self.plan = plan
        self.every = prune_every(plan)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        pruner: Pruner | None = None
        try:
            while not self.stopped.is_set():
                started = time.monotonic()
                try:
                    pruner = pruner or open_pruner(self.home, self.config)
                    self._prune_once(pruner)
                except Exception as exc:  # the next round tries again; nothing is half-done
                    log.warning("prune_failed", error=" ".join(str(exc).split()))
                    if pruner is not None:
                        pruner.close()
                        pruner = None
                self.stopped.wait(max(self.every - (time.monotonic() - started), 0.0))
        finally:
            if pruner is not None:
                pruner.close()

    def _prune_once(self, pruner: Pruner) -> None:
        report = run_plan(pruner, self.plan, should_stop=self.stopped.is_set)
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


def start_retention(home: Home, config: Config) -> RetentionThread | None:
    """Start pruning by ``[retention]``; None (nothing started) when it sets no age."""
    retention = config.retention
    if not retention.ages() and retention.session_age() is None:
        return None
    thread = RetentionThread(home, config, make_plan(retention))
    thread.start()
    return thread
