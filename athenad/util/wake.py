"""Wake idle workers the moment work arrives, without busy polling.

Each worker binds a Unix datagram socket in the home's run directory and sleeps in
``select`` on it. A worker about to sleep first says so with an entry of the same name
in ``run/idle/`` (a symlink to its socket), then looks for work once more, then
sleeps; a worker that takes a job removes its entry. Whoever makes jobs ready (a
submit, a completion that releases dependents, a retry) then wakes one idle worker per
ready job after committing (:func:`wake_idle`): it takes an entry by removing it (so
two wakers never pick the same worker) and sends one byte to that worker's socket.
When every worker is busy there is no entry and nothing is sent. Because a worker
advertises before its last look, a job committed after that look always finds the
entry; a wake-up that is lost anyway (a worker that took the entry's job itself, a
datagram dropped) costs at most the idle poll: workers also wake on their own at least
once a second. :func:`wake_workers` still wakes every worker (PostgreSQL's NOTIFY).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

SOCKET_SUFFIX = ".wake"
IDLE_DIR = "idle"


def bind_wake_socket(run_dir: Path, name: str) -> socket.socket:
    """A non-blocking datagram socket at run_dir/name.wake for one worker."""
    (run_dir / IDLE_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    path = run_dir / f"{name}{SOCKET_SUFFIX}"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> None:
    """Read every pending wake-up byte so the next select waits again."""
    while True:
        try:
            sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return


def idle_entry(run_dir: Path, name: str) -> Path:
    """Where the worker whose socket is run_dir/name.wake says that it is idle."""
    return run_dir / IDLE_DIR / f"{name}{SOCKET_SUFFIX}"


def advertise_idle(run_dir: Path, name: str) -> None:
    """Say that this worker is about to sleep: a waker may take the entry and wake it."""
    with contextlib.suppress(FileExistsError):
        os.symlink(f"../{name}{SOCKET_SUFFIX}", idle_entry(run_dir, name))


def withdraw_idle(run_dir: Path, name: str) -> None:
    """This worker has work (or stops): no waker should spend a wake-up on it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(idle_entry(run_dir, name))


def wake_idle(run_dir: Path | str, count: int = 1) -> int:
    """Wake up to ``count`` idle workers, one byte each; returns how many were reached.

    Each entry in run/idle/ is taken by removing it, so concurrent wakers reach
    different workers. An entry whose worker is gone is dropped and the next tried.
    Without run/idle/ (workers of an older Athena) every worker is woken, as before.
    """
    if count <= 0:
        return 0
    idle_dir = os.path.join(run_dir, IDLE_DIR)
    try:
        names = os.listdir(idle_dir)
    except FileNotFoundError:
        return wake_workers(Path(run_dir))
    if not names:
        return 0
    reached = 0
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for name in names:
            try:
                os.unlink(os.path.join(idle_dir, name))
            except FileNotFoundError:
                continue  # another waker took this one
            path = os.path.join(run_dir, name)
            try:
                sender.sendto(b"!", path)
            except ConnectionRefusedError:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            except FileNotFoundError:
                continue
            except (BlockingIOError, OSError):
                pass  # a full buffer: that worker has wake-ups waiting already
            reached += 1
            if reached == count:
                break
    finally:
        sender.close()
    return reached


def wake_workers(run_dir: Path) -> int:
    """Send a wake-up byte to every worker socket; returns how many were reached.

    Sockets whose worker is gone are removed so they are not tried again.
    """
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return 0
    reached = 0
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for name in names:
            if not name.endswith(SOCKET_SUFFIX):
                continue
            path = os.path.join(run_dir, name)
            try:
                sender.sendto(b"!", path)
                reached += 1
            except ConnectionRefusedError:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except (BlockingIOError, FileNotFoundError, OSError):
                # A full socket buffer means that worker is awake anyway.
                pass
    finally:
        sender.close()
    return reached
