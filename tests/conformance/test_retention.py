"""Retention on both backends: which finished jobs go (and when they must stay), their
checkpoints and log rows with them, idle sessions, dry runs, batches, and counters."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from athenad.analytics import metrics
from athenad.analytics.readers import open_reader
from athenad.config import Config, DaemonConfig, RetentionConfig
from athenad.errors import JobNotFound
from athenad.paths import Home
from athenad.storage import Stores, open_stores
from athenad.storage.sessions.manager import new_header
from athenad.store.backend import open_store
from athenad.store.retention import PruneReport, prune

DAY = 86400.0


@dataclass
class Setup:
    """A home on one backend: its queue, checkpoint and session stores, and config."""

    kind: str
    home: Home
    config: Config
    queue: Any
    stores: Stores

    def prune(self, **kwargs: Any) -> PruneReport:
        return prune(self.home, self.config, **kwargs)

    def with_retention(self, **ages: str) -> Setup:
        config = msgspec.structs.replace(self.config, retention=RetentionConfig(**ages))
        return Setup(self.kind, self.home, config, self.queue, self.stores)

    def age(self, job_id: str, days: float) -> None:
        """Make a job look created and finished ``days`` ago."""
        moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        value: Any = moment if self.kind == "postgres" else stamp(moment)
        if self.kind == "sqlite":
            self.queue.conn.execute(
                "UPDATE jobs SET created_at = :t, completed_at = :t WHERE id = :id",
                {"t": value, "id": job_id},
            )
        else:
            with self.queue.pool.connection() as conn:
                conn.execute(
                    "UPDATE jobs SET created_at = %(t)s, completed_at = %(t)s WHERE id = %(id)s",
                    {"t": value, "id": job_id},
                )

    def exists(self, job_id: str) -> bool:
        try:
            self.queue.get(job_id)
        except JobNotFound:
            return False
        return True

    def counters(self) -> list[dict[str, Any]]:
        with open_reader(self.home, self.config.daemon) as reader:
            return list(metrics.metrics(reader, None)["counters"])

    def add_log_line(self, job_id: str) -> None:
        if self.kind == "sqlite":
            self.queue.conn.execute(
                "INSERT INTO job_logs (job_id, seq, at, level, message)"
                " VALUES (?, 1, '2020-01-01 00:00:00.000', 'info', 'hello')",
                (job_id,),
            )
        else:
            with self.queue.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO job_logs (job_id, seq, level, message)"
                    " VALUES (%s, 1, 'info', 'hello')",
                    (job_id,),
                )

    def log_lines(self) -> int:
        if self.kind == "sqlite":
            return int(self.queue.conn.execute("SELECT count(*) FROM job_logs").fetchone()[0])
        with self.queue.pool.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM job_logs").fetchone()[0])


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@pytest.fixture(params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    home = Home.resolve(tmp_path / "home").ensure()
    settings = DaemonConfig()
    if request.param == "postgres":
        settings = msgspec.structs.replace(
            settings,
            database_url=request.getfixturevalue("postgres_url"),
            database_schema=request.getfixturevalue("postgres_schema"),
        )
    config = Config(daemon=settings)
    queue = open_store(home, settings)
    stores = open_stores(home, settings, queue=queue)
    yield Setup(request.param, home, config, queue, stores)
    stores.close()
    queue.close()


def finish(setup: Setup, job_type: str, outcome: str = "complete", **options: Any) -> str:
    """Submit a job and run it to ``outcome`` at once (it is the only ready job)."""
    job_id = setup.queue.submit(job_type, **options)
    job = setup.queue.claim("host:1:0")
    assert job is not None and job.id == job_id
    if outcome == "complete":
        setup.queue.complete(job.id, job.fence, {"ok": True})
    else:
        setup.queue.fail(job.id, job.fence, "RuntimeError: boom", retryable=False)
    return job_id


def test_each_status_goes_after_its_own_age_and_unfinished_jobs_never(setup):
    old_done = finish(setup, "explore")
    young_done = finish(setup, "explore")
    old_failed = finish(setup, "plan", "fail")
    very_old_failed = finish(setup, "plan", "fail")
    cancelled = setup.queue.submit("report")
    setup.queue.cancel(cancelled)
    waiting = setup.queue.submit("explore", priority=-1)
    for job_id, days in [
        (old_done, 15),
        (young_done, 13),
        (old_failed, 20),
        (very_old_failed, 31),
        (cancelled, 8),
        (waiting, 400),
    ]:
        setup.age(job_id, days)
    retention = setup.with_retention(completed="14d", failed="30d", cancelled="7d")

    report = retention.prune()

    assert report.jobs == {"completed": 1, "failed": 1, "cancelled": 1}
    assert (report.jobs_total, report.kept, report.dry_run) == (3, 0, False)
    gone = {old_done, very_old_failed, cancelled}
    for job_id in [old_done, young_done, old_failed, very_old_failed, cancelled, waiting]:
        assert setup.exists(job_id) == (job_id not in gone), job_id
    assert retention.prune().jobs_total == 0


def test_older_than_with_a_status_prunes_only_that_status(setup):
    done = finish(setup, "explore")
    failed = finish(setup, "plan", "fail")
    for job_id in (done, failed):
        setup.age(job_id, 10)
    report = setup.prune(older_than="7d", statuses=["failed"])
    assert report.jobs == {"failed": 1}
    assert setup.exists(done) and not setup.exists(failed)
    assert setup.prune(older_than="11d").jobs_total == 0
    assert setup.prune(older_than="9d").jobs == {"completed": 1, "failed": 0, "cancelled": 0}


def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing(setup):
    ids = [finish(setup, "explore") for _ in range(3)] + [finish(setup, "plan", "fail")]
    parent = finish(setup, "explore")
    child = setup.queue.submit("report", after=[parent])  # pending: keeps its parent
    for job_id in [*ids, parent]:
        setup.age(job_id, 30)
    setup.stores.checkpoints.save(ids[0], 1, {"step": 1})
    setup.stores.checkpoints.save(ids[0], 2, {"step": 2})

    preview = setup.prune(older_than="1d", dry_run=True)

    assert preview.dry_run and preview.batches == 0
    assert preview.jobs == {"completed": 3, "failed": 1, "cancelled": 0}
    assert (preview.checkpoints, preview.kept) == (2, 1)
    assert all(setup.exists(job_id) for job_id in [*ids, parent, child])
    assert len(setup.stores.checkpoints.list(ids[0])) == 2
    done = setup.prune(older_than="1d")
    assert (done.jobs, done.checkpoints, done.kept) == (preview.jobs, 2, 1)


def test_batches_delete_everything_in_several_short_transactions(setup):
    ids = [finish(setup, "explore") for _ in range(7)]
    for job_id in ids:
        setup.age(job_id, 2)
    report = setup.prune(older_than="1d", batch_size=3)
    assert report.jobs["completed"] == 7 and report.batches == 3
    assert 0 < report.longest_batch_ms < 1000
    assert not any(setup.exists(job_id) for job_id in ids)


def test_a_parent_stays_while_a_dependent_is_unfinished_and_keeps_its_edges(setup):
    done_parent = finish(setup, "explore")
    open_parent = setup.queue.submit("explore", priority=-5)
    child = setup.queue.submit("report", after=[done_parent, open_parent])
    setup.age(done_parent, 30)

    report = setup.prune(older_than="1d")

    assert (report.jobs_total, report.kept) == (0, 1)
    row = setup.queue.get(child)
    assert row["status"] == "blocked" and sorted(row["parents"]) == sorted(
        [done_parent, open_parent]
    )
    # The dependency still works: the other parent finishing releases the child.
    job = setup.queue.claim("host:1:0")
    assert job is not None and job.id == open_parent
    setup.queue.complete(job.id, job.fence, None)
    assert setup.queue.get(child)["status"] == "pending"


def test_a_chain_goes_only_once_its_youngest_member_is_old_enough(setup):
    grandparent = finish(setup, "explore")
    parent = setup.queue.submit("plan", after=[grandparent])
    job = setup.queue.claim("host:1:0")
    assert job is not None and job.id == parent
    setup.queue.complete(job.id, job.fence, None)
    child = setup.queue.submit("report", after=[parent])
    job = setup.queue.claim("host:1:0")
    assert job is not None and job.id == child
    setup.queue.fail(job.id, job.fence, "RuntimeError: boom", retryable=False)
    for job_id in (grandparent, parent):
        setup.age(job_id, 30)
    setup.age(child, 2)

    # The child is too young, so its ancestors stay; a status not pruned keeps them too.
    assert setup.prune(older_than="7d").kept == 2
    assert setup.prune(older_than="1d", statuses=["completed"]).kept == 2
    assert all(setup.exists(job_id) for job_id in (grandparent, parent, child))

    report = setup.prune(older_than="1d")
    assert report.jobs == {"completed": 2, "failed": 1, "cancelled": 0} and report.kept == 0
    assert not any(setup.exists(job_id) for job_id in (grandparent, parent, child))


def test_pruned_jobs_take_their_checkpoints_and_log_lines_along(setup):
    old = finish(setup, "explore")
    young = finish(setup, "explore")
    setup.age(old, 10)
    for job_id in (old, young):
        setup.stores.checkpoints.save(job_id, 1, {"n": 1}, [{"role": "user"}])
        setup.add_log_line(job_id)
    report = setup.prune(older_than="7d")
    assert (report.jobs_total, report.checkpoints) == (1, 1)
    assert setup.stores.checkpoints.list(old) == []
    assert [info.iteration for info in setup.stores.checkpoints.list(young)] == [1]
    assert setup.log_lines() == 1


def test_counters_keep_pruned_jobs(setup):
    ids = [finish(setup, "explore") for _ in range(3)]
    ids.append(finish(setup, "plan", "fail"))
    cancelled = setup.queue.submit("report")
    setup.queue.cancel(cancelled)
    ids.append(cancelled)
    setup.queue.submit("explore")  # pending, stays
    for job_id in ids:
        setup.age(job_id, 3)
    before = setup.counters()
    assert setup.prune(older_than="1d").jobs_total == 5
    assert setup.counters() == before


def old_session(setup: Setup, days: float) -> str:
    header = new_header("old", (), "main", None, None)
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    header.created_at = stamp(moment)
    return setup.stores.sessions.write_new_session(header, [])


def test_sessions_go_by_their_own_age_unless_an_unfinished_job_uses_them(setup):
    idle = old_session(setup, 100)
    in_use = old_session(setup, 100)
    recent = old_session(setup, 10)
    fresh = setup.stores.sessions.create_session("fresh", git_branch="main")
    setup.queue.submit("explore", session_id=in_use)

    assert setup.prune(older_than="1d").sessions == 0  # no [retention] sessions: kept
    retention = setup.with_retention(sessions="90d")
    assert retention.prune(dry_run=True).sessions == 1
    assert setup.stores.sessions.exists(idle)
    report = retention.prune()
    assert report.sessions == 1 and report.jobs == {}
    assert not setup.stores.sessions.exists(idle)
    assert all(setup.stores.sessions.exists(s) for s in (in_use, recent, fresh))
    # --status narrows a prune to jobs: sessions stay.
    old_session(setup, 100)
    assert (
        retention.with_retention(sessions="90d", failed="1d").prune(statuses=["failed"]).sessions
        == 0
    )


def test_two_prunes_at_once_delete_and_count_each_job_once(setup):
    ids = [finish(setup, "explore") for _ in range(40)]
    for job_id in ids:
        setup.age(job_id, 2)
    before = setup.counters()
    reports: list[PruneReport] = []

    def run() -> None:
        reports.append(setup.prune(older_than="1d", batch_size=4))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(report.jobs_total for report in reports) == 40
    assert not any(setup.exists(job_id) for job_id in ids)
    assert setup.counters() == before
