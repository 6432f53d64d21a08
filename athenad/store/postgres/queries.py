"""The PostgreSQL backend's SQL, loaded once from named blocks in sql/queries.sql."""

from __future__ import annotations

from pathlib import Path

from athenad.store.named_sql import load_queries

SQL_DIR = Path(__file__).parent / "sql"

QUERIES: dict[str, str] = load_queries(SQL_DIR / "queries.sql")


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")
