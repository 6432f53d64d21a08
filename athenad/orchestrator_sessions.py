"""The session half of TaskOrchestrator (the seed's names), as a mixin.

TaskOrchestrator inherits :class:`SessionsMixin` and sets ``self.sessions`` to a
:class:`~athenad.sessions.SessionManager` in its ``__init__``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from athenad.sessions import Message, Role, SessionInfo, SessionManager


class SessionsMixin:
    """Conversation sessions on the orchestrator; every call goes to ``self.sessions``."""

    sessions: SessionManager

    def create_conversation_session(
        self, name: str | None = None, tags: Iterable[str] = (), git_branch: str | None = None
    ) -> str:
        """Create a session (on the current git branch unless told) and return its id."""
        return self.sessions.create_session(name=name, tags=tags, git_branch=git_branch)

    def add_message_to_session(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append one message to a session; returns it with its sequence number."""
        return self.sessions.add_message(session_id, role, content, metadata)

    def get_conversation_history(self, session_id: str) -> list[Message]:
        """Every message of a session, in order."""
        return self.sessions.get_messages(session_id)

    def resume_most_recent_session(self, git_branch: str | None = None) -> str | None:
        """The id of the most recently active session (of one branch), or None."""
        return self.sessions.resume_most_recent_session(git_branch)

    def list_sessions(self, git_branch: str | None = None) -> list[SessionInfo]:
        """Sessions, most recently active first, optionally of one git branch."""
        return self.sessions.list_sessions(git_branch)
