"""Tokens and cost on PostgreSQL, on the queue's own pool."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg.rows import dict_row

from athenad.errors import JobNotFound
from athenad.store.named_sql import load_queries
from athenad.store.postgres.queries import SQL_DIR
from athenad.store.postgres.queue import PostgresJobQueue
from athenad.store.usage import check_usage

Q = load_queries(SQL_DIR / "usage.sql")
EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def _when(seconds: float | None) -> dt.datetime:
    return EARLIEST if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


class PostgresUsageStore:
    """The :class:`~athenad.store.usage.UsageStore` of a PostgreSQL queue."""

    def __init__(self, queue: PostgresJobQueue) -> None:
        self.queue = queue

    def record(
        self, job_id: str, model: str, tokens_in: int, tokens_out: int, cost_usd: float
    ) -> None:
        check_usage(model, tokens_in, tokens_out, cost_usd)
        params = {
            "id": job_id,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": float(cost_usd),
        }
        with self.queue._tx() as conn:
            if conn.execute(Q["add_usage"], params).rowcount != 1:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            conn.execute(Q["sum_usage"], params)

    def job_spending(self, job_id: str) -> tuple[float, float | None]:
        with self.queue._tx() as conn:
            row = conn.execute(Q["job_spending"], {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id!r} does not exist.")
        return float(row[0]), row[1]

    def spent_since(self, since_epoch: float) -> float:
        with self.queue._tx() as conn:
            row = conn.execute(Q["spent_since"], {"since": _when(since_epoch)}).fetchone()
        return 0.0 if row is None else float(row[0])

    def totals(self, since_epoch: float | None, by: str) -> list[dict[str, Any]]:
        query = Q["usage_by_model"] if by == "model" else Q["usage_by_agent_type"]
        with self.queue._tx() as conn, conn.cursor(row_factory=dict_row) as cursor:
            return list(cursor.execute(query, {"since": _when(since_epoch)}))
