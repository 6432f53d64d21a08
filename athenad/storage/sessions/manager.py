"""SessionManager: create, append to, read, list and resume conversation sessions.

Sessions live under ``<home>/.athena/sessions/`` as ``<id>.jsonl`` files (JSON Lines:
a header line, then one line per message; see :mod:`athenad.storage.sessions.files`).
Constructing a manager costs one ``mkdir``; the index is loaded on the first
``list_sessions``/``resume_most_recent_session`` call. Every operation is safe while
other processes use the same directory.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from athenad.errors import InvalidInput
from athenad.storage.sessions import files, repair
from athenad.storage.sessions.files import (
    FORMAT_VERSION,
    QUARANTINE_SUFFIX,
    SUFFIX,
    Header,
    Message,
    SessionNotFound,
    SessionWriteError,
    check_session_id,
    check_text,
    encode_line,
    is_valid_session_id,
    write_reason,
)
from athenad.storage.sessions.gitinfo import current_branch
from athenad.storage.sessions.index import SessionIndex, SessionInfo, note_activity, summarize
from athenad.util.fsutil import atomic_write
from athenad.util.ids import new_job_id
from athenad.util.logs import LibraryLogger
from athenad.util.timefmt import utc_now_text

log = LibraryLogger("athenad.storage.sessions")

CHECKPOINT_DIR = "checkpoints"


class Role(enum.StrEnum):
    """Who said a message."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


def coerce_role(role: Role | str) -> Role:
    """A Role from a Role or a string such as 'user' (any case)."""
    if isinstance(role, Role):
        return role
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"role {role!r} is not one of {allowed}.") from None


class Checkpoint(msgspec.Struct, kw_only=True):
    """A saved point to resume a session's agent from; ``messages`` as decoded JSON."""

    format: int = 1
    session_id: str
    iteration: int
    saved_at: str
    messages: list[Any]


_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)


def new_session_id() -> str:
    return "session-" + new_job_id()


def check_tags(tags: Iterable[str] | str) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInput(f"tag {tag!r} is not a non-empty string.")
        check_text(tag, "a tag")
        if tag not in out:
            out.append(tag)
    return out


def new_header(
    name: str | None,
    tags: Iterable[str] | str,
    git_branch: str | None,
    imported_from: str | None,
    cwd: Path | None,
) -> Header:
    """The header of a new session (its id still empty); the branch defaults to cwd's."""
    if name is not None:
        check_text(name, "the session name")
    if git_branch is not None:
        check_text(git_branch, "the branch")
    where = cwd or Path.cwd()
    return Header(
        format=FORMAT_VERSION,
        id="",
        name=name,
        tags=check_tags(tags),
        git_branch=git_branch if git_branch is not None else current_branch(where),
        # A directory name need not be UTF-8; the header must be.
        cwd=os.fsencode(where).decode("utf-8", "replace"),
        created_at=utc_now_text(),
        imported_from=imported_from,
    )


def check_message(role: Role | str, content: Any, metadata: Any) -> Role:
    """Refuse what no store may append (unknown role, non-UTF-8 text, odd metadata)."""
    checked = coerce_role(role)
    check_text(content, "the message content")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInput("message metadata must be a dict.")
    return checked


