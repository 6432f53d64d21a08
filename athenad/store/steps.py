"""Durable steps, sleeps and events of jobs, on either backend.

A job's steps are rows keyed by (job, sequence number): what ``ctx.step`` ran and what
came of it, or a durable sleep or wait still in progress. Writing one is fenced like a
checkpoint: only the worker that holds the job (its fence, status running) can record,
so a late worker never overwrites what the job's new holder saw. Events sent to a job
are kept until a wait of the job takes one.

Each backend implements :class:`StepStore` in its ``steps`` module, on the queue's own
connection; :func:`step_store` picks one for a queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

STEP_STATUSES = ("completed", "failed", "sleeping", "waiting")
# A result up to this size is stored in its step's row, a larger one in job_step_results;
# one larger than MAX_RESULT_BYTES fails the step with a clear error. Every result has a
# sha256: one that does not verify is not replayed (the step runs again).
INLINE_RESULT_BYTES = 64 * 1024
MAX_RESULT_BYTES = 16 * 1024 * 1024
MAX_KEY_CHARS = 200


class StepRecord(msgspec.Struct, kw_only=True):
    """One recorded step. ``result`` is its msgspec JSON text; times are Unix seconds."""

    seq: int
    name: str
    status: str
    attempt: int
    tries: int = 1
    result: str | None = None
    error: str | None = None
    error_type: str | None = None
    wake_at: float | None = None
    started_at: float = 0.0
    duration_ms: int | None = None
    size: int = 0
    sha256: str | None = None

    def verified(self) -> bool:
        """Whether the stored result is the one recorded (always, without a result)."""
        return self.result is None or self.sha256 == checksum(self.result)


class Event(msgspec.Struct, frozen=True):
    """An event a wait took: its key and payload (decoded)."""

    key: str
    payload: Any


class StepStore(Protocol):
    """Recording and replaying a job's steps, parking it, and its events."""

    def load(self, job_id: str) -> list[StepRecord]:
        """Every recorded step of the job, in sequence order."""
        ...

    def count(self, job_id: str) -> int:
        """How many steps the job recorded (without reading their results)."""
        ...

    def record(self, job_id: str, fence: int, step: StepRecord) -> None:
        """Write (or overwrite) the step; StaleFence when this fence no longer holds it."""
        ...

    def forget_from(self, job_id: str, fence: int, seq: int) -> None:
        """Drop the records from ``seq`` on (a failed step that runs again)."""
        ...

    def park_until(self, job_id: str, fence: int, wake_at: float) -> None:
        """The job sleeps as 'scheduled' until ``wake_at``, holding no worker and no attempt."""
        ...

    def take_event(self, job_id: str, fence: int, key: str, step: StepRecord) -> Event | None:
        """Take the oldest event with ``key`` not yet taken, recording ``step`` (completed,
        with the payload as result) in the same transaction; None when none is there."""
        ...

    def park_for_event(self, job_id: str, fence: int, key: str, deadline: float | None) -> bool:
        """The job waits as 'waiting' for an event with ``key`` (until ``deadline``),
        holding no worker and no attempt. False when such an event is already there:
        then the job is made ready again at once, to take it."""
        ...

    def send_event(self, job_id: str, key: str, payload: Any) -> str:
        """Keep an event for the job; a job waiting for ``key`` is made ready.

        Returns 'delivered' (the job was waiting for it) or 'kept'. Unknown or
        finished jobs raise JobNotFound / InvalidTransition.
        """
        ...

    def steps(self, job_id: str) -> list[dict[str, Any]]:
        """The job's steps for people: name, sequence, status, tries, timings, size."""
        ...


def record_from_row(row: Sequence[Any], to_epoch: Callable[[Any], float | None]) -> StepRecord:
    """A row of either backend's load_steps query; ``to_epoch`` reads its times."""
    (seq, name, status, attempt, tries, result, error, error_type, wake_at,
     started_at, duration_ms, size, sha256) = row  # fmt: skip
    return StepRecord(
        seq=seq,
        name=name,
        status=status,
        attempt=attempt,
        tries=tries,
        result=result,
        error=error,
        error_type=error_type,
        wake_at=to_epoch(wake_at),
        started_at=to_epoch(started_at) or 0.0,
        duration_ms=duration_ms,
        size=size,
        sha256=sha256,
    )


def checksum(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def result_params(step: StepRecord) -> dict[str, Any]:
    """Where a step's result goes: inline in its row, or (large) in job_step_results."""
    result = step.result
    large = result is not None and len(result) > INLINE_RESULT_BYTES
    return {
        "inline_result": None if large else result,
        "large_result": result if large else None,
        "sha256": None if result is None else checksum(result),
    }


def with_result(step: StepRecord, result: str) -> StepRecord:
    """The step completed with ``result`` (JSON text)."""
    return msgspec.structs.replace(step, status="completed", result=result, size=len(result))


def step_dict(step: StepRecord) -> dict[str, Any]:
    """A step as ``athenactl steps`` shows it (no result body: its size)."""
    from athenad.util.timefmt import format_epoch

    return {
        "seq": step.seq,
        "name": step.name,
        "status": step.status,
        "attempt": step.attempt,
        "tries": step.tries,
        "started_at": format_epoch(step.started_at),
        "duration_ms": step.duration_ms,
        "result_bytes": step.size,
        "error": step.error,
        "wake_at": None if step.wake_at is None else format_epoch(step.wake_at),
    }


def check_event_key(key: Any) -> str:
    from athenad.errors import InvalidInput

    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
        raise InvalidInput(f"event key {key!r} must be text of 1 to {MAX_KEY_CHARS} characters.")
    return key


def step_store(queue: Any) -> StepStore:
    """The step store on ``queue``'s own database connection."""
    from athenad.store.sqlite.queue import JobQueue

    if isinstance(queue, JobQueue):
        from athenad.store.sqlite.steps import SqliteStepStore

        return SqliteStepStore(queue)
    from athenad.store.postgres.steps import PostgresStepStore

    return PostgresStepStore(queue)
