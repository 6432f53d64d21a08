"""Backup and restore of a home: ``athena.db`` and ``.athena/`` in one ``.tar.gz``.

The archive holds ``manifest.json``, ``athena.db`` (a snapshot made with SQLite's
online backup API, consistent even while workers write, in rollback-journal mode so
it is one self-contained file) and ``.athena/`` without the run directory and the pid
file. Session files are read under their shared lock, so no half-written line is
copied. The archive may not be written inside ``.athena/`` (it would hold itself and
earlier backups), and its directory must exist. Restoring refuses while the daemon
or any worker of the home runs (an orphaned worker can outlive its supervisor); what
it replaces is moved aside to ``.athena-before-restore-<time>/``, never deleted.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import apsw
import msgspec
import psutil

from athenad.errors import DaemonError, InvalidInput
from athenad.paths import Home, read_pid
from athenad.util.logs import LibraryLogger
from athenad.util.timefmt import utc_now_text

log = LibraryLogger("athenad.storage.backup")

BACKUP_FORMAT = 1
MANIFEST = "manifest.json"
DB_NAME = "athena.db"
STATE_NAME = ".athena"
_SKIP_DIRS = {"run"}
_SKIP_FILES = {"athenad.pid"}


def snapshot_db(source: Path, target: Path, *, timeout_s: float = 30.0) -> None:
    """Copy ``source`` to ``target`` with the online backup API, in one consistent step."""
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READWRITE)
    dst = apsw.Connection(str(target))
    try:
        src.set_busy_timeout(int(timeout_s * 1000))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with dst.backup("main", src, "main") as job:
                    job.step(-1)  # all pages in one step: one read snapshot
                break
            except (apsw.BusyError, apsw.LockedError):
                if time.monotonic() > deadline:
                    raise DaemonError(
                        "athena.db stayed locked; the backup could not start."
                    ) from None
                time.sleep(0.05)
        dst.pragma("journal_mode", "delete")
    finally:
        dst.close()
        src.close()


def _state_files(state_dir: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(state_dir):
        here = Path(root)
        if here == state_dir:
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        dirs[:] = [d for d in dirs if here / d not in exclude]
        for name in sorted(names):
            if here == state_dir and name in _SKIP_FILES:
                continue
            if name.endswith(".tmp") or here / name in exclude:
                continue  # an atomic write in progress, or this backup's own files
            found.append(here / name)
    return found


def _add_file(archive: tarfile.TarFile, path: Path, arcname: str) -> bool:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return False
    with handle:
        if path.suffix == ".jsonl":
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # no appender mid-line
        data = handle.read()
        st = os.fstat(handle.fileno())
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mtime = st.st_mtime
    info.mode = st.st_mode & 0o777
    archive.addfile(info, io.BytesIO(data))
    return True


def backup(home: Home, dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the archive to ``dest`` (atomically); returns what went in."""
    dest = _check_dest(home, Path(dest).expanduser())
    has_db = home.db_path.exists()
    count = 0
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".athena-backup-") as work:
        part = Path(work) / "archive.tar.gz"
        with tarfile.open(part, "w:gz") as archive:
            if has_db:
                snap = Path(work) / DB_NAME
                snapshot_db(home.db_path, snap)
                archive.add(snap, arcname=DB_NAME)
            if home.state_dir.is_dir():
                for path in _state_files(home.state_dir, exclude=(Path(work), dest)):
                    rel = path.relative_to(home.root).as_posix()
                    count += _add_file(archive, path, rel)
            manifest = {
                "format": BACKUP_FORMAT,
                "created_at": utc_now_text(),
                "database": has_db,
                "files": count,
            }
            data = msgspec.json.encode(manifest)
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), time.time()
            archive.addfile(info, io.BytesIO(data))
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, dest)
    log.info("backup_written", path=str(dest), database=has_db, files=count)
    return {"path": str(dest), "database": has_db, "files": count}


