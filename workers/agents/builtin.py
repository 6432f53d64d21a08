"""The built-in agents: echo, sleep and shell."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from athenad.errors import AthenaError, InvalidInput
from workers.interrupts import Cancelled

TAIL_BYTES = 4096
POLL_S = 0.1


def echo(ctx: Any) -> Any:
    """Return the payload unchanged."""
    return ctx.payload


def sleep(ctx: Any) -> dict[str, Any]:
    """Sleep ``{"seconds": s}``, checkpointing each second so a resumed job goes on."""
    payload = ctx.payload if isinstance(ctx.payload, dict) else {"seconds": ctx.payload}
    seconds = payload.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise InvalidInput(f"sleep needs a non-negative number of seconds, not {seconds!r}.")
    done = float(ctx.checkpoint.state["slept"]) if ctx.checkpoint else 0.0
    iteration = ctx.checkpoint.iteration if ctx.checkpoint else 0
    while done < seconds:
        if ctx.cancelled:
            raise Cancelled()
        step = min(1.0, seconds - done)
        time.sleep(step)
        done += step
        iteration += 1
        ctx.save_checkpoint(iteration, state={"slept": done})
    return {"slept": seconds, "resumed_from": ctx.checkpoint.iteration if ctx.checkpoint else 0}


class ShellFailed(AthenaError):
    """The command exited with a non-zero status."""


def _tail(data: bytes) -> str:
    return data[-TAIL_BYTES:].decode("utf-8", errors="replace")


def shell(ctx: Any) -> dict[str, Any]:
    """Run ``{"cmd": ..., "cwd": ..., "timeout": ...}`` in a shell.

    Returns the exit code and the tails of stdout and stderr; a non-zero exit fails
    the job with the stderr tail. Cancelling the job kills the command at once; so
    does the death of the worker (its process group is recorded for the supervisor).
    A graceful stop lets the command finish within the drain timeout.
    """
    payload = ctx.payload if isinstance(ctx.payload, dict) else {"cmd": ctx.payload}
    cmd = payload.get("cmd")
    if not isinstance(cmd, str | list) or not cmd:
        raise InvalidInput('shell needs {"cmd": "..."}: a command string or a list of arguments.')
    timeout = payload.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise InvalidInput(f"shell's timeout must be a number of seconds, not {timeout!r}.")
    started = time.monotonic()
    proc: subprocess.Popen | None = None
    track = getattr(ctx, "track_process_group", None)
    try:
        proc = subprocess.Popen(
            cmd,
            shell=isinstance(cmd, str),
            cwd=payload.get("cwd"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # so the whole command tree can be stopped together
        )
        if track:
            track(proc.pid)
        stdout, stderr = _communicate(ctx, proc, timeout, started)
    except BaseException:
        if proc is not None:
            _kill_tree(proc)
        raise
    finally:
        untrack = getattr(ctx, "untrack_process_group", None)
        if untrack and proc is not None:
            untrack(proc.pid)
    result = {
        "exit_code": proc.returncode,
        "stdout": _tail(stdout),
        "stderr": _tail(stderr),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if proc.returncode != 0:
        tail = (_tail(stderr).strip() or _tail(stdout).strip())[-1000:]
        detail = f": {tail}" if tail else ""
        raise ShellFailed(f"command exited with status {proc.returncode}{detail}")
    return result


def _communicate(ctx: Any, proc: subprocess.Popen, timeout: float | None, started: float):
    """Collect the output, checking for cancellation ten times a second."""
    while True:
        try:
            return proc.communicate(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass  # communicate() keeps what it read so far; calling again loses nothing
        if getattr(ctx, "cancelled", False):
            raise Cancelled()
        if timeout is not None and time.monotonic() - started > timeout:
            _kill_tree(proc)
            _stdout, stderr = proc.communicate()
            tail = _tail(stderr).strip()[-500:]
            raise ShellFailed(
                f"command timed out after {timeout} s" + (f": {tail}" if tail else "")
            )


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
