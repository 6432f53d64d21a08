"""Rows as the SQLite backend gives them: timestamps as UTC text, JSON decoded."""

from __future__ import annotations

import datetime as dt
from typing import Any

from athenad.store.jobspec import decode_json
from athenad.util.timefmt import format_ts


def as_text_times(row: dict[str, Any]) -> dict[str, Any]:
    """Every timestamp of a row as 'YYYY-MM-DD HH:MM:SS.fff' UTC, like SQLite stores it."""
    return {
        key: format_ts(value) if isinstance(value, dt.datetime) else value
        for key, value in row.items()
    }


def job_dict(row: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    """A job row for callers: text times, payload and result decoded, parents listed."""
    job = as_text_times(row)
    job["payload"] = decode_json(job["payload"])
    job["result"] = decode_json(job["result"])
    job["parents"] = parents
    return job
