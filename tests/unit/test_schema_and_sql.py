"""The schema, migrations, named queries, and the seed's plain SQL examples."""

from __future__ import annotations

import shutil
import subprocess

import apsw
import pytest

from athenad.store.sqlite.migrations import (
    _announce_schema_rewrite,
    available_migrations,
    current_version,
    latest_version,
    open_database,
    schema_sql,
)
from athenad.store.sqlite.queries import QUERIES, parse_queries
from athenad.store.sqlite.queue import JobQueue


def schema_of(conn: apsw.Connection) -> dict:
    """Tables' columns and foreign keys, and every index's SQL, for comparing databases.

    ALTER TABLE rewrites a table's CREATE text, so tables are compared by structure.
    """
    shape: dict = {}
    objects = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for kind, name, sql in objects:
        if kind == "table":
            shape[name] = (
                conn.execute(f"PRAGMA table_xinfo({name})").fetchall(),
                conn.execute(f"PRAGMA foreign_key_list({name})").fetchall(),
                "WITHOUT ROWID" in sql,
            )
        else:
            shape[name] = (kind, " ".join((sql or "").split()))
    return shape


def test_migrations_build_exactly_the_schema(tmp_path):
    migrated = open_database(tmp_path / "migrated.db")
    assert current_version(migrated) == latest_version()
    fresh = apsw.Connection(str(tmp_path / "fresh.db"))
    fresh.execute(schema_sql())
    assert schema_of(migrated) == schema_of(fresh)


def apply_migration(conn: apsw.Connection, number: int, sql: str) -> None:
    """One migration as the runner applies it (it also bumps schema_version after a
    migration that rewrites CREATE text, so later ALTERs see the new text)."""
    conn.execute(sql)
    if "writable_schema" in sql:
        _announce_schema_rewrite(conn)
    conn.execute(f"PRAGMA user_version = {number}")


OLD_JOB = """
INSERT INTO jobs (id, type, agent_type, status, created_at, run_after, duration_ms)
VALUES ('j1', 'plan', 'plan', 'completed', '2026-01-01 00:00:00.000',
        '2026-01-01 00:00:00.000', 250)
"""


@pytest.mark.parametrize("version", range(1, latest_version()))
def test_every_earlier_version_upgrades_to_the_schema_keeping_its_jobs(tmp_path, version):
    old = apsw.Connection(str(tmp_path / "old.db"))
    for number, _name, sql in available_migrations()[:version]:
        apply_migration(old, number, sql)
    old.execute(OLD_JOB)
    old.close()
    upgraded = open_database(tmp_path / "old.db")
    assert current_version(upgraded) == latest_version()
    fresh = apsw.Connection(str(tmp_path / "fresh.db"))
    fresh.execute(schema_sql())
    assert schema_of(upgraded) == schema_of(fresh)
    job = upgraded.execute("SELECT status, duration_ms FROM jobs WHERE id = 'j1'").fetchall()
    assert job == [("completed", 250)]
    assert upgraded.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_connection_pragmas(tmp_path):
    conn = open_database(tmp_path / "a.db")
    assert conn.pragma("journal_mode") == "wal"
    assert conn.pragma("foreign_keys") == 1
    assert conn.pragma("synchronous") == 1  # NORMAL
    assert open_database(tmp_path / "b.db", synchronous="FULL").pragma("synchronous") == 2


def test_migrating_twice_is_harmless(tmp_path):
    open_database(tmp_path / "a.db").close()
    conn = open_database(tmp_path / "a.db")
    assert current_version(conn) == latest_version()


def test_query_loader_splits_named_blocks():
    parsed = parse_queries("-- name: one\n-- what it does\nSELECT 1;\n\n-- name: two\nSELECT 2;\n")
    assert parsed == {"one": "SELECT 1;", "two": "SELECT 2;"}
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
    assert {"claim_job", "complete_job", "release_dependents"} <= set(QUERIES)


