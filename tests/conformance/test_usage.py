"""Tokens, cost and budgets of model work: the same on every backend."""

from __future__ import annotations

import time

import pytest

from athenad.errors import BudgetExceeded, InvalidInput, JobNotFound
from athenad.store.usage import check_budget, usage_store


def test_usage_adds_up_on_the_job_and_by_model(store):
    a = store.submit("llm", budget_usd=1.0)
    b = store.submit("review")
    usage = usage_store(store)
    usage.record(a, "small", 1000, 200, 0.01)
    usage.record(a, "large", 500, 100, 0.25)
    usage.record(b, "small", 10, 5, 0.0)
    job = store.get(a)
    assert (job["model"], job["tokens_in"], job["tokens_out"]) == ("large", 1500, 300)
    assert job["cost_usd"] == pytest.approx(0.26) and job["budget_usd"] == 1.0
    by_model = {row["name"]: row for row in usage.totals(None, "model")}
    assert by_model["small"]["tokens_in"] == 1010 and by_model["small"]["calls"] == 2
    assert by_model["large"]["cost_usd"] == pytest.approx(0.25)
    by_agent = {row["name"]: row for row in usage.totals(time.time() - 60, "agent_type")}
    assert set(by_agent) == {"llm", "review"}
    assert usage.spent_since(time.time() - 60) == pytest.approx(0.26)
    assert usage.totals(time.time() + 60, "model") == []


def test_budgets_stop_spending(store):
    job_id = store.submit("llm", budget_usd=0.5)
    usage = usage_store(store)
    check_budget(usage, job_id, None, time.time())
    usage.record(job_id, "m", 1, 1, 0.5)
    with pytest.raises(BudgetExceeded, match=r"budget exceeded: 0\.50 of 0\.50 USD \(this job\)"):
        check_budget(usage, job_id, None, time.time())
    other = store.submit("llm")
    check_budget(usage, other, 1.0, time.time())
    usage.record(other, "m", 1, 1, 0.6)
    with pytest.raises(BudgetExceeded, match=r"1\.10 of 1\.00 USD today"):
        check_budget(usage, other, 1.0, time.time())


def test_bad_usage_is_refused(store):
    job_id = store.submit("llm")
    usage = usage_store(store)
    with pytest.raises(InvalidInput, match="tokens_in"):
        usage.record(job_id, "m", -1, 0, 0.0)
    with pytest.raises(InvalidInput, match="model"):
        usage.record(job_id, "", 1, 0, 0.0)
    with pytest.raises(JobNotFound):
        usage.record("nope", "m", 1, 1, 0.0)
    with pytest.raises(InvalidInput, match="budget_usd"):
        store.submit("llm", budget_usd=-1)
