"""Tokens, cost and budgets on athena.db: windows by spending time, pruned jobs, the seed's
SQL, and the stats, trends and metrics commands."""

from __future__ import annotations

import datetime as dt
import json

import apsw
import pytest
from click.testing import CliRunner

from athenad.analytics import metrics
from athenad.analytics import queries as analytics
from athenad.cli.analytics_cmd import metrics_command, stats_command, trends_command
from athenad.cli.ctl import main
from athenad.paths import Home
from athenad.store.sqlite.queue import JobQueue
from athenad.store.usage import usage_store
from athenad.util.timefmt import format_ts, parse_since
from tests.unit.test_analytics_cli import check_exposition
from tests.unit.test_schema_and_sql import SEED_SQL

USAGE_ROW = {"name", "calls", "tokens_in", "tokens_out", "cost_usd"}


def ago(**delta: float) -> str:
    return format_ts(dt.datetime.now(dt.UTC) - dt.timedelta(**delta))


def spent_earlier(queue: JobQueue, job_id: str, at: str, model: str, cost: float) -> None:
    """A usage row dated ``at``, as a model call then would have left it."""
    queue.conn.execute(
        "INSERT INTO job_usage (job_id, agent_type, at, model, tokens_in, tokens_out, cost_usd)"
        " SELECT id, agent_type, :at, :model, 100, 10, :cost FROM jobs WHERE id = :id",
        {"id": job_id, "at": at, "model": model, "cost": cost},
    )


@pytest.fixture
def spending(home: Home, queue: JobQueue) -> Home:
    """Two llm calls now, one a day ago, a review call; one job a budget stopped."""
    home.config_path.write_text("[budgets]\ndaily_usd = 1.0\n")
    llm = queue.submit("llm")
    review = queue.submit("review")
    usage = usage_store(queue)
    usage.record(llm, "gpt-small", 1200, 300, 0.02)
    usage.record(llm, "gpt-large", 800, 200, 0.5)
    usage.record(review, "gpt-small", 50, 5, 0.001)
    spent_earlier(queue, llm, ago(days=1, hours=2), "gpt-large", 3.0)
    queue.submit("llm", priority=100)
    job = queue.claim("w1")
    queue.fail(job.id, job.fence, "budget exceeded: 1.02 of 1.00 USD today", retryable=False)
    return home


