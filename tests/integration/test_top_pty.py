"""``athenactl top`` under a real pseudo-terminal: frames appear, q and Ctrl-C quit cleanly."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import msgspec
import psutil
import pytest

from athenad.daemon.status import WorkerHeartbeat, heartbeat_path
from athenad.paths import Home, read_pid
from athenad.store.sqlite.queue import JobQueue
from athenad.util.timefmt import utc_now_text

# Like athenad: hold an exclusive lock on the pid file for life, and have one child.
FAKE_SUPERVISOR = """
import fcntl, os, subprocess, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
subprocess.Popen(["sleep", "60"])
time.sleep(60)
"""
TOP = "from athenad.cli.analytics_cmd import top_command; top_command(['--home', {home!r}])"


def spawn_top(home: Home) -> tuple[int, int]:
    """Run top with a pty as its controlling terminal (so Ctrl-C is a real SIGINT)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: size the terminal, then become top
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            env = {**os.environ, "TERM": "xterm-256color"}
            env.pop("COLUMNS", None)
            env.pop("LINES", None)
            code = TOP.format(home=str(home.root))
            os.execve(sys.executable, [sys.executable, "-c", code], env)
        finally:
            os._exit(127)
    return pid, master


def read_until(master: int, needles: list[bytes], timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(needle in seen for needle in needles):
            return seen
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    raise AssertionError(f"did not see {needles} in {seen[-2000:]!r}")


def wait_exit(pid: int, master: int, timeout: float = 10) -> int:
    """Drain output (so the child never blocks writing) until it exits; its exit code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):
                os.read(master, 65536)
    raise AssertionError("top did not exit")


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.fixture
def fake_daemon(home: Home, queue: JobQueue):
    """A pid file naming a process with one child that has a worker heartbeat."""
    job = queue.submit("plan", priority=1)
    queue.submit("explore")
    supervisor = subprocess.Popen(
        [sys.executable, "-c", FAKE_SUPERVISOR, str(home.pid_file)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(supervisor.pid).children() and time.monotonic() < deadline:
            time.sleep(0.02)
        (worker,) = psutil.Process(supervisor.pid).children()
        assert queue.claim("fake-worker", worker.pid).id == job  # the worker runs "plan"
        while read_pid(home) != supervisor.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        beat = WorkerHeartbeat(
            pid=worker.pid,
            started_at=utc_now_text(),
            job=job,
            job_started_at=utc_now_text(),
            jobs_done=7,
            state="busy",
        )
        heartbeat_path(home, worker.pid).write_bytes(msgspec.json.encode(beat))
        yield {"supervisor": supervisor.pid, "worker": worker.pid, "job": job}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=10)


@pytest.mark.timeout(60)
def test_top_draws_frames_and_quits_on_q(home: Home, fake_daemon: dict) -> None:
    pid, master = spawn_top(home)
    try:
        output = read_until(
            master,
            [
                b"workers",
                b"queue",
                str(fake_daemon["worker"]).encode(),
                fake_daemon["job"].encode(),
            ],
        )
        assert f"athenad pid {fake_daemon['supervisor']}".encode() in output
        # cbreak mode is on while top runs: no line buffering, no echo.
        assert not termios.tcgetattr(master)[3] & termios.ICANON
        os.write(master, b"q")
        assert wait_exit(pid, master) == 0
        after = termios.tcgetattr(master)
        assert after[3] & termios.ICANON and after[3] & termios.ECHO  # terminal restored
    finally:
        kill_quietly(pid)
        os.close(master)


@pytest.mark.timeout(60)
def test_top_quits_cleanly_on_ctrl_c(home: Home, queue: JobQueue) -> None:
    pid, master = spawn_top(home)
    try:
        read_until(master, [b"workers", b"queue", b"not running"])
        os.write(master, b"\x03")  # the terminal turns this into SIGINT
        assert wait_exit(pid, master) == 0
        assert termios.tcgetattr(master)[3] & termios.ICANON
    finally:
        kill_quietly(pid)
        os.close(master)
