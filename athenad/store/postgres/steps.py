"""Durable steps and events on PostgreSQL, on the queue's own pool.

A job's row lock (``FOR UPDATE`` / ``FOR SHARE``) orders a recording against a
rescue or a claim, and an event against a wait, as SQLite's write lock does.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg

from athenad.errors import InvalidTransition, JobNotFound, StaleFence
from athenad.store.jobspec import decode_json, encode_payload
from athenad.store.named_sql import load_queries
from athenad.store.postgres.queries import SQL_DIR
from athenad.store.postgres.queue import PostgresJobQueue
from athenad.store.steps import (
    Event,
    StepRecord,
    check_event_key,
    record_from_row,
    result_params,
    step_dict,
    with_result,
)

Q = load_queries(SQL_DIR / "steps.sql")
NEVER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
FINISHED = ("completed", "failed", "cancelled")


def _when(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _epoch(moment: dt.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class PostgresStepStore:
    """The :class:`~athenad.store.steps.StepStore` of a PostgreSQL queue."""

    def __init__(self, queue: PostgresJobQueue) -> None:
        self.queue = queue

    @staticmethod
    def _hold(conn: psycopg.Connection[Any], job_id: str, fence: int) -> None:
        if conn.execute(Q["holds_job"], {"id": job_id, "fence": fence}).fetchone() is None:
            raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")

    def load(self, job_id: str) -> list[StepRecord]:
        with self.queue._tx() as conn:
            rows = conn.execute(Q["load_steps"], {"id": job_id}).fetchall()
        return [record_from_row(row, _epoch) for row in rows]

    def count(self, job_id: str) -> int:
        with self.queue._tx() as conn:
            row = conn.execute(Q["count_steps"], {"id": job_id}).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _params(job_id: str, step: StepRecord) -> dict[str, Any]:
        return {
            "id": job_id,
            "seq": step.seq,
            "name": step.name,
            "status": step.status,
            "attempt": step.attempt,
            "tries": step.tries,
            "result": step.result,
            "error": step.error,
            "error_type": step.error_type,
            "wake_at": _when(step.wake_at),
            "started_at": _when(step.started_at or time.time()),
            "duration_ms": step.duration_ms,
            "size": step.size,
            **result_params(step),
        }

    @classmethod
    def _write_step(cls, conn: psycopg.Connection[Any], job_id: str, step: StepRecord) -> None:
        """Inside a transaction: the step's row, and its large result if any."""
        params = cls._params(job_id, step)
        conn.execute(Q["record_step"], params)
        if params["large_result"] is not None:
            body = {"id": job_id, "seq": step.seq, "body": params["large_result"]}
            conn.execute(Q["record_large_result"], body)
        else:
            conn.execute(Q["forget_large_result"], {"id": job_id, "seq": step.seq})

    def record(self, job_id: str, fence: int, step: StepRecord) -> None:
        with self.queue._tx() as conn:
            self._hold(conn, job_id, fence)
            self._write_step(conn, job_id, step)

    def forget_from(self, job_id: str, fence: int, seq: int) -> None:
        with self.queue._tx() as conn:
            self._hold(conn, job_id, fence)
            conn.execute(Q["forget_steps_from"], {"id": job_id, "seq": seq})
            conn.execute(Q["forget_results_from"], {"id": job_id, "seq": seq})

    def park_until(self, job_id: str, fence: int, wake_at: float) -> None:
        params = {"id": job_id, "fence": fence, "wake_at": _when(wake_at)}
        with self.queue._tx() as conn:
            if conn.execute(Q["park_until"], params).rowcount != 1:
                raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")

    def take_event(self, job_id: str, fence: int, key: str, step: StepRecord) -> Event | None:
        with self.queue._tx() as conn:
            self._hold(conn, job_id, fence)
            row = conn.execute(Q["oldest_event"], {"id": job_id, "key": key}).fetchone()
            if row is None:
                return None
            seq, payload = row
            conn.execute(Q["take_event"], {"id": job_id, "seq": seq, "step": step.seq})
            self._write_step(conn, job_id, with_result(step, payload))
        return Event(key=key, payload=decode_json(payload))

    def park_for_event(self, job_id: str, fence: int, key: str, deadline: float | None) -> bool:
        with self.queue._tx() as conn:
            conn.execute(Q["lock_job"], {"id": job_id})
            ready = conn.execute(Q["oldest_event"], {"id": job_id, "key": key}).fetchone()
            params = {
                "id": job_id,
                "fence": fence,
                "key": key,
                "ready": ready is not None,
                "deadline": NEVER if deadline is None else _when(deadline),
            }
            if conn.execute(Q["park_for_event"], params).rowcount != 1:
                raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")
            if ready is not None:
                self.queue._notify(conn)
        return ready is None

    def send_event(self, job_id: str, key: str, payload: Any) -> str:
        check_event_key(key)
        encoded = encode_payload(payload, f"the payload of event {key!r}")
        with self.queue._tx() as conn:
            row = conn.execute(Q["lock_job"], {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            if row[0] in FINISHED:
                raise InvalidTransition(
                    f"job {job_id} is {row[0]}; events go to jobs that have not finished."
                )
            params = {"id": job_id, "key": key, "payload": encoded}
            conn.execute(Q["add_event"], params)
            delivered = conn.execute(Q["wake_for_event"], params).rowcount == 1
            if delivered:
                self.queue._notify(conn)
        return "delivered" if delivered else "kept"

    def steps(self, job_id: str) -> list[dict[str, Any]]:
        with self.queue._tx() as conn:
            if conn.execute(Q["job_exists"], {"id": job_id}).fetchone() is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
        return [step_dict(step) for step in self.load(job_id)]
