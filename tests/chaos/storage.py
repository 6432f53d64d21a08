"""What the storage-fault tests share: a small filesystem the test mounts, a detached
daemon that is always stopped, and the check that a command failed with one sentence."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from athenad.daemon.rescue import is_worker_of
from athenad.paths import Home, read_pid
from tests.conftest import cli

AGENTS_TOML = '[agents]\nsaver = "storage_agents:saver"\n'


def one_sentence(result: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line a failed command printed; fails the test otherwise."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode != 0, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def no_traceback(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    if result.returncode != 0:
        one_sentence(result)
    return result


@contextlib.contextmanager
def small_disk(where: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skips when it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        unmount(where)


def unmount(where: Path) -> None:
    for _ in range(20):
        done = subprocess.run(["umount", str(where)], capture_output=True, timeout=10)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until the disk refuses; returns the file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def prepare_home(root: Path, toml: str = AGENTS_TOML) -> Home:
    home = Home.resolve(root).ensure()
    shutil.copy(Path(__file__).with_name("storage_agents.py"), home.root / "storage_agents.py")
    home.config_path.write_text(toml)
    return home


@contextlib.contextmanager
def detached_daemon(home: Home, workers: int = 1) -> Iterator[int]:
    """``athenad start`` as a user runs it (detached); stopped, and killed if need be."""
    started = cli("athenad", "start", "--workers", str(workers), home=home, timeout=60)
    assert started.returncode == 0, started.stderr + started.stdout
    pid = int(started.stdout.strip())
    try:
        yield pid
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            cli("athenad", "stop", "--timeout", "5", home=home, timeout=30)
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid == pid or is_worker_of(home, process.pid):
                    process.kill()
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout=10)


def daemon_alive(home: Home, pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and read_pid(home) == pid
    return False


def integrity(db_path: Path) -> str:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def digest(*paths: Path) -> dict[str, str | None]:
    """Each file's sha256 (None when missing): to show a command changed nothing."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        for path in paths
    }
