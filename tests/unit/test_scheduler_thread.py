"""The daemon's scheduler thread: follows the config it reads each round (a reload that
adds a schedule starts it), enqueues each slot once, and stops promptly."""

from __future__ import annotations

import datetime as dt
import time

import msgspec
import pytest

from athenad.config import Config, ScheduleConfig
from athenad.daemon import scheduler
from athenad.daemon.scheduler import start_scheduler
from athenad.paths import Home
from athenad.store.sqlite.queue import JobQueue
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(60)


def ticks(queue: JobQueue) -> list[str]:
    keys = [job["unique_key"] or "" for job in queue.list_jobs(limit=1000)]
    return sorted(key for key in keys if key.startswith("schedule:tick:"))


def test_a_schedule_added_by_a_reload_runs_every_slot_once(
    home: Home, queue: JobQueue, monkeypatch
):
    monkeypatch.setattr(scheduler, "MAX_WAIT_S", 0.1)
    current = [Config()]
    thread = start_scheduler(home, lambda: current[0])
    try:
        time.sleep(0.3)
        assert ticks(queue) == []  # no schedules: nothing, and no connection held
        assert thread.queue is None
        # What a reload does: the supervisor's config is replaced.
        tick = ScheduleConfig(agent="echo", every="1s")
        current[0] = msgspec.structs.replace(Config(), schedules={"tick": tick})
        wait_until(lambda: len(ticks(queue)) >= 3, timeout=10, what="three slots")
    finally:
        started = time.monotonic()
        thread.stop()
        assert time.monotonic() - started < 2 and not thread.thread.is_alive()
    keys = ticks(queue)
    assert len(keys) == len(set(keys))
    slots = [dt.datetime.fromisoformat(key.removeprefix("schedule:tick:")) for key in keys]
    # Consecutive seconds: no slot missed, none twice.
    assert {b - a for a, b in zip(slots, slots[1:], strict=False)} == {dt.timedelta(seconds=1)}


def test_a_schedule_that_fails_leaves_the_others_running(home: Home, queue: JobQueue, monkeypatch):
    monkeypatch.setattr(scheduler, "MAX_WAIT_S", 0.1)
    broken = ScheduleConfig(agent="echo", every="1s", payload={"x": float("nan")}, queue="bad q")
    schedules = {"broken": broken, "tick": ScheduleConfig(agent="echo", every="1s")}
    config = msgspec.structs.replace(Config(), schedules=schedules)
    thread = start_scheduler(home, lambda: config)
    try:
        wait_until(lambda: len(ticks(queue)) >= 2, timeout=10, what="the good schedule's slots")
    finally:
        thread.stop()
    assert all(not (job["unique_key"] or "").startswith("schedule:broken:")
               for job in queue.list_jobs(limit=1000))  # fmt: skip
