"""The one place connections to athena.db are made, and write transactions run.

Every connection is in WAL mode with foreign keys on and a busy timeout of several
seconds. Read-then-write work goes through :func:`write_transaction`, which uses
``BEGIN IMMEDIATE`` and retries ``SQLITE_BUSY`` with jitter, so a busy database is
waited on, never shown to a user as a crash.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import apsw

from athenad.errors import DatabaseBusy, DatabaseUnusable, DiskFull, WriteFailed

BUSY_TIMEOUT_MS = 10_000
BUSY_WAIT_S = 0.00075
# Checkpoint every ~40 MB of WAL rather than SQLite's ~4 MB: hot pages are written back
# once per checkpoint instead of again and again. Every connection uses the same figure:
# with a lower one, a submitter's commit was the one to run (and, while the workers'
# readers kept the WAL from restarting, to run again and again) every checkpoint, which
# made one-by-one submits under load twice as slow (p99 3.7 ms for the COMMIT alone).
WAL_AUTOCHECKPOINT_PAGES = 10_000
PROMPT_SPIN_S = 0.0003  # a prompt handler yields the CPU for this long before sleeping
PROMPT_SLEEP_S = (0.0001, 0.002)  # then sleeps from the first, doubling up to the second
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
DISK_FULL_PAUSE_S = 0.5  # before a write refused by a full disk is reported


def busy_handler(timeout_ms: int):
    """A busy handler that waits about a millisecond, with jitter, between tries.

    Measured with two processes claiming and completing jobs: waits of tens of
    microseconds made the processes take turns on every transaction, and each turn
    throws away the other's page cache (6,800 jobs/s); waits of 0.4-1.1 ms let one
    process run several transactions in a row with a warm cache (10,500 jobs/s, and
    14,400 when a completion and the next claim share a transaction). SQLite's own
    handler sleeps 1, 2, 5, 10 ... ms, which idles the lock for too long.
    """
    started = [0.0]

    def handler(prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            started[0] = now
        elif (now - started[0]) * 1000 > timeout_ms:
            return False
        time.sleep(BUSY_WAIT_S * (0.5 + random.random()))
        return True

    return handler


def prompt_busy_handler(timeout_ms: int):
    """A busy handler for callers that write one short transaction now and then.

    A submitter meets the write lock held by workers whose transactions take tens of
    microseconds. SQLite's own handler sleeps 1, 2, 5, 10 ... 100 ms and so waits far
    past the moment the lock is free; the workers' handler (:func:`busy_handler`)
    waits about a millisecond on purpose. This one gives up the CPU (``sched_yield``)
    for the first 0.3 ms, then sleeps 0.1 ms, doubling with jitter up to 2 ms, until
    ``timeout_ms`` has passed.

    Measured with 2 workers draining a backlog: a single submit's p99 went from 7 ms
    to under 1 ms, and with 4 submitters at once the longest submit from ~200 ms to a
    few ms.
    """
    started = [0.0]
    low, high = PROMPT_SLEEP_S

    def handler(prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            started[0] = now
        waited = now - started[0]
        if waited * 1000 > timeout_ms:
            return False
        if waited < PROMPT_SPIN_S:
            os.sched_yield()
        else:
            steps = min(int((waited - PROMPT_SPIN_S) / low).bit_length(), 8)
            time.sleep(min(low * (1 << steps), high) * (0.5 + random.random()))
        return True

    return handler


def disk_is_full(path: Path) -> bool:
    """Whether the filesystem holding ``path`` has no space left for this process."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    # A few blocks may stay free that SQLite still cannot use (a new -shm page).
    return stat.f_bavail * stat.f_frsize < 64 * 1024


