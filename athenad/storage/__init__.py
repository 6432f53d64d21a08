"""Checkpoints and sessions: files under ``.athena/`` when the queue is in SQLite,
tables when it is on PostgreSQL (so any host resumes any job). :func:`open_stores`
picks them for a home's settings; both kinds implement the interfaces of
:mod:`athenad.storage.contract`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.paths import Home
    from athenad.storage.contract import CheckpointStore, SessionStore


class Stores(NamedTuple):
    """The checkpoint store and the session store of one home."""

    checkpoints: CheckpointStore
    sessions: SessionStore
    # A pool opened for these stores alone (not shared with a queue): close() closes it.
    own_pool: Any = None

    def close(self) -> None:
        if self.own_pool is not None:
            self.own_pool.close()


def file_stores(state_dir: str | Path) -> Stores:
    """Checkpoint files and session files under a state directory such as ``.athena``."""
    from athenad.storage.checkpoints import FileCheckpointStore
    from athenad.storage.sessions import SessionManager

    state = Path(state_dir)
    return Stores(FileCheckpointStore(state / "checkpoints"), SessionManager(state / "sessions"))


def postgres_stores(url: str, schema: str, *, pool: Any = None) -> Stores:
    """The tables of ``schema``; on ``pool`` when given (a queue's), else on a new one."""
    from athenad.storage.postgres import postgres_pool
    from athenad.storage.postgres.checkpoints import PostgresCheckpointStore
    from athenad.storage.postgres.sessions import PostgresSessionStore

    own_pool = postgres_pool(url, schema) if pool is None else None
    used: Any = pool if pool is not None else own_pool
    return Stores(
        PostgresCheckpointStore(used, schema), PostgresSessionStore(used, schema), own_pool
    )


def open_stores(home: Home, settings: DaemonConfig, *, queue: Any = None) -> Stores:
    """The stores of a home's backend. A PostgreSQL ``queue`` lends them its pool (one
    pool per process); without one they open their own, closed by ``Stores.close``."""
    from athenad.store.backend import SQLITE, backend_of

    if backend_of(settings) == SQLITE:
        return file_stores(home.state_dir)
    return postgres_stores(
        settings.database_url, settings.database_schema, pool=getattr(queue, "pool", None)
    )
