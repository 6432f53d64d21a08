"""The daemon's log file, appended to by the supervisor and every worker, rotated by size.

Each process opens the file itself (``O_APPEND``: a line is one ``write``, so lines
of several processes never mix) and rotates it itself, so no process relays another's
lines and a stuck or dead supervisor never blocks a worker's logging:

- a writer that finds the next line would take the file past ``log_max_bytes`` (it
  looks each time it has written 1/128 of that itself) takes an exclusive lock on
  ``<log>.lock`` and, if the file at the path is still the one it writes to (no other
  process rotated it meanwhile), renames ``<log>.N`` to ``<log>.N+1`` (dropping those
  past ``log_backups``) and ``<log>`` to ``<log>.1``; then it opens the path anew. A
  file passes the cap by at most 1/128 of it per writer;
- a writer whose file is no longer at the path (rotated by another process, or renamed
  by logrotate) opens the path again: at its next line once it rotated, or within
  a second after an outside rename. SIGUSR1 makes the supervisor reopen at once.

A line written just as another process rotates may land at the end of ``<log>.1``;
no line is lost or split.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from athenad.config import DaemonConfig
    from athenad.paths import Home

RECHECK_PATH_S = 1.0  # how often a writer looks whether its file was renamed away
# A writer looks at the file's size after writing this share of the cap itself: each
# line costs no extra system call, and the file passes the cap by at most that much
# per writer.
SIZE_CHECK_SHARE = 128


class RotatingLog:
    """A text stream for structlog: whole lines appended to ``path``, rotated by size.

    ``stdio``: fds 1 and 2 follow the current file too (the detached supervisor's
    stdout and stderr), so a traceback lands in the log, not in a rotated-away file.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int, *, stdio: bool = False) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.stdio = stdio
        self.lock = threading.Lock()
        self.buffer = ""
        self.fd = -1
        self.inode = (0, 0)
        self.checked = 0.0
        self.check_every = max(max_bytes // SIZE_CHECK_SHARE, 1)
        self.unchecked = self.check_every  # bytes written since the last look at the size
        self.torn = False  # a write failed part-way: the file ends inside a line
        self._open()

    # ---- the stream structlog writes to -------------------------------------------------

    def write(self, text: str) -> int:
        with self.lock:
            if text.endswith("\n"):  # print() writes the line, then its newline
                data = (self.buffer + text).encode() if self.buffer else text.encode()
                self.buffer = ""
                self._append_or_drop(data)
            else:
                self.buffer += text
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.buffer:
                data, self.buffer = self.buffer.encode(), ""
                self._append_or_drop(data)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    # ---- the file -------------------------------------------------------------------------

    def reopen(self) -> None:
        """Open the path anew (SIGUSR1 after logrotate renamed the file)."""
        with self.lock:
            self._open()

    def _open(self) -> None:
        """(Re)open the path, creating it; with ``stdio``, move fds 1 and 2 over too."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if self.stdio:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        old, self.fd = self.fd, fd
        stat = os.fstat(fd)
        self.inode = (stat.st_dev, stat.st_ino)
        self.checked = time.monotonic()
        if old >= 0:
            os.close(old)

    def _append_or_drop(self, data: bytes) -> None:
        # A rotation the disk refuses (full, read-only) loses this line, nothing more.
        with contextlib.suppress(OSError):
            self._append(data)

    def _append(self, data: bytes) -> None:
        now = time.monotonic()
        if now - self.checked >= RECHECK_PATH_S:
            self.checked = now
            if not self._at_path():
                self._open()  # renamed by logrotate (or rotated by another process)
        if self.max_bytes:
            self.unchecked += len(data)
            if self.unchecked >= self.check_every:
                self.unchecked = 0
                size = os.fstat(self.fd).st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
        if self.torn:
            data = b"\n" + data  # end the line a failed write cut short
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            self.torn = False
        except OSError:
            # A full disk: the line is dropped rather than stopping whoever logged it
            # (a worker saving a checkpoint, the supervisor's loop). A line cut short
            # is ended by the next one that can be written.
            self.torn = self.torn or len(view) < len(data)

    def _at_path(self) -> bool:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) == self.inode

    def _rotate(self) -> None:
        """Shift the backups and start a new file, unless another process just did."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._at_path():
                self._shift_backups()
            self._open()
        finally:
            os.close(lock)  # closing drops the lock

    def _shift_backups(self) -> None:
        base = str(self.path)
        for stale in self.path.parent.glob(f"{self.path.name}.*"):
            suffix = stale.name[len(self.path.name) + 1 :]
            # Backups beyond the count (log_backups was lowered) go too.
            if suffix.isdigit() and int(suffix) > self.backups:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        if self.backups == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base)
            return
        for n in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{base}.{n}", f"{base}.{n + 1}")
        os.rename(base, f"{base}.1")


def log_limits(settings: DaemonConfig) -> tuple[int, int]:
    """(log_max_bytes, log_backups) of the settings."""
    from athenad.config import parse_size

    return parse_size(settings.log_max_bytes), settings.log_backups


_daemon_log: RotatingLog | None = None


def log_to_file(home: Home, settings: DaemonConfig) -> RotatingLog:
    """Send the detached supervisor's log events (and its stdout and stderr) to the
    home's log file, rotated by size; :func:`reopen_log` opens it anew."""
    from athenad.util.logs import configure_logging

    global _daemon_log
    _daemon_log = RotatingLog(home.log_file, *log_limits(settings), stdio=True)
    configure_logging(cast(TextIO, _daemon_log))
    return _daemon_log


def reopen_log() -> None:
    """Open the log file anew (SIGUSR1, after logrotate renamed it); else nothing."""
    if _daemon_log is not None:
        import structlog

        _daemon_log.reopen()
        structlog.get_logger().info("log_reopened", path=str(_daemon_log.path))


def worker_log_stream(log_file: str | None, home: str, overrides: str) -> TextIO:
    """A worker's log stream: the daemon's log file, rotated by size, when the
    supervisor names one; else a copy of stderr (before agents' output takes it over).

    The limits come from the home's settings; settings that do not load leave the
    defaults (the worker's boot then reports what is wrong).
    """
    if log_file is None:
        return os.fdopen(os.dup(2), "w", buffering=1)
    import msgspec

    from athenad.config import DaemonConfig, apply_overrides, load_config
    from athenad.paths import Home

    settings: Any
    try:
        settings = apply_overrides(load_config(Home.resolve(home)), msgspec.json.decode(overrides))
        settings = settings.daemon
    except Exception:
        settings = DaemonConfig()
    return cast(TextIO, RotatingLog(Path(log_file), *log_limits(settings)))
