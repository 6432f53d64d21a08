"""Conversation sessions as plain JSON Lines files under ``.athena/sessions/``."""

from athenad.storage.sessions.files import (
    Header,
    Message,
    SessionNotFound,
    SessionRepaired,
    UnsupportedFormat,
    is_valid_session_id,
)
from athenad.storage.sessions.index import SessionInfo
from athenad.storage.sessions.manager import Checkpoint, Role, SessionManager

__all__ = [
    "Checkpoint",
    "Header",
    "Message",
    "Role",
    "SessionInfo",
    "SessionManager",
    "SessionNotFound",
    "SessionRepaired",
    "UnsupportedFormat",
    "is_valid_session_id",
]
