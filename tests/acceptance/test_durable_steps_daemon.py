"""Durable steps through a running daemon, as users run them: workers killed mid-job,
sleeping jobs that hold no worker across a restart, jobs waiting for events."""

from __future__ import annotations

import json
import os
import random
import signal
import textwrap
import time

import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import cli, cli_json, submit, wait_until

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

AGENTS = textwrap.dedent(
    """
    import fcntl, json, os, time

    def note(path, **fields):
        with open(path, "a") as ledger:
            ledger.write(json.dumps({**fields, "pid": os.getpid(), "t": time.time()}) + "\\n")

    def six_steps(ctx):
        results = []
        for n in range(6):
            def body(n=n):
                # Held while the body runs; a killed worker's lock goes with it.
                with open(f"{ctx.payload['ledger']}.{ctx.job_id}.lock", "w") as lock:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        note(ctx.payload["ledger"], job=ctx.job_id, step=n, event="overlap")
                    note(ctx.payload["ledger"], job=ctx.job_id, step=n, event="start")
                    time.sleep(0.01)
                    note(ctx.payload["ledger"], job=ctx.job_id, step=n, event="end")
                return f"{ctx.payload['tag']}-{n}"
            results.append(ctx.step("part", body))
        return results

    def napper(ctx):
        before = ctx.step("before", time.time)
        ctx.sleep(ctx.payload["seconds"])
        return {"slept": time.time() - before}

    def listener(ctx):
        timeout = (ctx.payload or {}).get("timeout")
        return {"got": ctx.wait_for_event("review", timeout=timeout)}

    def shifty(ctx):
        # The step's name depends on a file: the agent's code "changed" between runs.
        name = "first" if not os.path.exists(ctx.payload["flag"]) else "renamed"
        open(ctx.payload["flag"], "w").close()
        ctx.step(name, lambda: 1)
        ctx.sleep(0.3)
        return "unreachable after the rename"
    """
)


@pytest.fixture
def steps_home(home):
    (home.root / "stepagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        "[agents]\n"
        'six = "stepagents:six_steps"\nnapper = "stepagents:napper"\n'
        'listener = "stepagents:listener"\nshifty = "stepagents:shifty"\n'
    )
    return home


def rows(home, ids):
    with JobQueue(home.db_path) as queue:
        return {job_id: queue.get(job_id) for job_id in ids}


def submit_many(home, tasks):
    with JobQueue(home.db_path) as queue:
        return queue.submit_many(tasks)


def test_workers_killed_mid_job_never_redo_a_recorded_step(steps_home, daemon_factory):
    daemon = daemon_factory(workers=2)
    ledger = steps_home.root / "ledger.jsonl"
    tasks = [{"type": "six", "payload": {"ledger": str(ledger), "tag": f"j{i}"}} for i in range(60)]
    ids = submit_many(steps_home, tasks)
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = rows(steps_home, ids)
        if all(row["status"] in ("completed", "failed") for row in states.values()):
            break
        pids = daemon.worker_pids()
        if pids and kills < 12:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        time.sleep(rng.uniform(0.25, 0.4))
    states = rows(steps_home, ids)
    assert kills >= 5
    poison = [r for r in states.values() if r["status"] == "failed"]
    assert all("poison pill" in (r["error"] or "") for r in poison), poison
    for index, job_id in enumerate(ids):
        if states[job_id]["status"] == "completed":
            assert states[job_id]["result"] == [f"j{index}-{n}" for n in range(6)]
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert not [line for line in lines if line["event"] == "overlap"]  # never two at once
    runs: dict[tuple, list] = {}
    for line in lines:
        runs.setdefault((line["job"], line["step"]), []).append(line)
    cut_short = recorded_late = 0
    for events in runs.values():
        ordered = sorted(events, key=lambda e: e["t"])
        starts = [i for i, e in enumerate(ordered) if e["event"] == "start"]
        for before, after in zip(starts, starts[1:], strict=False):
            # Run again: killed inside the body, or after it but before its record.
            if any(e["event"] == "end" for e in ordered[before:after]):
                recorded_late += 1
            else:
                cut_short += 1
    # A recorded step never runs again; only a kill between a body's start and its
    # record makes one run twice: at most one per kill.
    assert cut_short + recorded_late <= kills, (cut_short, recorded_late, kills)
    print(
        f"kills {kills}: steps cut short and run again {cut_short}, "
        f"finished but unrecorded and run again {recorded_late}, poison pills {len(poison)}"
    )


