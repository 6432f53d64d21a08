"""This daemon's record in the database's list of daemons (``athenad status`` shows it).

A thread renews the record every few seconds through its own store, so a database that
is busy or slow to answer never stalls the supervisor's loop; a clean stop deletes it.
A daemon that died leaves its record, which ages out of the list after a few leases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from athenad.store.contract import JobStore
from athenad.util.logs import LibraryLogger

BEAT_EVERY_S = 5.0
STOP_WAIT_S = 5.0

log = LibraryLogger("athenad.daemon.presence")


def beat_interval(lease_s: float) -> float:
    """How often a daemon renews its record: at least twice per lease."""
    return min(BEAT_EVERY_S, lease_s / 2)


class DaemonPresence:
    """Records daemon ``pid`` on ``host`` with ``workers()`` workers until stopped."""

    def __init__(
        self,
        open_store: Callable[[], JobStore],
        *,
        host: str,
        pid: int,
        workers: Callable[[], int],
        interval: float,
    ) -> None:
        self.open_store = open_store
        self.host = host
        self.pid = pid
        self.workers = workers
        self.interval = interval
        self.stopped = threading.Event()
        self.due = threading.Event()  # renew now, not at the next interval
        self.thread = threading.Thread(target=self._run, name="daemon-presence", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def renew_soon(self) -> None:
        """Renew the record now: the number of workers changed (all of them are up)."""
        self.due.set()

    def stop(self) -> None:
        """Delete the record (from the thread, on its own store) and wait a little for it."""
        self.stopped.set()
        self.due.set()
        if self.thread.is_alive():
            self.thread.join(timeout=STOP_WAIT_S)

    def _run(self) -> None:
        store: JobStore | None = None
        while True:
            try:
                store = store or self.open_store()
                store.record_daemon(self.host, self.pid, self.workers())
            except Exception as exc:  # the next beat tries again; the lease keeps jobs safe
                log.warning("daemon_record_failed", error=" ".join(str(exc).split()))
            self.due.wait(self.interval)
            self.due.clear()
            if self.stopped.is_set():
                break
        if store is None:
            return
        try:
            store.forget_daemon(self.host, self.pid)
        except Exception as exc:
            log.warning("daemon_record_not_deleted", error=" ".join(str(exc).split()))
        finally:
            store.close()
