"""BaseAgent: an agent that works in iterations, checkpoints and resumes.

Subclass it, write :meth:`BaseAgent.step` (one iteration; return True when done)
and :meth:`BaseAgent.result`, and register the class as an agent::

    class Planner(BaseAgent):
        checkpoint_every = 5

        def step(self) -> bool:
            reply = think(self.messages)
            self.messages.append({"role": "assistant", "content": reply})
            return "DONE" in reply

        def result(self):
            return self.messages[-1]["content"]

The worker calls ``cls().run(ctx)``. ``run`` restores ``messages``, ``iteration``
and the state from ``ctx.checkpoint`` and continues at the next iteration; it saves
a checkpoint every ``checkpoint_every`` iterations (a dict payload's
``"checkpoint_interval"`` overrides it) and once more when a graceful stop
interrupts it, so a crash redoes at most the iterations since the last save.

When the job has a session (``ctx.add_message`` exists), every message appended to
``self.messages`` during a step is also added to the session after that step, as
``(role, content)`` of a dict or of an object with those attributes. Messages are
matched by position: a resumed run re-adds the messages of iterations it redoes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from athenad.checkpoints import CheckpointWriteError
from workers.interrupts import Cancelled, ShuttingDown


def checkpoint_interval(payload: Any, default: int) -> int:
    """The payload's ``"checkpoint_interval"`` when it is a positive int, else ``default``."""
    if isinstance(payload, Mapping):
        value = payload.get("checkpoint_interval")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return default


def _role_content(message: Any) -> tuple[str, Any]:
    if isinstance(message, Mapping):
        return str(message.get("role", "assistant")), message.get("content")
    return str(getattr(message, "role", "assistant")), getattr(message, "content", message)


class BaseAgent:
    """An iterating agent with automatic checkpoints and resume."""

    checkpoint_every: int = 5

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.iteration: int = 0
        self.state: Any = None
        self.ctx: Any = None
        self.log: Any = structlog.get_logger("workers.agent")
        self._last_saved: int | None = None
        self._synced = 0

    # ---- what subclasses write --------------------------------------------------------

    def step(self) -> bool:
        """Do one iteration (``self.iteration`` is its number); return True when done."""
        raise NotImplementedError(f"{type(self).__name__} must define step().")

    def result(self) -> Any:
        """The job's result once :meth:`step` said it is done (anything msgspec encodes)."""
        return None

    def get_state(self) -> Any:
        """What a checkpoint stores besides messages; defaults to ``self.state``."""
        return self.state

    def set_state(self, state: Any) -> None:
        """Restore what :meth:`get_state` returned; defaults to setting ``self.state``."""
        self.state = state

    # ---- what the worker calls --------------------------------------------------------

    def run(self, ctx: Any) -> Any:
        """Run to completion from ``ctx.checkpoint`` (if any); return :meth:`result`."""
        self.ctx = ctx
        self.log = ctx.log
        every = checkpoint_interval(ctx.payload, self.checkpoint_every)
        if ctx.checkpoint is not None:
            self.restore(ctx.checkpoint)
            self.log.info("agent_resumed", job_id=ctx.job_id, iteration=self.iteration)
        # Restored messages were in the session already when they were checkpointed.
        self._synced = len(self.messages)
        while True:
            if ctx.cancelled:
                raise Cancelled(f"job {ctx.job_id} was cancelled at iteration {self.iteration}.")
            if ctx.stopping:
                if self.iteration > 0 and self._last_saved != self.iteration:
                    self.save_checkpoint()
                raise ShuttingDown(
                    f"the worker is stopping; job {ctx.job_id} resumes after "
                    f"iteration {self.iteration}."
                )
            self.iteration += 1
            done = self.step()
            self._sync_session()
            if done:
                return self.result()
            if self.iteration % every == 0:
                self.save_checkpoint()

    def restore(self, checkpoint: Any) -> None:
        """Take messages, iteration and state from a checkpoint."""
        self.messages = list(checkpoint.messages or [])
        self.iteration = int(checkpoint.iteration)
        self.set_state(checkpoint.state)
        self._last_saved = self.iteration

    def save_checkpoint(self) -> None:
        """Save the current iteration, state and messages through the context.

        A write the disk refuses is logged and the run goes on: the previous
        checkpoint stays valid. A save refused because the job was lost raises.
        """
        try:
            saved = self.ctx.save_checkpoint(
                self.iteration, state=self.get_state(), messages=self.messages
            )
        except CheckpointWriteError as exc:
            self.log.warning(
                "checkpoint_write_failed",
                job_id=self.ctx.job_id,
                iteration=self.iteration,
                error=exc.message,
            )
            return
        if saved is not False:  # the worker's context reports a refused write as False
            self._last_saved = self.iteration

    def _sync_session(self) -> None:
        add_message = getattr(self.ctx, "add_message", None)
        if add_message is None or not getattr(self.ctx, "session_id", True):
            return
        if len(self.messages) < self._synced:
            # The step shortened the history (e.g. summarised it): nothing new to add.
            self._synced = len(self.messages)
            return
        for message in self.messages[self._synced :]:
            role, content = _role_content(message)
            add_message(role, content)
        self._synced = len(self.messages)
