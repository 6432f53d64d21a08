"""Tokens, cost and budgets for the analytics, read from ``job_usage``.

Usage rows are dated by when the tokens were spent (not by their job's creation) and
outlive pruned jobs, so a window counts the money spent in it, even by jobs now gone.
Rows are ``{"name", "calls", "tokens_in", "tokens_out", "cost_usd"}`` where ``name`` is
the agent type or the model; USD are rounded to the micro-dollar so sums of floats read
the same from either backend. A database older than ``job_usage`` reads as no spending.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from athenad.analytics.readers import Reader

# What ``--by`` accepts, and the job_usage column each groups on.
GROUPINGS = {"agent": "agent_type", "model": "model"}
TOTALS = ("tokens_in", "tokens_out", "cost_usd")


def grouping(by: str) -> str:
    """The column of a ``--by`` value; anything else is a ValueError naming the choices."""
    try:
        return GROUPINGS[by]
    except KeyError:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}") from None


def has_usage(reader: Reader) -> bool:
    """Whether the database has ``job_usage`` (an older schema is read as it stands)."""
    return bool(reader.scalar("analytics_has_usage"))


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "calls": int(row["calls"]),
        "tokens_in": int(row["tokens_in"] or 0),
        "tokens_out": int(row["tokens_out"] or 0),
        "cost_usd": round(float(row["cost_usd"] or 0.0), 6),
    }


def usage_totals(reader: Reader, since: str | None, by: str = "agent") -> list[dict[str, Any]]:
    """Calls, tokens and USD per agent type or model in the window, costliest first."""
    column = grouping(by)
    if not has_usage(reader):
        return []
    rows = reader.rows(f"analytics_usage_by_{column}", {"since": since or ""})
    return [_row(row) for row in rows]


def day_start(now: str) -> str:
    """UTC midnight of ``now``: where the daily budget's day begins."""
    return now[:10] + " 00:00:00.000"


def budgets(reader: Reader, since: str | None, daily_usd: float | None, now: str) -> dict[str, Any]:
    """The home's daily budget, what today (UTC) spent, and jobs a budget stopped.

    ``exceeded_jobs`` counts jobs created in the window that failed with "budget
    exceeded" (a job's own ``--budget-usd`` or the daily one).
    """
    spent = 0.0
    if has_usage(reader):
        spent = float(reader.scalar("analytics_spent_since", {"since": day_start(now)}) or 0.0)
    exceeded = reader.scalar("analytics_budget_exceeded_jobs", {"since": since or ""})
    return {
        "daily_usd": daily_usd,
        "spent_today_usd": round(spent, 6),
        "exceeded_jobs": int(exceeded or 0),
    }


def usage_by_bucket(
    reader: Reader, since: str | None, width: int, by: str = "agent"
) -> dict[str, list[dict[str, Any]]]:
    """``{bucket key: rows}`` per hour (width 13) or day (10) of spending, names in order."""
    column = grouping(by)
    if not has_usage(reader):
        return {}
    params = {"since": since or "", "width": width}
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in reader.rows(f"analytics_usage_trends_by_{column}", params):
        found[row["bucket"]].append(_row(row))
    return dict(found)


def bucket_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and USD of one bucket, summed over its rows."""
    totals = {key: sum(row[key] for row in rows) for key in TOTALS}
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    return totals
