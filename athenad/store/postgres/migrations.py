"""Numbered schema migrations, recorded in the schema's ``schema_migrations`` table.

``sql/schema.sql`` is the truth; ``sql/migrations/NNNN_name.sql`` build it step by
step. Each file runs in one transaction together with its record, under an advisory
lock, so two daemons starting at once never migrate the same schema twice.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from athenad.errors import AthenaError
from athenad.store.named_sql import numbered_migrations
from athenad.store.postgres.connection import check_schema
from athenad.store.postgres.queries import QUERIES as Q
from athenad.store.postgres.queries import SQL_DIR, read_sql


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every migration, in order."""
    return numbered_migrations(SQL_DIR / "migrations")


def _prepare(conn: psycopg.Connection, schema: str) -> set[int]:
    """Inside a transaction: hold the lock, make sure schema and table exist, list versions."""
    conn.execute(Q["migration_lock"], {"schema": schema})
    conn.execute(sql.SQL(Q["create_schema"]).format(schema=sql.Identifier(schema)))
    conn.execute(Q["create_migrations_table"])
    return {row[0] for row in conn.execute(Q["applied_migrations"])}


def migrate(conn: psycopg.Connection, schema: str) -> int:
    """Apply every migration the schema lacks; return the resulting version.

    ``conn`` must have ``search_path`` set to ``schema`` and autocommit off.
    """
    check_schema(schema)
    migrations = available_migrations()
    for version, name, body in migrations:
        with conn.transaction():
            # Re-read under the lock: another process may have migrated meanwhile.
            if version in _prepare(conn, schema):
                continue
            conn.execute(body)
            conn.execute(Q["record_migration"], {"version": version, "name": name})
    with conn.transaction():
        applied = _prepare(conn, schema)
    newest = max(applied, default=0)
    if newest > len(migrations):
        raise AthenaError(
            f"schema {schema!r} has version {newest}, newer than this Athena knows "
            f"({len(migrations)}); upgrade Athena."
        )
    conn.commit()
    return newest


def schema_sql() -> str:
    """The schema as it stands after every migration."""
    return read_sql("schema.sql")
