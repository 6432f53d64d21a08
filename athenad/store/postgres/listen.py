"""One LISTEN connection per daemon: a NOTIFY for this schema wakes the local workers.

Submits and completions on any host send ``NOTIFY athena_jobs, '<schema>'`` once per
transaction that made jobs ready. Workers also poll on their own, so a notification
lost while this connection reconnects delays a job by at most their poll interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

from athenad.store.postgres.connection import connect_kwargs
from athenad.util.logs import LibraryLogger

CHANNEL = "athena_jobs"
RECONNECT_S = 2.0

log = LibraryLogger("athenad.store.postgres.listen")


def listen_for_ready_jobs(
    url: str, schema: str, on_ready: Callable[[], object], stop: threading.Event
) -> None:
    """Call ``on_ready`` for each notification about ``schema`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            with psycopg.connect(url, **{**connect_kwargs(schema), "autocommit": True}) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                log.info("listening_for_jobs", channel=CHANNEL, schema=schema)
                while not stop.is_set():
                    for notice in conn.notifies(timeout=1.0):
                        if notice.payload == schema:
                            on_ready()
        except psycopg.Error as exc:
            log.warning("job_listener_failed", error=" ".join(str(exc).split()))
            stop.wait(RECONNECT_S)
        except Exception:
            log.exception("job_listener_failed")
            time.sleep(RECONNECT_S)


def start_listener(
    url: str, schema: str, on_ready: Callable[[], object]
) -> tuple[threading.Thread, threading.Event]:
    """Run :func:`listen_for_ready_jobs` on a daemon thread; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_ready_jobs,
        args=(url, schema, on_ready, stop),
        name="job-listener",
        daemon=True,
    )
    thread.start()
    return thread, stop
