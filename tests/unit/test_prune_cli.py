"""``athenactl prune``: options, its one-sentence errors, text and JSON output, and the
metrics' totals after it; and how the daemon's retention plan is made."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from athenad.cli.prune_cmd import prune_command
from athenad.config import RetentionConfig
from athenad.daemon.retention import prune_every
from athenad.errors import InvalidInput
from athenad.paths import Home
from athenad.store.retention import make_plan
from athenad.store.sqlite.queue import JobQueue
from tests.unit.test_job_counters import counter_samples, run_one, scrape


def prune(home: Home, *args: str) -> Result:
    return CliRunner().invoke(prune_command, [*args, "--home", str(home.root)])


def age_all(queue: JobQueue, days: int) -> None:
    queue.conn.execute(
        "UPDATE jobs SET created_at = datetime(created_at, ?),"
        " completed_at = datetime(completed_at, ?) WHERE completed_at IS NOT NULL",
        (f"-{days} days", f"-{days} days"),
    )


@pytest.fixture
def filled(home: Home, queue: JobQueue) -> JobQueue:
    """Two completed jobs, one failed, one cancelled, all 10 days old; one pending."""
    for _ in range(2):
        queue.submit("explore")
        run_one(queue)
    queue.submit("plan")
    run_one(queue, "fail")
    queue.cancel(queue.submit("report"))
    age_all(queue, 10)
    queue.submit("explore")
    return queue


def one_error(result: Result) -> str:
    """The command failed with exactly one line on stderr; that line."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--older-than", "7x"], "--older-than '7x' is not a duration"),
        (["--older-than", "0d"], "--older-than '0d' must be a positive duration"),
        (["--older-than", "-3d"], "must be a positive duration"),
        (["--older-than", ""], "is not a duration"),
        (["--older-than", "1d", "--status", "running"], "only finished jobs are pruned"),
        ([], "nothing to prune by: pass --older-than"),
        (["--status", "failed"], "no age to prune failed jobs by"),
    ],
)
def test_bad_input_is_one_sentence_and_a_failure(filled, home, args, says):
    assert says in one_error(prune(home, *args))
    assert len(filled.list_jobs()) == 5


def test_a_home_without_a_database_is_an_error(tmp_path):
    empty = Home.resolve(tmp_path / "empty")
    line = one_error(prune(empty, "--older-than", "1d"))
    assert "has no athena.db" in line and not (tmp_path / "empty" / "athena.db").exists()


def test_json_reports_counts_by_status_and_the_ages(filled, home):
    preview = prune(home, "--older-than", "7d", "--dry-run", "--json")
    assert preview.exit_code == 0, preview.stderr
    report = json.loads(preview.stdout)
    assert set(report) == {
        "dry_run",
        "jobs",
        "jobs_total",
        "checkpoints",
        "sessions",
        "kept",
        "batches",
        "longest_batch_ms",
        "elapsed_ms",
        "ages_s",
        "sessions_age_s",
    }
    assert report["dry_run"] is True
    assert report["jobs"] == {"completed": 2, "failed": 1, "cancelled": 1}
    assert report["jobs_total"] == 4 and report["ages_s"]["failed"] == 7 * 86400
    assert len(filled.list_jobs()) == 5

    done = json.loads(prune(home, "--older-than", "7d", "--status", "failed", "--json").stdout)
    assert (done["dry_run"], done["jobs"], done["batches"]) == (False, {"failed": 1}, 1)
    assert done["sessions_age_s"] is None


def test_text_output_says_what_was_pruned(filled, home):
    result = prune(home, "--older-than", "7d", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "would prune 4 jobs (completed 2, failed 1, cancelled 1), 0 checkpoints and 0 sessions."
    )
    result = prune(home, "--older-than", "7d", "--status", "completed")
    assert result.stdout.startswith("pruned 2 jobs (completed 2), 0 checkpoints and 0 sessions in")


def test_the_retention_settings_apply_without_options(filled, home):
    home.config_path.write_text('[retention]\ncompleted = "14d"\nfailed = "5d"\n')
    report = json.loads(prune(home, "--json").stdout)
    assert report["jobs"] == {"completed": 0, "failed": 1}
    assert report["ages_s"] == {"completed": 14 * 86400, "failed": 5 * 86400}


def test_metrics_totals_stay_the_same_after_pruning(filled, home):
    before = counter_samples(scrape(home))
    assert prune(home, "--older-than", "1d").exit_code == 0
    assert len(filled.list_jobs()) == 1
    assert counter_samples(scrape(home)) == before


def test_plans_follow_the_settings_and_the_options():
    retention = RetentionConfig(completed="14d", cancelled="7d", sessions="90d")
    plan = make_plan(retention)
    assert plan.ages == {"completed": 14 * 86400, "cancelled": 7 * 86400}
    assert plan.session_age == 90 * 86400
    plan = make_plan(retention, older_than="1h")
    assert set(plan.ages.values()) == {3600} and len(plan.ages) == 3
    assert make_plan(retention, statuses=["cancelled", "cancelled"]).ages == {"cancelled": 604800}
    assert make_plan(retention, statuses=["cancelled"]).session_age is None
    assert make_plan(RetentionConfig(sessions="30d")).ages == {}
    with pytest.raises(InvalidInput, match="nothing to prune by"):
        make_plan(RetentionConfig())


def test_the_daemon_prunes_at_half_the_shortest_age_within_bounds():
    assert prune_every(make_plan(RetentionConfig(completed="1s"))) == 1.0
    assert prune_every(make_plan(RetentionConfig(completed="1m", failed="30s"))) == 15.0
    assert prune_every(make_plan(RetentionConfig(completed="14d", sessions="1h"))) == 60.0