def _check_dest(home: Home, dest: Path) -> Path:
    """The archive's path: its directory must exist and lie outside ``.athena/``."""
    if dest.is_dir():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        dest = dest / f"athena-backup-{stamp}.tar.gz"
    dest = dest.parent.resolve() / dest.name
    if not dest.parent.is_dir():
        raise InvalidInput(f"the directory {dest.parent} does not exist; create it first.")
    state = home.state_dir.resolve()
    if dest == state or state in dest.parents:
        raise InvalidInput(
            f"{dest} is inside {state}; write the backup outside .athena/, "
            "or it would contain itself and earlier backups."
        )
    return dest


def home_workers(home: Home) -> list[int]:
    """Pids of live worker processes of this home (``python -m workers --home <root>``)."""
    root = home.root.resolve()
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        try:
            at = cmdline.index("-m")
            if cmdline[at + 1] != "workers":
                continue
            where = Path(cmdline[cmdline.index("--home") + 1])
        except (ValueError, IndexError):
            continue
        if where == root or where.resolve() == root:
            found.append(process.info["pid"])
    return found


def _check_member(member: tarfile.TarInfo, source: str) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise InvalidInput(f"{source} holds an unsafe path {member.name!r}; not restoring.")
    if not (member.isfile() or member.isdir()):
        raise InvalidInput(f"{source} holds {member.name!r}, which is not a plain file.")
    if path.parts[0] not in (MANIFEST, DB_NAME, STATE_NAME):
        raise InvalidInput(f"{source} holds {member.name!r}, which no backup contains.")
    return path


def restore(home: Home, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Replace the home's athena.db and .athena/ with the archive's; daemon must be stopped."""
    pid = read_pid(home)
    if pid is not None:
        raise DaemonError(f"the daemon is running (pid {pid}); stop it before restoring.")
    workers = home_workers(home)
    if workers:
        pids = ", ".join(str(p) for p in workers)
        raise DaemonError(
            f"worker process(es) of this home are still running (pid {pids}); "
            "wait for them to exit or stop them before restoring."
        )
    source = Path(source).expanduser()
    if not source.is_file():
        raise InvalidInput(f"{source} is not a backup file.")
    home.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=home.root, prefix=".athena-restore-"))
    try:
        manifest = _extract(source, staging)
        aside = _move_aside(home)
        if (staging / DB_NAME).exists():
            os.replace(staging / DB_NAME, home.db_path)
        if (staging / STATE_NAME).exists():
            os.replace(staging / STATE_NAME, home.state_dir)
        home.ensure()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("backup_restored", path=str(source), previous=str(aside) if aside else None)
    return {
        "path": str(source),
        "database": bool(manifest.get("database")),
        "files": int(manifest.get("files", 0)),
        "previous_saved_to": str(aside) if aside else None,
    }


def _extract(source: Path, staging: Path) -> dict[str, Any]:
    try:
        archive = tarfile.open(source, "r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError):
        raise InvalidInput(f"{source} is not a readable .tar.gz backup archive.") from None
    manifest: dict[str, Any] | None = None
    with archive:
        for member in archive:
            path = _check_member(member, str(source))
            target = staging.joinpath(*path.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            reader = archive.extractfile(member)
            assert reader is not None
            data = reader.read()
            if path.parts == (MANIFEST,):
                manifest = msgspec.json.decode(data)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, member.mode & 0o777 or 0o644)
            os.utime(target, (member.mtime, member.mtime))
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise InvalidInput(f"{source} has no Athena backup manifest.")
    return manifest


def _move_aside(home: Home) -> Path | None:
    """Move what a restore replaces into one folder, so nothing is lost."""
    present = [
        p
        for p in (
            home.db_path,
            home.db_path.with_name(DB_NAME + "-wal"),
            home.db_path.with_name(DB_NAME + "-shm"),
            home.state_dir,
        )
        if p.exists()
    ]
    if not present:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    aside = home.root / f".athena-before-restore-{stamp}"
    suffix = 1
    while aside.exists():
        suffix += 1
        aside = home.root / f".athena-before-restore-{stamp}-{suffix}"
    aside.mkdir()
    for path in present:
        os.replace(path, aside / path.name)
    return aside
