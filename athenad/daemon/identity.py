"""Who holds a job: worker ids name the host, so a daemon knows which pids it may check.

A worker id is ``host:pid:index``. A pid means something only on its own host; on
any other host the lease is the only sign of life. The host is the daemon's ``host``
setting (default: the machine's hostname), so two daemons on one machine may act as two
hosts.
"""

from __future__ import annotations

import os

# The kernel's node name, which is what socket.gethostname() returns, without loading
# the socket module (about 10 ms of every command's start).
HOSTNAME = os.uname().nodename


def make_worker_id(pid: int, index: int, host: str = HOSTNAME) -> str:
    return f"{host}:{pid}:{index}"


def worker_host(worker_id: str | None) -> str | None:
    """The host part of a worker id (None when the id is missing or malformed)."""
    if not worker_id or worker_id.count(":") < 2:
        return None
    return worker_id.rsplit(":", 2)[0]


def is_local(worker_id: str | None, host: str = HOSTNAME) -> bool:
    """Whether the worker ran on ``host`` (this daemon's), so its pid can be looked at here."""
    return worker_host(worker_id) == host
