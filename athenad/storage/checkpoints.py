"""Checkpoint files: one msgspec JSON file per saved iteration of a job.

A checkpoint lives at ``<home>/.athena/checkpoints/job-<id>-iter<N>.json`` and is
two lines, so ``cat`` shows it plainly::

    {"format":1,"job_id":"...","iteration":5,"created_at":"...","body_bytes":123,"checksum":"sha256:..."}
    {"state":...,"messages":[...]}

The header's checksum covers the second line's bytes (without its newline). A file
is written to a temp file in the same directory, fsynced, renamed over the final
name, and the directory is fsynced, so a reader sees the old file or the new one,
never half of one. Loading checks the format version, the body's length and
checksum, and that the header names the same job and iteration as the file name.

Which iteration a job may resume from is decided by its row in athena.db
(``jobs.checkpoint_iteration``, written only by the worker holding the job); a file
with a higher iteration is a stray from a worker that lost the job and is ignored.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from athenad.errors import AthenaError, InvalidInput, WriteFailed
from athenad.util.fsutil import fsync_dir
from athenad.util.logs import LibraryLogger
from athenad.util.timefmt import utc_now_text

FORMAT_VERSION = 1
DEFAULT_KEEP = 3
CHECKSUM_ALGO = "sha256"

log = LibraryLogger("athenad.storage.checkpoints")

# load_latest's default: no upper bound (``None`` means "the row records none").
ANY_ITERATION: Any = type("AnyIteration", (), {"__repr__": lambda self: "ANY_ITERATION"})()

_JOB_ID = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*")
_FILE_NAME = re.compile(r"job-(?P<job>.+)-iter(?P<iteration>[0-9]+)\.json")


class CheckpointError(AthenaError):
    """The checkpoint could not be used."""


class CheckpointWriteError(CheckpointError, WriteFailed):
    """The checkpoint could not be written; the previous checkpoint is unchanged."""


class CheckpointCorrupt(CheckpointError):
    """The checkpoint file is torn or corrupt."""


class Checkpoint(msgspec.Struct, kw_only=True):
    """A loaded checkpoint: what an agent sees as ``ctx.checkpoint``."""

    job_id: str
    iteration: int
    created_at: str
    state: Any = None
    messages: list[Any] = msgspec.field(default_factory=list)


class CheckpointInfo(msgspec.Struct, kw_only=True):
    """One checkpoint file as listed: whether it verifies, and why not."""

    iteration: int
    created_at: str | None
    size_bytes: int
    valid: bool
    path: str
    error: str | None = None


class _Header(msgspec.Struct, kw_only=True):
    format: int
    job_id: str
    iteration: int
    created_at: str
    body_bytes: int
    checksum: str


class _Body(msgspec.Struct):
    state: Any = None
    messages: list[Any] = msgspec.field(default_factory=list)


# Made once: msgspec encoders and decoders are reusable and much faster that way.
_header_encoder = msgspec.json.Encoder()
_body_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(_Header)
_body_decoder = msgspec.json.Decoder(_Body)


def _checksum(body: bytes) -> str:
    return f"{CHECKSUM_ALGO}:{hashlib.sha256(body).hexdigest()}"


def check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidInput(f"job id {job_id!r} cannot name a checkpoint file.")
    return job_id


def check_iteration(iteration: Any) -> int:
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise InvalidInput(f"checkpoint iteration {iteration!r} is not a non-negative integer.")
    if iteration >= 2**63:
        raise InvalidInput(
            f"checkpoint iteration {iteration!r} is too large: it must fit in 64 bits."
        )
    return iteration


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return exc.strerror or str(exc)


def decode_file(data: bytes, job_id: str, iteration: int) -> Checkpoint:
    """Verify and decode a checkpoint file's bytes; raise CheckpointCorrupt saying why."""
    newline = data.find(b"\n")
    if newline < 0:
        raise CheckpointCorrupt("torn file: no complete header line")
    try:
        header = _header_decoder.decode(data[:newline])
    except msgspec.DecodeError as exc:
        raise CheckpointCorrupt(f"unreadable header: {exc}") from None
    if header.format != FORMAT_VERSION:
        raise CheckpointCorrupt(
            f"format version {header.format} is not the supported version {FORMAT_VERSION}"
        )
    if header.job_id != job_id or header.iteration != iteration:
        raise CheckpointCorrupt(
            f"header names job {header.job_id} iteration {header.iteration}, "
            f"the file name job {job_id} iteration {iteration}"
        )
    body = data[newline + 1 :]
    if len(body) != header.body_bytes + 1 or not body.endswith(b"\n"):
        raise CheckpointCorrupt(
            f"torn or damaged file: body is {max(len(body) - 1, 0)} bytes, "
            f"header says {header.body_bytes}"
        )
    return decode_body(body[:-1], header.checksum, job_id, iteration, header.created_at)


