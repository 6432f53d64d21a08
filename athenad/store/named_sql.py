"""Named SQL blocks: every backend keeps its statements in one ``queries.sql``.

A block starts with a line ``-- name: some_query`` and runs to the next one; comment
lines inside a block describe it and are left out of the SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

from athenad.errors import AthenaError

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into {name: sql}. Duplicate names are an error."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if name is None:
            return
        body = "\n".join(line for line in lines if not line.lstrip().startswith("--")).strip()
        if not body:
            raise ValueError(f"query {name!r} has no SQL")
        queries[name] = body

    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match:
            flush()
            name = match.group(1)
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice")
            lines = []
        elif name is not None:
            lines.append(line)
    flush()
    return queries


def load_queries(path: Path) -> dict[str, str]:
    """The named queries of one file."""
    return parse_queries(path.read_text(encoding="utf-8"))


_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def numbered_migrations(folder: Path) -> list[tuple[int, str, str]]:
    """(version, file name, sql) of every ``NNNN_name.sql`` in ``folder``, in order.

    The numbers must run 1..n without gaps: a missing file would skip a step.
    """
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise AthenaError(f"migration numbers are not 1..n without gaps: {versions}")
    return found
