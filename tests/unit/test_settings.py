"""Where each setting comes from: the flag, then ATHENA_*, then athena.toml, then the
default."""

from __future__ import annotations

import fcntl
import os

import pytest

from athenad.cli.daemon import flag_settings
from athenad.config import DaemonConfig, apply_overrides, load_config
from athenad.daemon import start_settings
from athenad.daemon.start_settings import daemon_settings, write_start_settings
from athenad.errors import ConfigError

# (setting, flag keyword of `athenad start`, flag value, environment value, file value)
WITH_FLAGS = [
    ("workers", "workers", 4, "3", "2"),
    ("max_jobs_per_worker", "max_jobs", 40, "30", "20"),
    ("max_memory_per_worker", "max_memory", "400MB", "300MB", '"200MB"'),
    ("drain_timeout", "drain_timeout", 4.0, "3", "2"),
]
WITHOUT_FLAGS = [
    ("lease", "7", "6"),
    ("cancel_grace", "5", "4"),
    ("synchronous", "FULL", '"OFF"'),
]


def resolve(home, environ, **flags):
    keywords = {"workers": None, "max_jobs": None, "max_memory": None, "drain_timeout": None}
    keywords.update(flags)
    return apply_overrides(load_config(home, environ), flag_settings(**keywords)).daemon


def memory(config: DaemonConfig) -> int:
    return config.memory_limit()


def write_file(home, key: str, value: str) -> None:
    home.config_path.write_text(f"[daemon]\n{key} = {value}\n")


def value_of(config: DaemonConfig, key: str):
    return config.memory_limit() if key == "max_memory_per_worker" else getattr(config, key)


@pytest.mark.parametrize(("key", "flag", "flag_value", "env_value", "file_value"), WITH_FLAGS)
def test_flag_then_environment_then_file_then_default(
    home, key, flag, flag_value, env_value, file_value
):
    default = value_of(DaemonConfig(), key)
    environ = {f"ATHENA_{key.upper()}": env_value}
    expected_env = value_of(DaemonConfig(**{key: type(flag_value)(env_value)}), key)
    expected_file = value_of(DaemonConfig(**{key: type(flag_value)(file_value.strip('"'))}), key)
    expected_flag = value_of(DaemonConfig(**{key: flag_value}), key)

    assert value_of(resolve(home, {}), key) == default
    write_file(home, key, file_value)
    assert value_of(resolve(home, {}), key) == expected_file
    assert value_of(resolve(home, environ), key) == expected_env
    assert value_of(resolve(home, environ, **{flag: flag_value}), key) == expected_flag
    assert len({default, expected_file, expected_env, expected_flag}) == 4


@pytest.mark.parametrize(("key", "env_value", "file_value"), WITHOUT_FLAGS)
def test_environment_then_file_then_default(home, key, env_value, file_value):
    default = getattr(DaemonConfig(), key)
    assert getattr(load_config(home, {}), key, None) is None  # settings live under daemon
    assert getattr(load_config(home, {}).daemon, key) == default
    write_file(home, key, file_value)
    from_file = getattr(load_config(home, {}).daemon, key)
    from_env = getattr(load_config(home, {f"ATHENA_{key.upper()}": env_value}).daemon, key)
    assert from_file != default and from_env != from_file
    assert str(from_env).rstrip("0").rstrip(".") == env_value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ATHENA_LEASE", "soon"),
        ("ATHENA_LEASE", "0"),
        ("ATHENA_WORKERS", "-1"),
        ("ATHENA_DRAIN_TIMEOUT", "nan"),
        ("ATHENA_MAX_MEMORY_PER_WORKER", "lots"),
    ],
)
def test_a_bad_variable_is_one_error_naming_it(home, variable, value):
    with pytest.raises(ConfigError) as caught:
        load_config(home, {variable: value})
    assert caught.value.message.startswith(f"{variable}={value!r} is not valid")


def test_stop_uses_the_daemons_flag_then_environment_then_file(home, monkeypatch):
    monkeypatch.delenv("ATHENA_DRAIN_TIMEOUT", raising=False)
    pid_file = os.open(home.pid_file, os.O_RDWR | os.O_CREAT)  # the "daemon" is this process
    fcntl.flock(pid_file, fcntl.LOCK_EX)
    os.write(pid_file, f"{os.getpid()}\n".encode())
    assert daemon_settings(home).drain_timeout == 30.0
    write_file(home, "drain_timeout", "2")
    assert daemon_settings(home).drain_timeout == 2.0
    monkeypatch.setenv("ATHENA_DRAIN_TIMEOUT", "3")
    assert daemon_settings(home).drain_timeout == 3.0
    write_start_settings(home, {"drain_timeout": 4.0})
    assert daemon_settings(home).drain_timeout == 4.0
    # Settings another daemon left (another pid than the one holding the pid file's lock)
    # are not used.
    monkeypatch.setattr(start_settings.os, "getpid", lambda: 1)
    write_start_settings(home, {"drain_timeout": 4.0})
    assert daemon_settings(home).drain_timeout == 3.0
    os.close(pid_file)
