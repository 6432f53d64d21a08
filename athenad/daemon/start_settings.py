"""What a running daemon was started with, so commands acting on it (stop) use the same
settings: its flags and environment, recorded in the run directory at start."""

from __future__ import annotations

import os
from typing import Any

import msgspec

from athenad.config import DaemonConfig, apply_overrides, env_name, env_overrides, load_config
from athenad.paths import Home, read_pid
from athenad.util.fsutil import atomic_write

SETTINGS_FILE = "daemon.json"


class StartSettings(msgspec.Struct):
    """What a running daemon was started with, for commands that act on it (stop)."""

    pid: int
    flags: dict[str, Any] = {}
    env: dict[str, Any] = {}


def write_start_settings(home: Home, flags: dict[str, Any]) -> None:
    settings = StartSettings(os.getpid(), flags, env_overrides(os.environ))
    atomic_write(home.run_dir / SETTINGS_FILE, msgspec.json.encode(settings), durable=False)


def daemon_settings(home: Home) -> DaemonConfig:
    """The running daemon's settings, as a command talking to it should use them.

    Precedence as everywhere: a flag the daemon was started with, then the environment
    (this process's, then the daemon's), then ``athena.toml`` as it is now, then the
    default.
    """
    try:
        started = msgspec.json.decode(
            (home.run_dir / SETTINGS_FILE).read_bytes(), type=StartSettings
        )
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        started = StartSettings(0)
    if started.pid != read_pid(home):
        started = StartSettings(0)  # left by a daemon that is gone
    environ = {env_name(key): str(value) for key, value in started.env.items()}
    environ.update(os.environ)
    return apply_overrides(load_config(home, environ), started.flags).daemon
