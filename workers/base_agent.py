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
``(role, content)`` of a dict or of an object with those attributes. Content that is
not a string is stored as its JSON text; a message the session refuses (an unknown
role, say) is logged and skipped, never failing the job.

The sync is idempotent across resumes. With a session attached, a checkpoint's
state is stored as ``{"state": <get_state()>, "session_sync": {"synced": N, "seq":
S}}``: N of the agent's messages were in the session, whose last message this job
had added (or seen) was number S. A resumed run reads the session's messages after
S once; each message a redone iteration produces is skipped when the same role and
content come next among them (messages of other writers in between are passed
over), and the first one that does not match ends the skipping. A crash before the
first checkpoint leaves nothing to compare with: that run's messages are re-added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import structlog

from athenad.errors import InvalidInput
from athenad.storage.checkpoints import CheckpointWriteError
from workers.interrupts import Cancelled, ShuttingDown


def checkpoint_interval(payload: Any, default: int) -> int:
    """The payload's ``"checkpoint_interval"`` when it is a positive int, else ``default``."""
    if isinstance(payload, Mapping):
        value = payload.get("checkpoint_interval")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return default


SYNC_KEY = "session_sync"


def _as_text(content: Any) -> str:
    """Session content is text: a string as is, None as "", anything else as JSON."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    try:
        return msgspec.json.encode(content).decode()
    except (TypeError, msgspec.EncodeError):
        return str(content)


def _role_content(message: Any) -> tuple[str, str]:
    if isinstance(message, Mapping):
        role, content = message.get("role", "assistant"), message.get("content")
    else:
        role, content = getattr(message, "role", "assistant"), getattr(message, "content", message)
    return str(role), _as_text(content)


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
        self._session_seq: int | None = None  # the session's last seq this run knows of
        self._resume_seq: int | None = None  # from the checkpoint: what to compare after
        self._pending: list[tuple[int, str, str]] | None = None  # session messages after it

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
        self._synced = 0
        if ctx.checkpoint is not None:
            self.restore(ctx.checkpoint)
            self.log.info("agent_resumed", job_id=ctx.job_id, iteration=self.iteration)
        if ctx.checkpoint is None or not self._has_session():
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
        """Take messages, iteration and state (and the session sync point) from a checkpoint."""
        self.messages = list(checkpoint.messages or [])
        self.iteration = int(checkpoint.iteration)
        state = checkpoint.state
        self._synced = len(self.messages)
        if self._has_session() and isinstance(state, dict) and set(state) == {"state", SYNC_KEY}:
            sync = state[SYNC_KEY] if isinstance(state[SYNC_KEY], dict) else {}
            synced, seq = sync.get("synced"), sync.get("seq")
            if isinstance(synced, int) and 0 <= synced <= len(self.messages):
                self._synced = synced
            self._resume_seq = seq if isinstance(seq, int) else None
            self._session_seq = self._resume_seq
            state = state["state"]
        self.set_state(state)
        self._last_saved = self.iteration

    def save_checkpoint(self) -> None:
        """Save the current iteration, state and messages through the context.

        A write the disk refuses is logged and the run goes on: the previous
        checkpoint stays valid. A save refused because the job was lost raises.
        """
        state = self.get_state()
        if self._has_session():
            sync = {"synced": self._synced, "seq": self._known_session_seq()}
            state = {"state": state, SYNC_KEY: sync}
        try:
            saved = self.ctx.save_checkpoint(self.iteration, state=state, messages=self.messages)
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

    # ---- the attached session ---------------------------------------------------------

    def _has_session(self) -> bool:
        ctx = self.ctx
        return getattr(ctx, "add_message", None) is not None and bool(
            getattr(ctx, "session_id", True)
        )

    def _session_tail(self, after: int | None) -> list[tuple[int, str, str]]:
        """The session's messages after seq ``after`` as (seq, role, content)."""
        read = getattr(self.ctx, "session_messages", None)
        if read is None:
            return []
        return [
            (m.seq, m.role, m.content)
            for m in read()
            if after is None or m.seq > after  # None: the whole session
        ]

    def _known_session_seq(self) -> int | None:
        if self._session_seq is None and getattr(self.ctx, "session_messages", None):
            tail = self._session_tail(None)  # at most once per run, before any add
            self._session_seq = tail[-1][0] if tail else 0
        return self._session_seq

    def _already_in_session(self, role: str, content: str) -> bool:
        """True when a resumed run's message was added by the run it redoes."""
        if self._resume_seq is None:
            return False
        if self._pending is None:
            self._pending = self._session_tail(self._resume_seq)
        for at, (seq, old_role, old_content) in enumerate(self._pending):
            if (old_role, old_content) == (role, content):
                del self._pending[: at + 1]
                self._session_seq = max(self._session_seq or 0, seq)
                return True
        self._resume_seq = None  # the redo went its own way: add everything from here
        self._pending = []
        return False

    def _sync_session(self) -> None:
        if not self._has_session():
            return
        if len(self.messages) < self._synced:
            # The step shortened the history (e.g. summarised it): nothing new to add.
            self._synced = len(self.messages)
            return
        for message in self.messages[self._synced :]:
            role, content = _role_content(message)
            if self._already_in_session(role, content):
                continue
            try:
                added = self.ctx.add_message(role, content)
            except InvalidInput as exc:
                self.log.warning(
                    "session_message_skipped", job_id=self.ctx.job_id, role=role, error=exc.message
                )
                continue
            seq = getattr(added, "seq", None)
            if isinstance(seq, int):
                self._session_seq = seq
        self._synced = len(self.messages)
