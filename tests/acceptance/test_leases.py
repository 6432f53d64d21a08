"""The lease: a job whose holder stopped renewing is taken back by any daemon on the
database, and runs to completion exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import textwrap
import time

import psutil
import pytest

from tests.conftest import job_row, submit, wait_status, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

LEASE_S = 2

AGENTS = textwrap.dedent(
    """
    import json, os, time

    def note(ctx, event):
        with open(ctx.payload["ledger"], "a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid()}) + "\\n")

    def ledgered(ctx):
        note(ctx, "start")
        time.sleep(ctx.payload["seconds"])
        note(ctx, "end")
        return os.getpid()

    def hogging(ctx):
        # The first run hangs its whole worker: C code holding the GIL, so neither an
        # interrupt nor the worker's own lease renewals get to run.
        first = not os.path.exists(ctx.payload["ledger"])
        note(ctx, "start")
        if first:
            sum(range(10**13))
        time.sleep(1)
        note(ctx, "end")
        return os.getpid()
    """
)


@pytest.fixture
def lease_home(home):
    (home.root / "leaseagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        f"[daemon]\nlease = {LEASE_S}\n\n[agents]\n"
        'ledgered = "leaseagents:ledgered"\nhogging = "leaseagents:hogging"\n'
    )
    return home


def ledger_events(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_hung_worker_of_a_dead_supervisor_loses_its_job_to_a_new_daemon(
    lease_home, daemon_factory, tmp_path
):
    ledger = tmp_path / "ledger.jsonl"
    first = daemon_factory(workers=1)
    job_id = submit(lease_home, "hogging", "--payload", json.dumps({"ledger": str(ledger)}))
    hung = wait_status(lease_home, job_id, {"running"})["worker_pid"]
    wait_until(lambda: ledger_events(ledger), what="the job to start")
    try:
        first.proc.kill()  # only the supervisor dies; its worker hangs on, alive
        first.proc.wait(timeout=10)
        began = time.monotonic()
        daemon_factory(workers=1)
        done = wait_status(lease_home, job_id, {"completed", "failed"}, timeout=30)
        taken_back_after = time.monotonic() - began
        assert done["status"] == "completed"
        assert done["result"] != hung
        # About one lease to notice, then the 1 s the second run takes.
        assert taken_back_after < LEASE_S + 1 + 8
        # The hung worker belonged to this home and its lease lapsed: it was ended.
        wait_until(lambda: is_gone(hung), what="the hung worker to be killed")
        events = ledger_events(ledger)
        assert [e["event"] for e in events] == ["start", "start", "end"]
        assert events[-1]["pid"] == done["result"]
        assert job_row(lease_home, job_id)["interruptions"] == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGKILL)


def test_stopped_worker_of_a_dead_supervisor_is_not_waited_for(
    lease_home, daemon_factory, tmp_path
):
    ledger = tmp_path / "ledger.jsonl"
    first = daemon_factory(workers=1)
    payload = json.dumps({"ledger": str(ledger), "seconds": 3})
    job_id = submit(lease_home, "ledgered", "--payload", payload)
    stopped = wait_status(lease_home, job_id, {"running"})["worker_pid"]
    wait_until(lambda: ledger_events(ledger), what="the job to start")
    os.kill(stopped, signal.SIGSTOP)
    try:
        first.proc.kill()
        first.proc.wait(timeout=10)
        daemon_factory(workers=1)
        done = wait_status(lease_home, job_id, {"completed", "failed"}, timeout=30)
        assert done["status"] == "completed" and done["result"] != stopped
        wait_until(lambda: is_gone(stopped), what="the stopped worker to end")
        assert [e["event"] for e in ledger_events(ledger)] == ["start", "start", "end"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGCONT)
            os.kill(stopped, signal.SIGKILL)


def test_own_worker_stopped_past_its_lease_is_replaced_and_the_job_runs_once(
    lease_home, daemon_factory, tmp_path
):
    ledger = tmp_path / "ledger.jsonl"
    daemon_factory(workers=2)
    payload = json.dumps({"ledger": str(ledger), "seconds": 2})
    job_id = submit(lease_home, "ledgered", "--payload", payload)
    stopped = wait_status(lease_home, job_id, {"running"})["worker_pid"]
    wait_until(lambda: ledger_events(ledger), what="the job to start")
    os.kill(stopped, signal.SIGSTOP)
    try:
        done = wait_status(lease_home, job_id, {"completed", "failed"}, timeout=30)
        assert done["status"] == "completed" and done["result"] != stopped
        assert [e["event"] for e in ledger_events(ledger)] == ["start", "start", "end"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGCONT)
