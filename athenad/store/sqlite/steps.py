"""Durable steps and events on athena.db, on the queue's own connection."""

from __future__ import annotations

import time
from typing import Any

from athenad.errors import InvalidTransition, JobNotFound, StaleFence
from athenad.store.jobspec import decode_json, encode_payload
from athenad.store.named_sql import load_queries
from athenad.store.sqlite.connection import write_transaction
from athenad.store.sqlite.queries import SQL_DIR
from athenad.store.sqlite.queue import JobQueue
from athenad.store.steps import (
    Event,
    StepRecord,
    check_event_key,
    record_from_row,
    result_params,
    step_dict,
    with_result,
)
from athenad.util.timefmt import format_epoch, parse_ts, utc_now_text
from athenad.util.wake import wake_idle

Q = load_queries(SQL_DIR / "steps.sql")
NEVER = "9999-12-31 23:59:59.999"  # the deadline of a wait without a timeout
FINISHED = ("completed", "failed", "cancelled")


def _epoch(text: str | None) -> float | None:
    return None if text is None else parse_ts(text).timestamp()


class SqliteStepStore:
    """The :class:`~athenad.store.steps.StepStore` of a SQLite queue."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.conn = queue.conn

    def _hold(self, job_id: str, fence: int) -> None:
        """Inside a write transaction: StaleFence unless this fence holds the job."""
        if not list(self.conn.execute(Q["holds_job"], {"id": job_id, "fence": fence})):
            raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")

    def load(self, job_id: str) -> list[StepRecord]:
        rows = self.conn.execute(Q["load_steps"], {"id": job_id})
        return [record_from_row(row, _epoch) for row in rows]

    def count(self, job_id: str) -> int:
        return int(next(iter(self.conn.execute(Q["count_steps"], {"id": job_id})))[0])

    def _params(self, job_id: str, step: StepRecord) -> dict[str, Any]:
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
            "wake_at": None if step.wake_at is None else format_epoch(step.wake_at),
            "started_at": format_epoch(step.started_at or time.time()),
            "duration_ms": step.duration_ms,
            "size": step.size,
            **result_params(step),
        }

    def _write_step(self, job_id: str, step: StepRecord) -> None:
        """Inside a write transaction: the step's row, and its large result if any."""
        params = self._params(job_id, step)
        self.conn.execute(Q["record_step"], params)
        if params["large_result"] is not None:
            body = {"id": job_id, "seq": step.seq, "body": params["large_result"]}
            self.conn.execute(Q["record_large_result"], body)
        else:
            self.conn.execute(Q["forget_large_result"], {"id": job_id, "seq": step.seq})

    def record(self, job_id: str, fence: int, step: StepRecord) -> None:
        with write_transaction(self.conn):
            self._hold(job_id, fence)
            self._write_step(job_id, step)

    def forget_from(self, job_id: str, fence: int, seq: int) -> None:
        with write_transaction(self.conn):
            self._hold(job_id, fence)
            self.conn.execute(Q["forget_steps_from"], {"id": job_id, "seq": seq})
            self.conn.execute(Q["forget_results_from"], {"id": job_id, "seq": seq})

    def park_until(self, job_id: str, fence: int, wake_at: float) -> None:
        params = {"id": job_id, "fence": fence, "wake_at": format_epoch(wake_at)}
        with write_transaction(self.conn):
            self.conn.execute(Q["park_until"], {**params, "now": utc_now_text()})
            if self.conn.changes() != 1:
                raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")

    def take_event(self, job_id: str, fence: int, key: str, step: StepRecord) -> Event | None:
        with write_transaction(self.conn):
            self._hold(job_id, fence)
            rows = list(self.conn.execute(Q["oldest_event"], {"id": job_id, "key": key}))
            if not rows:
                return None
            seq, payload = rows[0]
            self.conn.execute(Q["take_event"], {"id": job_id, "seq": seq, "step": step.seq})
            self._write_step(job_id, with_result(step, payload))
        return Event(key=key, payload=decode_json(payload))

    def park_for_event(self, job_id: str, fence: int, key: str, deadline: float | None) -> bool:
        with write_transaction(self.conn):
            ready = bool(list(self.conn.execute(Q["oldest_event"], {"id": job_id, "key": key})))
            params = {
                "id": job_id,
                "fence": fence,
                "key": key,
                "ready": int(ready),
                "deadline": NEVER if deadline is None else format_epoch(deadline),
                "now": utc_now_text(),
            }
            self.conn.execute(Q["park_for_event"], params)
            if self.conn.changes() != 1:
                raise StaleFence(f"job {job_id}: fence {fence} no longer holds it.")
        if ready:
            wake_idle(self.queue.run_dir)
        return not ready

    def send_event(self, job_id: str, key: str, payload: Any) -> str:
        check_event_key(key)
        encoded = encode_payload(payload, f"the payload of event {key!r}")
        now = utc_now_text()
        with write_transaction(self.conn):
            rows = list(self.conn.execute(Q["job_for_event"], {"id": job_id}))
            if not rows:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            status, _waiting_for = rows[0]
            if status in FINISHED:
                raise InvalidTransition(
                    f"job {job_id} is {status}; events go to jobs that have not finished."
                )
            params = {"id": job_id, "key": key, "payload": encoded, "now": now}
            self.conn.execute(Q["add_event"], params)
            self.conn.execute(Q["wake_for_event"], params)
            delivered = self.conn.changes() == 1
        if delivered:
            wake_idle(self.queue.run_dir)
        return "delivered" if delivered else "kept"

    def steps(self, job_id: str) -> list[dict[str, Any]]:
        if not list(self.conn.execute(Q["job_for_event"], {"id": job_id})):
            raise JobNotFound(f"job {job_id!r} does not exist.")
        return [step_dict(step) for step in self.load(job_id)]
