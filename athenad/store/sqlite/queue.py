"""The job queue: submit, claim, complete, fail, retry, cancel, rescue.

Every state change is one ``BEGIN IMMEDIATE`` transaction on athena.db. A claim
hands the worker a *fence* (a number that grows on every claim); a completion,
failure or checkpoint carrying an old fence is refused with :class:`StaleFence`,
so a worker that lost its job can never overwrite the work of the next owner.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from athenad.config import check_queue_name
from athenad.errors import (
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    StaleFence,
    UnknownParent,
)
from athenad.store import waiting
from athenad.store.contract import FORGET_DAEMONS_AFTER_S, STATUSES, UNFINISHED, States
from athenad.store.jobspec import (
    BatchReport,
    ClaimedJob,
    Finished,
    JobSpec,
    Submitted,
    backoff_delay,
    check_int,
    check_seconds,
    checked_fields,
    claimed_job,
    decode_json,
    encode_json,
    free_prefix,
    resolve_parents,
    spec_from,
    start_time,
    timed_out_message,
    unique_key_taken,
)
from athenad.store.queues import QueueLimits, queue_rows
from athenad.store.sqlite import connection as dbmod
from athenad.store.sqlite.migrations import open_database
from athenad.store.sqlite.queries import QUERIES as Q
from athenad.store.timers import DueJobs
from athenad.store.waiting import FINISHED
from athenad.util.ids import new_job_id
from athenad.util.timefmt import format_epoch, parse_ts, utc_now_text
from athenad.util.wake import wake_idle

__all__ = [
    "FINISHED",
    "STATUSES",
    "ClaimedJob",
    "JobQueue",
    "JobSpec",
    "decode_json",
    "encode_json",
]

if TYPE_CHECKING:
    from athenad.queue_thread import QueueThread

DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_INTERRUPTIONS = 3


def row_as_dict(cursor: Any, row: tuple) -> dict[str, Any]:
    """A row trace: each row as a dict of column name to value."""
    return dict(zip((d[0] for d in cursor.getdescription()), row, strict=True))


def _later(seconds: float) -> str:
    return format_epoch(time.time() + seconds)


class JobQueue:
    """The SQLite job queue at ``db_path``; one instance per process and thread."""

    def __init__(
        self,
        db_path: str | Path = "athena.db",
        *,
        synchronous: str = "NORMAL",
        run_dir: str | Path | None = None,
        max_interruptions: int = DEFAULT_MAX_INTERRUPTIONS,
        fast_writes: bool = False,
        busy_timeout_ms: int = dbmod.BUSY_TIMEOUT_MS,
    ) -> None:
        self.db_path = Path(db_path)
        self.run_dir = Path(run_dir) if run_dir else self.db_path.parent / ".athena" / "run"
        self.sessions_dir = self.run_dir.parent / "sessions"
        self.max_interruptions = max_interruptions
        self.due_jobs = DueJobs()
        self.conn = open_database(
            self.db_path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
        if fast_writes:
            dbmod.tune_for_hot_writes(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self):
        return dbmod.write_transaction(self.conn)

    def named_rows(
        self, name: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a named query as dicts of column name to value."""
        cursor = self.conn.cursor()
        cursor.row_trace = row_as_dict
        return list(cursor.execute(Q[name], params or {}))

    def _one(self, name: str, params: Mapping[str, Any] | None = None) -> tuple | None:
        for row in self.conn.execute(Q[name], params or {}):
            return row
        return None

    # ---- submitting -------------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, **options: Any) -> str:
        """Submit one job and return its id. Options are :class:`JobSpec` fields."""
        return self.submit_many([{"type": type, "payload": payload, **options}])[0]

    def submit_many(self, tasks: Iterable[JobSpec | Mapping[str, Any]]) -> list[str]:
        """Submit jobs in one transaction; ``after`` may name earlier jobs of the batch by index."""
        return [outcome.id for outcome in self.enqueue(tasks)]

    def enqueue(self, tasks: Iterable[JobSpec | Mapping[str, Any]]) -> list[Submitted]:
        """Like :meth:`submit_many`, saying of each job whether it was a duplicate: a
        live job already held its unique key, and its id is returned instead."""
        specs = [spec_from(task) for task in tasks]
        prepared = [self._prepare(spec, index) for index, spec in enumerate(specs)]
        ids = [new_job_id() for _ in specs]
        clock = time.time()
        now = format_epoch(clock)
        starts = [start_time(spec, clock) for spec in specs]
        made_ready = 0
        outcomes: list[Submitted] = []
        with self._tx():
            states: dict[str, tuple[str, str | None]] = {}
            for index, (spec, row) in enumerate(zip(specs, prepared, strict=True)):
                if row["unique_key"] is not None:
                    live = self._one("live_job_with_key", {"key": row["unique_key"]})
                    if live is not None:
                        ids[index] = live[0]
                        outcomes.append(Submitted(live[0], duplicate=True))
                        continue
                parents = self._resolve_parents(spec.after, index, ids)
                unfinished = 0
                dead: tuple[str, str] | None = None
                for parent in parents:
                    status, cause = states.get(parent) or self._parent_state(parent)
                    if status in ("failed", "cancelled") and dead is None:
                        dead = (cause or parent, status)
                    elif status != "completed":
                        unfinished += 1
                starts_at = starts[index]
                row.update(
                    id=ids[index],
                    now=now,
                    run_after=now if starts_at is None else format_epoch(starts_at),
                    parent_job_id=parents[0] if parents else None,
                    pending_parents=unfinished,
                    cancelled_by=None,
                    error=None,
                    completed_at=None,
                )
                if dead is not None:
                    row.update(
                        status="cancelled",
                        cancelled_by=dead[0],
                        error=f"cancelled because ancestor {dead[0]} {dead[1]}",
                        completed_at=now,
                    )
                elif unfinished:
                    row["status"] = "blocked"
                else:
                    row["status"] = "pending" if starts_at is None else "scheduled"
                made_ready += row["status"] == "pending"
                self.conn.execute(Q["insert_job"], row)
                for parent in parents:
                    self.conn.execute(Q["insert_edge"], {"job_id": ids[index], "parent_id": parent})
                states[ids[index]] = (row["status"], row["cancelled_by"])
                outcomes.append(Submitted(ids[index]))
        if made_ready:
            wake_idle(self.run_dir, made_ready)
        return outcomes

    def _prepare(self, spec: JobSpec, index: int) -> dict[str, Any]:
        return {**checked_fields(spec, index), "session_id": self._check_session(spec.session_id)}

    def _check_session(self, session_id: Any) -> str | None:
        """A job's session must be a well-formed id of a session that exists."""
        if session_id is None:
            return None
        from athenad.storage.sessions.files import SUFFIX, check_session_id

        check_session_id(session_id)
        if not (self.sessions_dir / f"{session_id}{SUFFIX}").exists():
            raise InvalidInput(f"session {session_id!r} does not exist in {self.sessions_dir}.")
        return session_id

    @staticmethod
    def _resolve_parents(after: Sequence[str | int], index: int, ids: list[str]) -> list[str]:
        return resolve_parents(after, index, ids)

    def _parent_state(self, parent: str) -> tuple[str, str | None]:
        row = self._one("parent_state", {"id": parent})
        if row is None:
            raise UnknownParent(f"dependency {parent!r} is not an existing job.")
        return row[1], row[2]

    # ---- the worker's side ------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        key_limit: int = 1,
    ) -> ClaimedJob | None:
        """Take the next ready job for this worker, or None when none is ready.

        Paused, held and saturated queues are passed over, and so are jobs whose
        concurrency key already has ``key_limit`` running jobs.
        """
        if self._nothing_to_claim():
            return None
        with self._tx():
            claimed = self._claim(worker_id, worker_pid, lease_s, key_limit)
        return claimed[0] if claimed else None

    def claim_batch(
        self,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        limit: int,
        lease_s: float = DEFAULT_LEASE_S,
        key_limit: int = 1,
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` ready jobs in claim order, in one transaction.

        Jobs of limited queues and jobs with a concurrency key are taken one at a
        time: the batch stops before the first of them.
        """
        if self._nothing_to_claim():
            return []
        with self._tx():
            return self._claim(worker_id, worker_pid, lease_s, key_limit, limit)

    def _nothing_to_claim(self) -> bool:
        """Whether no job is ready or due, read without taking the write lock."""
        row = self._one("anything_to_claim", {"now": format_epoch(time.time())})
        return row is not None and not row[0]

    def _claim(
        self,
        worker_id: str,
        worker_pid: int | None,
        lease_s: float,
        key_limit: int = 1,
        limit: int = 1,
    ) -> list[ClaimedJob]:
        lease_started = time.monotonic()
        now = time.time()
        params = {
            "worker_id": worker_id,
            "worker_pid": worker_pid if worker_pid is not None else os.getpid(),
            "now": format_epoch(now),
            "lease_expires_at": format_epoch(now + lease_s),
            "key_limit": key_limit,
        }
        promoted = self.due_jobs.due()
        if promoted:
            self._promote_due(params)
        rows = self._take(params, limit)
        if not rows and not promoted:
            self._promote_due(params)
            rows = self._take(params, limit)
        return [claimed_job(row, lease_started) for row in rows]

    def _take(self, params: dict[str, Any], limit: int) -> list[Any]:
        """Rows of the jobs claimed now, in claim order (priority, then id)."""
        if limit > 1:
            candidates = self.conn.execute(
                Q["claim_candidates"], {"now": params["now"], "limit": limit}
            ).fetchall()
            if not candidates:
                return []
            ids = free_prefix(candidates)
            if ids:
                rows = self.conn.execute(
                    Q["claim_ids"], {**params, "ids": json.dumps(ids)}
                ).fetchall()
                return sorted(rows, key=lambda row: (-row[10], row[0]))
        row = self._one("claim_job", params)
        return [] if row is None else [row]

    def _promote_due(self, params: dict[str, Any]) -> None:
        """Scheduled jobs, waits and approvals whose time came become pending."""
        self.conn.execute(Q["promote_scheduled"], params)
        self.conn.execute(Q["expire_approvals"], params)
        self.conn.execute(Q["promote_waits"], params)
        self.due_jobs.promoted()

    def complete(self, job_id: str, fence: int, result: Any = None) -> list[str]:
        """Store the result and release dependents in one transaction; returns released ids."""
        encoded = encode_json(result, f"the result of job {job_id}")
        with self._tx():
            released = self._complete(job_id, fence, encoded)
        if released:
            wake_idle(self.run_dir, len(released))
        return released

    def complete_and_claim(
        self,
        job_id: str,
        fence: int,
        result: Any,
        worker_id: str,
        worker_pid: int | None = None,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        key_limit: int = 1,
    ) -> tuple[list[str], ClaimedJob | None]:
        """Complete a job and claim the next in the same transaction (one commit, not two)."""
        encoded = encode_json(result, f"the result of job {job_id}")
        with self._tx():
            released = self._complete(job_id, fence, encoded)
            claimed = self._claim(worker_id, worker_pid, lease_s, key_limit)
        # This worker runs one job next; any other ready job it released needs a worker
        # woken now, not at the next idle poll a second later.
        others = len(released) - (bool(claimed) and claimed[0].id in released)
        if others:
            wake_idle(self.run_dir, others)
        return released, claimed[0] if claimed else None

    def complete_batch(
        self,
        done: Sequence[Finished],
        worker_id: str,
        worker_pid: int | None = None,
        *,
        claim: int = 0,
        lease_s: float = DEFAULT_LEASE_S,
        key_limit: int = 1,
    ) -> BatchReport:
        """Complete several jobs (results already encoded) and claim up to ``claim``
        more, in one transaction. A completion whose fence no longer holds is left
        out and reported in ``stale``; the others still commit."""
        released: list[str] = []
        stale: list[str] = []
        if not done and (not claim or self._nothing_to_claim()):
            return BatchReport(released=[], claimed=[], stale=[])
        with self._tx():
            if done:
                released, stale = self._complete_all(done)
            claimed = self._claim(worker_id, worker_pid, lease_s, key_limit, claim) if claim else []
        taken = {job.id for job in claimed}
        others = sum(1 for child in released if child not in taken)
        if others:
            wake_idle(self.run_dir, others)
        return BatchReport(released=released, claimed=claimed, stale=stale)

    def hand_back(self, jobs: Sequence[tuple[str, int]]) -> int:
        """Give back jobs this worker claimed but never started, as if never claimed;
        returns how many went back to pending (a job whose cancellation was asked for
        ends cancelled instead; one held by a newer fence is left alone)."""
        returned = 0
        asked_to_cancel = []
        with self._tx():
            for job_id, fence in jobs:
                self.conn.execute(Q["hand_back"], {"id": job_id, "fence": fence})
                if self.conn.changes() == 1:
                    returned += 1
                else:
                    asked_to_cancel.append((job_id, fence))
        for job_id, fence in asked_to_cancel:
            self.rescue(
                job_id, fence, reason="cancelled before it started", count_interruption=False
            )
        if returned:
            wake_idle(self.run_dir, returned)
        return returned

    def _complete_all(self, done: Sequence[Finished]) -> tuple[list[str], list[str]]:
        """Complete the jobs whose fence still holds, with one statement for all of
        them; (dependents made ready, jobs not held with that fence)."""
        if len(done) == 1:  # one completion: the plain statements cost less
            job_id, fence, encoded = done[0]
            released = self._complete_held(job_id, fence, encoded)
            return ([], [job_id]) if released is None else (released, [])
        now = utc_now_text()
        completed = {
            row[0]
            for row in self.conn.execute(Q["complete_jobs"], {"done": json.dumps(done), "now": now})
        }
        stale = [job_id for job_id, _fence, _result in done if job_id not in completed]
        if not completed:
            return [], stale
        ids = json.dumps([job_id for job_id, _fence, _result in done if job_id in completed])
        rows = self.conn.execute(Q["release_dependents_of_all"], {"ids": ids, "now": now})
        return sorted(child for child, status in rows if status == "pending"), stale

    def _complete(self, job_id: str, fence: int, encoded: str) -> list[str]:
        released = self._complete_held(job_id, fence, encoded)
        if released is None:
            self._refuse_stale(job_id, fence)
        return released

    def _complete_held(self, job_id: str, fence: int, encoded: str) -> list[str] | None:
        """Complete the job if ``fence`` still holds it; the dependents it made ready,
        or None when it is not held with that fence."""
        now = utc_now_text()
        self.conn.execute(
            Q["complete_job"], {"id": job_id, "fence": fence, "result": encoded, "now": now}
        )
        if self.conn.changes() != 1:
            return None
        return [
            child
            for child, status in self.conn.execute(
                Q["release_dependents"], {"id": job_id, "now": now}
            )
            if status == "pending"
        ]

    def _refuse_stale(self, job_id: str, fence: int) -> NoReturn:
        row = self._one("running_job", {"id": job_id})
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        raise StaleFence(
            f"job {job_id} is {row[4]} with fence {row[3]}; this worker's fence {fence} is stale."
        )

    def fail(
        self,
        job_id: str,
        fence: int,
        error: str,
        traceback: str | None = None,
        *,
        retryable: bool = True,
    ) -> str:
        """Record a failed attempt: retry after a backoff while attempts remain, else fail.

        Returns the job's new status ('pending' for a retry, else 'failed').
        """
        with self._tx():
            row = self._one("running_job", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            attempts, max_attempts, backoff_s, current_fence, status = row[:5]
            if status != "running" or current_fence != fence:
                self._refuse_stale(job_id, fence)
            params = {
                "id": job_id,
                "fence": fence,
                "error": error,
                "traceback": traceback,
                "now": utc_now_text(),
            }
            if retryable and attempts < max_attempts and row[6] is None:
                params["run_after"] = _later(backoff_delay(attempts, backoff_s))
                self.conn.execute(Q["retry_later"], params)
                return "pending"
            self._finish(job_id, fence, "failed", error, traceback)
            return "failed"

    def finish_cancelled(
        self, job_id: str, fence: int, reason: str = "cancelled by request"
    ) -> None:
        """End a running job whose cancellation was asked for."""
        with self._tx():
            row = self._one("running_job", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            if row[4] != "running" or row[3] != fence:
                self._refuse_stale(job_id, fence)
            self._finish(job_id, fence, "cancelled", reason, None)

    def _finish(
        self,
        job_id: str,
        fence: int,
        status: str,
        error: str,
        traceback: str | None,
        ran_until: str | None = None,
    ) -> None:
        now = utc_now_text()
        self.conn.execute(
            Q["finish_job"],
            {
                "id": job_id,
                "fence": fence,
                "status": status,
                "error": error,
                "traceback": traceback,
                "now": now,
                "ran_until": ran_until,
            },
        )
        self._cancel_descendants(
            job_id, job_id, "failed" if status == "failed" else "was cancelled", now
        )

    def _cancel_descendants(self, job_id: str, root: str, verb: str, now: str) -> list[str]:
        params = {
            "id": job_id,
            "root": root,
            "error": f"cancelled because ancestor {root} {verb}",
            "now": now,
        }
        return [row[0] for row in self.conn.execute(Q["cancel_descendants"], params)]

    def renew_lease(
        self,
        job_id: str,
        fence: int,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        timeout_s: float = 30.0,
    ) -> bool:
        """Extend the lease; returns whether cancellation was asked for.

        Raises StaleFence when another worker holds the job now, and DatabaseBusy when
        the write lock could not be had within ``timeout_s``.
        """
        with dbmod.write_transaction(self.conn, timeout_s=timeout_s):
            row = self._one(
                "renew_lease",
                {"id": job_id, "fence": fence, "lease_expires_at": _later(lease_s)},
            )
            if row is None:
                self._refuse_stale(job_id, fence)
        return row[0] is not None

    def job_control(self, job_id: str) -> tuple[int, str, bool] | None:
        """(fence, status, cancel asked) of a job, read without a write lock."""
        row = self._one("job_control", {"id": job_id})
        return None if row is None else (row[0], row[1], row[2] is not None)

    def record_checkpoint(self, job_id: str, fence: int, iteration: int) -> None:
        """Note the job's latest checkpoint; only the worker holding the job may."""
        with self._tx():
            self.conn.execute(
                Q["record_checkpoint"], {"id": job_id, "fence": fence, "iteration": iteration}
            )
            if self.conn.changes() != 1:
                self._refuse_stale(job_id, fence)

    def record_checkpoint_unheld(self, job_id: str, iteration: int) -> bool:
        """Note a checkpoint of a job that no worker holds; False if one claimed it meanwhile."""
        with self._tx():
            self.conn.execute(Q["record_checkpoint_unheld"], {"id": job_id, "iteration": iteration})
            return self.conn.changes() == 1

    def record_resume(self, job_id: str, fence: int, resumed_from: int, note: str | None) -> None:
        """Note where this run started (0 = from scratch) and why, on the job's row."""
        with self._tx():
            self.conn.execute(
                Q["record_resume"],
                {"id": job_id, "fence": fence, "resumed_from": resumed_from, "note": note},
            )

    # ---- flow control -----------------------------------------------------------------

    def rate_limited(self, job_id: str, fence: int, retry_after_s: float, reason: str) -> str:
        """The provider refused for now: the job waits ``retry_after_s`` without spending
        an attempt, and its queue takes no job before then. Returns the queue's name."""
        clock = time.time()
        now, until = format_epoch(clock), format_epoch(clock + max(0.0, retry_after_s))
        with self._tx():
            row = self._one(
                "rate_limited",
                {"id": job_id, "fence": fence, "now": now, "run_after": until, "reason": reason},
            )
            if row is None:
                self._refuse_stale(job_id, fence)
            queue = str(row[0])
            self.conn.execute(
                Q["hold_queue"], {"queue": queue, "until": until, "reason": reason, "now": now}
            )
        return queue

    def next_start(self) -> float | None:
        """Unix time of the earliest scheduled start or approval deadline, if any (idle
        workers wake for it)."""
        times = [
            parse_ts(row[0]).timestamp()
            for name in ("next_scheduled", "next_approval_deadline", "next_wait_deadline")
            if (row := self._one(name)) is not None and row[0] is not None
        ]
        return min(times, default=None)

    def park_for_approval(
        self,
        job_id: str,
        fence: int,
        question: str,
        data: Any = None,
        timeout_s: float | None = None,
    ) -> None:
        """The job waits as 'awaiting_approval' for a person, holding no worker and
        spending no attempt; ``timeout_s`` (else the job's approval timeout) bounds it."""
        params = {
            "id": job_id,
            "fence": fence,
            "question": question,
            "data": encode_json(data, f"the approval data of job {job_id}"),
            "timeout_s": check_seconds("approval timeout", timeout_s, allow_none=True),
            "now": utc_now_text(),
        }
        with self._tx():
            self.conn.execute(Q["park_for_approval"], params)
            if self.conn.changes() != 1:
                self._refuse_stale(job_id, fence)

    def decide_approval(self, job_id: str, approved: bool, note: str | None = None) -> str:
        """A person's answer: the job goes back to a worker, where its agent gets it.
        Returns the decision ('approved' or 'rejected')."""
        decision = "approved" if approved else "rejected"
        with self._tx():
            params = {"id": job_id, "decision": decision, "note": note, "now": utc_now_text()}
            self.conn.execute(Q["decide_approval"], params)
            if self.conn.changes() != 1:
                row = self._one("job_status", {"id": job_id})
                if row is None:
                    raise JobNotFound(f"job {job_id!r} does not exist.")
                raise InvalidTransition(
                    f"job {job_id} is {row[0]}; only a job awaiting approval can be {decision}."
                )
        wake_idle(self.run_dir)
        return decision

    def pause_queue(self, queue: str, paused: bool = True) -> None:
        """Stop (or restart) claims from ``queue``; running jobs finish. Survives restarts."""
        check_queue_name(queue)
        with self._tx():
            self.conn.execute(
                Q["pause_queue"], {"queue": queue, "paused": int(paused), "now": utc_now_text()}
            )
        if not paused:
            wake_idle(self.run_dir)

    def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Change a queue's concurrency, rate or default priority (fields left UNSET stay)."""
        check_queue_name(queue)
        with self._tx():
            self.conn.execute(
                Q["set_queue_limits"], {**limits.params(queue), "now": utc_now_text()}
            )

    def queues(self) -> list[dict[str, Any]]:
        """Every queue that has settings or unfinished jobs: state, limits and counts."""
        settings = list(self.conn.execute(Q["queue_settings"]))
        counts = list(self.conn.execute(Q["queue_status_counts"]))
        now = time.time()

        def recent_starts(queue: str, period_s: float) -> int:
            since = format_epoch(now - period_s)
            row = self._one("queue_recent_starts", {"queue": queue, "since": since})
            return 0 if row is None else int(row[0])

        rows = queue_rows(settings, counts, now, recent_starts)
        for row in rows:
            row["paused"] = bool(row["paused"])
        return rows

    # ---- the user's side --------------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """Cancel a job: waiting jobs end now with their descendants; running ones are asked.

        Returns 'cancelled', or 'cancelling' for a running job whose worker was asked.
        """
        now = utc_now_text()
        with self._tx():
            row = self._one("job_status", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            status = row[0]
            if status in ("blocked", "pending", "scheduled", "awaiting_approval", "waiting"):
                self.conn.execute(
                    Q["cancel_waiting_job"],
                    {"id": job_id, "error": "cancelled by request", "now": now},
                )
                self._cancel_descendants(job_id, job_id, "was cancelled", now)
                return "cancelled"
            if status == "running":
                self.conn.execute(Q["request_cancel"], {"id": job_id, "now": now})
                return "cancelling"
            if status == "cancelled":
                return "cancelled"
            raise InvalidTransition(
                f"job {job_id} is already {status}; there is nothing to cancel."
            )

    def retry(self, job_id: str) -> str:
        """Make a failed or cancelled job run again; descendants it cancelled wait again.

        Returns the job's new status ('pending', or 'blocked' while parents are unfinished).
        """
        now = utc_now_text()
        with self._tx():
            row = self._one("job_status", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            if row[0] not in ("failed", "cancelled"):
                raise InvalidTransition(
                    f"job {job_id} is {row[0]}; only failed or cancelled jobs can be retried."
                )
            dead = self._one("dead_parent", {"id": job_id})
            if dead is not None:
                raise InvalidTransition(
                    f"job {job_id} depends on job {dead[0]}, which is {dead[1]}; "
                    "retry that one first."
                )
            status = self._requeue(job_id, now)
            for child, _depth in list(
                self.conn.execute(Q["cancelled_descendants_of"], {"id": job_id})
            ):
                dead = self._one("dead_parent", {"id": child})
                if dead is None:
                    self._requeue(child, now)
                else:
                    # Another parent failed too: it stays cancelled, now because of that one.
                    self.conn.execute(Q["set_cancel_cause"], {"id": child, "cause": dead[0]})
        if status == "pending":
            wake_idle(self.run_dir)
        return status

    def _requeue(self, job_id: str, now: str) -> str:
        (unfinished,) = self.conn.execute(Q["unfinished_parent_count"], {"id": job_id}).fetchall()[
            0
        ]
        status = "blocked" if unfinished else "pending"
        holder = self._one("unique_key_holder", {"id": job_id})
        if holder is not None:
            raise InvalidTransition(unique_key_taken(job_id, holder[1], holder[0]))
        self.conn.execute(Q["keep_finished_outcome"], {"id": job_id})
        self.conn.execute(Q["forget_failed_steps"], {"id": job_id})
        self.conn.execute(
            Q["requeue_job"],
            {"id": job_id, "status": status, "pending_parents": unfinished, "now": now},
        )
        return status

    # ---- the supervisor's side --------------------------------------------------------

    def running_jobs(self) -> list[dict[str, Any]]:
        """Every running job with its owner and timing, for the supervisor's sweep."""
        return self.named_rows("running_jobs")

    def rescue(
        self,
        job_id: str,
        fence: int,
        *,
        reason: str,
        count_interruption: bool = True,
        ran_until: str | None = None,
    ) -> str:
        """Put a running job whose worker is gone back to pending.

        The attempt is not counted against ``max_attempts``. A job interrupted more
        than ``max_interruptions`` times ends failed (it keeps killing its workers);
        a job whose cancellation was asked for ends cancelled. Returns the new status,
        or '' when the job was no longer held with that fence. ``ran_until`` is the
        worker's last sign of life when its death is noticed late (a new daemon finding
        an old one's jobs): the time after it does not count as running time.
        """
        now = utc_now_text()
        with self._tx():
            row = self._one("running_job", {"id": job_id})
            if row is None or row[4] != "running" or row[3] != fence:
                return ""
            interruptions, cancel_requested = row[5], row[6]
            if cancel_requested is not None:
                self._finish(
                    job_id, fence, "cancelled", f"cancelled by request ({reason})", None, ran_until
                )
                return "cancelled"
            if count_interruption and interruptions + 1 > self.max_interruptions:
                error = (
                    f"{reason}; interrupted {interruptions + 1} times, more than the limit of "
                    f"{self.max_interruptions}, so it is failed as a poison pill"
                )
                self._finish(job_id, fence, "failed", error, None, ran_until)
                self.conn.execute(Q["count_interruption"], {"id": job_id})
                return "failed"
            self.conn.execute(
                Q["rescue_job"],
                {
                    "id": job_id,
                    "fence": fence,
                    "counted": 1 if count_interruption else 0,
                    "error": f"interrupted: {reason}",
                    "now": now,
                    "ran_until": ran_until,
                },
            )
        wake_idle(self.run_dir)
        return "pending"

    def expire_timed_out(self, job_id: str, fence: int, timeout_s: float) -> str:
        """Fail (or retry) a job whose worker overran its timeout and was stopped."""
        try:
            return self.fail(job_id, fence, timed_out_message(timeout_s))
        except StaleFence:
            return ""

    # ---- daemons ----------------------------------------------------------------------

    def record_daemon(self, host: str, pid: int, workers: int) -> None:
        """A daemon's heartbeat; records unseen for FORGET_DAEMONS_AFTER_S are dropped."""
        now = time.time()
        params = {"host": host, "pid": pid, "workers": workers, "now": format_epoch(now)}
        with self._tx():
            self.conn.execute(Q["record_daemon"], params)
            before = format_epoch(now - FORGET_DAEMONS_AFTER_S)
            self.conn.execute(Q["forget_stale_daemons"], {"before": before})

    def forget_daemon(self, host: str, pid: int) -> None:
        """Drop a daemon's record: it stopped cleanly."""
        with self._tx():
            self.conn.execute(Q["forget_daemon"], {"host": host, "pid": pid})

    def daemons(self, seen_within_s: float) -> list[dict[str, Any]]:
        """Daemons seen in the last ``seen_within_s`` seconds, by host and pid."""
        return self.named_rows("daemons", {"since": _later(-seen_within_s)})

    # ---- reading ----------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any]:
        """Every column of one job, with payload and result decoded and its parents listed."""
        rows = self.named_rows("get_job", {"id": job_id})
        if not rows:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        job = rows[0]
        job["payload"] = decode_json(job["payload"])
        job["result"] = decode_json(job["result"])
        job["parents"] = [r[0] for r in self.conn.execute(Q["job_parents"], {"id": job_id})]
        return job

    def list_jobs(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first, optionally one status and/or one type."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}.")
        check_int("limit", limit, 1)
        name = "list_jobs_by_status" if status else "list_jobs"
        jobs = self.named_rows(name, {"status": status, "type": type, "limit": limit})
        parents: dict[str, list[str]] = {job["id"]: [] for job in jobs}
        ids = json.dumps(list(parents))
        for child, parent in self.conn.execute(Q["parents_of_jobs"], {"ids": ids}):
            parents[child].append(parent)
        for job in jobs:
            job["payload"] = decode_json(job["payload"])
            job["result"] = decode_json(job["result"])
            job["parents"] = parents[job["id"]]
        return jobs

    def counts(self) -> dict[str, int]:
        """How many jobs are in each unfinished status."""
        counts = dict.fromkeys(UNFINISHED, 0)
        counts.update({status: n for status, n in self.conn.execute(Q["queue_counts"])})
        return counts

    def states(self, job_ids: Sequence[str]) -> dict[str, tuple[str, Any, str | None, str | None]]:
        """{id: (status, result, error, cancelled_by)} for the given ids that exist."""
        rows = self.conn.execute(Q["jobs_states"], {"ids": json.dumps(list(job_ids))})
        return {r[0]: (r[1], decode_json(r[2]), r[3], r[4]) for r in rows}

    # ---- waiting ----------------------------------------------------------------------

    async def run_parallel_tasks(
        self, tasks: Sequence[Mapping[str, Any]], then: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Submit tasks to run in parallel; ``then`` runs after all of them (its id is last)."""
        thread = self._thread_for_one_call()
        try:
            return await waiting.run_parallel_tasks(thread, tasks, then)
        finally:
            thread.close(wait=False)

    async def wait_for_jobs(
        self, job_ids: Sequence[str], timeout: float | None = None
    ) -> list[Any]:
        """Wait until every job finished; their results in order (see :func:`wait_for_jobs`)."""
        thread = self._thread_for_one_call()
        try:
            return await waiting.wait_for_jobs(thread, job_ids, timeout)
        finally:
            thread.close(wait=False)

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[Any]:
        """The blocking twin of :meth:`wait_for_jobs`."""
        return waiting.wait(self, job_ids, timeout)

    def wait_steps(self, job_ids: Sequence[str], timeout: float | None = None) -> waiting.WaitSteps:
        """See :func:`wait_steps`."""
        return waiting.wait_steps(self, job_ids, timeout)

    def poll_finished(self, job_ids: Sequence[str]) -> tuple[bool, States]:
        """(all finished?, states); unknown ids raise JobNotFound."""
        return waiting.poll_finished(self, job_ids)

    def _thread_for_one_call(self) -> QueueThread:
        from athenad.queue_thread import QueueThread  # only async callers need it

        # The same durability as this queue's own connection (PRAGMA synchronous: 0..3).
        synchronous = dbmod.SYNCHRONOUS_MODES[self.conn.pragma("synchronous")]
        return QueueThread(
            lambda: JobQueue(self.db_path, synchronous=synchronous, run_dir=self.run_dir)
        )
