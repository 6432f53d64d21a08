"""``index.json``: a cache of session metadata that can always be rebuilt.

What makes the cache stale, and how each case is noticed cheaply:

* **A message appended or a session created or removed through Athena** (any process):
  the writer then appends the session id to ``activity.log``. A reader keeps its
  offset in that journal; one ``stat`` tells whether it grew, and only the sessions
  named in the new lines are looked at again.
* **Files added, removed or replaced by other tools** (``cp``, ``rm``, ``git
  checkout``, editors that save by rename): they change the directory's mtime; a
  reader then lists the directory (names and inode numbers, no per-file ``stat``)
  and re-reads only new, vanished and replaced files.
* **A file appended to in place by another tool** (``echo >> file``) is noticed
  when a process first loads the index (every entry is checked by size and mtime
  then), by ``list_sessions`` (which ``stat``s each entry it returns and re-reads the
  stale ones) or on ``reindex``. ``resume_most_recent_session`` does not check each
  entry: that trade-off keeps a warm lookup at two ``stat`` calls instead of 10,000.
* **index.json deleted**: ``list_sessions`` notices (one ``stat``) and writes it again.

``message_count`` counts message lines. After an append it is updated from the new
bytes only (the file grew and still ends where the old entry ended, with a newline);
any other change counts the whole file again.

``index.json`` is written atomically when a full check found it missing or stale;
deleting it loses nothing. The journal is dropped and restarted once it passes
1 MiB; readers notice the new inode and re-check every file once.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

import msgspec

from athenad.storage.sessions.files import (
    SESSION_FILE_RE,
    SESSION_ID_RE,
    SUFFIX,
    Header,
    Message,
    decode_line,
    last_record,
)
from athenad.util.fsutil import atomic_write
from athenad.util.logs import LibraryLogger

log = LibraryLogger("athenad.storage.sessions")

INDEX_NAME = "index.json"
JOURNAL_NAME = "activity.log"
JOURNAL_MAX_BYTES = 1 << 20
INDEX_FORMAT = 1


class SessionInfo(msgspec.Struct, kw_only=True):
    """A session's metadata. JSON keys: id, name, tags, git_branch, cwd, created_at,
    updated_at (last message or creation), message_count (the number of messages),
    size and mtime_ns (of the file), imported_from."""

    id: str
    name: str | None
    tags: list[str]
    git_branch: str | None
    cwd: str | None
    created_at: str
    updated_at: str
    message_count: int
    size: int
    mtime_ns: int
    imported_from: str | None = None


class IndexFile(msgspec.Struct):
    """index.json: ``checksum`` (crc32, hex) covers the bytes of ``sessions``, so a
    damaged file that still parses is noticed and rebuilt, never believed."""

    format: int
    sessions: msgspec.Raw
    checksum: str = ""


_index_decoder = msgspec.json.Decoder(IndexFile)
_sessions_decoder = msgspec.json.Decoder(list[SessionInfo])
_encoder = msgspec.json.Encoder()


def _crc(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def note_activity(directory: Path, session_id: str) -> None:
    """Tell every reader's index that this session changed (one small O_APPEND write).

    The change itself is already in the session's file: a journal the disk refuses
    (full) only delays other readers' caches until they check each file (a warning).
    """
    try:
        fd = os.open(directory / JOURNAL_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, session_id.encode() + b"\n")
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("session_journal_write_failed", session_id=session_id, error=str(exc))


_MESSAGE_START = b'{"type":"message"'
_MESSAGE_LINE = b"\n" + _MESSAGE_START


def _count_messages(fd: int, complete: int, previous: SessionInfo | None) -> int:
    """Message lines in the first ``complete`` bytes (whole lines) of the file."""
    if previous is not None and 0 < previous.size <= complete:
        # An append: count only the new lines if the old end is still a line end.
        start = previous.size - 1
        if os.pread(fd, 1, start) == b"\n":
            return previous.message_count + os.pread(fd, complete - start, start).count(
                _MESSAGE_LINE
            )
    data = os.pread(fd, complete, 0)
    return data.count(_MESSAGE_LINE) + data.startswith(_MESSAGE_START)


def summarize(path: Path, st: os.stat_result, previous: SessionInfo | None = None) -> SessionInfo:
    """Metadata of one session file from its first line, its tail and its line count.

    ``previous`` is the entry of the same file (same inode) before it grew.
    """
    with open(path, "rb") as handle:
        first = handle.readline()
        record, complete = last_record(handle.fileno(), st.st_size)
        count = _count_messages(handle.fileno(), complete, previous)
    try:
        header = decode_line(first.rstrip(b"\n"))
    except ValueError:
        header = None
    if not isinstance(header, Header):
        header = Header(format=0, id=path.name[: -len(SUFFIX)])
    last = record if isinstance(record, Message) else None
    return SessionInfo(
        id=path.name[: -len(SUFFIX)],
        name=header.name,
        tags=list(header.tags),
        git_branch=header.git_branch,
        cwd=header.cwd,
        created_at=header.created_at,
        updated_at=last.timestamp if last else header.created_at,
        message_count=count,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        imported_from=header.imported_from,
    )


def _recency(info: SessionInfo) -> tuple[str, int, str]:
    return (info.updated_at, info.mtime_ns, info.id)


class SessionIndex:
    """The in-memory index of one sessions directory, kept fresh by :meth:`refresh`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / INDEX_NAME
        self.journal = directory / JOURNAL_NAME
        self._entries: dict[str, SessionInfo] | None = None
        self._inodes: dict[str, int] = {}
        self._journal_ino: int | None = None
        self._journal_pos = 0
        self._dir_mtime: int | None = None
        self._order: list[str] | None = None  # ids, most recent first
        self._by_branch: dict[str | None, list[str]] = {}

    # ---- reading ----------------------------------------------------------------------

    def entries(self) -> dict[str, SessionInfo]:
        self.refresh()
        assert self._entries is not None
        return self._entries

    def ordered(self, git_branch: str | None = None) -> list[str]:
        """Ids, most recently active first, optionally of one branch only."""
        entries = self.entries()
        if self._order is None:
            self._order = sorted(entries, key=lambda i: _recency(entries[i]), reverse=True)
            self._by_branch = {}
        if git_branch is None:
            return self._order
        ids = self._by_branch.get(git_branch)
        if ids is None:
            ids = [i for i in self._order if entries[i].git_branch == git_branch]
            self._by_branch[git_branch] = ids
        return ids

    # ---- keeping fresh ----------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the in-memory index up to date (see the module docstring for how)."""
        if self._entries is None:
            self.rebuild(use_cache_file=True)
            return
        try:
            journal = os.stat(self.journal)
        except FileNotFoundError:
            journal = None
        ino = journal.st_ino if journal else None
        if ino != self._journal_ino or (journal and journal.st_size < self._journal_pos):
            self.rebuild(use_cache_file=False)
            return
        grew = journal is not None and journal.st_size > self._journal_pos
        if grew and journal and not self._consume_journal(journal.st_size):
            self.rebuild(use_cache_file=False)
            return
        try:
            dir_mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:  # moved away (a restore) or deleted
            self.rebuild(use_cache_file=True)
            return
        if dir_mtime != self._dir_mtime:
            self._sync_names(dir_mtime)

    def rebuild(self, *, use_cache_file: bool) -> int:
        """Check every session file by size and mtime; write index.json if it changed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._restart_journal_if_large()
        try:
            journal = os.stat(self.journal)
            self._journal_ino, self._journal_pos = journal.st_ino, journal.st_size
        except FileNotFoundError:
            self._journal_ino, self._journal_pos = None, 0
        self._dir_mtime = os.stat(self.dir).st_mtime_ns
        cached = self._read_file() if use_cache_file else self._entries
        changed = cached is None
        cached = cached or {}
        entries: dict[str, SessionInfo] = {}
        inodes: dict[str, int] = {}
        with os.scandir(self.dir) as listing:
            for item in listing:
                match = SESSION_FILE_RE.fullmatch(item.name)
                if not match:
                    continue
                try:
                    st = item.stat()
                    inodes[match.group(1)] = st.st_ino
                    old = cached.get(match.group(1))
                    if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                        entries[old.id] = old
                    else:
                        entries[match.group(1)] = summarize(Path(item.path), st)
                        changed = True
                except FileNotFoundError:
                    continue
        changed = changed or len(entries) != len(cached)
        self._entries, self._inodes = entries, inodes
        self._order = None
        if changed or not self.path.exists():
            self.save()
        return len(entries)

    def revalidate(self, ids: list[str]) -> bool:
        """``stat`` each listed session; re-read those whose size or mtime changed.

        Rewrites a missing index.json too. Returns True when anything changed.
        """
        assert self._entries is not None
        changed = False
        for session_id in list(ids):  # update_one edits the order lists in place
            old = self._entries.get(session_id)
            try:
                st = os.stat(self.dir / f"{session_id}{SUFFIX}")
            except FileNotFoundError:
                st = None
            if (
                old is None
                or st is None
                or (old.size, old.mtime_ns)
                != (
                    st.st_size,
                    st.st_mtime_ns,
                )
            ):
                self.update_one(session_id)
                changed = True
        if changed or not self.path.exists():
            self.save()
        return changed

    def reindex(self) -> int:
        """Re-read every session file (no cache trusted) and write index.json."""
        self._entries = None
        return self.rebuild(use_cache_file=False)

    def save(self) -> None:
        """Write index.json atomically (most recent first)."""
        entries = self._entries or {}
        ordered = sorted(entries.values(), key=_recency, reverse=True)
        sessions = _encoder.encode(ordered)
        document = IndexFile(INDEX_FORMAT, msgspec.Raw(sessions), _crc(sessions))
        try:
            atomic_write(self.path, _encoder.encode(document))
        except OSError as exc:
            # A cache: the sessions are listed from what was read; written next time.
            log.warning("session_index_write_failed", path=str(self.path), error=str(exc))
            return
        log.debug("session_index_written", path=str(self.path), sessions=len(ordered))

    def _read_file(self) -> dict[str, SessionInfo] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            index = _index_decoder.decode(data)
            if index.format != INDEX_FORMAT or not index.checksum:
                return None  # another version's file (none had a checksum): rebuilt quietly
            if index.checksum != _crc(bytes(index.sessions)):
                raise ValueError("its checksum does not match (the file was damaged)")
            sessions = _sessions_decoder.decode(index.sessions)
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("session_index_unreadable", path=str(self.path), error=str(exc))
            return None
        return {info.id: info for info in sessions}

    def _restart_journal_if_large(self) -> None:
        # Before the scan: a change recorded only in the dropped journal was written
        # to its session file earlier still, so the scan that follows sees it.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.journal).st_size > JOURNAL_MAX_BYTES:
                os.unlink(self.journal)

    def _consume_journal(self, size: int) -> bool:
        try:
            with open(self.journal, "rb") as handle:
                if os.fstat(handle.fileno()).st_ino != self._journal_ino:
                    return False
                handle.seek(self._journal_pos)
                data = handle.read(size - self._journal_pos)
        except FileNotFoundError:
            return False
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._journal_pos += end
        for raw in set(data[:end].split()):
            session_id = raw.decode("ascii", "replace")
            if SESSION_ID_RE.fullmatch(session_id):
                self.update_one(session_id)
        return True

    def _sync_names(self, dir_mtime: int) -> None:
        """Pick up files added, removed or replaced (new inode) by other tools.

        Names and inode numbers come with the directory listing, so no file is
        stat'ed unless it is new or was replaced (``cp``, ``git checkout``, editors).
        """
        self._dir_mtime = dir_mtime  # first, so a change during the listing is seen next time
        assert self._entries is not None
        seen = set()
        with os.scandir(self.dir) as listing:
            for item in listing:
                match = SESSION_FILE_RE.fullmatch(item.name)
                if not match:
                    continue
                session_id = match.group(1)
                seen.add(session_id)
                if self._inodes.get(session_id) != item.inode():
                    self.update_one(session_id, force=True)
        for session_id in set(self._entries) - seen:
            self.update_one(session_id)

    def update_one(self, session_id: str, *, force: bool = False) -> None:
        """Re-read one session's metadata (or drop it if its file is gone)."""
        assert self._entries is not None
        path = self.dir / f"{session_id}{SUFFIX}"
        old = self._entries.get(session_id)
        try:
            st = os.stat(path)
            same_file = self._inodes.get(session_id) == st.st_ino
            self._inodes[session_id] = st.st_ino
            if not force and old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                return
            info = summarize(path, st, old if same_file and not force else None)
        except FileNotFoundError:
            self._inodes.pop(session_id, None)
            if old is not None:
                del self._entries[session_id]
                self._forget(old)
            return
        self._entries[session_id] = info
        self._move_to_front(old, info)

    # ---- the recency order, patched in place when it can be --------------------------

    def _forget(self, old: SessionInfo) -> None:
        if self._order is None:
            return
        with contextlib.suppress(ValueError):
            self._order.remove(old.id)
        ids = self._by_branch.get(old.git_branch)
        if ids is not None:
            with contextlib.suppress(ValueError):
                ids.remove(old.id)

    def _move_to_front(self, old: SessionInfo | None, info: SessionInfo) -> None:
        if self._order is None:
            return
        if old is not None:
            self._forget(old)
        assert self._entries is not None
        head = self._order[0] if self._order else None
        if head is not None and _recency(info) < _recency(self._entries[head]):
            self._order = None  # not the newest: sort again on the next read
            return
        self._order.insert(0, info.id)
        ids = self._by_branch.get(info.git_branch)
        if ids is not None:
            ids.insert(0, info.id)
