"""The analytics commands: JSON shapes, clear errors, Prometheus text, atomic -o."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from athenad.cli.analytics_cmd import (
    failed_command,
    metrics_command,
    sparkline,
    stats_command,
    top_command,
    trends_command,
)
from athenad.paths import Home
from athenad.store.sqlite.queue import STATUSES, JobQueue
from tests.conftest import NOTHING_WAITING

# A sample line: a metric name, optional {label="value",...}, then a number.
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$'
)


@pytest.fixture
def busy(home: Home, queue: JobQueue) -> Home:
    """A few finished jobs: two completed explore jobs, one failed plan with a dependent."""
    for _ in range(2):
        queue.submit("explore")
        job = queue.claim("w1")
        queue.complete(job.id, job.fence, {"ok": True})
    parent = queue.submit("plan", agent_type='odd"agent')
    queue.submit("report", after=[parent])
    job = queue.claim("w1")
    queue.fail(job.id, job.fence, "RuntimeError: no plan", "Traceback: ...")
    return home


def run(command, *args: str):
    # A wide terminal so rich does not wrap the phrases the tests look for.
    return CliRunner(env={"COLUMNS": "200"}).invoke(command, list(args), catch_exceptions=False)


def test_stats_json_shape(busy: Home) -> None:
    result = run(stats_command, "--home", str(busy.root), "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures) == {
        *("by_agent_type", "by_status", "queue", "throughput", "since"),
        *("usage", "budgets"),
    }
    assert set(figures["by_status"]) == set(STATUSES)
    assert figures["by_status"]["completed"] == 2
    assert set(figures["queue"]) == {*NOTHING_WAITING, "oldest_pending_age_s"}
    assert set(figures["throughput"]) == {"completed", "window_s", "per_minute"}
    keys = {
        "agent_type",
        "jobs",
        "completed",
        "failed",
        "cancelled",
        "avg_ms",
        "min_ms",
        "max_ms",
        "p50_ms",
        "p95_ms",
    }
    assert all(set(row) == keys for row in figures["by_agent_type"])
    explore = next(row for row in figures["by_agent_type"] if row["agent_type"] == "explore")
    assert (explore["jobs"], explore["completed"]) == (2, 2)


def test_stats_human_tables(busy: Home) -> None:
    result = run(stats_command, "--home", str(busy.root))
    assert result.exit_code == 0
    for word in ("explore", "p95", "jobs by status", "oldest pending"):
        assert word in result.stdout


@pytest.mark.parametrize("command", [stats_command, failed_command, trends_command])
@pytest.mark.parametrize("bad", ["yesterday", "0d", "-1h", "7", "1y"])
def test_bad_since_is_a_clear_error(busy: Home, command, bad: str) -> None:
    result = run(command, "--home", str(busy.root), "--since", bad)
    assert result.exit_code != 0
    assert result.stdout == ""
    expected = "must be a positive duration" if bad in ("0d", "-1h") else "not a duration"
    assert "--since" in result.stderr and expected in result.stderr


def test_missing_database_is_a_clear_error(tmp_path) -> None:
    result = run(stats_command, "--home", str(tmp_path))
    assert result.exit_code == 1
    assert "no athena.db" in result.stderr
    assert not (tmp_path / "athena.db").exists()


def test_failed_viewer(busy: Home) -> None:
    home = str(busy.root)
    rows = json.loads(run(failed_command, "--home", home, "--json").stdout)
    assert [row["error_line"] for row in rows] == ["RuntimeError: no plan"]
    rows = json.loads(run(failed_command, "--home", home, "--cancelled", "--json").stdout)
    (child,) = [row for row in rows if row["status"] == "cancelled"]
    (parent,) = [row for row in rows if row["status"] == "failed"]
    assert child["cancelled_by"] == parent["id"]
    assert child["cause_error"] == "RuntimeError: no plan"
    text = run(failed_command, "--home", home, "--cancelled").stdout
    assert "RuntimeError: no plan" in text and f"cancelled by {child['cancelled_by']}" in text
    assert (
        "no failed jobs"
        in run(failed_command, "--home", home, "--since", "1h", "--type", "nothing").stdout
    )


def test_trends_json_and_chart(busy: Home) -> None:
    home = str(busy.root)
    buckets = json.loads(run(trends_command, "--home", home, "--json").stdout)
    keys = {"bucket", "jobs", "failed", "p95_ms", "tokens_in", "tokens_out", "cost_usd"}
    assert buckets and all(set(b) == keys for b in buckets)
    assert sum(b["jobs"] for b in buckets) == 4 and sum(b["failed"] for b in buckets) == 1
    assert len(
        json.loads(run(trends_command, "--home", home, "--since", "1d", "--json").stdout)
    ) in (24, 25)
    chart = run(trends_command, "--home", home, "--bucket", "hour", "--since", "3h").stdout
    assert "per hour" in chart and any(ch in chart for ch in "▁▂▃▄▅▆▇█")


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([None, 0, 0]) == " ▁▁"


def check_exposition(text: str) -> dict[str, float]:
    """Every line is a comment or `name{labels} value`; returns samples by line head."""
    samples = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* \S", line), line
            continue
        assert SAMPLE.match(line), line
        head, value = line.rsplit(" ", 1)
        samples[head] = float(value)
    return samples


def test_metrics_exposition(busy: Home, tmp_path) -> None:
    result = run(metrics_command, "--home", str(busy.root))
    assert result.exit_code == 0
    samples = check_exposition(result.stdout)
    assert samples['athena_jobs{status="completed"}'] == 2
    assert samples['athena_jobs{status="cancelled"}'] == 1
    assert samples['athena_jobs_completed_total{agent_type="explore"}'] == 2
    assert samples['athena_jobs_failed_total{agent_type="odd\\"agent"}'] == 1
    assert samples['athena_jobs_cancelled_total{agent_type="report"}'] == 1
    assert samples['athena_jobs_submitted_total{agent_type="explore"}'] == 2
    assert samples['athena_job_duration_ms_count{agent_type="explore"}'] == 2
    assert 'athena_job_duration_ms{agent_type="explore",quantile="0.95"}' in samples
    assert samples["athena_daemon_up"] == 0
    assert "# TYPE athena_job_duration_ms summary" in result.stdout
    assert "# TYPE athena_jobs_completed_total counter" in result.stdout
    target = tmp_path / "textfile" / "athena.prom"
    target.parent.mkdir()
    assert run(metrics_command, "--home", str(busy.root), "-o", str(target)).exit_code == 0
    assert target.read_text() == result.stdout
    assert [p.name for p in target.parent.iterdir()] == ["athena.prom"]
    missing = run(metrics_command, "--home", str(busy.root), "-o", str(tmp_path / "no" / "m"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr  # no temp file left


def test_metrics_on_empty_database(home: Home, queue: JobQueue) -> None:
    samples = check_exposition(run(metrics_command, "--home", str(home.root)).stdout)
    assert samples['athena_jobs{status="pending"}'] == 0


def test_top_without_a_terminal_prints_one_frame(busy: Home) -> None:
    result = run(top_command, "--home", str(busy.root))
    assert result.exit_code == 0
    assert "workers" in result.stdout and "queue" in result.stdout
    assert "not running" in result.stdout