@pytest.fixture
def seeded(tmp_path):
    """A database shaped like the seed's examples: a parent with children, a failure."""
    path = tmp_path / "athena.db"
    queue = JobQueue(path)
    parent = queue.submit("explore", {"prompt": "Security check"})
    children = [queue.submit("test-runner", {"n": n}, after=[parent]) for n in range(3)]
    job = queue.claim("w")
    queue.complete(job.id, job.fence, "ok")
    job = queue.claim("w")
    queue.complete(job.id, job.fence, "ok")
    job = queue.claim("w")
    queue.fail(job.id, job.fence, "tests failed")
    queue.conn.execute("UPDATE jobs SET duration_ms = 1200 WHERE agent_type = 'explore'")
    queue.conn.execute(
        "UPDATE jobs SET duration_ms = 300"
        " WHERE agent_type = 'test-runner' AND duration_ms IS NOT NULL"
    )
    queue.close()
    return path, parent, children


SEED_SQL = {
    "dependents": "SELECT * FROM jobs WHERE parent_job_id = '{parent}'",
    "unfinished": (
        "SELECT COUNT(*) FROM jobs\nWHERE parent_job_id = '{parent}' AND status != 'completed'"
    ),
    "slow_agents": (
        "SELECT agent_type, AVG(duration_ms) as avg_time\nFROM jobs\n"
        "WHERE created_at > datetime('now', '-1 day')\nGROUP BY agent_type"
    ),
    "failures": "SELECT * FROM jobs\nWHERE status = 'failed'\nORDER BY created_at DESC\nLIMIT 10",
    "by_type_status": (
        "SELECT type, status, COUNT(*) as count\nFROM jobs\nWHERE created_at BETWEEN ? AND ?\n"
        "GROUP BY type, status\nORDER BY count DESC"
    ),
}


def test_seed_sql_examples_give_the_right_answers(seeded):
    path, parent, children = seeded
    conn = apsw.Connection(str(path))

    def run(name, *params):
        return conn.execute(SEED_SQL[name].format(parent=parent), params).fetchall()

    assert sorted(r[0] for r in run("dependents")) == sorted(children)
    assert run("unfinished") == [(2,)]  # one completed child, one failed, one pending
    assert dict(run("slow_agents")) == {"explore": 1200.0, "test-runner": 300.0}
    failures = run("failures")
    assert len(failures) == 1 and failures[0][0] in children
    counts = run("by_type_status", "2000-01-01", "2999-01-01")
    assert sorted(counts) == sorted(
        [
            ("explore", "completed", 1),
            ("test-runner", "completed", 1),
            ("test-runner", "failed", 1),
            ("test-runner", "pending", 1),
        ]
    )


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell on this machine")
def test_seed_sql_runs_unchanged_in_the_sqlite3_shell(seeded):
    path, parent, _children = seeded
    for name, sql in SEED_SQL.items():
        text = sql.format(parent=parent)
        if "?" in text:  # the shell binds parameters with .param
            text = text.replace("BETWEEN ? AND ?", "BETWEEN ?1 AND ?2")
            script = f".param set ?1 '2000-01-01'\n.param set ?2 '2999-01-01'\n{text};\n"
        else:
            script = text + ";\n"
        out = subprocess.run(
            ["sqlite3", str(path)], input=script, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0 and not out.stderr, (name, out.stderr)
        assert out.stdout.strip(), name


def test_an_upgraded_database_takes_the_new_statuses(tmp_path):
    old = apsw.Connection(str(tmp_path / "old.db"))
    for number, _name, sql in available_migrations()[:6]:
        apply_migration(old, number, sql)
    old.execute(OLD_JOB)
    reader = apsw.Connection(str(tmp_path / "old.db"))  # open across the upgrade
    reader.execute("SELECT count(*) FROM jobs").fetchall()
    upgraded = open_database(tmp_path / "old.db")
    upgraded.execute("UPDATE jobs SET status = 'awaiting_approval' WHERE id = 'j1'")
    upgraded.execute("UPDATE jobs SET status = 'scheduled' WHERE id = 'j1'")
    with pytest.raises(apsw.ConstraintError):
        upgraded.execute("UPDATE jobs SET status = 'sleeping' WHERE id = 'j1'")
    assert reader.execute("SELECT status, queue FROM jobs").fetchall() == [("scheduled", "default")]
    assert upgraded.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
