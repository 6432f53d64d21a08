"""Writing athena.db's WAL back into the database on a thread of the supervisor.

SQLite copies the WAL back (a checkpoint) in whichever connection's commit crosses
``wal_autocheckpoint`` pages: that commit, a user's submit or a worker's completion,
then also writes and syncs tens of megabytes. A PASSIVE checkpoint here, every
``EVERY_S`` while the daemon runs, does that work off their path (it never blocks a
writer or a reader), and keeps the WAL short, so it restarts from its beginning and
stays in the page cache. Without a daemon the connections' own autocheckpoint still
bounds the WAL.
"""

from __future__ import annotations

import threading

from athenad.paths import Home
from athenad.util.logs import LibraryLogger

EVERY_S = 0.5

log = LibraryLogger("athenad.daemon.checkpointer")


class Checkpointer:
    """Checkpoints a home's athena.db every ``EVERY_S`` until stopped."""

    def __init__(self, home: Home, synchronous: str) -> None:
        self.home = home
        self.synchronous = synchronous
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        from athenad.store.sqlite.connection import connect

        conn = connect(self.home.db_path, synchronous=self.synchronous)
        try:
            while not self.stopped.wait(EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # a full disk, say: the next round tries again
                    log.warning("checkpoint_failed", error=str(exc))
        finally:
            conn.close()


def start_checkpointer(home: Home, synchronous: str) -> Checkpointer:
    checkpointer = Checkpointer(home, synchronous)
    checkpointer.start()
    return checkpointer
