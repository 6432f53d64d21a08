"""Checkpoints and sessions in PostgreSQL tables, for homes whose queue is there."""

from __future__ import annotations

from typing import Any

from athenad.store.backend import psycopg_missing


def postgres_pool(url: str, schema: str) -> Any:
    """A pool on ``schema`` of the server, its tables created or upgraded."""
    try:
        from athenad.store.postgres.connection import open_pool
        from athenad.store.postgres.migrations import migrate
    except ImportError:
        raise psycopg_missing() from None
    pool = open_pool(url, schema)
    try:
        with pool.connection() as conn:
            migrate(conn, schema)
    except BaseException:
        pool.close()
        raise
    return pool
