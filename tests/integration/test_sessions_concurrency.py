"""Several real processes appending to one session file at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from athenad.storage.sessions import SessionManager

ROOT = Path(__file__).resolve().parents[2]

APPENDER = textwrap.dedent(
    """
    import sys
    from athenad.storage.sessions import SessionManager
    sessions_dir, session_id, worker, count = sys.argv[1:5]
    manager = SessionManager(sessions_dir)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for n in range(int(count)):
        manager.add_message(session_id, "assistant", f"{worker}:{n}", metadata={"n": n})
    """
)


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", APPENDER, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.timeout(60)
def test_four_processes_500_messages_each_keep_all_in_one_order(tmp_path):
    sessions_dir = tmp_path / ".athena" / "sessions"
    manager = SessionManager(sessions_dir)
    session_id = manager.create_session("race", git_branch="main")
    procs = [start([str(sessions_dir), session_id, f"w{i}", "500"]) for i in range(4)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.wait(timeout=50) == 0
    finally:
        stop_all(procs)
    messages = manager.get_messages(session_id)
    assert len(messages) == 2000
    assert [m.seq for m in messages] == list(range(1, 2001))
    assert len({m.content for m in messages}) == 2000
    for worker in ("w0", "w1", "w2", "w3"):
        mine = [int(m.content.split(":")[1]) for m in messages if m.content.startswith(worker)]
        assert mine == list(range(500))  # each process's own order is kept
    assert manager.list_sessions()[0].message_count == 2000
    timestamps = [m.timestamp for m in messages]
    assert timestamps == sorted(timestamps)


@pytest.mark.timeout(60)
def test_an_appender_killed_mid_run_leaves_a_readable_session(tmp_path):
    sessions_dir = tmp_path / "sessions"
    manager = SessionManager(sessions_dir)
    session_id = manager.create_session("kill", git_branch="main")
    procs = [start([str(sessions_dir), session_id, f"k{i}", "100000"]) for i in range(2)]
    try:
        for proc in procs:
            proc.stdout.readline()
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + 20
        while manager.path_for(session_id).stat().st_size < 200_000:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(procs[0].pid, signal.SIGKILL)
        time.sleep(0.05)
    finally:
        stop_all(procs)
    messages = manager.get_messages(session_id)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    nxt = manager.add_message(session_id, "user", "after the crash")
    assert nxt.seq == len(messages) + 1
