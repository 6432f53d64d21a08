"""The analytics commands only look: no file created, no migration, no connection left open."""

from __future__ import annotations

import json

import apsw
import pytest
from click.testing import CliRunner

from athenad.analytics import queries as analytics
from athenad.analytics import readers
from athenad.cli import analytics_cmd
from athenad.cli.analytics_cmd import (
    failed_command,
    metrics_command,
    stats_command,
    top_command,
    trends_command,
)
from athenad.paths import Home
from athenad.store.sqlite import connection as db
from athenad.store.sqlite.migrations import available_migrations, latest_version
from athenad.store.sqlite.queue import JobQueue

COMMANDS = {
    "stats": stats_command,
    "failed": failed_command,
    "trends": trends_command,
    "metrics": metrics_command,
    "top": top_command,
}
NEEDS_A_DATABASE = ["stats", "failed", "trends", "metrics"]

# Columns every schema version has, so the same rows go into an old database.
INSERT_JOB = """
INSERT INTO jobs (id, type, agent_type, status, created_at, run_after, completed_at,
                  duration_ms, error)
VALUES (:id, 'explore', 'explore', :status, strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 minutes'),
        '2026-01-01 00:00:00.000', strftime('%Y-%m-%d %H:%M:%f', 'now'), :d, :error)
"""


def run(command, home: Home):
    return CliRunner().invoke(command, ["--home", str(home.root)])


def user_version(home: Home) -> int:
    conn = apsw.Connection(str(home.db_path))
    try:
        return conn.execute("PRAGMA user_version").fetchall()[0][0]
    finally:
        conn.close()


def make_database(home: Home, version: int) -> None:
    """athena.db as an Athena of schema ``version`` left it, holding a few finished jobs."""
    conn = apsw.Connection(str(home.db_path))
    conn.pragma("journal_mode", "wal")
    for number, _name, sql in available_migrations()[:version]:
        conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {number}")
    jobs = [("a", "completed", 120, None), ("b", "failed", 40, "RuntimeError: boom")]
    for job_id, status, duration, error in jobs:
        conn.execute(INSERT_JOB, {"id": job_id, "status": status, "d": duration, "error": error})
    conn.close()


def assert_one_clear_error(result, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr


JOBS_SEEN = {
    "stats": lambda figures: figures["by_status"]["completed"] + figures["by_status"]["failed"],
    "failed": len,
    "trends": lambda buckets: sum(bucket["jobs"] for bucket in buckets),
}


@pytest.mark.parametrize(("name", "expected"), [("stats", 2), ("failed", 1), ("trends", 2)])
def test_an_older_database_is_read_as_it_stands(home: Home, name: str, expected: int) -> None:
    make_database(home, 3)
    result = CliRunner().invoke(COMMANDS[name], ["--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.output
    assert JOBS_SEEN[name](json.loads(result.stdout)) == expected
    assert user_version(home) == 3


@pytest.mark.parametrize("name", ["metrics", "top"])
def test_an_older_database_that_lacks_what_a_command_reads_is_one_clear_error(
    home: Home, name: str
) -> None:
    # metrics reads the counters of schema 5; top the run start times of schema 4.
    make_database(home, 3)
    result = run(COMMANDS[name], home)
    assert_one_clear_error(result, "schema version 3", "older", "athenad")
    assert user_version(home) == 3


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_newer_database_is_one_clear_error(home: Home, name: str) -> None:
    make_database(home, latest_version())
    conn = apsw.Connection(str(home.db_path))
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    result = run(COMMANDS[name], home)
    assert_one_clear_error(result, "newer than this Athena knows", "upgrade Athena")
    assert user_version(home) == latest_version() + 1


@pytest.mark.parametrize("name", NEEDS_A_DATABASE)
def test_a_missing_database_is_one_clear_error_and_stays_missing(home: Home, name: str) -> None:
    result = run(COMMANDS[name], home)
    assert_one_clear_error(result, "no athena.db")
    assert not home.db_path.exists()


def test_top_without_a_database_shows_an_empty_queue_and_creates_nothing(home: Home) -> None:
    result = run(top_command, home)
    assert result.exit_code == 0, result.output
    assert "queue" in result.stdout
    assert not home.db_path.exists()


@pytest.fixture
def opened(monkeypatch) -> list[apsw.Connection]:
    """Every connection made through the SQLite connect(), kept alive so none is collected."""
    made: list[apsw.Connection] = []
    real = db.connect

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    for module in (db, readers, analytics, analytics_cmd):
        monkeypatch.setattr(module, "connect", spy, raising=False)
    return made


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_connection_is_closed(home: Home, opened: list, name: str) -> None:
    with JobQueue(home.db_path) as queue:
        queue.submit("explore")
    opened.clear()
    result = run(COMMANDS[name], home)
    assert result.exit_code == 0, result.output
    assert opened, (
        "the command opened no connection through athenad.store.sqlite.connection.connect"
    )
    still_open = set(apsw.connections()) & set(opened)
    assert not still_open


@pytest.mark.parametrize("name", ["stats", "metrics"])
def test_a_failing_read_closes_its_connection(home: Home, opened: list, name: str) -> None:
    make_database(home, 1)  # schema 1 has no jobs_completed index: stats cannot run
    result = run(COMMANDS[name], home)
    assert_one_clear_error(result, "schema version 1")
    assert opened and not set(apsw.connections()) & set(opened)
