"""The agents of the chaos run; copied beside the scratch home's athena.toml.

Every execution notes its start and end (job, attempt, fence, pid, time) in a ledger
outside the queue, and holds a per-job lock while it runs: the kernel drops the lock of
a killed process, so failing to take it means another live process runs the same job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from typing import Any

LEDGER = "ledger.jsonl"


def note(folder: str, event: str, **fields: Any) -> None:
    """Append one line to the ledger in a single O_APPEND write, so lines never mix."""
    line = json.dumps({"t": time.time(), "event": event, "pid": os.getpid(), **fields}) + "\n"
    fd = os.open(os.path.join(folder, LEDGER), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _who(ctx: Any) -> dict[str, Any]:
    # The fence is not part of the agents' API; the claimed job carries it.
    return {"job": ctx.job_id, "attempt": ctx.attempt, "fence": ctx._job.fence}


@contextlib.contextmanager
def execution(ctx: Any) -> Iterator[str]:
    """Hold the job's lock and note start, then end (or abort with the error's type).

    ``"exclusive": false`` in the payload leaves the lock out: for runs that stand for
    several hosts, where the old holder may run on until its writes are refused.
    """
    folder = ctx.payload["ledger"]
    lock = open(os.path.join(folder, "locks", f"{ctx.job_id}.lock"), "w")  # noqa: SIM115
    try:
        try:
            if ctx.payload.get("exclusive", True):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(folder, "overlap", **_who(ctx))
            raise
        note(folder, "start", **_who(ctx))
        try:
            yield folder
        except BaseException as exc:
            note(folder, "abort", error=type(exc).__name__, **_who(ctx))
            raise
        note(folder, "end", **_who(ctx))
    finally:
        lock.close()


def noop(ctx: Any) -> int:
    with execution(ctx):
        return os.getpid()


def sleeper(ctx: Any) -> int:
    with execution(ctx):
        time.sleep(ctx.payload["seconds"])
        return os.getpid()


def looper(ctx: Any) -> int:
    """Iterations after the last checkpoint only: each noted, then checkpointed."""
    with execution(ctx) as folder:
        done = ctx.checkpoint.iteration if ctx.checkpoint is not None else 0
        for i in range(done + 1, ctx.payload["iterations"] + 1):
            note(folder, "iter", job=ctx.job_id, i=i)
            time.sleep(ctx.payload["seconds"])
            if ctx.save_checkpoint(i, state={"i": i}):
                note(folder, "ckpt", job=ctx.job_id, i=i)
        return os.getpid()


def _step_body(folder: str, job_id: str, k: int, seconds: float) -> int:
    note(folder, "step_call", job=job_id, k=k)
    time.sleep(seconds)
    return k


def stepper(ctx: Any) -> int:
    """Durable steps; each noted when called and once ctx.step returned its result."""
    with execution(ctx) as folder:
        for k in range(ctx.payload["steps"]):
            ctx.step("work", _step_body, folder, ctx.job_id, k, ctx.payload["seconds"])
            note(folder, "step_done", job=ctx.job_id, k=k)
        return os.getpid()


AGENTS = {"noop": noop, "sleeper": sleeper, "looper": looper, "stepper": stepper}
