"""The PostgreSQL job queue: the same operations and results as the SQLite JobQueue.

Every state change is one transaction on a connection borrowed from a small pool. A
claim is one statement (``FOR UPDATE SKIP LOCKED``), so workers on many hosts never
wait on each other for the next job. Rows a report is checked against are locked
(``FOR UPDATE``) where SQLite's ``BEGIN IMMEDIATE`` would have serialised the writers.
Times come from the database's clock, so hosts agree on leases and backoffs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import psycopg
from psycopg.rows import dict_row

from athenad.config import check_queue_name
from athenad.errors import (
    DatabaseBusy,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    StaleFence,
    UnknownParent,
)
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
    resolve_parents,
    spec_from,
    start_time,
    timed_out_message,
    unique_key_taken,
)
from athenad.store.postgres.connection import DEFAULT_SCHEMA, check_schema, open_pool
from athenad.store.postgres.migrations import migrate
from athenad.store.postgres.queries import QUERIES as Q
from athenad.store.postgres.rows import as_text_times, job_dict
from athenad.store.queues import QueueLimits, queue_rows
from athenad.store.timers import DueJobs
from athenad.util.ids import new_job_id
from athenad.util.timefmt import format_ts

DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_INTERRUPTIONS = 3
# The channel idle workers listen on; the payload is the schema (the queue).
NOTIFY_CHANNEL = "athena_jobs"


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def as_text_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row's timestamps as SQLite's text."""
    return tuple(format_ts(value) if isinstance(value, dt.datetime) else value for value in row)


