"""Tokens, cost and budgets in stats, trends and metrics: the same figures on either backend."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from athenad.analytics import metrics
from athenad.analytics import queries as analytics
from athenad.store.usage import usage_store
from tests.conformance.test_analytics import backend, fill  # noqa: F401

BY_AGENT = [
    {"name": "llm", "calls": 1, "tokens_in": 2000, "tokens_out": 1000, "cost_usd": 1.5},
    {"name": "plan", "calls": 2, "tokens_in": 1500, "tokens_out": 300, "cost_usd": 0.26},
    {"name": "explore", "calls": 1, "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.0},
]
BY_MODEL = [
    {"name": "large", "calls": 2, "tokens_in": 2500, "tokens_out": 1100, "cost_usd": 1.75},
    {"name": "small", "calls": 2, "tokens_in": 1010, "tokens_out": 205, "cost_usd": 0.01},
]


def spend(queue: Any) -> dict[str, str]:
    """An llm job a budget stopped, then :func:`fill`'s jobs; four model calls among them."""
    stopped = queue.submit("llm")
    job = queue.claim("host:1:0")
    assert job is not None and job.id == stopped
    queue.fail(job.id, job.fence, "budget exceeded: 5.02 of 5.00 USD today", retryable=False)
    ids = fill(queue)
    usage = usage_store(queue)
    usage.record(stopped, "large", 2000, 1000, 1.5)
    usage.record(ids["plan"], "small", 1000, 200, 0.01)
    usage.record(ids["plan"], "large", 500, 100, 0.25)
    usage.record(ids["waiting"], "small", 10, 5, 0.0)
    return {**ids, "stopped": stopped}


def delete_job(queue: Any, job_id: str) -> None:
    """Remove a job's row the way pruning does; its usage rows stay."""
    if hasattr(queue, "conn"):
        queue.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return
    with queue.pool.connection() as conn:
        conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))


def test_stats_show_tokens_cost_and_budgets(backend):  # noqa: F811
    queue, reading = backend
    spend(queue)
    with reading() as reader:
        by_agent = analytics.stats(reader, since=None, daily_usd=2.0)
        by_model = analytics.stats(reader, since=None, by="model")
    assert by_agent["usage"] == BY_AGENT
    assert by_model["usage"] == BY_MODEL
    assert by_agent["budgets"] == {"daily_usd": 2.0, "spent_today_usd": 1.76, "exceeded_jobs": 1}
    assert by_model["budgets"]["daily_usd"] is None
    # The job figures are as before.
    assert by_agent["by_status"]["failed"] == 2
    assert {row["agent_type"] for row in by_agent["by_agent_type"]} == {
        "llm",
        "explore",
        "plan",
        "report",
    }


def test_bad_grouping_is_refused_before_reading(backend):  # noqa: F811
    queue, reading = backend
    with reading() as reader, pytest.raises(ValueError, match="agent, model"):
        analytics.stats(reader, by="agent_type")
    with reading() as reader, pytest.raises(ValueError, match="agent, model"):
        analytics.trends(reader, None, "hour", by="queue")


def test_trends_add_tokens_and_cost(backend):  # noqa: F811
    queue, reading = backend
    spend(queue)
    with reading() as reader:
        plain = analytics.trends(reader, None, "hour")
        per_model = analytics.trends(reader, None, "day", by="model")
    assert sum(b["tokens_in"] for b in plain) == 3510
    assert sum(b["tokens_out"] for b in plain) == 1305
    assert sum(b["cost_usd"] for b in plain) == pytest.approx(1.76)
    assert sum(b["jobs"] for b in plain) == 7 and "usage" not in plain[-1]
    (today,) = [b for b in per_model if b["usage"]]
    assert today["usage"] == sorted(BY_MODEL, key=lambda row: row["name"])
    assert today["cost_usd"] == pytest.approx(1.76)


def test_metrics_count_tokens_and_cost_per_model(backend):  # noqa: F811
    queue, reading = backend
    ids = spend(queue)
    delete_job(queue, ids["stopped"])  # what a model call cost stays counted
    with reading() as reader:
        figures = metrics.metrics(reader, None)
    assert figures["usage"] == BY_MODEL
    families = {
        family.name: {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
        }
        for family in text_string_to_metric_families(metrics.prometheus_text(figures))
    }
    assert families["athena_tokens"] == {
        ("athena_tokens_total", (("direction", "in"), ("model", "large"))): 2500,
        ("athena_tokens_total", (("direction", "out"), ("model", "large"))): 1100,
        ("athena_tokens_total", (("direction", "in"), ("model", "small"))): 1010,
        ("athena_tokens_total", (("direction", "out"), ("model", "small"))): 205,
    }
    assert families["athena_cost_usd"] == {
        ("athena_cost_usd_total", (("model", "large"),)): 1.75,
        ("athena_cost_usd_total", (("model", "small"),)): 0.01,
    }
