"""Retention: deleting finished jobs (with their checkpoints) and idle sessions by age.

What is pruned, on either backend:

* Only finished jobs (completed, failed, cancelled), by ``completed_at``, each status
  with its own age (``[retention]`` in athena.toml, or ``athenactl prune``'s options).
* A job goes only after every job that depends on it: a finished job with a dependent
  that stays (unfinished, younger, or of a status not being pruned) stays too, so a
  dependent never loses its parents' edges or rows.
* A pruned job's checkpoints go with it; its job_logs rows go by cascade; the trigger
  ``job_counters_keep_deleted`` counts the row first, so the metrics' totals stay.
* Sessions only with ``sessions = "90d"``: those not updated for that long, unless an
  unfinished job names them.

Deletes run in small batches, each its own short write transaction, so workers wait
on them for milliseconds at most. Each backend does the work in its ``retention``
module; :func:`prune` picks one for a home.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from athenad.errors import InvalidInput
from athenad.util.timefmt import parse_duration

if TYPE_CHECKING:
    from athenad.config import Config, RetentionConfig
    from athenad.paths import Home

FINISHED_STATUSES = ("completed", "failed", "cancelled")
# Jobs deleted per write transaction: ~10-30 ms of SQLite's write lock (see the report's
# longest_batch_ms), short enough for workers' claims to slip in between batches.
BATCH_SIZE = 500
# The earliest cutoff, for ages longer than any calendar (nothing is older).
EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)

StopCheck = Callable[[], bool]


class PrunePlan(msgspec.Struct, frozen=True, kw_only=True):
    """What to prune: an age in seconds per finished status, and for sessions (or None)."""

    ages: dict[str, float]
    session_age: float | None = None

    def is_empty(self) -> bool:
        return not self.ages and self.session_age is None


class PruneReport(msgspec.Struct, kw_only=True):
    """What a prune deleted (or, on a dry run, would delete), and how long it took.

    ``kept`` counts finished jobs old enough to go that stay because a job that is
    not pruned depends on them. ``longest_batch_ms`` is the longest write transaction.
    """

    dry_run: bool
    jobs: dict[str, int]
    checkpoints: int = 0
    sessions: int = 0
    kept: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    elapsed_ms: float = 0.0

    @property
    def jobs_total(self) -> int:
        return sum(self.jobs.values())

    def note_batch(self, statuses: Iterable[str], seconds: float) -> None:
        """Count one batch's deleted jobs (their statuses) and its transaction time."""
        for status in statuses:
            self.jobs[status] = self.jobs.get(status, 0) + 1
        self.batches += 1
        self.longest_batch_ms = max(self.longest_batch_ms, round(seconds * 1000, 2))

    def as_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        return {
            "dry_run": self.dry_run,
            "jobs": dict(self.jobs),
            "jobs_total": self.jobs_total,
            "checkpoints": self.checkpoints,
            "sessions": self.sessions,
            "kept": self.kept,
            "batches": self.batches,
            "longest_batch_ms": self.longest_batch_ms,
            "elapsed_ms": self.elapsed_ms,
        }


class Pruner(Protocol):
    """One backend's pruning, on connections it keeps open until ``close``."""

    def run(
        self, plan: PrunePlan, *, dry_run: bool, batch_size: int, should_stop: StopCheck
    ) -> PruneReport: ...

    def close(self) -> None: ...


def make_plan(
    retention: RetentionConfig,
    older_than: str | float | None = None,
    statuses: Iterable[str] | None = None,
) -> PrunePlan:
    """The plan of a prune; InvalidInput (one sentence) when there is nothing to go by.

    ``older_than`` applies to ``statuses`` (default: every finished status); without
    it, each status's ``[retention]`` age does. Sessions follow ``[retention]
    sessions``, except when ``statuses`` narrows the prune to some jobs.
    """
    chosen = check_statuses(statuses)
    configured = retention.ages()
    if older_than is not None:
        age = parse_duration(older_than, "--older-than")
        ages = dict.fromkeys(chosen or FINISHED_STATUSES, age)
    elif chosen:
        missing = [status for status in chosen if status not in configured]
        if missing:
            raise InvalidInput(
                f"no age to prune {' and '.join(missing)} jobs by: pass --older-than "
                f"(like 7d) or set {' and '.join(missing)} in [retention] of athena.toml."
            )
        ages = {status: configured[status] for status in chosen}
    else:
        ages = configured
    plan = PrunePlan(ages=ages, session_age=None if chosen else retention.session_age())
    if plan.is_empty():
        raise InvalidInput(
            "nothing to prune by: pass --older-than (like 7d) or set completed, failed, "
            "cancelled or sessions in [retention] of athena.toml."
        )
    return plan


def check_statuses(statuses: Iterable[str] | None) -> tuple[str, ...]:
    """The finished statuses asked for, in order, without repeats; others are refused."""
    chosen: list[str] = []
    for status in statuses or ():
        if status not in FINISHED_STATUSES:
            raise InvalidInput(
                f"only finished jobs are pruned: status {status!r} is not one of "
                f"{', '.join(FINISHED_STATUSES)}."
            )
        if status not in chosen:
            chosen.append(status)
    return tuple(chosen)


def cutoff(now: dt.datetime, age: float | None) -> dt.datetime | None:
    """``now`` minus ``age`` seconds (None: no cutoff); EARLIEST past any calendar."""
    if age is None:
        return None
    try:
        return max(now - dt.timedelta(seconds=age), EARLIEST)
    except OverflowError:
        return EARLIEST


def job_cutoffs(plan: PrunePlan, now: dt.datetime) -> dict[str, dt.datetime | None]:
    """The named queries' ``<status>_before`` parameters (None leaves a status alone)."""
    return {f"{status}_before": cutoff(now, plan.ages.get(status)) for status in FINISHED_STATUSES}


def pause_after(seconds: float) -> None:
    """Rest between batches as long as the last one took (5 ms to 50 ms), so pruning
    holds the write lock at most about half the time."""
    time.sleep(min(max(seconds, 0.005), 0.05))


def open_pruner(home: Home, config: Config) -> Pruner:
    """The pruner of a home's backend."""
    from athenad.store.backend import SQLITE, backend_of

    settings = config.daemon
    if backend_of(settings) == SQLITE:
        from athenad.store.sqlite.retention import SqlitePruner

        return SqlitePruner(home)
    from athenad.store.postgres.retention import PostgresPruner

    return PostgresPruner(settings.database_url, settings.database_schema)


def run_plan(
    pruner: Pruner,
    plan: PrunePlan,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    should_stop: StopCheck | None = None,
) -> PruneReport:
    """Run a plan on an open pruner, timing the whole of it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch size {batch_size!r} must be a positive integer.")
    started = time.monotonic()
    report = pruner.run(
        plan, dry_run=dry_run, batch_size=batch_size, should_stop=should_stop or (lambda: False)
    )
    report.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    return report


def prune(
    home: Home,
    config: Config,
    older_than: str | float | None = None,
    statuses: Iterable[str] | None = None,
    dry_run: bool = False,
    *,
    batch_size: int = BATCH_SIZE,
) -> PruneReport:
    """Prune a home by ``[retention]`` or by ``older_than``/``statuses``; see the module."""
    plan = make_plan(config.retention, older_than, statuses)
    pruner = open_pruner(home, config)
    try:
        return run_plan(pruner, plan, dry_run=dry_run, batch_size=batch_size)
    finally:
        pruner.close()