class PostgresJobQueue:
    """The job queue in ``schema`` of the database at ``url``; one per process and thread.

    ``session_exists`` tells whether a session id names a stored session; without it
    only the id's form is checked.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        max_interruptions: int = DEFAULT_MAX_INTERRUPTIONS,
        session_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.max_interruptions = max_interruptions
        self.session_exists = session_exists
        self.due_jobs = DueJobs()
        self.pool = open_pool(url, schema)
        try:
            with self.pool.connection() as conn:
                migrate(conn, schema)
        except BaseException:
            self.pool.close()
            raise

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> PostgresJobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed when the body returns, rolled back when it raises."""
        with self.pool.connection() as conn:
            yield conn

    @staticmethod
    def _one(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any]) -> Any:
        return conn.execute(Q[name], params).fetchone()

    def _notify(self, conn: psycopg.Connection[Any]) -> None:
        # pg_notify in the transaction: delivered at commit, and only if it commits.
        conn.execute(Q["notify_ready"], {"schema": self.schema})

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
        starts = [start_time(spec, clock) for spec in specs]
        outcomes: list[Submitted] = []
        with self._tx() as conn:
            states: dict[str, tuple[str, str | None]] = {}
            made_ready = False
            for index, (spec, row) in enumerate(zip(specs, prepared, strict=True)):
                parents = resolve_parents(spec.after, index, ids)
                unfinished = 0
                dead: tuple[str, str] | None = None
                for parent in parents:
                    status, cause = states.get(parent) or self._parent_state(conn, parent)
                    if status in ("failed", "cancelled") and dead is None:
                        dead = (cause or parent, status)
                    elif status != "completed":
                        unfinished += 1
                starts_at = starts[index]
                row.update(
                    id=ids[index],
                    run_at=None if starts_at is None else _utc(starts_at),
                    parent_job_id=parents[0] if parents else None,
                    pending_parents=unfinished,
                    status="blocked"
                    if unfinished
                    else "pending"
                    if starts_at is None
                    else "scheduled",
                    cancelled_by=None,
                    error=None,
                )
                if dead is not None:
                    row.update(
                        status="cancelled",
                        cancelled_by=dead[0],
                        error=f"cancelled because ancestor {dead[0]} {dead[1]}",
                    )
                if conn.execute(Q["insert_job"], row).fetchone() is None:
                    # A live job holds the unique key (committed, or just now by a racer).
                    live = conn.execute(
                        Q["live_job_with_key"], {"key": row["unique_key"]}
                    ).fetchone()
                    if live is None:
                        raise InvalidTransition(
                            f"unique key {row['unique_key']!r} was taken and released while "
                            "this job was being submitted; submit it again."
                        )
                    ids[index] = live[0]
                    outcomes.append(Submitted(live[0], duplicate=True))
                    continue
                made_ready = made_ready or row["status"] == "pending"
                for parent in parents:
                    conn.execute(Q["insert_edge"], {"job_id": ids[index], "parent_id": parent})
                states[ids[index]] = (row["status"], row["cancelled_by"])
                outcomes.append(Submitted(ids[index]))
            if made_ready:
                self._notify(conn)
        return outcomes

    def _prepare(self, spec: JobSpec, index: int) -> dict[str, Any]:
        return {**checked_fields(spec, index), "session_id": self._check_session(spec.session_id)}

    def _check_session(self, session_id: Any) -> str | None:
        """A job's session must be a well-formed id (and exist, when we can tell)."""
        if session_id is None:
            return None
        from athenad.storage.sessions.files import check_session_id

        check_session_id(session_id)
        if self.session_exists is not None and not self.session_exists(session_id):
            raise InvalidInput(f"session {session_id!r} does not exist.")
        return str(session_id)

    @staticmethod
    def _parent_state(conn: psycopg.Connection[Any], parent: str) -> tuple[str, str | None]:
        row = conn.execute(Q["parent_state"], {"id": parent}).fetchone()
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
        with self._tx() as conn:
            claimed = self._claim(conn, worker_id, worker_pid, lease_s, key_limit)
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
        with self._tx() as conn:
            return self._claim(conn, worker_id, worker_pid, lease_s, key_limit, limit)

    def _claim(
        self,
        conn: psycopg.Connection[Any],
        worker_id: str,
        worker_pid: int | None,
        lease_s: float,
        key_limit: int = 1,
        limit: int = 1,
    ) -> list[ClaimedJob]:
        lease_started = time.monotonic()
        params = self._claim_params(worker_id, worker_pid, lease_s, key_limit)
        promoted = self.due_jobs.due()
        if promoted:
            self._promote_due(conn)
        claimed = self._take(conn, params, lease_started, limit)
        if not claimed and not promoted:
            self._promote_due(conn)
            claimed = self._take(conn, params, lease_started, limit)
        return claimed

    def _take(
        self,
        conn: psycopg.Connection[Any],
        params: dict[str, Any],
        lease_started: float,
        limit: int,
    ) -> list[ClaimedJob]:
        """The jobs claimed now, in claim order (priority, then id)."""
        if limit > 1:
            rows = conn.execute(Q["claim_batch"], {**params, "limit": limit}).fetchall()
            if rows:
                jobs = [claimed_job(row, lease_started) for row in rows]
                return sorted(jobs, key=lambda job: (-job.priority, job.id))
        row = conn.execute(Q["claim_job"], params).fetchone()
        job = self._confirmed(conn, row, lease_started, params["key_limit"])
        return [] if job is None else [job]

    def _promote_due(self, conn: psycopg.Connection[Any]) -> None:
        """Scheduled jobs, waits and approvals whose time came become pending."""
        conn.execute(Q["promote_scheduled"])
        conn.execute(Q["expire_approvals"])
        conn.execute(Q["promote_waits"])
        self.due_jobs.promoted()

    @staticmethod
    def _confirmed(
        conn: psycopg.Connection[Any], row: Any, lease_started: float, key_limit: int
    ) -> ClaimedJob | None:
        """The claimed job, once its queue's and key's limits are checked under a lock.

        Two transactions may each have seen room for one more job; the second to take
        the lock sees the first's claim and hands its own back.
        """
        if row is None:
            return None
        job = claimed_job(row, lease_started)
        limited = bool(row[17])
        if limited:
            conn.execute(Q["lock_limit"], {"name": f"athena:queue:{job.queue}"})
            found = conn.execute(Q["confirm_queue_claim"], {"queue": job.queue}).fetchone()
            within, rated = found if found is not None else (True, False)
            if not within:
                conn.execute(Q["unclaim"], {"id": job.id, "fence": job.fence})
                return None
            if rated:
                conn.execute(Q["record_start"], {"queue": job.queue})
                conn.execute(Q["forget_old_starts"], {"queue": job.queue})
        if job.concurrency_key is not None:
            conn.execute(Q["lock_limit"], {"name": f"athena:key:{job.concurrency_key}"})
            counted = conn.execute(
                Q["confirm_key_claim"], {"key": job.concurrency_key, "key_limit": key_limit}
            ).fetchone()
            if counted is not None and not counted[0]:
                conn.execute(Q["unclaim"], {"id": job.id, "fence": job.fence})
                return None
        return job

    @staticmethod
    def _claim_params(
        worker_id: str, worker_pid: int | None, lease_s: float, key_limit: int = 1
    ) -> dict[str, Any]:
        return {
            "worker_id": worker_id,
            "worker_pid": worker_pid if worker_pid is not None else os.getpid(),
            "lease_s": float(lease_s),
            "key_limit": key_limit,
        }

    def complete(self, job_id: str, fence: int, result: Any = None) -> list[str]:
        """Store the result and release dependents in one transaction; returns released ids."""
        encoded = encode_json(result, f"the result of job {job_id}")
        with self._tx() as conn:
            released = self._complete(conn, job_id, fence, encoded)
            if released:
                self._notify(conn)
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
        lease_started = time.monotonic()
        params = self._claim_params(worker_id, worker_pid, lease_s, key_limit)
        with self._tx() as conn:
            # The statements go to the server together (one round trip, not several);
            # a stale fence is seen after them and rolls them all back.
            promoted = self.due_jobs.due()
            with conn.pipeline():
                completed = conn.execute(
                    Q["complete_job"], {"id": job_id, "fence": fence, "result": encoded}
                )
                releasing = conn.execute(Q["release_dependents"], {"id": job_id})
                if promoted:
                    self._promote_due(conn)
                claiming = conn.execute(Q["claim_job"], params)
            if completed.rowcount != 1:
                self._refuse_stale(conn, job_id, fence)
            released = sorted(child for child, status in releasing if status == "pending")
            row = claiming.fetchone()
            if row is None and not promoted:
                self._promote_due(conn)
                row = conn.execute(Q["claim_job"], params).fetchone()
            claimed = self._confirmed(conn, row, lease_started, key_limit)
            # This worker runs one job next; any other ready job needs another worker.
            if any(claimed is None or child != claimed.id for child in released):
                self._notify(conn)
        return released, claimed

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
        with self._tx() as conn:
            # The completions go to the server together (one round trip, not several).
            with conn.pipeline():
                sent = [
                    (
                        job_id,
                        conn.execute(
                            Q["complete_job"], {"id": job_id, "fence": fence, "result": result}
                        ),
                        conn.execute(Q["release_dependents"], {"id": job_id}),
                    )
                    for job_id, fence, result in done
                ]
            for job_id, completed, releasing in sent:
                if completed.rowcount != 1:
                    stale.append(job_id)
                else:
                    released.extend(sorted(c for c, status in releasing if status == "pending"))
            claimed = (
                self._claim(conn, worker_id, worker_pid, lease_s, key_limit, claim) if claim else []
            )
            taken = {job.id for job in claimed}
            if any(child not in taken for child in released):
                self._notify(conn)
        return BatchReport(released=released, claimed=claimed, stale=stale)

    def hand_back(self, jobs: Sequence[tuple[str, int]]) -> int:
        """Give back jobs this worker claimed but never started, as if never claimed;
        returns how many went back to pending (a job whose cancellation was asked for
        ends cancelled instead; one held by a newer fence is left alone)."""
        asked_to_cancel = []
        with self._tx() as conn:
            for job_id, fence in jobs:
                cursor = conn.execute(Q["hand_back"], {"id": job_id, "fence": fence})
                if cursor.rowcount != 1:
                    asked_to_cancel.append((job_id, fence))
            returned = len(jobs) - len(asked_to_cancel)
            if returned:
                self._notify(conn)
        for job_id, fence in asked_to_cancel:
            self.rescue(
                job_id, fence, reason="cancelled before it started", count_interruption=False
            )
        return returned

    def _complete(
        self, conn: psycopg.Connection[Any], job_id: str, fence: int, encoded: str
    ) -> list[str]:
        cursor = conn.execute(Q["complete_job"], {"id": job_id, "fence": fence, "result": encoded})
        if cursor.rowcount != 1:
            self._refuse_stale(conn, job_id, fence)
        rows = conn.execute(Q["release_dependents"], {"id": job_id}).fetchall()
        # RETURNING comes in no particular order; SQLite's follows the ids.
        return sorted(child for child, status in rows if status == "pending")

    def _refuse_stale(self, conn: psycopg.Connection[Any], job_id: str, fence: int) -> NoReturn:
        row = self._one(conn, "running_job", {"id": job_id})
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        raise StaleFence(
            f"job {job_id} is {row[4]} with fence {row[3]}; this worker's fence {fence} is stale."
        )

    def _held_row(self, conn: psycopg.Connection[Any], job_id: str, fence: int) -> Any:
        """The running job's row, locked; StaleFence when this fence no longer holds it."""
        row = self._one(conn, "running_job", {"id": job_id})
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        if row[4] != "running" or row[3] != fence:
            self._refuse_stale(conn, job_id, fence)
        return row

    def fail(
        self,
        job_id: str,
        fence: int,
        error: str,
        traceback: str | None = None,
        *,
        retryable: bool = True,
    ) -> str:
        """Record a failed attempt: retry after a backoff while attempts remain, else fail."""
        with self._tx() as conn:
            attempts, max_attempts, backoff_s, *_rest, cancel_asked = self._held_row(
                conn, job_id, fence
            )
            params = {"id": job_id, "fence": fence, "error": error, "traceback": traceback}
            if retryable and attempts < max_attempts and cancel_asked is None:
                params["backoff_s"] = backoff_delay(attempts, backoff_s)
                conn.execute(Q["retry_later"], params)
                return "pending"
            self._finish(conn, job_id, fence, "failed", error, traceback)
            return "failed"

    def finish_cancelled(
        self, job_id: str, fence: int, reason: str = "cancelled by request"
    ) -> None:
        """End a running job whose cancellation was asked for."""
        with self._tx() as conn:
            self._held_row(conn, job_id, fence)
            self._finish(conn, job_id, fence, "cancelled", reason, None)

    def _finish(
        self,
        conn: psycopg.Connection[Any],
        job_id: str,
        fence: int,
        status: str,
        error: str,
        traceback: str | None,
        ran_until: str | None = None,
    ) -> None:
        conn.execute(
            Q["finish_job"],
            {
                "id": job_id,
                "fence": fence,
                "status": status,
                "error": error,
                "traceback": traceback,
                "ran_until": ran_until,
            },
        )
        verb = "failed" if status == "failed" else "was cancelled"
        self._cancel_descendants(conn, job_id, verb)

    @staticmethod
    def _cancel_descendants(conn: psycopg.Connection[Any], job_id: str, verb: str) -> None:
        error = f"cancelled because ancestor {job_id} {verb}"
        conn.execute(Q["cancel_descendants"], {"id": job_id, "root": job_id, "error": error})

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
        the row stayed locked for ``timeout_s``.
        """
        try:
            with self._tx() as conn:
                conn.execute(Q["lock_timeout"], {"timeout": f"{int(timeout_s * 1000)}ms"})
                row = self._one(
                    conn, "renew_lease", {"id": job_id, "fence": fence, "lease_s": float(lease_s)}
                )
                if row is None:
                    self._refuse_stale(conn, job_id, fence)
        except psycopg.errors.LockNotAvailable:
            raise DatabaseBusy(
                f"job {job_id} stayed locked for {timeout_s:g} s; its lease was not renewed."
            ) from None
        return row[0] is not None

    def job_control(self, job_id: str) -> tuple[int, str, bool] | None:
        """(fence, status, cancel asked) of a job, read without a write lock."""
        with self._tx() as conn:
            row = self._one(conn, "job_control", {"id": job_id})
        return None if row is None else (row[0], row[1], bool(row[2]))

    def record_checkpoint(self, job_id: str, fence: int, iteration: int) -> None:
        """Note the job's latest checkpoint; only the worker holding the job may."""
        with self._tx() as conn:
            params = {"id": job_id, "fence": fence, "iteration": iteration}
            if conn.execute(Q["record_checkpoint"], params).rowcount != 1:
                self._refuse_stale(conn, job_id, fence)

    def record_checkpoint_unheld(self, job_id: str, iteration: int) -> bool:
        """Note a checkpoint of a job that no worker holds; False if one claimed it meanwhile."""
        with self._tx() as conn:
            params = {"id": job_id, "iteration": iteration}
            return conn.execute(Q["record_checkpoint_unheld"], params).rowcount == 1

    def record_resume(self, job_id: str, fence: int, resumed_from: int, note: str | None) -> None:
        """Note where this run started (0 = from scratch) and why, on the job's row."""
        with self._tx() as conn:
            conn.execute(
                Q["record_resume"],
                {"id": job_id, "fence": fence, "resumed_from": resumed_from, "note": note},
            )

    # ---- flow control -----------------------------------------------------------------

    def rate_limited(self, job_id: str, fence: int, retry_after_s: float, reason: str) -> str:
        """The provider refused for now: the job waits ``retry_after_s`` without spending
        an attempt, and its queue takes no job before then. Returns the queue's name."""
        with self._tx() as conn:
            params = {
                "id": job_id,
                "fence": fence,
                "retry_after_s": max(0.0, float(retry_after_s)),
                "reason": reason,
            }
            row = conn.execute(Q["rate_limited"], params).fetchone()
            if row is None:
                self._refuse_stale(conn, job_id, fence)
            queue, until = row
            conn.execute(Q["hold_queue"], {"queue": queue, "until": until, "reason": reason})
        return str(queue)

    def next_start(self) -> float | None:
        """Unix time of the earliest scheduled start or approval deadline, if any (idle
        workers wake for it)."""
        with self._tx() as conn:
            rows = [
                conn.execute(Q[name]).fetchone()
                for name in ("next_scheduled", "next_approval_deadline", "next_wait_deadline")
            ]
        return min((row[0].timestamp() for row in rows if row and row[0]), default=None)

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
        }
        with self._tx() as conn:
            if conn.execute(Q["park_for_approval"], params).rowcount != 1:
                self._refuse_stale(conn, job_id, fence)

    def decide_approval(self, job_id: str, approved: bool, note: str | None = None) -> str:
        """A person's answer: the job goes back to a worker, where its agent gets it.
        Returns the decision ('approved' or 'rejected')."""
        decision = "approved" if approved else "rejected"
        with self._tx() as conn:
            params = {"id": job_id, "decision": decision, "note": note}
            if conn.execute(Q["decide_approval"], params).rowcount != 1:
                row = self._one(conn, "job_status", {"id": job_id})
                if row is None:
                    raise JobNotFound(f"job {job_id!r} does not exist.")
                raise InvalidTransition(
                    f"job {job_id} is {row[0]}; only a job awaiting approval can be {decision}."
                )
            self._notify(conn)
        return decision

    def pause_queue(self, queue: str, paused: bool = True) -> None:
        """Stop (or restart) claims from ``queue``; running jobs finish. Survives restarts."""
        check_queue_name(queue)
        with self._tx() as conn:
            conn.execute(Q["pause_queue"], {"queue": queue, "paused": paused})
            if not paused:
                self._notify(conn)

    def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Change a queue's concurrency, rate or default priority (fields left UNSET stay)."""
        check_queue_name(queue)
        with self._tx() as conn:
            conn.execute(Q["set_queue_limits"], limits.params(queue))
            self._notify(conn)

    def queues(self) -> list[dict[str, Any]]:
        """Every queue that has settings or unfinished jobs: state, limits and counts."""
        with self._tx() as conn:
            settings = [as_text_row(row) for row in conn.execute(Q["queue_settings"])]
            counts = conn.execute(Q["queue_status_counts"]).fetchall()

            def recent_starts(queue: str, period_s: float) -> int:
                params = {"queue": queue, "period_s": period_s}
                row = conn.execute(Q["queue_recent_starts"], params).fetchone()
                return 0 if row is None else int(row[0])

            return queue_rows(settings, counts, time.time(), recent_starts)

    # ---- the user's side --------------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """Cancel a job: waiting jobs end now with their descendants; running ones are asked."""
        with self._tx() as conn:
            row = self._one(conn, "job_status", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            status = row[0]
            if status in ("blocked", "pending", "scheduled", "awaiting_approval", "waiting"):
                conn.execute(
                    Q["cancel_waiting_job"], {"id": job_id, "error": "cancelled by request"}
                )
                self._cancel_descendants(conn, job_id, "was cancelled")
                return "cancelled"
            if status == "running":
                conn.execute(Q["request_cancel"], {"id": job_id})
                return "cancelling"
            if status == "cancelled":
                return "cancelled"
            raise InvalidTransition(
                f"job {job_id} is already {status}; there is nothing to cancel."
            )

    def retry(self, job_id: str) -> str:
        """Make a failed or cancelled job run again; descendants it cancelled wait again."""
        with self._tx() as conn:
            row = self._one(conn, "job_status", {"id": job_id})
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            if row[0] not in ("failed", "cancelled"):
                raise InvalidTransition(
                    f"job {job_id} is {row[0]}; only failed or cancelled jobs can be retried."
                )
            dead = self._one(conn, "dead_parent", {"id": job_id})
            if dead is not None:
                raise InvalidTransition(
                    f"job {job_id} depends on job {dead[0]}, which is {dead[1]}; "
                    "retry that one first."
                )
            status = self._requeue(conn, job_id)
            descendants = conn.execute(Q["cancelled_descendants_of"], {"id": job_id}).fetchall()
            for child, _depth in descendants:
                dead = self._one(conn, "dead_parent", {"id": child})
                if dead is None:
                    self._requeue(conn, child)
                else:
                    # Another parent failed too: it stays cancelled, now because of that one.
                    conn.execute(Q["set_cancel_cause"], {"id": child, "cause": dead[0]})
            if status == "pending":
                self._notify(conn)
        return status

    def _requeue(self, conn: psycopg.Connection[Any], job_id: str) -> str:
        (unfinished,) = self._one(conn, "unfinished_parent_count", {"id": job_id})
        status = "blocked" if unfinished else "pending"
        holder = self._one(conn, "unique_key_holder", {"id": job_id})
        if holder is not None:
            raise InvalidTransition(unique_key_taken(job_id, holder[1], holder[0]))
        conn.execute(Q["keep_finished_outcome"], {"id": job_id})
        conn.execute(Q["forget_failed_steps"], {"id": job_id})
        conn.execute(
            Q["requeue_job"], {"id": job_id, "status": status, "pending_parents": unfinished}
        )
        return status

    # ---- the supervisor's side --------------------------------------------------------

    def running_jobs(self) -> list[dict[str, Any]]:
        """Every running job with its owner and timing, for the supervisor's sweep."""
        with self._tx() as conn, conn.cursor(row_factory=dict_row) as cursor:
            return [as_text_times(row) for row in cursor.execute(Q["running_jobs"])]

    def rescue(
        self,
        job_id: str,
        fence: int,
        *,
        reason: str,
        count_interruption: bool = True,
        ran_until: str | None = None,
    ) -> str:
        """Put a running job whose worker is gone back to pending (see JobQueue.rescue).

        Returns the new status, or '' when the job was no longer held with that fence.
        """
        with self._tx() as conn:
            row = self._one(conn, "running_job", {"id": job_id})
            if row is None or row[4] != "running" or row[3] != fence:
                return ""
            interruptions, cancel_requested = row[5], row[6]
            if cancel_requested is not None:
                error = f"cancelled by request ({reason})"
                self._finish(conn, job_id, fence, "cancelled", error, None, ran_until)
                return "cancelled"
            if count_interruption and interruptions + 1 > self.max_interruptions:
                error = (
                    f"{reason}; interrupted {interruptions + 1} times, more than the limit of "
                    f"{self.max_interruptions}, so it is failed as a poison pill"
                )
                self._finish(conn, job_id, fence, "failed", error, None, ran_until)
                conn.execute(Q["count_interruption"], {"id": job_id})
                return "failed"
            conn.execute(
                Q["rescue_job"],
                {
                    "id": job_id,
                    "fence": fence,
                    "counted": 1 if count_interruption else 0,
                    "error": f"interrupted: {reason}",
                    "ran_until": ran_until,
                },
            )
            self._notify(conn)
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
        with self._tx() as conn:
            conn.execute(Q["record_daemon"], {"host": host, "pid": pid, "workers": workers})
            conn.execute(Q["forget_stale_daemons"], {"after_s": FORGET_DAEMONS_AFTER_S})

    def forget_daemon(self, host: str, pid: int) -> None:
        """Drop a daemon's record: it stopped cleanly."""
        with self._tx() as conn:
            conn.execute(Q["forget_daemon"], {"host": host, "pid": pid})

    def daemons(self, seen_within_s: float) -> list[dict[str, Any]]:
        """Daemons seen in the last ``seen_within_s`` seconds, by host and pid."""
        with self._tx() as conn, conn.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(Q["daemons"], {"within_s": float(seen_within_s)}).fetchall()
        return [as_text_times(row) for row in rows]

    # ---- reading ----------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any]:
        """Every column of one job, with payload and result decoded and its parents listed."""
        with self._tx() as conn, conn.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(Q["get_job"], {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            parents = [r[0] for r in conn.execute(Q["job_parents"], {"id": job_id})]
        return job_dict(row, parents)

    def list_jobs(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Newest first, optionally one status and/or one type."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}.")
        check_int("limit", limit, 1)
        name = "list_jobs_by_status" if status else "list_jobs"
        with self._tx() as conn, conn.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(Q[name], {"status": status, "type": type, "limit": limit})
            jobs = rows.fetchall()
            parents: dict[str, list[str]] = {job["id"]: [] for job in jobs}
            for child, parent in conn.execute(Q["parents_of_jobs"], {"ids": list(parents)}):
                parents[child].append(parent)
        return [job_dict(job, parents[job["id"]]) for job in jobs]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each unfinished status."""
        counts = dict.fromkeys(UNFINISHED, 0)
        with self._tx() as conn:
            counts.update({status: n for status, n in conn.execute(Q["queue_counts"])})
        return counts

    def states(self, job_ids: Sequence[str]) -> States:
        """{id: (status, result, error, cancelled_by)} for the given ids that exist."""
        with self._tx() as conn:
            rows = conn.execute(Q["jobs_states"], {"ids": list(job_ids)}).fetchall()
        return {r[0]: (r[1], decode_json(r[2]), r[3], r[4]) for r in rows}
