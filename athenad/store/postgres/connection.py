"""Connections to PostgreSQL: one small pool per process, in Athena's own schema.

Every connection starts with ``search_path`` set to the schema (so the named queries
say ``jobs``, not ``athena.jobs``), the UTC time zone, and autocommit off: each
borrowed connection is one transaction, committed when it is given back.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from athenad.errors import DatabaseUnusable, InvalidInput

DEFAULT_SCHEMA = "athena"
CONNECT_TIMEOUT_S = 5
POOL_MAX_SIZE = 4
# A plain lowercase identifier: it goes into connection options and CREATE SCHEMA.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise InvalidInput(
            f"database schema {schema!r} is not a plain lowercase name "
            "(letters, digits and _, not starting with a digit)."
        )
    return schema


def describe(url: str) -> str:
    """'database "x" on host:port' for messages: never the user's password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database of a malformed URL"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f'PostgreSQL database "{params.get("dbname") or "?"}" on {host}:{port}'


def _password(url: str) -> str | None:
    with contextlib.suppress(psycopg.ProgrammingError):
        value = conninfo_to_dict(url).get("password")
        return str(value) if value else None
    return None


def unusable(url: str, exc: BaseException) -> DatabaseUnusable:
    """One sentence naming host and database, with the server's reason (no password)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    end = "" if reason.endswith(("?", "!")) else "."
    return DatabaseUnusable(f"cannot use {describe(url)}: {reason.rstrip('.')}{end}")


@contextlib.contextmanager
def connection_errors(url: str) -> Iterator[None]:
    """Turn a failure to reach or log in to the server into :class:`DatabaseUnusable`."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.ProgrammingError, PoolTimeout) as exc:
        raise unusable(url, exc) from None


def connect_kwargs(schema: str) -> dict[str, Any]:
    return {
        "autocommit": False,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": f"-c search_path={check_schema(schema)} -c timezone=UTC",
    }


def connect(url: str, schema: str = DEFAULT_SCHEMA) -> psycopg.Connection:
    """One connection outside any pool (migrations, tests)."""
    with connection_errors(url):
        return psycopg.connect(url, **connect_kwargs(schema))


def open_pool(
    url: str, schema: str = DEFAULT_SCHEMA, max_size: int = POOL_MAX_SIZE
) -> ConnectionPool:
    """A small pool for this process; a server that does not answer is DatabaseUnusable."""
    # One direct connection first: a pool only says "timed out", the server says why.
    connect(url, schema).close()
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs=connect_kwargs(schema),
        timeout=30.0,
        open=False,
        name=f"athena-{schema}",
    )
    with connection_errors(url):
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    return pool
