"""Settings: the command-line flag, then the environment, then ``athena.toml``, then
the default. Each ``[daemon]`` key also comes from ``ATHENA_<KEY>`` (``ATHENA_LEASE=30``).

The optional ``athena.toml`` of a home:

[daemon]
workers = 4                   # default: the CPU count
max_jobs_per_worker = 0       # recycle a worker after this many jobs (0 = never)
max_memory_per_worker = "1GB" # recycle a worker above this RSS (0 = never)
drain_timeout = 30            # seconds `athenad stop` lets jobs finish
cancel_grace = 10             # seconds a cancelled job may take to stop
lease = 60                    # seconds a claim lasts without a heartbeat
synchronous = "NORMAL"        # or "FULL": fsync on every commit
host = "build-2"              # this daemon's name in worker ids (default: the hostname)

[agents]
planner = "my_agents:plan"    # name = "module:object"; modules beside athena.toml import
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from athenad.errors import ConfigError
from athenad.paths import Home

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: int | str) -> int:
    """Bytes from 123, '512MB', '1GiB', '2g'."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"{value!r} is not a size; use bytes or a unit like 512MB or 1GB.")
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _UNITS[unit])


MAX_WORKERS = 1024
MAX_SECONDS = 365 * 86400.0
# Finite, non-negative, at most a year (msgspec refuses NaN against these bounds).
Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]


class DaemonConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings of the supervisor and its workers."""

    workers: Annotated[int, Meta(ge=0, le=MAX_WORKERS)] = 0
    max_jobs_per_worker: Annotated[int, Meta(ge=0)] = 0
    max_memory_per_worker: Annotated[int, Meta(ge=0)] | str = 0
    drain_timeout: Seconds = 30.0
    cancel_grace: Seconds = 10.0
    lease: Annotated[float, Meta(gt=0, le=MAX_SECONDS)] = 60.0
    synchronous: str = "NORMAL"
    # Empty: SQLite at <home>/athena.db. "postgresql://...": that server, in its schema.
    database_url: str = ""
    database_schema: Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "athena"
    poll_interval: Annotated[float, Meta(gt=0, le=3600)] = 2.0
    # Names this daemon in worker ids and the hosts list; two daemons on one machine
    # may act as two hosts.
    host: Annotated[str, Meta(pattern=r"^\S{1,255}$")] = msgspec.field(
        default_factory=lambda: os.uname().nodename
    )

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def memory_limit(self) -> int:
        return parse_size(self.max_memory_per_worker)


class Config(msgspec.Struct, kw_only=True):
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    agents: dict[str, str] = msgspec.field(default_factory=dict)


ENV_PREFIX = "ATHENA_"


def env_name(key: str) -> str:
    """The environment variable of a ``[daemon]`` key: lease -> ATHENA_LEASE."""
    return ENV_PREFIX + key.upper()


def load_config(home: Home, environ: Mapping[str, str] | None = None) -> Config:
    """``athena.toml`` (missing = defaults) with ``ATHENA_*`` variables laid over it.

    A bad file or variable is a ConfigError naming it.
    """
    config = _read_file(home)
    overrides = env_overrides(os.environ if environ is None else environ)
    if overrides:
        config = msgspec.structs.replace(
            config, daemon=msgspec.structs.replace(config.daemon, **overrides)
        )
    config.daemon.memory_limit()
    if config.daemon.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError("synchronous must be NORMAL or FULL.")
    return config


def _read_file(home: Home) -> Config:
    try:
        raw: dict[str, Any] = tomllib.loads(home.config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{home.config_path} is not valid TOML: {exc}.") from None
    _lift_database_keys(raw, home)
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{home.config_path}: {exc}.") from None
    for name, target in config.agents.items():
        if ":" not in target:
            raise ConfigError(
                f'{home.config_path}: agent {name!r} must be "module:object", not {target!r}.'
            )
    if config.daemon.synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"{home.config_path}: synchronous must be NORMAL or FULL.")
    return config


DATABASE_KEYS = ("database_url", "database_schema", "poll_interval")


def _lift_database_keys(raw: dict[str, Any], home: Home) -> None:
    """The database settings may stand at the top of athena.toml, or under [daemon]."""
    daemon = raw.setdefault("daemon", {})
    if not isinstance(daemon, dict):
        return  # msgspec names the mistake
    for key in DATABASE_KEYS:
        if key in raw:
            if key in daemon and daemon[key] != raw[key]:
                raise ConfigError(
                    f"{home.config_path}: {key} is set both at the top and under [daemon]."
                )
            daemon[key] = raw.pop(key)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``[daemon]`` settings set in the environment, checked and typed."""
    found: dict[str, Any] = {}
    for key in DaemonConfig.__struct_fields__:
        name = env_name(key)
        text = environ.get(name, "").strip()
        if not text:
            continue
        try:
            typed = msgspec.convert({key: text}, DaemonConfig, strict=False)
            typed.memory_limit()
        except (msgspec.ValidationError, ConfigError) as exc:
            raise ConfigError(f"{name}={text!r} is not valid: {str(exc).rstrip('.')}.") from None
        found[key] = getattr(typed, key)
    return found


def apply_overrides(config: Config, overrides: dict[str, object]) -> Config:
    """The config with command-line settings (``[daemon]`` keys) laid over it."""
    if not overrides:
        return config
    daemon = msgspec.structs.replace(config.daemon, **overrides)
    daemon.memory_limit()
    return msgspec.structs.replace(config, daemon=daemon)
