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
    the job with the stderr tail.
    """
    payload = ctx.payload if isinstance(ctx.payload, dict) else {"cmd": ctx.payload}
    cmd = payload.get("cmd")
    if not isinstance(cmd, str | list) or not cmd:
        raise InvalidInput('shell needs {"cmd": "..."}: a command string or a list of arguments.')
    timeout = payload.get("timeout")
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        shell=isinstance(cmd, str),
        cwd=payload.get("cwd"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so the whole command tree can be stopped together
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        stdout, stderr = proc.communicate()
        raise ShellFailed(f"command timed out after {timeout} s: {_tail(stderr)[-500:]}") from None
    except BaseException:
        _kill_tree(proc)
        raise
    result = {
        "exit_code": proc.returncode,
        "stdout": _tail(stdout),
        "stderr": _tail(stderr),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if proc.returncode != 0:
        tail = _tail(stderr).strip() or _tail(stdout).strip()
        raise ShellFailed(f"command exited with status {proc.returncode}: {tail[-1000:]}")
    return result


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
