"""All of Athena's SQLite SQL, loaded once from named blocks in sql/queries.sql.

A block starts with a line ``-- name: some_query`` and runs to the next one.
Call sites say ``QUERIES["claim_job"]``.
"""

from __future__ import annotations

from pathlib import Path

from athenad.store.named_sql import load_queries, parse_queries

__all__ = ["QUERIES", "SQL_DIR", "parse_queries", "read_sql"]

SQL_DIR = Path(__file__).parent / "sql"


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


QUERIES: dict[str, str] = load_queries(SQL_DIR / "queries.sql")
