"""Writing files that must not tear: temp file, fsync, rename, fsync of the directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    data: bytes,
    *,
    exclusive: bool = False,
    mode: int | None = 0o600,
    durable: bool = True,
) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new bytes, never half.

    With ``exclusive`` the file must not exist yet (it is linked into place, never
    overwriting). ``mode`` sets the file's permissions before it is put in place: by
    default 0600, private as everything under .athena/ is; ``None`` gives the
    process's default (0o666 less the umask), like any new file. Without ``durable``
    nothing is fsynced: for run-state files that need not outlive a crash.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, path)  # fails if the target exists
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if durable:
        fsync_dir(path.parent)
