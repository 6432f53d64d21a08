"""Named SQL blocks: every backend keeps its statements in one ``queries.sql``.

A block starts with a line ``-- name: some_query`` and runs to the next one; comment
lines inside a block describe it and are left out of the SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

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
