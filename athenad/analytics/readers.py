"""Read-only access to a home's jobs for the analytics, on either backend.

A reader runs the analytics' named queries of its backend (SQLite's in
``store/sqlite/sql/queries.sql`` and ``analytics_usage.sql``, PostgreSQL's in
``store/postgres/sql/analytics.sql``)
and returns rows as dicts with timestamps as UTC text (``2026-11-26 10:00:00.123``), so
the figures are computed the same way from both. Opening one never creates, migrates
or writes anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import apsw

from athenad.errors import AthenaError, DatabaseUnusable
from athenad.store.named_sql import load_queries
from athenad.store.sqlite.connection import connect
from athenad.store.sqlite.migrations import current_version, latest_version
from athenad.store.sqlite.queries import QUERIES, SQL_DIR

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.paths import Home


def _analytics_queries() -> dict[str, str]:
    """queries.sql's blocks with the usage analytics' own file; a name in both is an error."""
    usage = load_queries(SQL_DIR / "analytics_usage.sql")
    twice = set(usage) & set(QUERIES)
    if twice:
        raise ValueError(f"queries defined twice: {sorted(twice)}")
    return {**QUERIES, **usage}


SQLITE_QUERIES = _analytics_queries()


class Reader(Protocol):
    """Named read queries on one connection."""

    def rows(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of a named query, as {column: value}."""
        ...

    def scalar(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        ...

    def snapshot(self) -> contextlib.AbstractContextManager[Reader]:
        """Several reads in one transaction, so their figures agree."""
        ...


class SqliteReader:
    """Analytics reads on an apsw connection to athena.db."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def rows(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.conn.execute(SQLITE_QUERIES[name], dict(params or {}))
        names: list[str] | None = None
        rows = []
        for row in cursor:
            names = names or [d[0] for d in cursor.getdescription()]
            rows.append(dict(zip(names, row, strict=True)))
        return rows

    def scalar(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        for row in self.conn.execute(SQLITE_QUERIES[name], dict(params or {})):
            return row[0]
        return None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[SqliteReader]:
        conn = self.conn
        if conn.in_transaction:
            yield self
            return
        conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if conn.in_transaction:  # a failed statement may have ended it already
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@contextlib.contextmanager
def open_for_reading(path: Path) -> Iterator[apsw.Connection]:
    """athena.db for looking only: not created, not migrated, not written, always closed.

    An older schema is read as it stands; a query it cannot answer (a table or column
    a later migration adds) becomes one clear error instead of an SQL message.
    """
    if not path.exists():
        raise AthenaError(
            f"there is no athena.db in {path.parent} (pass --home or set ATHENA_HOME)."
        )
    conn = connect(path)
    try:
        conn.pragma("query_only", True)
        version = _readable_version(conn, path)
        try:
            yield conn
        except apsw.SQLError:
            if version < latest_version():
                raise DatabaseUnusable(_too_old(path, version)) from None
            raise
    finally:
        conn.close()


def _readable_version(conn: apsw.Connection, path: Path) -> int:
    """The schema version, refusing one newer than this Athena knows."""
    version, latest = current_version(conn), latest_version()
    if version > latest:
        raise DatabaseUnusable(
            f"{path} has schema version {version}, newer than this Athena knows ({latest}); "
            "upgrade Athena."
        )
    return version


def _too_old(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, older than this Athena reads "
        f"({latest_version()}); start (or restart) athenad to upgrade it."
    )


@contextlib.contextmanager
def open_reader(home: Home, settings: DaemonConfig) -> Iterator[Reader]:
    """The reader of the home's database, closed afterwards."""
    from athenad.store.backend import POSTGRES, backend_of

    if backend_of(settings) == POSTGRES:
        from athenad.analytics.postgres_reader import open_server_reader

        with open_server_reader(settings.database_url, settings.database_schema) as reader:
            yield reader
        return
    with open_for_reading(home.db_path) as conn:
        yield SqliteReader(conn)
