"""Which database holds the queue: SQLite in the home, unless ``database_url`` names a
PostgreSQL server (``postgresql://user@host:5432/db``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from athenad.errors import ConfigError

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.paths import Home
    from athenad.store.contract import JobStore

SQLITE = "sqlite"
POSTGRES = "postgres"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def backend_of(settings: DaemonConfig) -> str:
    """'sqlite' or 'postgres'; any other URL is one ConfigError that shows no password."""
    url = settings.database_url.strip()
    if not url:
        return SQLITE
    if url.startswith(POSTGRES_SCHEMES):
        return POSTGRES
    scheme = url.split(":", 1)[0] if ":" in url else url[:20]
    raise ConfigError(
        f"database_url must be a postgresql:// URL (or unset, for SQLite in the home), "
        f"not one starting with {scheme!r}."
    )


def describe_database(home: Home, settings: DaemonConfig) -> str:
    """Where the queue lives, for messages: a path, or host and database (no password)."""
    if backend_of(settings) == SQLITE:
        return str(home.db_path)
    from athenad.store.postgres.connection import describe

    return f"{describe(settings.database_url)}, schema {settings.database_schema}"


def open_store(home: Home, settings: DaemonConfig, **sqlite_options: Any) -> JobStore:
    """The queue of this home's settings, its schema created or upgraded.

    ``sqlite_options`` (``synchronous``, ``fast_writes``, ``busy_timeout_ms``) tune the
    SQLite connection and mean nothing to a server.
    """
    if backend_of(settings) == SQLITE:
        from athenad.store.sqlite.queue import JobQueue

        return JobQueue(home.db_path, run_dir=home.run_dir, **sqlite_options)
    return open_postgres_queue(settings.database_url, settings.database_schema)


def psycopg_missing() -> ConfigError:
    """The error of a PostgreSQL URL without the driver installed."""
    return ConfigError(
        "database_url names a PostgreSQL server, but psycopg is not installed: "
        "install athena[postgres]."
    )


def open_postgres_queue(url: str, schema: str) -> JobStore:
    """The PostgreSQL queue in ``schema``; a job submitted with a session needs the
    session in that schema's sessions table (where every host finds it)."""
    try:
        from athenad.store.postgres.queue import PostgresJobQueue
    except ImportError:
        raise psycopg_missing() from None
    from athenad.storage.postgres.sessions import PostgresSessionStore

    queue = PostgresJobQueue(url, schema=schema)
    queue.session_exists = PostgresSessionStore(queue.pool, schema).exists
    return queue


def migrate_database(home: Home, settings: DaemonConfig) -> int:
    """Create or upgrade the schema of the home's database; returns its version."""
    if backend_of(settings) == SQLITE:
        from athenad.store.sqlite.migrations import current_version, open_database

        database = open_database(home.db_path)
        try:
            return current_version(database)
        finally:
            database.close()
    from athenad.store.postgres.connection import connect
    from athenad.store.postgres.migrations import migrate

    with connect(settings.database_url, settings.database_schema) as server:
        return migrate(server, settings.database_schema)


def has_database(home: Home, settings: DaemonConfig) -> bool:
    """Whether there is a queue to read: athena.db exists, or a server is named."""
    return backend_of(settings) == POSTGRES or home.db_path.exists()
