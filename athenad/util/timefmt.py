"""UTC timestamps as SQLite's own text format with milliseconds."""

from __future__ import annotations

import datetime as _dt
import math
import time as _time

# The hot path (two timestamps per claim, one per completion) formats the same
# second many times over: keep the last few seconds' text.
_seconds_text: dict[int, str] = {}


def format_epoch(seconds: float) -> str:
    """Unix time as '2026-11-26 10:00:00.123' (UTC)."""
    whole = int(seconds // 1)
    text = _seconds_text.get(whole)
    if text is None:
        if len(_seconds_text) > 8:
            _seconds_text.clear()
        text = _seconds_text[whole] = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(whole))
    return f"{text}.{min(int((seconds - whole) * 1000), 999):03d}"


def utc_now_text() -> str:
    """Now in UTC as '2026-11-26 10:00:00.123'."""
    return format_epoch(_time.time())


def format_ts(moment: _dt.datetime) -> str:
    moment = moment.astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_ts(text: str) -> _dt.datetime:
    """Parse a stored timestamp back into an aware UTC datetime."""
    return _dt.datetime.fromisoformat(text).replace(tzinfo=_dt.UTC)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Seconds from '90s', '5m', '2h', '14d', '2w' (text needs its unit) or a number.

    Raises InvalidInput naming ``what`` for anything else, zero or negative.
    """
    from athenad.errors import InvalidInput

    amount: float | None
    if isinstance(text, int | float) and not isinstance(text, bool):
        amount, unit = float(text), "s"
    else:
        value = str(text).strip().lower()
        number, unit = value[:-1], value[-1:]
        try:
            amount = float(number)
        except ValueError:
            amount = None
    if unit not in DURATION_UNITS or amount is None or not math.isfinite(amount):
        raise InvalidInput(
            f"{what} {text!r} is not a duration: use a number and a unit (s, m, h, d, w), "
            "like 90s, 5m, 2h or 7d."
        )
    if amount <= 0:
        raise InvalidInput(f"{what} {text!r} must be a positive duration, like 1h or 7d.")
    return amount * DURATION_UNITS[unit]


def parse_since(text: str, option: str = "--since") -> str | None:
    """Turn '30m', '1h', '1d', '7d', '2w' or 'all' into a timestamp lower bound (None = all)."""
    if isinstance(text, str) and text.strip().lower() == "all":
        return None
    seconds = parse_duration(text, option)
    try:
        since = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None  # further back than any date: the whole history
    return format_ts(since)
