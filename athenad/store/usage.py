"""What model work cost, on either backend: tokens and USD per job, per model, per day.

Each use of a model a job reports is a ``job_usage`` row; the job's row keeps the sums
and the model it used last. Usage rows outlive their job (retention keeps them), so
totals, the metrics and the daily budget stay true after pruning. Recording is not
fenced: tokens a late worker spent were paid for all the same.
"""

from __future__ import annotations

from typing import Any, Protocol

from athenad.errors import BudgetExceeded, InvalidInput


class UsageStore(Protocol):
    def record(
        self,
        job_id: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
    ) -> None:
        """Add one use of a model to the job's sums and the usage log."""
        ...

    def job_spending(self, job_id: str) -> tuple[float, float | None]:
        """(USD the job spent, its budget or None)."""
        ...

    def spent_since(self, since_epoch: float) -> float:
        """USD spent by every job of the database since a moment."""
        ...

    def totals(self, since_epoch: float | None, by: str) -> list[dict[str, Any]]:
        """Tokens and USD grouped ``by`` 'model' or 'agent_type' (since a moment)."""
        ...


def check_usage(model: Any, tokens_in: Any, tokens_out: Any, cost_usd: Any) -> None:
    """One clear error for a bad usage report."""
    if not isinstance(model, str) or not 0 < len(model) <= 200:
        raise InvalidInput(f"model {model!r} must be text of 1 to 200 characters.")
    for name, value in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} {value!r} must be a whole number of at least 0.")
    if cost_usd is not None and (
        isinstance(cost_usd, bool) or not isinstance(cost_usd, int | float) or not cost_usd >= 0
    ):
        raise InvalidInput(f"cost_usd {cost_usd!r} must be a number of at least 0.")


def check_budget(store: UsageStore, job_id: str, daily_usd: float | None, now: float) -> None:
    """Raise BudgetExceeded when the job's budget or the home's daily budget is spent."""
    spent, budget = store.job_spending(job_id)
    if budget is not None and spent >= budget:
        raise BudgetExceeded(f"budget exceeded: {spent:.2f} of {budget:.2f} USD (this job)")
    if daily_usd is not None:
        import time

        day_start = now - (now % 86400)  # UTC midnight
        today = store.spent_since(day_start)
        if today >= daily_usd:
            raise BudgetExceeded(
                f"budget exceeded: {today:.2f} of {daily_usd:.2f} USD today (the home's "
                f"[budgets] daily_usd, UTC day {time.strftime('%Y-%m-%d', time.gmtime(now))})"
            )


def usage_store(queue: Any) -> UsageStore:
    """The usage store on ``queue``'s own database connection."""
    from athenad.store.sqlite.queue import JobQueue

    if isinstance(queue, JobQueue):
        from athenad.store.sqlite.usage import SqliteUsageStore

        return SqliteUsageStore(queue)
    from athenad.store.postgres.usage import PostgresUsageStore

    return PostgresUsageStore(queue)
