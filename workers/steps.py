"""Durable steps for agents: ``ctx.step``, ``ctx.sleep`` and ``ctx.wait_for_event``.

The n-th step call of a job is step number n. The first time a step runs, its result
(or its error) is recorded before the call returns; when the job runs again (a crash,
a lost lease, the end of a sleep or a wait), the same call in the same place returns
the recorded result without running the function. A call whose name differs from the
record at its number means the agent's code changed under the job: the job fails with
:class:`~athenad.StepsChanged` rather than be handed another step's result.

A step's body runs at least once; its record is written exactly once. If the worker
dies after the body ran but before the record was written, the body runs again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from athenad.errors import InvalidInput, StaleFence, StepFailed, StepsChanged
from athenad.store.jobspec import ClaimedJob, decode_json
from athenad.store.steps import (
    MAX_RESULT_BYTES,
    StepRecord,
    StepStore,
    check_event_key,
)
from workers.interrupts import JobLost, WorkerInterrupt

_encoder = msgspec.json.Encoder()
SLEEP = "sleep"
STORED_TIME_PRECISION_S = 0.001
EVENT_PREFIX = "event:"
MAX_STEP_RETRIES = 100


class ParkUntil(WorkerInterrupt):
    """A durable sleep: the job waits as 'scheduled' until ``wake_at``; its worker is freed."""

    def __init__(self, wake_at: float) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at


class ParkForEvent(WorkerInterrupt):
    """The job waits for an event with ``key`` (until ``deadline``); its worker is freed."""

    def __init__(self, key: str, deadline: float | None) -> None:
        super().__init__(key)
        self.key = key
        self.deadline = deadline


def moment(when: float | str | dt.datetime) -> float:
    """Unix time of a number, an aware (or UTC) datetime, or ISO 8601 text."""
    from athenad.store.jobspec import parse_moment

    if isinstance(when, int | float) and not isinstance(when, bool):
        return float(when)
    return parse_moment(when, "sleep_until")


class DurableSteps:
    """The steps of one run of one job."""

    def __init__(self, store: StepStore, job: ClaimedJob) -> None:
        self.store = store
        self.job = job
        self._recorded: list[StepRecord] | None = None
        self.next_seq = 0

    @property
    def recorded(self) -> list[StepRecord]:
        """The job's recorded steps, up to the first whose result does not verify (that
        one and those after it run again, as if never recorded)."""
        if self._recorded is None:
            records = self.store.load(self.job.id)
            for index, record in enumerate(records):
                if not record.verified():
                    try:
                        self.store.forget_from(self.job.id, self.job.fence, index)
                    except StaleFence:
                        raise JobLost("another worker holds the job now") from None
                    del records[index:]
                    break
            self._recorded = records
        return self._recorded

    def _write(self, step: StepRecord) -> None:
        try:
            self.store.record(self.job.id, self.job.fence, step)
        except StaleFence:
            raise JobLost("another worker holds the job now") from None
        recorded = self.recorded
        if step.seq < len(recorded):
            recorded[step.seq] = step
        else:
            recorded.append(step)

    def _next(self, name: str) -> tuple[int, StepRecord | None]:
        """The next step number, and what was recorded under it (checked by name)."""
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a step needs a name: non-empty text, not {name!r}.")
        seq = self.next_seq
        self.next_seq += 1
        recorded = self.recorded
        if seq >= len(recorded):
            return seq, None
        record = recorded[seq]
        if record.name != name:
            raise StepsChanged(
                f"the agent's steps changed on replay: step {seq} was recorded as "
                f"{record.name!r}, and the agent now asks for {name!r}."
            )
        if record.status == "failed" and record.attempt < self.job.attempt:
            # A new attempt of the job (a retry after it failed): the failed step and
            # everything recorded after it run again.
            try:
                self.store.forget_from(self.job.id, self.job.fence, seq)
            except StaleFence:
                raise JobLost("another worker holds the job now") from None
            del recorded[seq:]
            return seq, None
        return seq, record

    @staticmethod
    def _replayed(record: StepRecord) -> Any:
        if record.status == "failed":
            raise StepFailed(record.name, record.error_type, record.error)
        return decode_json(record.result)

    def _new(self, seq: int, name: str, status: str = "completed") -> StepRecord:
        return StepRecord(
            seq=seq, name=name, status=status, attempt=self.job.attempt, started_at=time.time()
        )

    def _finish(self, step: StepRecord, value: Any, tries: int) -> Any:
        duration = round((time.time() - step.started_at) * 1000)
        try:
            encoded = _encoder.encode(value).decode()
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            error = InvalidInput(f"the result of step {step.name!r} cannot be stored: {exc}")
            self._fail(step, error, tries)
            raise error from None
        if len(encoded) > MAX_RESULT_BYTES:
            error = InvalidInput(
                f"the result of step {step.name!r} is {len(encoded):,} bytes; "
                f"a step's result may be at most {MAX_RESULT_BYTES:,}."
            )
            self._fail(step, error, tries)
            raise error
        done = msgspec.structs.replace(
            step, result=encoded, size=len(encoded), tries=tries, duration_ms=duration
        )
        self._write(done)
        return decode_json(encoded)  # what a replay will return, so both runs agree

    def _fail(self, step: StepRecord, exc: BaseException, tries: int) -> None:
        self._write(
            msgspec.structs.replace(
                step,
                status="failed",
                tries=tries,
                error=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                duration_ms=round((time.time() - step.started_at) * 1000),
            )
        )

    @staticmethod
    def _check_retries(retries: int, backoff: float) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise InvalidInput(f"retries {retries!r} is not a whole number.")
        if not 0 <= retries <= MAX_STEP_RETRIES:
            raise InvalidInput(f"retries {retries!r} must be between 0 and {MAX_STEP_RETRIES}.")
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            raise InvalidInput(f"retry_backoff {backoff!r} is not a number of seconds.")

    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int = 0,
        backoff: float = 1.0,
    ) -> Any:
        """Run (or replay) a synchronous step."""
        self._check_retries(retries, backoff)
        seq, record = self._next(name)
        if record is not None:
            return self._replayed(record)
        step = self._new(seq, name)
        tries = 0
        while True:
            tries += 1
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                if tries <= retries:
                    time.sleep(backoff * 2 ** (tries - 1))
                    continue
                self._fail(step, exc, tries)
                raise
            return self._finish(step, value, tries)

    async def run_async(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int = 0,
        backoff: float = 1.0,
    ) -> Any:
        """Run (or replay) a step whose function is a coroutine function."""
        self._check_retries(retries, backoff)
        seq, record = self._next(name)
        if record is not None:
            return self._replayed(record)
        step = self._new(seq, name)
        tries = 0
        while True:
            tries += 1
            try:
                value = await fn(*args, **kwargs)
            except Exception as exc:
                if tries <= retries:
                    await asyncio.sleep(backoff * 2 ** (tries - 1))
                    continue
                self._fail(step, exc, tries)
                raise
            return self._finish(step, value, tries)

    def sleep_until(self, wake_at: float) -> None:
        """A durable sleep: parks the job until ``wake_at`` unless that has passed."""
        seq, record = self._next(SLEEP)
        if record is not None and record.status == "completed":
            return
        wake = wake_at
        if record is None:
            record = msgspec.structs.replace(self._new(seq, SLEEP, "sleeping"), wake_at=wake_at)
            if wake_at > time.time():
                self._write(record)
        elif record.wake_at is not None:
            # Stored times keep whole milliseconds (cut, not rounded): never wake early.
            wake = record.wake_at + STORED_TIME_PRECISION_S
        if time.time() >= wake:
            self._finish(msgspec.structs.replace(record, status="completed"), None, 1)
            return
        raise ParkUntil(wake)

    def wait_for_event(self, key: str, timeout: float | None = None) -> Any:
        """The payload of the next event with ``key`` sent to the job; None on timeout."""
        check_event_key(key)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise InvalidInput(f"timeout {timeout!r} is not a number of seconds.")
        name = EVENT_PREFIX + key
        seq, record = self._next(name)
        if record is not None and record.status == "completed":
            return decode_json(record.result)
        if record is None:
            deadline = None if timeout is None else time.time() + timeout
            record = msgspec.structs.replace(self._new(seq, name, "waiting"), wake_at=deadline)
            fresh = True
        else:
            fresh = False
        taking = msgspec.structs.replace(record, status="completed")
        try:
            event = self.store.take_event(self.job.id, self.job.fence, key, taking)
        except StaleFence:
            raise JobLost("another worker holds the job now") from None
        if event is not None:
            recorded = self.recorded
            if seq < len(recorded):
                recorded[seq] = taking
            else:
                recorded.append(taking)
            return event.payload
        if record.wake_at is not None and time.time() >= record.wake_at:
            self._finish(msgspec.structs.replace(record, status="completed"), None, 1)
            return None
        if fresh:
            self._write(record)
        raise ParkForEvent(key, record.wake_at)


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)
