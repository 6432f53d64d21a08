"""Checkpoints and sessions in PostgreSQL tables, for homes whose queue is there."""

from __future__ import annotations

from typing import Any

from athenad.errors import ConfigError


def postgres_pool(url: str, schema: str) -> Any:
    """A pool on ``schema`` of the server, its tables created or upgraded."""
    try:
        from athenad.store.postgres.connection import open_pool
        from athenad.store.postgres.migrations import migrate
    except ImportError:
        raise ConfigError(
            "database_url names a PostgreSQL server, but psycopg is not installed: "
            "install athena[postgres]."
        ) from None
    pool = open_pool(url, schema)
    try:
        with pool.connection() as conn:
            migrate(conn, schema)
    except BaseException:
        pool.close()
        raise
    return pool
