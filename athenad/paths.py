"""Where a home keeps its files.

A home is a directory (``--home``, else ``ATHENA_HOME``, else the current directory)
holding ``athena.db``, ``.athena/`` and an optional ``athena.toml``::

    home/
      athena.db                 the job queue
      athena.toml               optional configuration
      .athena/
        sessions/               conversations, one JSON Lines file each, + index.json
        checkpoints/            job-<id>-iter<N>.json
        run/                    worker wake-up sockets and heartbeat files
        athenad.pid             the running supervisor's pid
        athenad.log             the daemon's structlog JSON lines
        agents.log              what agents print (when the daemon runs detached)
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "ATHENA_HOME"
# Modes of what Athena keeps under .athena/: only its owner may read it.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private(path: Path, mode: int) -> None:
    """Take group and other permissions off ``path`` (a file or folder we own)."""
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, mode)
    except PermissionError:
        pass  # another user's home, read through: leave it as it is


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Home:
        """The home from the argument, else ATHENA_HOME, else the current directory."""
        chosen = home if home not in (None, "") else os.environ.get(HOME_ENV) or "."
        return cls(Path(chosen).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.root / "athena.db"

    @property
    def config_path(self) -> Path:
        return self.root / "athena.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / ".athena"

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "athenad.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "athenad.log"

    @property
    def agent_output_file(self) -> Path:
        """What agents print, when the daemon runs detached."""
        return self.state_dir / "agents.log"

    def ensure(self) -> Home:
        """Create the home's directories; returns self. ``.athena/`` and its folders are
        private (0700): they hold payloads, conversations and logs."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.state_dir, self.sessions_dir, self.checkpoints_dir, self.run_dir):
            folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            private(folder, PRIVATE_DIR)
        return self

    def ensure_private_files(self) -> None:
        """Create the daemon's own files (pid file, log, agents' output) as 0600 before the
        processes that append to them open them."""
        for path in (self.pid_file, self.log_file, self.agent_output_file):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE))
            private(path, PRIVATE_FILE)


def read_pid(home: Home) -> int | None:
    """The running supervisor's pid, or None.

    The supervisor holds an exclusive lock on its pid file for its whole life, so a
    pid file nobody locks is stale, whatever pid it names.
    """
    try:
        fd = os.open(home.pid_file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").split()
            named = int(text[0]) if text and text[0].isdigit() else None
            # A torn or damaged file names no pid, or the wrong one: the kernel knows
            # who holds the lock, and a command must never signal a stranger.
            holders = flock_holders(fd)
            if holders and named not in holders:
                return min(holders)
            return named
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def flock_holders(fd: int) -> set[int]:
    """The pids holding a flock on the open file ``fd``, from /proc/locks (empty where
    there is no /proc)."""
    stat = os.fstat(fd)
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = set()
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 4242 00:2c:1234 0 EOF"; "->" marks a waiter.
                if fields[1:2] == ["FLOCK"] and fields[5:6] == [inode] and fields[4].isdigit():
                    holders.add(int(fields[4]))
    except OSError:
        return set()
    return holders
