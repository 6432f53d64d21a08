"""The ``store`` fixture: each conformance test runs once per backend.

PostgreSQL tests use ``ATHENA_TEST_DATABASE_URL`` and a fresh schema per test, dropped
afterwards. Without a server they skip with one reason, except in CI (``CI=true``),
where a missing server is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"

StoreFactory = Callable[[], Any]


def database_url_for_tests() -> str:
    return os.environ.get("ATHENA_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def _server_problem(url: str) -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    from athenad.store.postgres.connection import describe

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"{describe(url)} does not answer ({' '.join(str(exc).split())})"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = database_url_for_tests()
    problem = _server_problem(url)
    if problem is not None:
        message = f"PostgreSQL tests need a server: {problem}; set ATHENA_TEST_DATABASE_URL."
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    schema = f"athena_test_{secrets.token_hex(6)}"
    yield schema
    drop_schema(postgres_url, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on one fresh database of the backend; all are closed afterwards."""
    opened: list[Any] = []
    if request.param == "sqlite":
        from athenad.store.sqlite.queue import JobQueue

        def open_store() -> Any:
            return JobQueue(tmp_path / "athena.db", run_dir=tmp_path / ".athena" / "run")
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        from athenad.store.postgres.queue import PostgresJobQueue

        def open_store() -> Any:
            return PostgresJobQueue(url, schema=schema)

    def tracked() -> Any:
        store = open_store()
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    return store_factory()