def encode_body(job_id: str, iteration: int, state: Any, messages: Any) -> bytes:
    """The checkpoint's body (state and messages) as msgspec JSON; InvalidInput if it cannot be."""
    try:
        return _body_encoder.encode(_Body(state, [] if messages is None else list(messages)))
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidInput(
            f"the checkpoint of job {job_id} iteration {iteration} cannot be encoded: {exc}"
        ) from None
    except RecursionError:
        raise InvalidInput(
            f"the checkpoint of job {job_id} iteration {iteration} cannot be encoded: "
            "it nests too deeply."
        ) from None


def body_checksum(body: bytes) -> str:
    """``sha256:<hex>`` of an encoded body: what a checkpoint's header or row records."""
    return _checksum(body)


def decode_body(
    body: bytes, checksum: str, job_id: str, iteration: int, created_at: str
) -> Checkpoint:
    """Verify a body against its recorded checksum and decode it; CheckpointCorrupt if not."""
    if _checksum(body) != checksum:
        raise CheckpointCorrupt("checksum mismatch: the body was changed or damaged")
    try:
        decoded = _body_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise CheckpointCorrupt(f"unreadable body: {exc}") from None
    return Checkpoint(
        job_id=job_id,
        iteration=iteration,
        created_at=created_at,
        state=decoded.state,
        messages=decoded.messages,
    )


