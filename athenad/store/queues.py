"""Named queues as both backends show them: limits to change, and each queue's row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from athenad.config import QueueConfig, parse_rate
from athenad.errors import InvalidInput
from athenad.store.contract import UNFINISHED
from athenad.store.jobspec import check_int
from athenad.util.timefmt import parse_ts

DEFAULT_QUEUE = "default"
_PERIOD_NAMES = {1.0: "s", 60.0: "m", 3600.0: "h"}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class QueueLimits(msgspec.Struct, kw_only=True):
    """New limits of a queue; a field left UNSET keeps its value, None clears it."""

    concurrency: int | None = UNSET
    rate: str | None = UNSET
    priority: int | None = UNSET

    def params(self, queue: str) -> dict[str, Any]:
        """The named parameters of the set_queue_limits query."""
        concurrency = None if self.concurrency is UNSET else self.concurrency
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise InvalidInput(f"concurrency {concurrency!r} must be a whole number of at least 1.")
        if concurrency is not None:
            check_int("concurrency", concurrency)
        rate_limit = rate_period = None
        if self.rate is not UNSET and self.rate is not None:
            rate_limit, rate_period = parse_rate(self.rate)
        priority = None if self.priority is UNSET else self.priority
        if priority is not None:
            check_int("priority", priority)
        return {
            "queue": queue,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "rate_period_s": rate_period,
            "priority": priority,
            "set_concurrency": self.concurrency is not UNSET,
            "set_rate": self.rate is not UNSET,
            "set_priority": self.priority is not UNSET,
        }


def apply_queue_config(store: Any, queues: Mapping[str, QueueConfig]) -> None:
    """Write athena.toml's ``[queues.NAME]`` limits into the database (at daemon start).

    The file is the declared state: ``athenactl queue set`` changes last until the next
    start. Pausing is never in the file, so it is left as it is.
    """
    for name, settings in queues.items():
        limits = QueueLimits(
            concurrency=settings.concurrency, rate=settings.rate, priority=settings.priority
        )
        store.set_queue_limits(name, limits)


def rate_text(limit: int | None, period_s: float | None) -> str | None:
    """'60/m' from (60, 60.0)."""
    if limit is None or period_s is None:
        return None
    unit = _PERIOD_NAMES.get(float(period_s))
    return f"{limit}/{unit}" if unit else f"{limit}/{period_s:g}s"


def queue_rows(
    settings: Iterable[Sequence[Any]],
    counts: Iterable[Sequence[Any]],
    now: float,
    recent_starts: Callable[[str, float], int],
) -> list[dict[str, Any]]:
    """One row per queue with settings or unfinished jobs (and always ``default``).

    ``settings`` rows: (name, paused, concurrency, rate_limit, rate_period_s, priority,
    held_until text, hold_reason); ``counts`` rows: (queue, status, count).
    """
    rows: dict[str, dict[str, Any]] = {}

    def row_of(name: str) -> dict[str, Any]:
        if name not in rows:
            rows[name] = {
                "name": name,
                "state": "open",
                "paused": False,
                "concurrency": None,
                "rate": None,
                "priority": None,
                "held_until": None,
                "hold_reason": None,
                "starts_in_window": None,
                "counts": dict.fromkeys(UNFINISHED, 0),
            }
        return rows[name]

    row_of(DEFAULT_QUEUE)
    for name, paused, concurrency, limit, period, priority, held_until, reason in settings:
        row = row_of(name)
        held = held_until is not None and parse_ts(held_until).timestamp() > now
        row.update(
            paused=bool(paused),
            concurrency=concurrency,
            rate=rate_text(limit, period),
            priority=priority,
            held_until=held_until if held else None,
            hold_reason=reason if held else None,
            state="paused" if paused else "held" if held else "open",
        )
        if limit is not None and period is not None:
            row["starts_in_window"] = recent_starts(name, float(period))
    for name, status, count in counts:
        row_of(name)["counts"][status] = int(count)
    return [rows[name] for name in sorted(rows)]