def read_only_place(path: Path) -> bool:
    """Whether the filesystem holding ``path`` is mounted read-only."""
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextlib.contextmanager
def open_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors on opening ``path`` into one clear DatabaseUnusable."""
    try:
        yield
    except (apsw.FullError, apsw.IOError) as exc:
        if isinstance(exc, apsw.FullError) or disk_is_full(path):
            raise WriteFailed(
                f"cannot open {path}: the disk holding it is full; free some space and try "
                "again (nothing stored was changed)."
            ) from None
        raise DatabaseUnusable(f"{path} is not a usable SQLite database: {exc}.") from None
    except apsw.CantOpenError as exc:
        if read_only_place(path):
            raise DatabaseUnusable(
                f"cannot open {path}: the filesystem holding it is mounted read-only, and "
                "SQLite needs to write it and its -wal and -shm files."
            ) from None
        raise DatabaseUnusable(
            f"cannot open {path} ({exc}); SQLite needs to write it and its -wal and -shm files, "
            "so check that the directory is writable."
        ) from None
    except (apsw.NotADBError, apsw.CorruptError, apsw.ReadOnlyError) as exc:
        raise DatabaseUnusable(f"{path} is not a usable SQLite database: {exc}.") from None


def connect(
    path: str | Path,
    *,
    synchronous: str = "NORMAL",
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> apsw.Connection:
    """Open athena.db with Athena's pragmas, as it is (migrations.open_database migrates)."""
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_errors(path):
        conn = apsw.Connection(str(path))
        conn.set_busy_handler(prompt_busy_handler(busy_timeout_ms))
        _enter_wal(conn, busy_timeout_ms)
        conn.pragma("synchronous", mode)
        conn.pragma("foreign_keys", True)
        conn.pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
    return conn


def _enter_wal(conn: apsw.Connection, busy_timeout_ms: int) -> None:
    """Put a (possibly new) database in WAL mode.

    The first time, this needs an exclusive lock. When several processes open a new
    database at once, one holding a read lock while asking for it gets SQLITE_BUSY at
    once (SQLite does not wait where waiting could deadlock), so it is retried here,
    with jittered backoff, for as long as the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            conn.pragma("journal_mode", "wal")
            return
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)


@contextlib.contextmanager
def write_transaction(conn: apsw.Connection, *, timeout_s: float = 30.0) -> Iterator[None]:
    """Run the body in ``BEGIN IMMEDIATE`` ... ``COMMIT``; roll back on any exception.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so the statements inside never
    meet SQLITE_BUSY. The BEGIN itself is retried with jittered backoff until
    ``timeout_s`` has passed, then :class:`DatabaseBusy` is raised.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    try:
        # Inside the try: an interrupt (a signal raising into this thread) landing just
        # after BEGIN must still roll back, or the write lock would stay held.
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except apsw.BusyError:
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(
                        f"athena.db stayed locked by another process for {timeout_s:.0f} s."
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
        yield
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, (apsw.FullError, apsw.ReadOnlyError)):
            raise _refused(conn, exc) from None
        raise
    else:
        try:
            conn.execute("COMMIT")
        except (apsw.FullError, apsw.ReadOnlyError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _refused(conn, exc) from None


def _refused(conn: apsw.Connection, exc: apsw.Error) -> WriteFailed:
    if isinstance(exc, apsw.ReadOnlyError):
        why = "it is read-only (the file, or the filesystem holding it); make it writable"
        return WriteFailed(f"{conn.filename} was not changed because {why} and try again.")
    # A disk rarely gets room within milliseconds: the daemon's loops retry a DiskFull
    # as they retry a lock, and this pause keeps them from spinning meanwhile.
    time.sleep(DISK_FULL_PAUSE_S)
    return DiskFull(
        f"{conn.filename} was not changed because the disk holding it is full; "
        "free some space and try again."
    )


def tune_for_hot_writes(conn: apsw.Connection) -> None:
    """For hot write loops (workers): jittered busy waits of about a millisecond."""
    conn.set_busy_handler(busy_handler(BUSY_TIMEOUT_MS))
