"""The PostgreSQL schema: migrations build exactly schema.sql, and racing migrators are safe."""

from __future__ import annotations

import threading

import pytest

psycopg = pytest.importorskip("psycopg")

from athenad.errors import DatabaseUnusable  # noqa: E402
from athenad.store.postgres.connection import connect, describe, open_pool  # noqa: E402
from athenad.store.postgres.migrations import (  # noqa: E402
    available_migrations,
    migrate,
    schema_sql,
)
from athenad.store.postgres.queries import QUERIES  # noqa: E402
from tests.conftest import drop_schema  # noqa: E402

COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name
FROM information_schema.columns WHERE table_schema = %s
ORDER BY table_name, ordinal_position
"""
INDEXES = """
SELECT tablename, indexname, replace(indexdef, %s, 'S') FROM pg_indexes
WHERE schemaname = %s ORDER BY indexname
"""
CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = %s::regnamespace ORDER BY conname
"""
TRIGGERS = """
SELECT event_object_table, trigger_name, action_timing, event_manipulation
FROM information_schema.triggers WHERE trigger_schema = %s ORDER BY trigger_name
"""


def catalog(url: str, schema: str) -> dict[str, list[tuple]]:
    with connect(url, schema) as conn:
        found = {
            "columns": conn.execute(COLUMNS, (schema,)).fetchall(),
            "indexes": conn.execute(INDEXES, (f"{schema}.", schema)).fetchall(),
            "constraints": conn.execute(CONSTRAINTS, (schema,)).fetchall(),
            "triggers": conn.execute(TRIGGERS, (schema,)).fetchall(),
        }
    # Names print without their schema (search_path is the schema), so two schemas compare.
    return found


@pytest.fixture
def two_schemas(postgres_url, postgres_schema):
    other = f"{postgres_schema}_b"
    yield postgres_schema, other
    drop_schema(postgres_url, other)


def test_migrations_build_exactly_schema_sql(postgres_url, two_schemas):
    migrated, declared = two_schemas
    with connect(postgres_url, migrated) as conn:
        assert migrate(conn, migrated) == len(available_migrations())
    with connect(postgres_url, declared) as conn:
        conn.execute(f'CREATE SCHEMA "{declared}"')
        conn.execute(schema_sql())
        conn.commit()
    built = catalog(postgres_url, migrated)
    built["columns"] = [c for c in built["columns"] if c[0] != "schema_migrations"]
    built["indexes"] = [i for i in built["indexes"] if i[0] != "schema_migrations"]
    built["constraints"] = [c for c in built["constraints"] if "schema_migrations" not in c[0]]
    assert built == catalog(postgres_url, declared)
    assert len(built["columns"]) > 30 and built["triggers"]
    assert any(name == "jobs_claim" for _table, name, _def in built["indexes"])


def apply_first(url: str, schema: str, count: int) -> None:
    """Build ``schema`` as an older Athena left it: only its first ``count`` migrations."""
    with connect(url, schema) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(QUERIES["create_migrations_table"])
        for version, name, body in available_migrations()[:count]:
            conn.execute(body)
            conn.execute(QUERIES["record_migration"], {"version": version, "name": name})
        conn.execute(
            "INSERT INTO jobs (id, type, agent_type, status, created_at, run_after, duration_ms)"
            " VALUES ('j1', 'plan', 'plan', 'completed', now(), now(), 250)"
        )
        conn.commit()


@pytest.mark.parametrize("count", range(1, len(available_migrations())))
def test_every_earlier_version_upgrades_to_schema_sql_keeping_its_jobs(
    postgres_url, two_schemas, count
):
    upgraded, declared = two_schemas
    apply_first(postgres_url, upgraded, count)
    with connect(postgres_url, upgraded) as conn:
        assert migrate(conn, upgraded) == len(available_migrations())
        job = conn.execute("SELECT status, duration_ms FROM jobs WHERE id = 'j1'").fetchall()
    assert job == [("completed", 250)]
    with connect(postgres_url, declared) as conn:
        conn.execute(f'CREATE SCHEMA "{declared}"')
        conn.execute(schema_sql())
        conn.commit()
    built = catalog(postgres_url, upgraded)
    for part in ("columns", "indexes"):
        built[part] = [row for row in built[part] if row[0] != "schema_migrations"]
    built["constraints"] = [c for c in built["constraints"] if "schema_migrations" not in c[0]]
    assert built == catalog(postgres_url, declared)


def test_migrating_again_changes_nothing(postgres_url, postgres_schema):
    with connect(postgres_url, postgres_schema) as conn:
        first = migrate(conn, postgres_schema)
        assert migrate(conn, postgres_schema) == first
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert [version for version, _name in rows] == list(range(1, first + 1))


def test_concurrent_migrations_apply_each_file_once(postgres_url, postgres_schema):
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            with connect(postgres_url, postgres_schema) as conn:
                start.wait()
                results.append(migrate(conn, postgres_schema))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [len(available_migrations())] * 4
    with connect(postgres_url, postgres_schema) as conn:
        (count,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == len(available_migrations())


def test_unreachable_server_is_one_sentence_without_the_password():
    url = "postgresql://athena:s3cret-pw@127.0.0.1:1/jobsdb?connect_timeout=2"
    with pytest.raises(DatabaseUnusable) as info:
        open_pool(url)
    message = str(info.value)
    assert 'PostgreSQL database "jobsdb" on 127.0.0.1:1' in message
    assert "s3cret-pw" not in message and "\n" not in message
    assert "s3cret" not in describe(url)


def test_bad_schema_name_is_refused(postgres_url):
    from athenad.errors import InvalidInput

    with pytest.raises(InvalidInput, match="plain lowercase name"):
        connect(postgres_url, 'x"; DROP TABLE jobs; --')


def test_every_named_query_is_valid_sql(postgres_url, postgres_schema):
    """Each query plans against the real schema (EXPLAIN, no rows touched)."""
    with connect(postgres_url, postgres_schema) as conn:
        migrate(conn, postgres_schema)
        for name, sql in QUERIES.items():
            if name.startswith(("create_", "migration_")) or "{" in sql:
                continue
            params = _null_params(sql)
            with conn.transaction(force_rollback=True):
                conn.execute(f"EXPLAIN {sql}", params)


def _null_params(sql: str) -> dict[str, object]:
    import re

    return {name: None for name in re.findall(r"%\((\w+)\)s", sql)}
