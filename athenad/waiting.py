"""Waiting for jobs, and the seed's parallel fan-out / fan-in call, on top of the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from athenad.errors import InvalidInput, JobFailed, JobNotFound, WaitTimeout
from athenad.jobspec import spec_from

FINISHED = frozenset({"completed", "failed", "cancelled"})


class WaitingMixin:
    """``run_parallel_tasks``, ``wait_for_jobs`` and their blocking twins (on JobQueue)."""

    async def run_parallel_tasks(
        self, tasks: Sequence[Mapping[str, Any]], then: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Submit tasks to run in parallel; ``then`` runs after all of them (its id is last)."""
        if isinstance(tasks, str | Mapping) or not isinstance(tasks, Iterable):
            raise InvalidInput(f"tasks must be a list of task dicts, not {tasks!r}.")
        batch: list[Any] = list(tasks)
        if then is not None:
            spec_from(then)
            final = dict(then)
            final["after"] = [*final.get("after", ()), *range(len(batch))]
            batch.append(final)
        return self.submit_many(batch)

    async def wait_for_jobs(
        self, job_ids: Sequence[str], timeout: float | None = None
    ) -> list[Any]:
        """Wait until every job finished; return their results in order.

        Raises :class:`JobFailed` naming each job that failed or was cancelled, and
        :class:`WaitTimeout` after ``timeout`` seconds.
        """
        steps = self.wait_steps(job_ids, timeout)
        try:
            while True:
                delay, _states = next(steps)
                await asyncio.sleep(delay)
        except StopIteration as finished:
            return self._results(job_ids, finished.value)

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[Any]:
        """The blocking twin of :meth:`wait_for_jobs`."""
        steps = self.wait_steps(job_ids, timeout)
        try:
            while True:
                delay, _states = next(steps)
                time.sleep(delay)
        except StopIteration as finished:
            return self._results(job_ids, finished.value)

    def wait_steps(self, job_ids: Sequence[str], timeout: float | None = None):
        """Poll until every job finished, for sync and async waiters alike.

        Yields ``(seconds to sleep, states so far)``; returns the final states. Polls
        start at 5 ms and back off to 200 ms, so a long wait costs next to nothing.
        Raises :class:`WaitTimeout` after ``timeout`` seconds.
        """
        if isinstance(job_ids, str) or not isinstance(job_ids, Sequence):
            raise InvalidInput(f"job ids must be a list of ids, not {job_ids!r}.")
        if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
            raise InvalidInput(f"timeout {timeout!r} must be a non-negative number of seconds.")
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            done, states = self.poll_finished(job_ids)
            if done:
                return states
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout_error(job_ids, states, timeout)
            yield delay, states
            delay = min(delay * 1.5, 0.2)

    def poll_finished(self, job_ids: Sequence[str]) -> tuple[bool, dict[str, tuple]]:
        """(all finished?, states); unknown ids raise JobNotFound."""
        states = self.states(job_ids)
        missing = [job_id for job_id in job_ids if job_id not in states]
        if missing:
            raise JobNotFound(f"job {missing[0]!r} does not exist.")
        return all(state[0] in FINISHED for state in states.values()), states

    @staticmethod
    def _results(job_ids: Sequence[str], states: dict[str, tuple]) -> list[Any]:
        bad = [job_id for job_id in job_ids if states[job_id][0] != "completed"]
        if bad:
            details = "; ".join(
                f"job {job_id} {states[job_id][0]}: {states[job_id][2] or 'no error recorded'}"
                for job_id in bad
            )
            raise JobFailed(f"{len(bad)} of {len(job_ids)} jobs did not complete: {details}", bad)
        return [states[job_id][1] for job_id in job_ids]

    @staticmethod
    def _timeout_error(
        job_ids: Sequence[str], states: dict[str, tuple], timeout: float | None
    ) -> WaitTimeout:
        waiting = [job_id for job_id in job_ids if states[job_id][0] not in FINISHED]
        return WaitTimeout(
            f"{len(waiting)} of {len(job_ids)} jobs still unfinished after {timeout:g} s "
            f"(first: {waiting[0]}, {states[waiting[0]][0]})."
        )
