"""Fixtures for the checkpoint and session store suites: each test runs on files and
on PostgreSQL (a fresh schema per test). Imported by the test modules that use them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from athenad.storage import Stores, file_stores, postgres_stores

StoresFactory = Callable[[], Stores]
BACKENDS = ["files", "postgres"]


def opener(kind: str, where: str) -> StoresFactory:
    """Opens stores of one backend: ``where`` is a state directory or ``url schema``."""
    if kind == "files":
        return lambda: file_stores(where)
    url, schema = where.rsplit(" ", 1)
    return lambda: postgres_stores(url, schema)


def location(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "files":
        return str(tmp_path / kind / ".athena")
    url = request.getfixturevalue("postgres_url")
    return f"{url} {request.getfixturevalue('postgres_schema')}"


@pytest.fixture(params=BACKENDS)
def backend_where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend, where its stores live) for tests that open stores in other processes."""
    return request.param, location(request, request.param, tmp_path)


@pytest.fixture
def stores_factory(backend_where: tuple[str, str]) -> Iterator[StoresFactory]:
    """Opens stores on one fresh backend; every one is closed afterwards."""
    opened: list[Stores] = []
    open_stores = opener(*backend_where)

    def tracked() -> Stores:
        stores = open_stores()
        opened.append(stores)
        return stores

    yield tracked
    for stores in opened:
        stores.close()


@pytest.fixture
def stores(stores_factory: StoresFactory) -> Stores:
    return stores_factory()


@pytest.fixture
def both_backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Stores]]:
    """Stores of each backend at once, for moving data between them."""
    opened = {kind: opener(kind, location(request, kind, tmp_path))() for kind in BACKENDS}
    yield opened
    for stores in opened.values():
        stores.close()


def corrupt_checkpoint(stores: Stores, job_id: str, iteration: int) -> None:
    """Damage one stored checkpoint's body the way a bad disk or a stray edit would."""
    store = stores.checkpoints
    pool = getattr(store, "pool", None)
    if pool is None:
        path = store.path_for(job_id, iteration)  # type: ignore[attr-defined]
        with open(path, "r+b") as handle:
            handle.seek(-5, os.SEEK_END)
            handle.write(b"XXXX")
        return
    with pool.connection() as conn:
        conn.execute(
            "UPDATE checkpoints SET body = overlay(body PLACING 'XXXX'::bytea FROM 2) "
            "WHERE job_id = %s AND iteration = %s",
            (job_id, iteration),
        )
