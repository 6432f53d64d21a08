"""Rows as the SQLite backend gives them: timestamps as UTC text, JSON decoded."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from athenad.store.jobspec import ClaimedJob, decode_json
from athenad.util.timefmt import format_ts

_decoder = msgspec.json.Decoder()


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


def claimed_job(row: tuple[Any, ...], lease_started: float) -> ClaimedJob:
    """What a claim returned (the columns of the claim_job query, in order)."""
    return ClaimedJob(
        id=row[0],
        type=row[1],
        agent_type=row[2],
        payload=_decoder.decode(row[3]),
        attempt=row[4],
        max_attempts=row[5],
        fence=row[6],
        timeout_s=row[7],
        checkpoint_iteration=row[8],
        session_id=row[9],
        priority=row[10],
        interruptions=row[11],
        lease_started=lease_started,
    )