def test_sleeping_jobs_hold_no_worker_and_survive_a_restart(steps_home, daemon_factory):
    daemon = daemon_factory(workers=2)
    started = time.time()
    ids = submit_many(
        steps_home, [{"type": "napper", "payload": {"seconds": 2}} for _ in range(100)]
    )
    wait_until(
        lambda: all(r["status"] == "scheduled" for r in rows(steps_home, ids).values()),
        timeout=30,
        what="every job to fall asleep",
    )
    with JobQueue(steps_home.db_path) as queue:
        assert queue.counts()["running"] == 0 and queue.counts()["scheduled"] == 100
    daemon.stop()  # killed outright while they sleep
    daemon_factory(workers=2)
    wait_until(
        lambda: all(r["status"] == "completed" for r in rows(steps_home, ids).values()),
        timeout=60,
        what="every job to wake and finish",
    )
    finished = rows(steps_home, ids)
    slept = sorted(r["result"]["slept"] for r in finished.values())
    assert slept[0] >= 2.0, slept[:5]
    assert all(r["attempts"] == 1 for r in finished.values())
    last = max(r["completed_at"] for r in finished.values())
    from athenad.util.timefmt import parse_ts

    elapsed = parse_ts(last).timestamp() - started
    assert elapsed < 15, elapsed
    print(f"100 sleeps of 2 s with 2 workers and a restart: done after {elapsed:.1f} s")


def test_jobs_waiting_for_events_hold_no_worker(steps_home, daemon_factory):
    daemon_factory(workers=2)
    ids = submit_many(steps_home, [{"type": "listener"} for _ in range(100)])
    wait_until(
        lambda: all(r["status"] == "waiting" for r in rows(steps_home, ids).values()),
        timeout=30,
        what="every job to wait",
    )
    sent = cli_json("athenactl", "send", ids[0], "review", "--payload", '{"ok": true}',
                    home=steps_home)  # fmt: skip
    assert sent == {"id": ids[0], "key": "review", "outcome": "delivered"}
    from athenad import TaskOrchestrator

    with TaskOrchestrator(steps_home.db_path, steps_home.state_dir) as athena:
        for job_id in ids[1:]:
            assert athena.send(job_id, "review", {"ok": job_id}) == "delivered"
    wait_until(
        lambda: all(r["status"] == "completed" for r in rows(steps_home, ids).values()),
        timeout=60,
        what="every job to get its event",
    )
    finished = rows(steps_home, ids)
    assert finished[ids[0]]["result"] == {"got": {"ok": True}}
    assert finished[ids[5]]["result"] == {"got": {"ok": ids[5]}}
    steps_shown = cli_json("athenactl", "steps", ids[0], home=steps_home)
    assert [(s["name"], s["status"]) for s in steps_shown] == [("event:review", "completed")]

    early = submit(steps_home, "listener", "--delay", "1s")
    assert cli_json("athenactl", "send", early, "review", home=steps_home)["outcome"] == "kept"
    timed_out = submit(steps_home, "listener", "--payload", '{"timeout": 1}')
    with JobQueue(steps_home.db_path) as queue:
        wait_until(lambda: queue.get(early)["status"] == "completed", timeout=30, what="early")
        wait_until(
            lambda: queue.get(timed_out)["status"] == "completed", timeout=30, what="timeout"
        )
        assert queue.get(early)["result"] == {"got": None}
        assert queue.get(timed_out)["result"] == {"got": None}
    refused = cli("athenactl", "send", ids[0], "review", home=steps_home)
    assert refused.returncode == 1 and "is completed; events go to jobs" in refused.stderr
    unknown = cli("athenactl", "send", "nope", "review", home=steps_home)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr


def test_steps_that_change_on_replay_fail_the_job_clearly(steps_home, daemon_factory):
    daemon_factory(workers=1)
    flag = steps_home.root / "flag"
    job_id = submit(steps_home, "shifty", "--payload", json.dumps({"flag": str(flag)}))
    with JobQueue(steps_home.db_path) as queue:
        row = wait_until(
            lambda: queue.get(job_id)["status"] in ("failed", "completed") and queue.get(job_id),
            timeout=30,
            what="the job to end",
        )
    assert row["status"] == "failed"
    assert "the agent's steps changed on replay: step 0 was recorded as 'first'" in row["error"]
    assert "'renamed'" in row["error"]
