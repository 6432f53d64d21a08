"""Waiting for jobs, and the seed's parallel fan-out / fan-in call, on top of the queue.

The async calls do their SQLite work on a :class:`~athenad.queue_thread.QueueThread`,
never on the event loop: a submit of many jobs, or a poll held up by a busy disk,
leaves the caller's other tasks running.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from athenad.errors import InvalidInput, JobFailed, JobNotFound, WaitTimeout
from athenad.store.contract import JobStore, States
from athenad.store.jobspec import spec_from

if TYPE_CHECKING:
    from athenad.queue_thread import QueueThread

FINISHED = frozenset({"completed", "failed", "cancelled"})

# Yields (seconds to sleep, states so far); returns the final states.
WaitSteps = Generator[tuple[float, States], None, States]


def parallel_batch(
    tasks: Sequence[Mapping[str, Any]], then: Mapping[str, Any] | None = None
) -> list[Any]:
    """The tasks as one batch for ``submit_many``; ``then`` last, after all of them."""
    if isinstance(tasks, str | Mapping) or not isinstance(tasks, Iterable):
        raise InvalidInput(f"tasks must be a list of task dicts, not {tasks!r}.")
    batch: list[Any] = list(tasks)
    if then is not None:
        spec_from(then)
        final = dict(then)
        final["after"] = [*final.get("after", ()), *range(len(batch))]
        batch.append(final)
    return batch


async def run_parallel_tasks(
    thread: QueueThread,
    tasks: Sequence[Mapping[str, Any]],
    then: Mapping[str, Any] | None = None,
) -> list[str]:
    """Submit tasks to run in parallel; ``then`` runs after all of them (its id is last)."""
    return await thread.run(lambda queue: queue.submit_many(parallel_batch(tasks, then)))


async def wait_for_jobs(
    thread: QueueThread, job_ids: Sequence[str], timeout: float | None = None
) -> list[Any]:
    """Wait until every job finished; return their results in order.

    Raises :class:`JobFailed` naming each job that failed or was cancelled, and
    :class:`WaitTimeout` after ``timeout`` seconds.
    """
    steps: WaitSteps | None = None

    def poll(queue: JobStore) -> tuple[float | None, States]:
        nonlocal steps
        if steps is None:
            steps = wait_steps(queue, job_ids, timeout)
        try:
            return next(steps)
        except StopIteration as finished:  # it cannot cross into an asyncio future
            return None, cast(States, finished.value)

    import asyncio  # here: a CLI that never awaits need not load it (~30 ms)

    while True:
        delay, states = await thread.run(poll)
        if delay is None:
            return results(job_ids, states)
        await asyncio.sleep(delay)


def wait(queue: JobStore, job_ids: Sequence[str], timeout: float | None = None) -> list[Any]:
    """The blocking twin of :func:`wait_for_jobs`, on the caller's thread."""
    steps = wait_steps(queue, job_ids, timeout)
    try:
        while True:
            delay, _states = next(steps)
            time.sleep(delay)
    except StopIteration as finished:
        return results(job_ids, finished.value)


def wait_steps(queue: JobStore, job_ids: Sequence[str], timeout: float | None = None) -> WaitSteps:
    """Poll until every job finished, for sync and async waiters alike.

    Yields ``(seconds to sleep, states so far)``; returns the final states. Polls
    start at 5 ms and back off to 200 ms, so a long wait costs next to nothing.
    Raises :class:`WaitTimeout` after ``timeout`` seconds.
    """
    if isinstance(job_ids, str) or not isinstance(job_ids, Sequence):
        raise InvalidInput(f"job ids must be a list of ids, not {job_ids!r}.")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
    ):
        raise InvalidInput(f"timeout {timeout!r} must be a non-negative number of seconds.")
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        done, states = poll_finished(queue, job_ids)
        if done:
            return states
        if deadline is not None and time.monotonic() >= deadline:
            raise _timeout_error(job_ids, states, timeout)
        yield delay, states
        delay = min(delay * 1.5, 0.2)


def poll_finished(queue: JobStore, job_ids: Sequence[str]) -> tuple[bool, States]:
    """(all finished?, states); unknown ids raise JobNotFound."""
    states = queue.states(job_ids)
    missing = [job_id for job_id in job_ids if job_id not in states]
    if missing:
        raise JobNotFound(f"job {missing[0]!r} does not exist.")
    return all(state[0] in FINISHED for state in states.values()), states


def results(job_ids: Sequence[str], states: States) -> list[Any]:
    """The results in order, or JobFailed naming every job that did not complete."""
    bad = [job_id for job_id in job_ids if states[job_id][0] != "completed"]
    if bad:
        details = "; ".join(
            f"job {job_id} {states[job_id][0]}: {states[job_id][2] or 'no error recorded'}"
            for job_id in bad
        )
        raise JobFailed(f"{len(bad)} of {len(job_ids)} jobs did not complete: {details}", bad)
    return [states[job_id][1] for job_id in job_ids]


def _timeout_error(job_ids: Sequence[str], states: States, timeout: float | None) -> WaitTimeout:
    waiting = [job_id for job_id in job_ids if states[job_id][0] not in FINISHED]
    return WaitTimeout(
        f"{len(waiting)} of {len(job_ids)} jobs still unfinished after {timeout:g} s "
        f"(first: {waiting[0]}, {states[waiting[0]][0]})."
    )
