"""The current git branch, read from ``.git/HEAD`` without running git.

Handles a normal checkout (``.git`` is a directory), a linked worktree or submodule
(``.git`` is a file holding ``gitdir: <path>``), and a detached HEAD, reported as
``detached:<first 12 hex digits>`` (a colon cannot appear in a branch name, so this
never collides with a real branch).
"""

from __future__ import annotations

import os
from pathlib import Path

_HEADS = "refs/heads/"


def find_git_dir(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The git directory of the repository containing ``start`` (default: cwd)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            try:
                text = dot_git.read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if not text.startswith("gitdir:"):
                return None
            target = Path(text[len("gitdir:") :].strip())
            return target if target.is_absolute() else (folder / target).resolve()
    return None


def branch_from_head(text: str) -> str | None:
    """Turn the text of a HEAD file into a branch name (or ``detached:<sha>``)."""
    text = text.strip()
    if text.startswith("ref:"):
        ref = text[len("ref:") :].strip()
        return ref[len(_HEADS) :] if ref.startswith(_HEADS) else ref
    if text and all(ch in "0123456789abcdef" for ch in text.lower()):
        return f"detached:{text.lower()[:12]}"
    return None


def current_branch(start: str | os.PathLike[str] | None = None) -> str | None:
    """The branch checked out where ``start`` lives, or None outside a repository."""
    git_dir = find_git_dir(start)
    if git_dir is None:
        return None
    try:
        return branch_from_head((git_dir / "HEAD").read_text(encoding="utf-8"))
    except OSError:
        return None
