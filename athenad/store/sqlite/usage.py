"""Tokens and cost on athena.db, on the queue's own connection."""

from __future__ import annotations

from typing import Any

from athenad.errors import JobNotFound
from athenad.store.named_sql import load_queries
from athenad.store.sqlite.connection import write_transaction
from athenad.store.sqlite.queries import SQL_DIR
from athenad.store.sqlite.queue import JobQueue, row_as_dict
from athenad.store.usage import check_usage
from athenad.util.timefmt import format_epoch, utc_now_text

Q = load_queries(SQL_DIR / "usage.sql")


class SqliteUsageStore:
    """The :class:`~athenad.store.usage.UsageStore` of a SQLite queue."""

    def __init__(self, queue: JobQueue) -> None:
        self.conn = queue.conn

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
            "now": utc_now_text(),
        }
        with write_transaction(self.conn):
            self.conn.execute(Q["add_usage"], params)
            if self.conn.changes() != 1:
                raise JobNotFound(f"job {job_id!r} does not exist.")
            self.conn.execute(Q["sum_usage"], params)

    def job_spending(self, job_id: str) -> tuple[float, float | None]:
        for spent, budget in self.conn.execute(Q["job_spending"], {"id": job_id}):
            return float(spent), budget
        raise JobNotFound(f"job {job_id!r} does not exist.")

    def spent_since(self, since_epoch: float) -> float:
        rows = self.conn.execute(Q["spent_since"], {"since": format_epoch(since_epoch)})
        return float(next(iter(rows))[0])

    def totals(self, since_epoch: float | None, by: str) -> list[dict[str, Any]]:
        query = Q["usage_by_model"] if by == "model" else Q["usage_by_agent_type"]
        since = "" if since_epoch is None else format_epoch(since_epoch)
        cursor = self.conn.cursor()
        cursor.row_trace = row_as_dict
        return list(cursor.execute(query, {"since": since}))
