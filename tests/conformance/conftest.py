"""The ``store`` fixture: each conformance test runs once per backend.

PostgreSQL tests use the ``postgres_url`` and ``postgres_schema`` fixtures of
tests/conftest.py: a fresh schema per test, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The checkpoint and session stores' fixtures (files and PostgreSQL).
from tests.conformance.storage_backends import (  # noqa: F401
    backend_where,
    both_backends,
    stores,
    stores_factory,
)

StoreFactory = Callable[[], Any]


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
