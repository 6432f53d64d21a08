"""The async API keeps the event loop running while it submits, polls and waits on locks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from athenad.api import TaskOrchestrator
from athenad.errors import WaitTimeout
from athenad.store.sqlite.queue import JobQueue

TICK_S = 0.01
LOCK_HELD_S = 1.0


def assert_loop_kept_running(longest_pause: float, took: float) -> None:
    """A loop blocked by the call pauses for about the whole call (over a second here);
    a free one for 10-20 ms, and a few hundred on a machine loaded past its cores."""
    assert longest_pause < took / 4, f"the loop paused {longest_pause:.3f} s of {took:.3f} s"


async def measure(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """(outcome, seconds the call took, longest pause of a task ticking every 10 ms).

    The outcome is the call's result or the exception it raised.
    """
    pauses: list[float] = []
    running = True

    async def tick() -> None:
        last = time.monotonic()
        while running:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            pauses.append(now - last - TICK_S)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(5 * TICK_S)
    started = time.monotonic()
    try:
        outcome = await call()
    except Exception as exc:
        outcome = exc
    took = time.monotonic() - started
    running = False
    await ticker
    return outcome, took, max(pauses)


@contextlib.contextmanager
def write_lock_held(db_path: Path, seconds: float) -> Iterator[None]:
    """Another connection holds athena.db's write lock for ``seconds`` from now."""
    other = apsw.Connection(str(db_path))
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, lambda: other.execute("COMMIT"))
    release.start()
    try:
        yield
    finally:
        release.join()
        other.close()


@pytest.fixture
def orchestrator(home):
    with TaskOrchestrator(home.db_path, home.state_dir) as orchestrator:
        yield orchestrator


@pytest.fixture(params=["orchestrator", "queue"])
def fan_out(request, orchestrator, queue):
    """run_parallel_tasks of the orchestrator, and of a plain JobQueue."""
    return (orchestrator if request.param == "orchestrator" else queue).run_parallel_tasks


def test_a_big_fan_out_behind_a_held_lock_leaves_the_loop_running(home, fan_out, queue):
    tasks = [{"type": "echo", "payload": {"n": n}} for n in range(20_000)]

    async def scenario():
        with write_lock_held(home.db_path, LOCK_HELD_S):
            return await measure(lambda: fan_out(tasks))

    ids, took, longest_pause = asyncio.run(scenario())
    assert len(ids) == 20_000 and queue.get(ids[-1])["status"] == "pending"
    assert took >= LOCK_HELD_S * 0.9
    assert_loop_kept_running(longest_pause, took)


def test_slow_polls_leave_the_loop_running(orchestrator, monkeypatch):
    """A poll that takes half a second (a slow disk, a huge id list) runs off the loop."""
    job_id = orchestrator.submit("echo")
    states = JobQueue.states

    def slow_states(self, job_ids):
        time.sleep(0.5)
        return states(self, job_ids)

    monkeypatch.setattr(JobQueue, "states", slow_states)
    outcome, took, longest_pause = asyncio.run(
        measure(lambda: orchestrator.wait_for_jobs([job_id], timeout=1.0))
    )
    assert isinstance(outcome, WaitTimeout)
    assert took >= 1.0
    assert_loop_kept_running(longest_pause, took)


def test_checkpointed_task_behind_a_held_lock_leaves_the_loop_running(home, orchestrator):
    async def scenario():
        with write_lock_held(home.db_path, LOCK_HELD_S):
            return await measure(lambda: orchestrator.create_task_with_checkpoints("plan"))

    job_id, took, longest_pause = asyncio.run(scenario())
    assert orchestrator.get_job(job_id)["payload"] == {"checkpoint_interval": 5}
    assert took >= LOCK_HELD_S * 0.9
    assert_loop_kept_running(longest_pause, took)


def test_closing_ends_the_background_thread(home):
    before = set(threading.enumerate())
    orchestrator = TaskOrchestrator(home.db_path, home.state_dir)
    asyncio.run(orchestrator.run_parallel_tasks([{"type": "echo"}]))
    started = set(threading.enumerate()) - before
    assert [t.name.startswith("athena-queue") for t in started] == [True]
    orchestrator.close()
    assert not any(t.is_alive() for t in started)
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(orchestrator.wait_for_jobs([]))
