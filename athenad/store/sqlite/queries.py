"""All of Athena's SQL, loaded once from named blocks in sql/queries.sql.

A block starts with a line ``-- name: some_query`` and runs to the next one.
Call sites say ``QUERIES["claim_job"]``.
"""

from __future__ import annotations

import re
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"
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


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


QUERIES: dict[str, str] = parse_queries(read_sql("queries.sql"))