class FileCheckpointStore:
    """The checkpoint files of every job in one directory (a home's checkpoints_dir)."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(checkpoint_dir)

    def path_for(self, job_id: str, iteration: int) -> Path:
        """Where the checkpoint of ``job_id`` at ``iteration`` lives."""
        return self.dir / f"job-{check_job_id(job_id)}-iter{check_iteration(iteration)}.json"

    # ---- writing ----------------------------------------------------------------------

    def save(
        self, job_id: str, iteration: int, state: Any = None, messages: Any = None
    ) -> CheckpointInfo:
        """Write one checkpoint atomically and durably; returns what was written.

        Raises :class:`CheckpointWriteError` when the disk refuses the write (disk
        full, I/O error); the temp file is removed and older checkpoints are untouched.
        """
        final = self.path_for(job_id, iteration)
        data, created_at = self._encode(job_id, iteration, state, messages)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=self.dir)
        except OSError as exc:
            raise self._write_error(job_id, iteration, exc) from exc
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp_name, final)
        except BaseException as exc:
            # Also on an interrupt (a timeout or cancel raised into the agent mid-write).
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            if isinstance(exc, OSError):
                raise self._write_error(job_id, iteration, exc) from exc
            raise
        try:
            # Without this the rename itself may be lost in a power cut.
            fsync_dir(self.dir)
        except OSError as exc:
            raise self._write_error(job_id, iteration, exc) from exc
        return CheckpointInfo(
            iteration=iteration,
            created_at=created_at,
            size_bytes=len(data),
            valid=True,
            path=str(final),
        )

    @staticmethod
    def _encode(job_id: str, iteration: int, state: Any, messages: Any) -> tuple[bytes, str]:
        body = encode_body(job_id, iteration, state, messages)
        created_at = utc_now_text()
        header = _Header(
            format=FORMAT_VERSION,
            job_id=job_id,
            iteration=iteration,
            created_at=created_at,
            body_bytes=len(body),
            checksum=_checksum(body),
        )
        return b"".join((_header_encoder.encode(header), b"\n", body, b"\n")), created_at

    @staticmethod
    def _write_error(job_id: str, iteration: int, exc: OSError) -> CheckpointWriteError:
        return CheckpointWriteError(
            f"the checkpoint of job {job_id} iteration {iteration} was not written because "
            f"{write_reason(exc)}; the previous checkpoint is unchanged."
        )

    # ---- reading ----------------------------------------------------------------------

    def load(self, job_id: str, iteration: int) -> Checkpoint:
        """Load and verify one checkpoint; raises CheckpointCorrupt or FileNotFoundError."""
        path = self.path_for(job_id, iteration)
        try:
            return decode_file(path.read_bytes(), job_id, iteration)
        except CheckpointCorrupt as exc:
            raise CheckpointCorrupt(f"checkpoint {path.name} is not usable: {exc}") from None

    def load_latest(self, job_id: str, at_most: Any = ANY_ITERATION) -> Checkpoint | None:
        """The newest valid checkpoint with iteration <= ``at_most``, or None.

        A worker passes its job row's ``checkpoint_iteration``: files above it are
        strays from a worker that lost the job, and ``None`` (the row records no
        checkpoint) means there is nothing to resume. Left out, every file counts.
        Torn or corrupt files are skipped with a ``checkpoint_invalid`` warning.
        """
        check_job_id(job_id)
        if at_most is None:
            return None
        for iteration, path in reversed(self._files(job_id)):
            if at_most is not ANY_ITERATION and iteration > at_most:
                continue
            try:
                return decode_file(path.read_bytes(), job_id, iteration)
            except FileNotFoundError:
                continue  # pruned between the listing and the read
            except (CheckpointCorrupt, OSError) as exc:
                reason = str(exc) if isinstance(exc, CheckpointCorrupt) else write_reason(exc)
                log.warning("checkpoint_invalid", job_id=job_id, path=str(path), reason=reason)
        return None

    def list(self, job_id: str) -> list[CheckpointInfo]:
        """Every checkpoint file of a job, oldest first, each verified."""
        infos = []
        for iteration, path in self._files(job_id):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                checkpoint = decode_file(data, job_id, iteration)
            except CheckpointCorrupt as exc:
                infos.append(
                    CheckpointInfo(
                        iteration=iteration,
                        created_at=self._header_time(data),
                        size_bytes=len(data),
                        valid=False,
                        path=str(path),
                        error=str(exc),
                    )
                )
                continue
            infos.append(
                CheckpointInfo(
                    iteration=iteration,
                    created_at=checkpoint.created_at,
                    size_bytes=len(data),
                    valid=True,
                    path=str(path),
                )
            )
        return infos

    @staticmethod
    def _header_time(data: bytes) -> str | None:
        try:
            return _header_decoder.decode(data[: data.find(b"\n")]).created_at
        except (msgspec.DecodeError, ValueError):
            return None

    def iterations(self, job_id: str) -> builtins.list[int]:
        """The iterations that have a file for this job, oldest first (unverified)."""
        return [iteration for iteration, _ in self._files(job_id)]

    def _files(self, job_id: str) -> builtins.list[tuple[int, Path]]:
        prefix = f"job-{check_job_id(job_id)}-iter"
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if not name.startswith(prefix):
                continue
            match = _FILE_NAME.fullmatch(name)
            # The prefix alone would also match job "a-b" when asked about job "a".
            if match and match["job"] == job_id:
                found.append((int(match["iteration"]), self.dir / name))
        found.sort()
        return found

    # ---- removing ---------------------------------------------------------------------

    def discard(self, job_id: str, iteration: int) -> bool:
        """Remove one checkpoint file (a save the queue refused); True if it existed."""
        try:
            self.path_for(job_id, iteration).unlink()
        except FileNotFoundError:
            return False
        return True

    def prune(self, job_id: str, keep: int = DEFAULT_KEEP) -> builtins.list[int]:
        """Keep the newest ``keep`` checkpoints of a job; returns the iterations removed."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidInput(f"keep {keep!r} must be an integer of at least 1.")
        files = self._files(job_id)
        removed = []
        for iteration, path in files[: max(len(files) - keep, 0)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(iteration)
        return removed

    def files_by_job(self) -> dict[str, builtins.list[Path]]:
        """Every checkpoint file and leftover temp file, by job, from one listing.

        For removing the checkpoints of many jobs at once (retention): ``remove_all``
        lists the directory once per job.
        """
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return {}
        found: dict[str, builtins.list[Path]] = {}
        for name in names:
            # A temp file is ".<final name>.<random>.tmp".
            final = name[1:].rsplit(".", 2)[0] if name.endswith(".tmp") else name
            match = _FILE_NAME.fullmatch(final)
            if match:
                found.setdefault(match["job"], []).append(self.dir / name)
        return found

    def remove_all(self, job_id: str) -> int:
        """Remove every checkpoint of a job and its leftover temp files; returns how many."""
        count = 0
        for _, path in self._files(job_id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count += 1
        temp_prefix = f".job-{job_id}-iter"
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.dir):
                if name.startswith(temp_prefix) and name.endswith(".tmp"):
                    match = _FILE_NAME.fullmatch(name[1:].rsplit(".", 2)[0])
                    if match and match["job"] == job_id:
                        with contextlib.suppress(FileNotFoundError):
                            (self.dir / name).unlink()
        return count


# The name users import (``from athenad import CheckpointStore``): the file store.
CheckpointStore = FileCheckpointStore
