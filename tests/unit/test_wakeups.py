"""Whoever makes a job ready wakes the idle workers at once."""

from __future__ import annotations

import os
import socket

import pytest

from athenad.store.sqlite import queue as sqlite_queue
from athenad.util import wake


@pytest.fixture
def wakeups(monkeypatch):
    calls: list = []
    monkeypatch.setattr(
        sqlite_queue, "wake_idle", lambda run_dir, count=1: calls.append((run_dir, count))
    )
    return calls


def test_completing_wakes_others_for_a_released_job_this_worker_does_not_take(queue, wakeups):
    waiting = queue.submit("older")  # ready before the child: claimed next, by id
    parent = queue.submit("parent", priority=1)
    child = queue.submit("child", after=[parent])
    job = queue.claim("w1")
    assert job.id == parent
    wakeups.clear()
    released, claimed = queue.complete_and_claim(parent, job.fence, None, "w1")
    assert released == [child] and claimed.id == waiting
    assert wakeups, "the released child waits for the next idle poll"


def test_completing_does_not_wake_when_this_worker_takes_the_only_released_job(queue, wakeups):
    parent = queue.submit("parent")
    child = queue.submit("child", after=[parent])
    job = queue.claim("w1")
    wakeups.clear()
    released, claimed = queue.complete_and_claim(parent, job.fence, None, "w1")
    assert released == [child] and claimed.id == child
    assert wakeups == []


def _idle_worker(run_dir, name):
    sock = wake.bind_wake_socket(run_dir, name)
    wake.advertise_idle(run_dir, name)
    return sock


def _woken(sock) -> bool:
    try:
        return bool(sock.recv(64))
    except BlockingIOError:
        return False


def test_one_idle_worker_is_woken_per_ready_job_and_its_entry_taken(tmp_path):
    run_dir = tmp_path / "run"
    socks = [_idle_worker(run_dir, f"worker-{i}") for i in range(3)]
    assert wake.wake_idle(run_dir, 2) == 2
    assert sum(_woken(s) for s in socks) == 2
    assert len(os.listdir(run_dir / wake.IDLE_DIR)) == 1, "each woken worker's entry is taken"
    assert wake.wake_idle(run_dir, 5) == 1
    assert wake.wake_idle(run_dir, 1) == 0, "no idle worker: nothing is sent"
    for sock in socks:
        sock.close()


def test_a_busy_worker_is_not_woken(tmp_path):
    run_dir = tmp_path / "run"
    sock = _idle_worker(run_dir, "worker-1")
    wake.withdraw_idle(run_dir, "worker-1")
    assert wake.wake_idle(run_dir, 1) == 0 and not _woken(sock)
    sock.close()


def test_an_entry_of_a_gone_worker_is_dropped_and_the_next_woken(tmp_path):
    run_dir = tmp_path / "run"
    gone = _idle_worker(run_dir, "worker-1")
    gone.close()  # its socket file stays: sending is refused
    alive = _idle_worker(run_dir, "worker-2")
    assert wake.wake_idle(run_dir, 2) == 1 and _woken(alive)
    assert os.listdir(run_dir / wake.IDLE_DIR) == []
    assert not (run_dir / f"worker-1{wake.SOCKET_SUFFIX}").exists(), "its socket is removed"
    alive.close()


def test_without_an_idle_directory_every_worker_is_woken(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    socks = []
    for i in range(2):  # workers of an older Athena: a socket, no idle/ entries
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(run_dir / f"worker-{i}{wake.SOCKET_SUFFIX}"))
        sock.setblocking(False)
        socks.append(sock)
    assert wake.wake_idle(run_dir, 1) == 2
    assert all(_woken(s) for s in socks)
    for sock in socks:
        sock.close()


def test_submitting_wakes_one_worker_per_ready_job(queue, wakeups):
    parent = queue.submit("a")
    queue.submit_many([{"type": "b"}, {"type": "c"}, {"type": "d", "after": [parent]}])
    assert [count for _run_dir, count in wakeups] == [1, 2]
