"""Shared fixtures: a scratch home, the CLIs run as a user runs them, a live daemon."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from athenad.paths import Home
from athenad.store.sqlite.queue import JobQueue

# Keep hypothesis quick and deterministic on shared CI machines.
try:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, derandomize=True, max_examples=40)
    settings.register_profile("dev", deadline=None, max_examples=60)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")
except ImportError:  # pragma: no cover
    pass


# Tests under these folders start real processes (daemons, workers, CLIs): `--fast`
# (pytest -m "not slow") leaves them out of a quick loop.
# Counts of a queue with no job in any unfinished status.
NOTHING_WAITING = dict.fromkeys(
    ("scheduled", "blocked", "pending", "running", "awaiting_approval", "waiting"), 0
)

SLOW_FOLDERS = ("acceptance", "integration", "chaos")


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """A command run in-process configures structlog for the whole process (and its
    loggers cache that set-up on first use): each test starts from the defaults, so
    ``capture_logs`` sees what the next test logs."""
    yield
    if "structlog" in sys.modules:
        sys.modules["structlog"].reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"/tests/{folder}/" in str(item.path) for folder in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)


# ---- PostgreSQL ------------------------------------------------------------------------
# Tests on PostgreSQL use ATHENA_TEST_DATABASE_URL and a fresh schema each. Without a
# server they skip with one reason, except in CI (CI=true), where that is a failure.

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def database_url_for_tests() -> str:
    return os.environ.get("ATHENA_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def _server_problem(url: str) -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    from athenad.store.postgres.connection import describe

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"{describe(url)} does not answer ({' '.join(str(exc).split())})"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = database_url_for_tests()
    problem = _server_problem(url)
    if problem is not None:
        message = f"PostgreSQL tests need a server: {problem}; set ATHENA_TEST_DATABASE_URL."
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    schema = f"athena_test_{secrets.token_hex(6)}"
    yield schema
    drop_schema(postgres_url, schema)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path / "home").ensure()


@pytest.fixture
def queue(home: Home):
    with JobQueue(home.db_path, run_dir=home.run_dir) as q:
        yield q


def cli(
    tool: str,
    *args: str,
    home: Home | None = None,
    input: str | None = None,
    timeout: float = 60,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run ``athenad``/``athenactl`` in a subprocess the way a user would."""
    module = {"athenad": "athenad.cli.daemon", "athenactl": "athenad.cli.ctl"}[tool]
    command = [sys.executable, "-m", module, *args]
    if home is not None:
        command += ["--home", str(home.root)]
    return subprocess.run(
        command,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cli_json(tool: str, *args: str, home: Home | None = None):
    result = cli(tool, *args, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Daemon:
    """A foreground ``athenad start`` in its own process group, killed at teardown."""

    def __init__(
        self, home: Home, workers: int = 2, extra: tuple[str, ...] = (), env: dict | None = None
    ) -> None:
        self.home = home
        self.log = open(home.state_dir / "test-daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "athenad.cli.daemon",
                "start",
                "--foreground",
                "--home",
                str(home.root),
                "--workers",
                str(workers),
                *extra,
            ],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.wait_ready(workers)

    def wait_ready(self, workers: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"athenad exited with {self.proc.returncode}: {self.log_text()}"
                )
            if len(self.worker_pids()) >= workers:
                return
            time.sleep(0.05)
        raise AssertionError(f"workers did not start: {self.log_text()}")

    def worker_pids(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.home.run_dir.glob("worker-*.json"))

    def log_text(self) -> str:
        return (self.home.state_dir / "test-daemon.log").read_text(errors="replace")[-4000:]

    def kill_all(self) -> None:
        """SIGKILL the supervisor and every process under it (workers have own groups)."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self.kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def daemon_factory(home: Home):
    started: list[Daemon] = []

    def start(**kwargs) -> Daemon:
        daemon = Daemon(home, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 20, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def submit(home: Home, *args: str) -> str:
    """``athenactl submit ...`` as a user runs it; returns the new job id."""
    result = cli("athenactl", "submit", *args, home=home)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def job_row(home: Home, job_id: str) -> dict:
    with JobQueue(home.db_path) as queue:
        return queue.get(job_id)


def wait_status(home: Home, job_id: str, statuses, timeout: float = 30) -> dict:
    """Wait until the job's status is one of ``statuses``; returns its row."""
    with JobQueue(home.db_path) as queue:
        return wait_until(
            lambda: queue.get(job_id)["status"] in statuses and queue.get(job_id),
            timeout=timeout,
            what=f"job {job_id} to be {statuses}",
        )
