"""What the worker, the agent context, TaskOrchestrator and the CLI need of the stores
of checkpoints and sessions.

A home on SQLite keeps both as files under ``.athena/`` (:class:`FileCheckpointStore`,
:class:`SessionManager`); a home on PostgreSQL keeps them in tables, so a job resumed
on another host finds its checkpoint and its conversation there. Both kinds give the
same results: the conformance suite runs one set of tests on each.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from athenad.storage.checkpoints import Checkpoint, CheckpointInfo
    from athenad.storage.sessions.files import Header, Message
    from athenad.storage.sessions.index import SessionInfo
    from athenad.storage.sessions.manager import Role


class CheckpointStore(Protocol):
    """The checkpoints of jobs: each a (job, iteration) with state and messages.

    Semantics every store keeps: saving an iteration again replaces it; a checkpoint
    whose checksum does not verify is skipped by ``load_latest`` with one
    ``checkpoint_invalid`` warning and the previous one is used; ``prune(keep)``
    keeps the newest ``keep`` iterations. Disk or database failures on save raise
    ``CheckpointWriteError`` and leave the previous checkpoints as they were.
    """

    def save(
        self, job_id: str, iteration: int, state: Any = None, messages: Any = None
    ) -> CheckpointInfo: ...

    def load(self, job_id: str, iteration: int) -> Checkpoint:
        """One checkpoint; CheckpointCorrupt, or FileNotFoundError when there is none."""
        ...

    def load_latest(self, job_id: str, at_most: Any = ...) -> Checkpoint | None:
        """The newest valid checkpoint with iteration <= ``at_most`` (None: nothing)."""
        ...

    def list(self, job_id: str) -> builtins.list[CheckpointInfo]:
        """Every checkpoint of a job, oldest first, each verified."""
        ...

    def iterations(self, job_id: str) -> builtins.list[int]: ...

    def discard(self, job_id: str, iteration: int) -> bool: ...

    def prune(self, job_id: str, keep: int = ...) -> builtins.list[int]: ...

    def remove_all(self, job_id: str) -> int: ...


class SessionStore(Protocol):
    """Conversation sessions: a header and messages numbered 1, 2, ... in one order.

    Concurrent appenders (threads or processes, on any host of the backend) each get
    the next ``seq``; none is lost or numbered twice.
    """

    def create_session(
        self,
        name: str | None = None,
        tags: Iterable[str] | str = (),
        git_branch: str | None = None,
        *,
        imported_from: str | None = None,
    ) -> str: ...

    def write_new_session(
        self, header: Header, messages: list[Message], *, session_id: str | None = None
    ) -> str:
        """A whole session at once (an import); a taken ``session_id`` gets a new id."""
        ...

    def add_message(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message: ...

    def delete_session(self, session_id: str) -> None: ...

    def exists(self, session_id: str) -> bool: ...

    def read_session(self, session_id: str) -> tuple[Header, list[Message]]: ...

    def get_messages(self, session_id: str) -> list[Message]: ...

    def get_session(self, session_id: str) -> SessionInfo: ...

    def list_sessions(self, git_branch: str | None = None) -> list[SessionInfo]: ...

    def resume_most_recent_session(self, git_branch: str | None = None) -> str | None: ...

    def reindex(self) -> int:
        """Rebuild whatever cache the store keeps; returns the number of sessions."""
        ...

    def current_branch(self) -> str | None: ...
