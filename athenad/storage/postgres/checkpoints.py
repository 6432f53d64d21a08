"""Checkpoints in the ``checkpoints`` table: any host resumes any job from its own.

A row holds what a checkpoint file's second line holds (the msgspec JSON body of state
and messages) with its sha256; loading verifies it just as a file is verified, and a
row that does not verify is skipped with the same ``checkpoint_invalid`` warning.
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from athenad.errors import InvalidInput
from athenad.storage.checkpoints import (
    ANY_ITERATION,
    CHECKSUM_ALGO,
    DEFAULT_KEEP,
    Checkpoint,
    CheckpointCorrupt,
    CheckpointInfo,
    CheckpointWriteError,
    body_checksum,
    check_iteration,
    check_job_id,
    decode_body,
    encode_body,
    log,
)
from athenad.store.postgres.queries import QUERIES as Q
from athenad.util.timefmt import format_ts

_PREFIX = f"{CHECKSUM_ALGO}:"
Row = tuple[int, bytes, str, dt.datetime]


class PostgresCheckpointStore:
    """The checkpoints of every job in ``schema``, on connections from ``pool``."""

    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    def location(self, job_id: str, iteration: int) -> str:
        """Where a checkpoint lives, for listings and warnings (what a file's path is)."""
        return f"{self.schema}.checkpoints/{job_id}/{iteration}"

    def _rows(self, name: str, params: dict[str, Any]) -> builtins.list[Any]:
        with self.pool.connection() as conn:
            return conn.execute(Q[name], params).fetchall()

    def _decode(self, job_id: str, row: Row) -> Checkpoint:
        iteration, body, sha256, created_at = row
        return decode_body(bytes(body), _PREFIX + sha256, job_id, iteration, format_ts(created_at))

    # ---- writing ----------------------------------------------------------------------

    def save(
        self, job_id: str, iteration: int, state: Any = None, messages: Any = None
    ) -> CheckpointInfo:
        """Store one checkpoint (replacing the same iteration); committed on return.

        Raises :class:`CheckpointWriteError` when the database cannot be written; the
        previous checkpoints are untouched.
        """
        check_job_id(job_id)
        check_iteration(iteration)
        body = encode_body(job_id, iteration, state, messages)
        params = {
            "job_id": job_id,
            "iteration": iteration,
            "body": body,
            "sha256": body_checksum(body).removeprefix(_PREFIX),
        }
        try:
            with self.pool.connection() as conn:
                (created_at,) = conn.execute(Q["save_checkpoint"], params).fetchone() or (None,)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointWriteError(
                f"the checkpoint of job {job_id} iteration {iteration} was not written because "
                f"the database refused it ({reason}); the previous checkpoint is unchanged."
            ) from exc
        return CheckpointInfo(
            iteration=iteration,
            created_at=format_ts(created_at),
            size_bytes=len(body),
            valid=True,
            path=self.location(job_id, iteration),
        )

    # ---- reading ----------------------------------------------------------------------

    def load(self, job_id: str, iteration: int) -> Checkpoint:
        """Load and verify one checkpoint; CheckpointCorrupt, or FileNotFoundError if none."""
        check_job_id(job_id)
        rows = self._rows("checkpoint", {"job_id": job_id, "iteration": check_iteration(iteration)})
        if not rows:
            raise FileNotFoundError(f"job {job_id} has no checkpoint of iteration {iteration}.")
        try:
            return self._decode(job_id, rows[0])
        except CheckpointCorrupt as exc:
            where = self.location(job_id, iteration)
            raise CheckpointCorrupt(f"checkpoint {where} is not usable: {exc}") from None

    def load_latest(self, job_id: str, at_most: Any = ANY_ITERATION) -> Checkpoint | None:
        """The newest valid checkpoint with iteration <= ``at_most``, or None.

        ``None`` (the job's row records no checkpoint) means nothing to resume; left
        out, every row counts. Rows that do not verify are skipped with a warning.
        """
        check_job_id(job_id)
        if at_most is None:
            return None
        bound = None if at_most is ANY_ITERATION else at_most
        for row in self._rows("checkpoints_newest_first", {"job_id": job_id, "at_most": bound}):
            try:
                return self._decode(job_id, row)
            except CheckpointCorrupt as exc:
                where = self.location(job_id, row[0])
                log.warning("checkpoint_invalid", job_id=job_id, path=where, reason=str(exc))
        return None

    def list(self, job_id: str) -> builtins.list[CheckpointInfo]:
        """Every checkpoint of a job, oldest first, each verified."""
        check_job_id(job_id)
        infos = []
        for row in self._rows("checkpoints_oldest_first", {"job_id": job_id}):
            iteration, body, _sha256, created_at = row
            error = None
            try:
                self._decode(job_id, row)
            except CheckpointCorrupt as exc:
                error = str(exc)
            infos.append(
                CheckpointInfo(
                    iteration=iteration,
                    created_at=format_ts(created_at),
                    size_bytes=len(body),
                    valid=error is None,
                    path=self.location(job_id, iteration),
                    error=error,
                )
            )
        return infos

    def iterations(self, job_id: str) -> builtins.list[int]:
        """The iterations stored for this job, oldest first (unverified)."""
        check_job_id(job_id)
        return [row[0] for row in self._rows("checkpoint_iterations", {"job_id": job_id})]

    # ---- removing ---------------------------------------------------------------------

    def discard(self, job_id: str, iteration: int) -> bool:
        """Remove one checkpoint (a save the queue refused); True if it existed."""
        params = {"job_id": check_job_id(job_id), "iteration": check_iteration(iteration)}
        with self.pool.connection() as conn:
            return conn.execute(Q["discard_checkpoint"], params).rowcount > 0

    def prune(self, job_id: str, keep: int = DEFAULT_KEEP) -> builtins.list[int]:
        """Keep the newest ``keep`` checkpoints of a job; returns the iterations removed."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidInput(f"keep {keep!r} must be an integer of at least 1.")
        rows = self._rows("prune_checkpoints", {"job_id": check_job_id(job_id), "keep": keep})
        return sorted(row[0] for row in rows)

    def remove_all(self, job_id: str) -> int:
        """Remove every checkpoint of a job; returns how many."""
        with self.pool.connection() as conn:
            return conn.execute(Q["remove_checkpoints"], {"job_id": check_job_id(job_id)}).rowcount