def run(command, *args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(command, list(args), catch_exceptions=False)


def test_windows_count_spending_by_when_it_happened(spending: Home, queue: JobQueue) -> None:
    # The llm job was created now; the call dated a day ago still falls outside 1h.
    hour = analytics.stats(queue, parse_since("1h"), by="model")["usage"]
    assert {row["name"]: row["cost_usd"] for row in hour} == {"gpt-large": 0.5, "gpt-small": 0.021}
    ever = analytics.stats(queue, None, by="model")["usage"]
    assert [row["name"] for row in ever] == ["gpt-large", "gpt-small"]
    assert ever[0] == {
        "name": "gpt-large",
        "calls": 2,
        "tokens_in": 900,
        "tokens_out": 210,
        "cost_usd": 3.5,
    }
    days = analytics.trends(queue, parse_since("3d"), "day", by="agent")
    assert [round(b["cost_usd"], 3) for b in days[-3:]][-2:] == [3.0, 0.521]
    assert days[-2]["usage"] == [
        {"name": "llm", "calls": 1, "tokens_in": 100, "tokens_out": 10, "cost_usd": 3.0}
    ]


def test_spending_of_pruned_jobs_still_counts(queue: JobQueue) -> None:
    job_id = queue.submit("llm")
    usage_store(queue).record(job_id, "m", 10, 20, 0.25)
    queue.conn.execute("DELETE FROM jobs")
    figures = analytics.stats(queue, None, daily_usd=0.2)
    assert figures["usage"] == [
        {"name": "llm", "calls": 1, "tokens_in": 10, "tokens_out": 20, "cost_usd": 0.25}
    ]
    assert figures["budgets"]["spent_today_usd"] == 0.25
    # With no job left, the spending alone makes a trend.
    assert sum(b["tokens_out"] for b in analytics.trends(queue, None, "hour")) == 20
    samples = check_exposition(metrics.prometheus_text(metrics.metrics(queue, None)))
    assert samples['athena_tokens_total{direction="out",model="m"}'] == 20
    assert samples['athena_cost_usd_total{model="m"}'] == 0.25


def test_the_seeds_sql_keeps_working_with_usage(spending: Home, queue: JobQueue) -> None:
    conn = apsw.Connection(str(spending.db_path))
    try:
        assert dict(conn.execute(SEED_SQL["slow_agents"]).fetchall()).keys() == {"llm", "review"}
        failures = conn.execute(SEED_SQL["failures"])
        names = [d[0] for d in failures.getdescription()]
        (failure,) = [dict(zip(names, row, strict=True)) for row in failures]
        assert failure["error"].startswith("budget exceeded")
        assert {"model", "tokens_in", "tokens_out", "cost_usd"} <= set(failure)
        counts = conn.execute(SEED_SQL["by_type_status"], ("2000-01-01", "2999-01-01"))
        assert sorted(counts) == [
            ("llm", "failed", 1),
            ("llm", "pending", 1),
            ("review", "pending", 1),
        ]
        # The seed's style of question, asked of the new columns (the jobs' own sums).
        cost = "SELECT agent_type, SUM(cost_usd) FROM jobs GROUP BY agent_type ORDER BY 1"
        assert conn.execute(cost).fetchall() == [("llm", 0.52), ("review", 0.001)]
    finally:
        conn.close()


def test_stats_json_has_usage_and_budgets(spending: Home) -> None:
    home = str(spending.root)
    figures = json.loads(run(stats_command, "--home", home, "--json").stdout)
    assert [row["name"] for row in figures["usage"]] == ["llm", "review"]
    assert all(set(row) == USAGE_ROW for row in figures["usage"])
    assert figures["budgets"] == {"daily_usd": 1.0, "spent_today_usd": 0.521, "exceeded_jobs": 1}
    by_model = json.loads(run(stats_command, "--home", home, "--by", "model", "--json").stdout)
    assert [row["name"] for row in by_model["usage"]] == ["gpt-large", "gpt-small"]
    assert by_model["by_agent_type"] == figures["by_agent_type"]


def test_stats_tables_show_tokens_cost_and_budget(spending: Home) -> None:
    text = run(stats_command, "--home", str(spending.root), "--by", "model").stdout
    for phrase in ("tokens and cost by model", "gpt-large", "1.2k", "0.5000", "budgets"):
        assert phrase in text
    assert "1.00" in text and "0.5210" in text  # the daily budget and today's spending
    text = run(stats_command, "--home", str(spending.root)).stdout
    assert "tokens and cost by agent type" in text and "review" in text


def test_a_bad_by_is_one_clear_error(spending: Home) -> None:
    for command in ("stats", "trends"):
        result = CliRunner().invoke(main, [command, "--home", str(spending.root), "--by", "x"])
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert "'--by'" in result.stderr and "'agent', 'model'" in result.stderr


def test_trends_json_and_chart_with_cost(spending: Home) -> None:
    home = str(spending.root)
    args = ("--home", home, "--since", "2d", "--bucket", "day", "--json")
    buckets = json.loads(run(trends_command, *args).stdout)
    assert sum(b["cost_usd"] for b in buckets) == pytest.approx(3.521)
    assert "usage" not in buckets[-1]
    buckets = json.loads(run(trends_command, *args, "--by", "model").stdout)
    assert [row["name"] for row in buckets[-1]["usage"]] == ["gpt-large", "gpt-small"]
    assert all(set(row) == USAGE_ROW for b in buckets for row in b["usage"])
    chart = run(trends_command, "--home", home, "--since", "2d", "--by", "model").stdout
    for phrase in ("tokens", "cost USD", "gpt-large", "total 3.50 USD"):
        assert phrase in chart


def test_metrics_text_has_tokens_and_cost(spending: Home) -> None:
    text = run(metrics_command, "--home", str(spending.root)).stdout
    samples = check_exposition(text)
    assert samples['athena_tokens_total{direction="in",model="gpt-small"}'] == 1250
    assert samples['athena_tokens_total{direction="out",model="gpt-large"}'] == 210
    assert samples['athena_cost_usd_total{model="gpt-large"}'] == 3.5
    for line in (
        "# HELP athena_tokens_total Model tokens recorded by jobs",
        "# TYPE athena_tokens_total counter",
        "# HELP athena_cost_usd_total USD spent on model calls by jobs, by model.",
        "# TYPE athena_cost_usd_total counter",
    ):
        assert line in text
