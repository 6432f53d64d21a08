"""Process faults (issue 15), the short version: jobs of every kind through a daemon
whose workers are SIGKILLed every 250 ms and whose supervisor is SIGKILLed once and
started again, counted against a ledger the agents keep outside the queue; and a worker
stopped past its lease, whose late writes the fence refuses. ``scripts/chaos`` runs the
long version and prints the report."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from athenad.paths import Home
from athenad.store.backend import open_postgres_queue
from athenad.store.sqlite.queue import JobQueue
from tests.chaos.harness import (
    LEASE_S,
    ChaosSettings,
    ConnectionKiller,
    daemon_log_events,
    daemons,
    prepare_home,
    read_ledger,
    report_table,
    run_chaos,
    start_daemon,
)
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(150)


def queue_of(home: Home, env: dict[str, str]) -> Any:
    """The queue the daemon started with ``env`` uses."""
    if env:
        return open_postgres_queue(env["ATHENA_DATABASE_URL"], env["ATHENA_DATABASE_SCHEMA"])
    return JobQueue(home.db_path, run_dir=home.run_dir)


def submit_one(home: Home, env: dict[str, str], spec: dict[str, Any]) -> str:
    with queue_of(home, env) as queue:
        return str(queue.submit_many([spec])[0])


def job_of(home: Home, env: dict[str, str], job_id: str) -> dict[str, Any]:
    with queue_of(home, env) as queue:
        return dict(queue.get(job_id))


def test_sqlite_every_job_runs_once_in_order_through_kills_and_a_supervisor_restart(
    tmp_path: Path,
) -> None:
    report = run_chaos(tmp_path, ChaosSettings(jobs=300, fault_seconds=12))
    print("\n" + report_table(report))
    assert report.problems() == []
    assert report.worker_kills >= 20 and report.supervisor_restarts == 1
    assert report.interrupted_runs > 0  # the kills did land on running jobs
    assert report.completed + report.poison_pills + report.cancelled_after_poison_pill == (
        report.jobs
    )


def test_postgres_every_job_runs_once_in_order_through_kills_restarts_and_lost_connections(
    tmp_path: Path, postgres_url: str, postgres_schema: str
) -> None:
    settings = ChaosSettings(
        jobs=160, fault_seconds=8, database_url=postgres_url, database_schema=postgres_schema
    )
    report = run_chaos(tmp_path, settings)
    print("\n" + report_table(report))
    assert report.problems() == []
    assert report.worker_kills >= 10 and report.supervisor_restarts == 1
    assert report.connections_terminated > 0


def test_postgres_a_terminated_connection_does_not_fail_the_job(
    tmp_path: Path, postgres_url: str, postgres_schema: str
) -> None:
    home, ledger = prepare_home(tmp_path)
    env = {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}
    killer = ConnectionKiller(postgres_url)
    try:
        with daemons(home, 1, env) as started:
            start_daemon(home, 1, env, started)
            payload = {"ledger": str(ledger), "steps": 2, "seconds": 1.5}
            job_id = submit_one(home, env, {"type": "chaos_stepper", "payload": payload})
            wait_until(
                lambda: any(e["event"] == "step_call" for e in read_ledger(ledger)),
                what="the first step to run",
            )
            worker = job_of(home, env, job_id)["worker_pid"]
            assert killer.terminate(worker) > 0  # while the step's function runs
            done = wait_until(
                lambda: (
                    (row := job_of(home, env, job_id))["status"] in ("completed", "failed") and row
                ),
                timeout=60,
                what="the job to finish",
            )
            assert done["status"] == "completed", done["error"]
    finally:
        killer.close()


def stop_and_continue(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def test_sqlite_a_worker_stopped_past_its_lease_loses_its_job_which_runs_once(
    tmp_path: Path,
) -> None:
    home, ledger = prepare_home(tmp_path)
    with daemons(home, 2, {}) as started:
        start_daemon(home, 2, {}, started)
        payload = {"ledger": str(ledger), "seconds": 2.0}
        job_id = submit_one(home, {}, {"type": "chaos_sleeper", "payload": payload})
        wait_until(lambda: read_ledger(ledger), what="the job to start")
        stopped = job_of(home, {}, job_id)["worker_pid"]
        os.kill(stopped, signal.SIGSTOP)
        try:
            done = wait_until(
                lambda: (
                    (row := job_of(home, {}, job_id))["status"] in ("completed", "failed") and row
                ),
                timeout=LEASE_S * 10,
                what="the job to be taken back and finished",
            )
        finally:
            stop_and_continue([stopped], signal.SIGCONT)
        events = [(e["event"], e["pid"]) for e in read_ledger(ledger)]
        # The supervisor kills its stopped worker before it gives the job back, so the
        # next holder never finds the old process still holding the job's lock.
        assert not any(event == "overlap" for event, _ in events), events
        # On its own host the daemon kills the stopped worker when it takes the job back:
        # the stopped run never ends, and the job ran to its end exactly once.
        assert done["status"] == "completed" and done["result"] != stopped
        assert events == [("start", stopped), ("start", done["result"]), ("end", done["result"])]
        assert daemon_log_events(home, "job_lease_expired")
        assert job_of(home, {}, job_id)["interruptions"] == 1


def test_postgres_a_stopped_host_s_late_writes_are_refused_by_the_fence(
    tmp_path: Path, postgres_url: str, postgres_schema: str
) -> None:
    # Two hosts on one database: host A (its supervisor and the worker running the job)
    # is stopped past the lease, host B takes the job back; A, continued, finishes its
    # run late, and the fence refuses what it writes.
    env = {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}
    home_a, ledger = prepare_home(tmp_path / "a")
    home_b, _ = prepare_home(tmp_path / "b")
    env_a, env_b = {**env, "ATHENA_HOST": "host-a"}, {**env, "ATHENA_HOST": "host-b"}
    with daemons(home_a, 1, env_a) as on_a, daemons(home_b, 1, env_b) as on_b:
        daemon_a = start_daemon(home_a, 1, env_a, on_a)
        payload = {"ledger": str(ledger), "seconds": 3.0, "exclusive": False}
        job_id = submit_one(home_a, env, {"type": "chaos_sleeper", "payload": payload})
        wait_until(lambda: read_ledger(ledger), what="the job to start on host A")
        late = job_of(home_a, env, job_id)["worker_pid"]
        stop_and_continue([daemon_a.proc.pid, late], signal.SIGSTOP)
        try:
            start_daemon(home_b, 1, env_b, on_b)
            done = wait_until(
                lambda: (row := job_of(home_b, env, job_id))["status"] == "completed" and row,
                timeout=LEASE_S * 10,
                what="host B to take the job back and complete it",
            )
        finally:
            stop_and_continue([late, daemon_a.proc.pid], signal.SIGCONT)
        assert done["result"] != late
        late_run = wait_until(
            lambda: [e for e in read_ledger(ledger) if e["pid"] == late and e["event"] != "start"],
            timeout=10,
            what="host A's stopped run to end late",
        )
        refused = wait_until(
            lambda: daemon_log_events(home_a, "job_lost"), timeout=10, what="job_lost on A"
        )
        after = job_of(home_b, env, job_id)
        assert after["status"] == "completed" and after["result"] == done["result"]
        assert after["fence"] == done["fence"]  # the late writes changed nothing
        runs = [(e["event"], e["pid"]) for e in read_ledger(ledger)]
        print("\nledger:", json.dumps(runs), "\nlate run:", late_run, "\nrefused:", refused)
        assert [pid for event, pid in runs if event == "end" and pid != late] == [done["result"]]
