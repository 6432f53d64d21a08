"""Workers killed over and over: the daemon backs their slots off and keeps serving.

Only workers that cannot start stop it (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import cli, cli_json, submit, wait_status, wait_until

pytestmark = pytest.mark.timeout(240)

STORM_S = 22.0
KILL_EVERY_S = (0.1, 0.25)
OLD_CRASH_CAP = 20  # the old daemon gave up after this many crashes in 60 s

AGENTS = textwrap.dedent(
    """
    import fcntl, json, os, signal, time

    def note(ctx, event):
        line = json.dumps({"event": event, "job": ctx.job_id, "pid": os.getpid()})
        with open(os.path.join(ctx.payload["dir"], "ledger.jsonl"), "a") as f:
            f.write(line + "\\n")

    def ledgered(ctx):
        # Held while the job runs and dropped by the kernel when its worker dies: failing
        # to take it means another live process runs this same job.
        lock = open(os.path.join(ctx.payload["dir"], f"{ctx.job_id}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(ctx, "overlap")
            raise
        note(ctx, "start")
        time.sleep(ctx.payload["seconds"])
        note(ctx, "end")
        lock.close()
        return os.getpid()

    def exits(ctx):
        os._exit(1)

    def kills_itself(ctx):
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture
def storm_home(home):
    (home.root / "stormagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        "[agents]\n"
        + "".join(
            f'{name} = "stormagents:{name}"\n' for name in ("ledgered", "exits", "kills_itself")
        )
    )
    return home


def worker_children(supervisor_pid: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [
            child.pid
            for child in psutil.Process(supervisor_pid).children()
            if "workers" in child.cmdline()
        ]
    return []


def log_events(daemon, event: str) -> list[dict]:
    lines = (daemon.home.state_dir / "test-daemon.log").read_text(errors="replace").split("\n")
    found = []
    for line in lines[:-1]:  # complete lines only: the last may be half written
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if parsed.get("event") == event:
                found.append(parsed)
    return found


def serving(daemon_factory, workers: int):
    """A daemon that reported ready (the fixture waits only for its workers' heartbeats)."""
    daemon = daemon_factory(workers=workers)
    wait_until(lambda: log_events(daemon, "daemon_ready"), what="the daemon to be ready")
    return daemon


def crash_metric(home) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = cli("athenactl", "metrics", home=home).stdout
    for family in text_string_to_metric_families(text):
        if family.name == "athena_worker_crashes":
            return {sample.labels["reason"]: sample.value for sample in family.samples}
    return {}


def test_a_daemon_killed_for_twenty_seconds_keeps_serving_every_job_once(
    storm_home, daemon_factory, tmp_path
):
    home = storm_home
    daemon = serving(daemon_factory, 4)
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    payload = {"dir": str(ledger_dir), "seconds": 0.02}
    rng = random.Random(18)
    job_ids: list[str] = []
    kills = 0
    with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
        began = time.monotonic()
        next_batch = began
        while time.monotonic() - began < STORM_S:
            if time.monotonic() >= next_batch:  # jobs keep arriving through the storm
                job_ids += queue.submit_many([{"type": "ledgered", "payload": payload}] * 20)
                next_batch += 1.0
            time.sleep(rng.uniform(*KILL_EVERY_S))
            victims = worker_children(daemon.proc.pid)
            if victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(victims), signal.SIGKILL)
                    kills += 1
            assert daemon.proc.poll() is None, daemon.log_text()
        storm_s = time.monotonic() - began
        storm_ended = time.monotonic()

    assert kills > OLD_CRASH_CAP, f"only {kills} kills in {storm_s:.0f} s"
    # The supervisor saw every kill as a crash; the slots show them and back off.
    wait_until(
        lambda: len(log_events(daemon, "worker_died")) == kills,
        timeout=10,
        what="every kill to be logged as a crash",
    )
    report = cli_json("athenad", "status", home=home)
    assert report["running"] and report["pid"] == daemon.proc.pid
    assert sorted(slot["slot"] for slot in report["slots"]) == [0, 1, 2, 3]
    assert sum(slot["crashes_last_minute"] for slot in report["slots"]) == kills
    assert max(slot["respawn_backoff_s"] for slot in report["slots"]) >= 1.6
    crashes = log_events(daemon, "worker_died")
    assert {c["signal"] for c in crashes} == {"SIGKILL"}
    assert {c["slot"] for c in crashes} == {0, 1, 2, 3}
    assert max(c["respawn_in_s"] for c in crashes) >= 1.6
    assert min(c["respawn_in_s"] for c in crashes) == 0.0  # each slot's first: at once
    assert crash_metric(home)["SIGKILL"] == kills

    # Every job completes once the slots' backoffs (30 s at most) let workers back.
    with JobQueue(home.db_path) as queue:
        wait_until(
            lambda: all(queue.get(j)["status"] in ("completed", "failed") for j in job_ids),
            timeout=120,
            interval=0.5,
            what="every job to finish",
        )
        rows = [queue.get(j) for j in job_ids]
    drained_s = time.monotonic() - storm_ended
    assert [r["id"] for r in rows if r["status"] != "completed"] == []
    events = [json.loads(line) for line in (ledger_dir / "ledger.jsonl").read_text().splitlines()]
    assert [e for e in events if e["event"] == "overlap"] == []  # never twice at once
    ended = {e["job"] for e in events if e["event"] == "end"}
    assert ended == set(job_ids)
    interrupted = sum(r["interruptions"] for r in rows)
    assert interrupted > 0  # the kills did land on running jobs
    assert daemon.proc.poll() is None
    assert cli("athenad", "stop", "--timeout", "10", home=home).returncode == 0
    assert daemon.proc.wait(timeout=30) == 0
    longest = max(c["respawn_in_s"] for c in crashes)
    print(
        f"\nstorm: {kills} kills in {storm_s:.1f} s over 4 slots, {len(job_ids)} jobs, "
        f"{interrupted} interrupted runs, longest backoff {longest} s, "
        f"every job done {drained_s:.1f} s after the storm"
    )


def slot_worker(home, slot: int) -> int | None:
    """The pid of the slot's ready worker, per ``athenad status``."""
    for worker in cli_json("athenad", "status", home=home)["workers"]:
        if worker["slot"] == slot and worker["started_at"]:
            return worker["pid"]
    return None


def test_a_slot_backing_off_leaves_the_other_slots_working(storm_home, daemon_factory):
    home = storm_home
    serving(daemon_factory, 2)
    other = slot_worker(home, 1)
    for _ in range(8):  # backoffs 0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, then 6.4 s
        victim = wait_until(lambda: slot_worker(home, 0), what="slot 0 to have a worker")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda v=victim: slot_worker(home, 0) != v, what="the kill to be seen")
    killed_at = time.monotonic()
    slot = next(s for s in cli_json("athenad", "status", home=home)["slots"] if s["slot"] == 0)
    assert slot["crashes_last_minute"] == 8 and slot["respawn_backoff_s"] == 6.4
    assert slot["respawn_in_s"] is not None and slot["respawn_in_s"] > 5
    with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
        ids = queue.submit_many([{"type": "echo", "payload": n} for n in range(5)])
        rows = wait_until(
            lambda: (
                all(queue.get(j)["status"] == "completed" for j in ids)
                and [queue.get(j) for j in ids]
            ),
            timeout=10,
            what="the jobs to complete",
        )
    assert time.monotonic() - killed_at < 6.4  # done while slot 0 was still waiting
    assert {row["worker_pid"] for row in rows} == {other}
    assert slot_worker(home, 1) == other  # slot 1 was never touched


def test_jobs_that_crash_their_worker_fail_as_poison_pills_and_the_rest_complete(
    storm_home, daemon_factory, tmp_path
):
    home = storm_home
    daemon = serving(daemon_factory, 2)
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    payload = json.dumps({"dir": str(ledger_dir), "seconds": 0.05})
    exits = submit(home, "exits")
    kills_itself = submit(home, "kills_itself")
    good = [submit(home, "ledgered", "--payload", payload) for _ in range(20)]
    for job_id in (exits, kills_itself):
        row = wait_status(home, job_id, {"completed", "failed"}, timeout=60)
        assert row["status"] == "failed" and "poison pill" in row["error"], row["error"]
        assert row["interruptions"] == 4  # one more than the cap of 3
    assert cli("athenactl", "wait", *good, "--timeout", "60", home=home).returncode == 0
    assert daemon.proc.poll() is None

    crashes = log_events(daemon, "worker_died")
    assert len(crashes) == 8
    assert sorted(c.get("signal", "exit") for c in crashes) == ["SIGKILL"] * 4 + ["exit"] * 4
    assert {c.get("exit_code") for c in crashes if "exit_code" in c} == {1}
    report = cli_json("athenad", "status", home=home)
    assert sum(slot["crashes_last_minute"] for slot in report["slots"]) == 8
    assert crash_metric(home) == {"SIGKILL": 4, "exit": 4}
    # The slots did not loop: the daemon still runs jobs once their backoff is over.
    after = submit(home, "ledgered", "--payload", payload)
    assert wait_status(home, after, {"completed", "failed"}, timeout=60)["status"] == "completed"


def test_an_agent_module_that_does_not_import_stops_the_daemon_with_exit_3(home):
    (home.root / "athena.toml").write_text('[agents]\nbad = "no_such_module:run"\n')
    started = subprocess.run(
        [sys.executable, "-m", "athenad.cli.daemon", "start", "--foreground"]
        + ["--workers", "2", "--home", str(home.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 3
    failed = [json.loads(line) for line in started.stderr.splitlines() if "daemon_failed" in line]
    assert len(failed) == 1 and "no_such_module" in failed[0]["error"]
    detached = cli("athenad", "start", "--workers", "2", home=home)
    assert detached.returncode == 1
    assert detached.stderr.count("\n") == 1 and "no_such_module" in detached.stderr


def test_workers_that_can_no_longer_start_stop_a_serving_daemon(storm_home, daemon_factory):
    home = storm_home
    daemon = serving(daemon_factory, 2)
    (home.root / "stormagents.py").write_text("this is not python(\n")
    os.kill(daemon.worker_pids()[0], signal.SIGKILL)
    assert daemon.proc.wait(timeout=60) == 3
    failed = log_events(daemon, "daemon_failed")
    assert len(failed) == 1 and "SyntaxError" in failed[0]["error"], failed
    # The supervisor's count (the workers log the event too, without one).
    counted = [e["failures"] for e in log_events(daemon, "worker_boot_failed") if "failures" in e]
    assert counted == [1, 2, 3, 4, 5]
