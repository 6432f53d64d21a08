"""Analytics reads on PostgreSQL: a read-only connection in the home's schema."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from athenad.errors import DatabaseUnusable
from athenad.store.named_sql import load_queries
from athenad.store.postgres.connection import connect, describe
from athenad.store.postgres.migrations import available_migrations
from athenad.util.timefmt import format_ts

QUERIES = load_queries(Path(__file__).parents[1] / "store" / "postgres" / "sql" / "analytics.sql")


def _as_text(value: Any) -> Any:
    """Timestamps as SQLite's UTC text, so the figures are computed the same way."""
    if isinstance(value, dt.datetime):
        return format_ts(value.astimezone(dt.UTC).replace(tzinfo=None))
    return value


class PostgresReader:
    """Analytics reads on one psycopg connection (read-only, repeatable read)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(QUERIES[name], dict(params or {}))
            return [{key: _as_text(value) for key, value in row.items()} for row in cursor]

    def scalar(self, name: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self.conn.execute(QUERIES[name], dict(params or {})).fetchone()
        return None if row is None else _as_text(row[0])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PostgresReader]:
        # The connection's one transaction is already a snapshot (repeatable read).
        yield self


@contextlib.contextmanager
def open_server_reader(url: str, schema: str) -> Iterator[PostgresReader]:
    """A read-only reader of ``schema``; a schema not made yet is one clear error."""
    conn = connect(url, schema)
    try:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        exists = conn.execute(QUERIES["analytics_schema_exists"]).fetchone()
        version = (
            exists and exists[0] and conn.execute(QUERIES["analytics_schema_version"]).fetchone()
        )
        if not version or version[0] is None:
            raise DatabaseUnusable(
                f"{describe(url)} has no Athena schema {schema!r} yet: "
                "run athenactl migrate or start athenad."
            )
        if version[0] > len(available_migrations()):
            raise DatabaseUnusable(
                f"schema {schema!r} has version {version[0]}, newer than this Athena knows; "
                "upgrade Athena."
            )
        yield PostgresReader(conn)
    finally:
        conn.rollback()
        conn.close()
