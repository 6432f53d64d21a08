"""Numbered schema migrations, recorded in PRAGMA user_version.

``sql/schema.sql`` is the truth; ``sql/migrations/NNNN_name.sql`` build it step by
step. Each migration runs in one transaction together with its version bump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw

from athenad.errors import AthenaError
from athenad.store.named_sql import numbered_migrations
from athenad.store.sqlite.connection import connect, open_errors, write_transaction
from athenad.store.sqlite.queries import SQL_DIR, read_sql


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, file name, sql) for every migration, in order."""
    return numbered_migrations(SQL_DIR / "migrations")


def current_version(conn: apsw.Connection) -> int:
    return int(conn.pragma("user_version"))


def latest_version() -> int:
    return len(available_migrations())


def migrate(conn: apsw.Connection) -> int:
    """Apply every migration the database lacks; return the resulting version."""
    migrations = available_migrations()
    if current_version(conn) >= len(migrations):
        return _check_not_newer(conn, len(migrations))
    for version, _name, sql in migrations:
        with write_transaction(conn):
            # Re-read inside the lock: another process may have migrated meanwhile.
            if current_version(conn) >= version:
                continue
            conn.execute(sql)
            if "writable_schema" in sql:
                _announce_schema_rewrite(conn)
            conn.execute(f"PRAGMA user_version = {version}")
    return current_version(conn)


def _announce_schema_rewrite(conn: apsw.Connection) -> None:
    """After a migration rewrote CREATE text: make every connection re-read the schema."""
    version = int(conn.pragma("schema_version"))
    conn.pragma("writable_schema", True)
    try:
        conn.pragma("schema_version", version + 1)
    finally:
        conn.pragma("writable_schema", False)


def _check_not_newer(conn: apsw.Connection, latest: int) -> int:
    version = current_version(conn)
    if version > latest:
        raise AthenaError(
            f"athena.db has schema version {version}, newer than this Athena knows ({latest}); "
            "upgrade Athena."
        )
    return version


def open_database(path: str | Path, **options: Any) -> apsw.Connection:
    """Open athena.db (``connect``'s options), creating or upgrading its schema."""
    conn = connect(path, **options)
    try:
        with open_errors(Path(path)):
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def schema_sql() -> str:
    """The schema as it stands after every migration."""
    return read_sql("schema.sql")
