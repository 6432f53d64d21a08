"""[schedules.NAME] through running daemons: a job every second, each slot once, a
restart that enqueues only the latest missed slot, two daemons on one PostgreSQL
database sharing the slots, and ``athenactl schedule list``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from athenad.config import load_config
from athenad.paths import Home
from athenad.store.backend import open_store
from athenad.util.timefmt import parse_ts
from tests.conftest import Daemon, cli_json, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

TICK = '[schedules.tick]\nevery = "1s"\nagent = "echo"\npayload = {source = "schedule"}\n'
SECOND = dt.timedelta(seconds=1)


def slot_key(job: dict[str, Any]) -> str:
    """The slot part of a job's unique key, as the daemon logs it."""
    return str(job["unique_key"]).removeprefix("schedule:tick:")


def slot_of(job: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(slot_key(job))


def tick_jobs(home: Home, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The schedule's jobs, oldest slot first."""
    with contextlib.closing(open_store(home, load_config(home, env).daemon)) as store:
        jobs = store.list_jobs(limit=1000)
    return sorted(
        (job for job in jobs if (job["unique_key"] or "").startswith("schedule:tick:")),
        key=slot_of,
    )


def log_events(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    lines = daemon.log_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and f'"{event}"' in line]


def test_a_schedule_every_second_enqueues_each_slot_once_and_a_restart_skips_to_the_latest(
    home, daemon_factory
):
    home.config_path.write_text(TICK)
    daemon = daemon_factory(workers=1)
    wait_until(lambda: len(tick_jobs(home)) >= 4, timeout=20, what="four slots")
    jobs = tick_jobs(home)
    slots = [slot_of(job) for job in jobs]
    assert {b - a for a, b in zip(slots, slots[1:], strict=False)} == {SECOND}
    for job, slot in zip(jobs, slots, strict=True):
        # Enqueued at its slot (measured: within 1 ms; the bound leaves room for a
        # loaded machine).
        assert dt.timedelta(0) <= parse_ts(job["created_at"]) - slot < SECOND
        assert job["type"] == "echo" and job["payload"] == {"source": "schedule"}
    wait_until(lambda: tick_jobs(home)[0]["status"] == "completed", timeout=20, what="a run")
    enqueued = log_events(daemon, "schedule_enqueued")
    assert [event["slot"] for event in enqueued][:4] == [slot_key(job) for job in jobs[:4]]

    listed = cli_json("athenactl", "schedule", "list", home=home)
    (tick,) = listed
    newest = tick_jobs(home)[-1]
    assert tick["name"] == "tick" and tick["every"] == "1s" and tick["timezone"] == "UTC"
    assert tick["queue"] == "default" and tick["catch_up"] is False
    last = dt.datetime.fromisoformat(tick["last_slot"])
    assert last >= slot_of(newest) - SECOND  # one more may have come since the read
    if last == slot_of(newest):
        assert tick["last_job_id"] == newest["id"]
    runs = [dt.datetime.fromisoformat(run) for run in tick["next_runs"]]
    assert len(runs) == 3 and runs[1] - runs[0] == SECOND and runs[0] > last - SECOND

    daemon.stop()  # SIGKILL: the slots of the next few seconds go by with no daemon
    before = slot_of(tick_jobs(home)[-1])
    down_until = dt.datetime.now(dt.UTC) + 3.5 * SECOND
    wait_until(lambda: dt.datetime.now(dt.UTC) > down_until, timeout=10, what="downtime")
    for stale in home.run_dir.glob("worker-*"):
        stale.unlink()
    daemon_factory(workers=1)
    wait_until(lambda: slot_of(tick_jobs(home)[-1]) > before, timeout=20, what="a new slot")
    wait_until(lambda: len(tick_jobs(home)) >= len(jobs) + 3, timeout=20, what="more slots")
    after = [slot_of(job) for job in tick_jobs(home) if slot_of(job) > before]
    # The first slot after the restart is the latest missed one (at least 3 s later);
    # from then on, one a second, none twice.
    assert after[0] - before >= 3 * SECOND
    assert {b - a for a, b in zip(after, after[1:], strict=False)} == {SECOND}


def test_two_daemons_on_one_postgres_database_share_the_slots(
    tmp_path: Path, postgres_url: str, postgres_schema: str
):
    env = {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}
    homes = [Home.resolve(tmp_path / name).ensure() for name in ("host-a", "host-b")]
    daemons: list[Daemon] = []
    try:
        for name, home in zip(("host-a", "host-b"), homes, strict=True):
            home.config_path.write_text(TICK)
            daemons.append(Daemon(home, workers=1, env={**env, "ATHENA_HOST": name}))
        wait_until(lambda: len(tick_jobs(homes[0], env)) >= 6, timeout=30, what="six slots")
    finally:
        for daemon in daemons:
            daemon.stop()
    slots = [slot_of(job) for job in tick_jobs(homes[0], env)]
    assert max(Counter(slots).values()) == 1
    assert {b - a for a, b in zip(slots, slots[1:], strict=False)} == {SECOND}
    # Both daemons looked at every slot; each slot was logged by one of them.
    logged = [
        event["slot"] for daemon in daemons for event in log_events(daemon, "schedule_enqueued")
    ]
    assert Counter(logged) == Counter(slot_key(job) for job in tick_jobs(homes[0], env))
