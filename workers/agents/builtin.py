"""The built-in agents: echo, sleep and shell."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from athenad.errors import AthenaError, InvalidInput
from workers.agents.procs import POLL_S, kill_group, process_group, tail
from workers.interrupts import Cancelled


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
    with process_group(ctx, cmd, cwd=payload.get("cwd"), shell=isinstance(cmd, str)) as proc:
        stdout, stderr = _communicate(ctx, proc, timeout, started)
    result = {
        "exit_code": proc.returncode,
        "stdout": tail(stdout),
        "stderr": tail(stderr),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if proc.returncode != 0:
        last = (tail(stderr).strip() or tail(stdout).strip())[-1000:]
        detail = f": {last}" if last else ""
        raise ShellFailed(f"command exited with status {proc.returncode}{detail}")
    return result


def _communicate(
    ctx: Any, proc: subprocess.Popen[bytes], timeout: float | None, started: float
) -> tuple[bytes, bytes]:
    """Collect the output, checking for cancellation ten times a second."""
    while True:
        try:
            return proc.communicate(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass  # communicate() keeps what it read so far; calling again loses nothing
        if getattr(ctx, "cancelled", False):
            raise Cancelled()
        if timeout is not None and time.monotonic() - started > timeout:
            kill_group(proc)
            _stdout, stderr = proc.communicate()
            last = tail(stderr).strip()[-500:]
            raise ShellFailed(
                f"command timed out after {timeout} s" + (f": {last}" if last else "")
            )
