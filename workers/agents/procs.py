"""Child processes of agents: each in its own process group, known to the supervisor,
killed whole when its job times out, is cancelled or fails.

Used by the ``shell`` and ``cli-agent`` built-ins.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

TAIL_BYTES = 4096
POLL_S = 0.1


def tail(data: bytes, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes as text (a cut character becomes U+FFFD)."""
    return data[-limit:].decode("utf-8", errors="replace")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole group (its own children too) and reap the leader.

    Once the leader is reaped its pid may name another group: then nothing is killed.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def leader_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the group's leader has exited, without reaping it: until it is reaped its
    pid (the group's id) cannot be reused, so killing the group stays safe."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def end_group(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the leader, kill whatever is left of its group, reap; the exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        kill_group(proc)
    return proc.wait()


@contextlib.contextmanager
def process_group(
    ctx: Any,
    args: str | Sequence[str],
    *,
    cwd: str | None = None,
    shell: bool = False,
    kill_leftovers: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in a new session, stdout and stderr piped, stdin empty.

    The group is recorded with the job (``ctx.track_process_group``) so the supervisor
    kills it if the worker dies; any exception out of the block (a timeout, a cancel, a
    failure) kills the group here. ``kill_leftovers`` also kills what the command left
    running after a normal end (background helpers of a coding agent).
    """
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            args,
            shell=shell,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # so the whole command tree can be stopped together
        )
        track = getattr(ctx, "track_process_group", None)
        if track:
            track(proc.pid)
        yield proc
        if kill_leftovers:
            end_group(proc)
    except BaseException:
        if proc is not None:
            kill_group(proc)
        raise
    finally:
        if proc is not None:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            untrack = getattr(ctx, "untrack_process_group", None)
            if untrack:
                untrack(proc.pid)