class SessionManager:
    """Conversation sessions stored as files in one sessions directory.

    Where the files go, from ``session_dir``: a path whose last component is
    ``sessions`` is the sessions directory itself; any other path is taken as a
    state directory (such as ``.athena``) and its ``sessions`` subdirectory is
    used. So ``SessionManager(".athena")`` and ``SessionManager(".athena/sessions")``
    are the same store, and ``SessionManager("/x/mysess")`` stores in
    ``/x/mysess/sessions``. The directory is created if missing. With
    ``durable=True`` every append is fsynced (survives power loss, costs a disk
    flush); by default an append survives the death of the process but not of the
    machine's power, and a torn last line is cut on the next open.
    """

    def __init__(
        self,
        session_dir: str | os.PathLike[str] = ".athena/sessions",
        *,
        durable: bool = False,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        path = Path(session_dir).expanduser()
        self.dir = path if path.name == "sessions" else path / "sessions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.cwd = Path(cwd) if cwd is not None else None
        self.index = SessionIndex(self.dir)

    def path_for(self, session_id: str) -> Path:
        """The file of a session; raises InvalidInput for anything but a valid id."""
        return self.dir / f"{check_session_id(session_id)}{SUFFIX}"

    def exists(self, session_id: str) -> bool:
        """Whether a session has this id (a malformed id names none)."""
        return is_valid_session_id(session_id) and self.path_for(session_id).exists()

    def _existing(self, session_id: str) -> Path:
        path = self.path_for(session_id)
        if not path.exists():
            raise SessionNotFound(f"session {session_id!r} does not exist.")
        return path

    # ---- writing ----------------------------------------------------------------------

    def create_session(
        self,
        name: str | None = None,
        tags: Iterable[str] | str = (),
        git_branch: str | None = None,
        *,
        imported_from: str | None = None,
    ) -> str:
        """Create an empty session and return its id; the branch defaults to the cwd's."""
        header = new_header(name, tags, git_branch, imported_from, self.cwd)
        return self.write_new_session(header, [])

    def write_new_session(
        self, header: Header, messages: list[Message], *, session_id: str | None = None
    ) -> str:
        """Write a whole new session file at once (never replacing one); returns its id.

        ``session_id`` is tried first when given; if taken, a new id is made and the
        wanted one is recorded as ``imported_from``.
        """
        wanted = session_id
        while True:
            header.id = check_session_id(wanted) if wanted else new_session_id()
            data = b"".join([encode_line(header), *(encode_line(m) for m in messages)])
            try:
                atomic_write(self.path_for(header.id), data, exclusive=True)
                break
            except FileExistsError:
                if wanted:
                    header.imported_from = wanted  # taken: keep where this came from
                wanted = None
            except OSError as exc:
                raise SessionWriteError(
                    f"the session was not created because {write_reason(exc)}; "
                    "no session file was left behind."
                ) from None
        note_activity(self.dir, header.id)
        log.info("session_created", session_id=header.id, git_branch=header.git_branch)
        return header.id

    def add_message(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append one message (one line) and return it with its ``seq`` and checksum."""
        role = check_message(role, content, metadata)
        path = self.path_for(session_id)
        message = files.append_message(path, role.value, content, metadata, durable=self.durable)
        note_activity(self.dir, session_id)
        return message

    def delete_session(self, session_id: str) -> None:
        """Remove a session file and its checkpoint and quarantine sidecars."""
        path = self._existing(session_id)
        path.unlink()
        for extra in (
            self.dir / f"{session_id}{QUARANTINE_SUFFIX}",
            self._checkpoint_path(session_id),
        ):
            with contextlib.suppress(FileNotFoundError):
                extra.unlink()
        note_activity(self.dir, session_id)
        log.info("session_deleted", session_id=session_id)

    # ---- reading ----------------------------------------------------------------------

    def read_session(self, session_id: str) -> tuple[Header, list[Message]]:
        """The header and every message, repairing a damaged file first."""
        path = self._existing(session_id)
        return repair.read_session(path, durable=True)

    def get_messages(self, session_id: str) -> list[Message]:
        """Every message of a session in sequence order."""
        return self.read_session(session_id)[1]

    def get_session(self, session_id: str) -> SessionInfo:
        """One session's metadata, read from its file (not from the cache)."""
        path = self._existing(session_id)
        return summarize(path, os.stat(path))

    def list_sessions(self, git_branch: str | None = None) -> list[SessionInfo]:
        """Sessions (of one branch, or all), most recently active first.

        Each returned entry is checked against its file (size and mtime, one ``stat``
        each) and re-read when stale, so files changed in place by other tools show.
        """
        entries = self.index.entries()
        ids = self.index.ordered(git_branch)
        if self.index.revalidate(ids):
            ids = self.index.ordered(git_branch)
        return [entries[i] for i in ids]

    def resume_most_recent_session(self, git_branch: str | None = None) -> str | None:
        """The id of the most recently active session (of one branch), or None."""
        ids = self.index.ordered(git_branch)
        return ids[0] if ids else None

    def reindex(self) -> int:
        """Check every session file and rewrite index.json; returns the session count."""
        return self.index.reindex()

    def current_branch(self) -> str | None:
        """The git branch of this manager's working directory."""
        return current_branch(self.cwd or Path.cwd())

    # ---- checkpoints ------------------------------------------------------------------

    def _checkpoint_path(self, session_id: str) -> Path:
        # A subdirectory, so saving a checkpoint does not touch the sessions
        # directory's mtime (which would make every index re-list it).
        return self.dir / CHECKPOINT_DIR / f"{check_session_id(session_id)}.json"

    def save_checkpoint(self, session_id: str, iteration: int, messages: Iterable[Any]) -> Path:
        """Store a checkpoint atomically (temp file, fsync, rename, dir fsync)."""
        self._existing(session_id)
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise InvalidInput(f"iteration {iteration!r} is not a non-negative integer.")
        checkpoint = Checkpoint(
            session_id=session_id,
            iteration=iteration,
            saved_at=utc_now_text(),
            messages=list(messages),
        )
        try:
            data = msgspec.json.encode(checkpoint)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidInput(f"checkpoint messages cannot be encoded as JSON: {exc}") from None
        path = self._checkpoint_path(session_id)
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, data)
        except OSError as exc:
            raise SessionWriteError(
                f"the checkpoint of session {session_id} was not written because "
                f"{write_reason(exc)}; the previous checkpoint is unchanged."
            ) from None
        log.info("session_checkpoint_saved", session_id=session_id, iteration=iteration)
        return path

    def load_checkpoint(self, session_id: str) -> Checkpoint | None:
        """The latest checkpoint of a session, or None if there is none."""
        try:
            data = self._checkpoint_path(session_id).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _checkpoint_decoder.decode(data)
        except msgspec.DecodeError as exc:
            log.warning("session_checkpoint_unreadable", session_id=session_id, error=str(exc))
            return None
