"""Wake idle workers the moment work arrives, without busy polling.

Each worker binds a Unix datagram socket in the home's run directory and sleeps in
``select`` on it. Whoever makes a job ready (a submit, a completion that releases
dependents, a retry) sends one byte to every socket there after committing. A lost
datagram costs nothing: workers also wake up on their own at least once a second.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

SOCKET_SUFFIX = ".wake"


def bind_wake_socket(run_dir: Path, name: str) -> socket.socket:
    """A non-blocking datagram socket at run_dir/name.wake for one worker."""
    run_dir.mkdir(parents=True, exist_ok=True)
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
