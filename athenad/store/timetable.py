"""When a schedule's slots fall, and which of them are due.

A slot is an instant: an aware UTC datetime. ``cron`` expressions are read in the
schedule's time zone; ``every`` counts whole intervals from 1970-01-01 00:00 UTC, so
every daemon computes the same slots whatever its clock said when it started.

Daylight saving time follows cron's rules: a local time skipped in spring runs at the
first moment after the gap (02:30 on a 02:00 -> 03:00 night runs at 03:00); a local
time that happens twice in autumn runs twice for expressions whose minute or hour field
starts with ``*`` (they run in real time, like ``*/15 * * * *``) and once, the first
time, for fixed times (``30 2 * * *``).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from athenad.errors import InvalidInput
from athenad.util.timefmt import parse_duration

if TYPE_CHECKING:
    from athenad.config import ScheduleConfig

# The most slots a catch-up replays at once (the latest ones): a daemon down for a month
# on `every = "1m"` would otherwise enqueue 43,200 jobs in one go.
MAX_CATCH_UP = 1000
MIN_EVERY_S = 1.0
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Timetable(Protocol):
    """The slots of one schedule."""

    def backwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        """Slots at or before ``moment``, newest first, without end."""
        ...

    def forwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        """Slots after ``moment``, oldest first, without end."""
        ...


class Due(msgspec.Struct, frozen=True, kw_only=True):
    """The slots to enqueue now, oldest first, and whether earlier missed slots were
    left out: ``skipped`` (only the latest is enqueued without catch_up) or ``capped``
    (a catch-up longer than its cap replays only the latest slots)."""

    slots: list[dt.datetime]
    skipped: bool = False
    capped: bool = False


class CronTable:
    """Slots of a cron expression (croniter's syntax) in a time zone."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        from croniter import croniter

        self.expression = expression
        self.zone = zone_of(timezone)
        if not croniter.is_valid(expression):
            raise InvalidInput(
                f'cron {expression!r} is not a cron expression (five fields, like "*/15 * * * *").'
            )
        fields = expression.split()
        # cron's own rule: "wildcard" jobs run by real time, fixed-time jobs once a day.
        if expression.startswith("@"):
            self.real_time = expression.lower() == "@hourly"
        else:
            self.real_time = fields[0].startswith("*") or fields[1].startswith("*")

    def _iterate(self, start: dt.datetime, *, backwards: bool) -> Iterator[dt.datetime]:
        from croniter import croniter

        it = croniter(self.expression, start.astimezone(self.zone))
        step = it.get_prev if backwards else it.get_next
        while True:
            slot = step(dt.datetime)
            if self.real_time or not _repeated(slot.astimezone(dt.UTC).astimezone(self.zone)):
                yield slot.astimezone(dt.UTC)

    def backwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        # croniter's get_prev is strictly before its start: start one second on, at a
        # whole second, so a slot at exactly ``moment`` is due.
        whole = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        return self._iterate(whole, backwards=True)

    def forwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        return self._iterate(moment, backwards=False)


class IntervalTable:
    """Slots every ``seconds`` (whole milliseconds), counted from the Unix epoch."""

    def __init__(self, seconds: float) -> None:
        if not seconds >= MIN_EVERY_S:
            raise InvalidInput(f"every {seconds:g}s is too short: at least {MIN_EVERY_S:g}s.")
        self.step_ms = round(seconds * 1000)

    def _at(self, index: int) -> dt.datetime:
        return EPOCH + dt.timedelta(milliseconds=index * self.step_ms)

    def _index(self, moment: dt.datetime) -> int:
        """The index of the last slot at or before ``moment``."""
        return ((moment - EPOCH) // dt.timedelta(milliseconds=1)) // self.step_ms

    def backwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        return (self._at(index) for index in itertools.count(self._index(moment), -1))

    def forwards(self, moment: dt.datetime) -> Iterator[dt.datetime]:
        return (self._at(index) for index in itertools.count(self._index(moment) + 1))


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone {name!r} is not a known time zone.") from None


def _repeated(local: dt.datetime) -> bool:
    """Whether a local time is the second of two equal wall times (autumn's change)."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def timetable(schedule: ScheduleConfig) -> Timetable:
    """The timetable of a ``[schedules.NAME]`` section."""
    if schedule.cron is not None:
        return CronTable(schedule.cron, schedule.timezone)
    if schedule.every is None:
        raise InvalidInput("a schedule needs exactly one of cron and every.")
    return IntervalTable(parse_duration(schedule.every, "every"))


def due_slots(
    table: Timetable,
    after: dt.datetime,
    now: dt.datetime,
    *,
    catch_up: bool = False,
    cap: int = MAX_CATCH_UP,
    watched_since: dt.datetime | None = None,
) -> Due:
    """The slots in (``after``, ``now``] to enqueue, at most the latest ``cap``.

    With ``catch_up``, all of them. Without, only the latest of the slots missed while
    no scheduler watched; but a scheduler watching since ``watched_since`` (its last
    look) that is merely late, on a stalled machine say, enqueues every slot since.
    """
    missed: list[dt.datetime] = []
    # Newest first, and no further than needed: a long outage costs at most ``cap + 1``
    # steps, not one per missed slot.
    for slot in table.backwards(now):
        if slot <= after or len(missed) > cap:
            break
        missed.append(slot)
        unwatched = watched_since is None or slot <= watched_since
        if not catch_up and unwatched and len(missed) > 1:
            break  # the latest slot is known, and that earlier ones were missed
    if catch_up:
        keep, capped = missed[:cap], len(missed) > cap
    else:
        late = [slot for slot in missed if watched_since is not None and slot > watched_since]
        keep, capped = (late[:cap] if late else missed[:1]), len(late) > cap
    return Due(
        slots=keep[::-1],
        skipped=not capped and len(missed) > len(keep),
        capped=capped,
    )


def upcoming(table: Timetable, now: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` slots after ``now``."""
    return list(itertools.islice(table.forwards(now), count))


def slot_text(slot: dt.datetime, zone: dt.tzinfo = dt.UTC) -> str:
    """A slot as ISO 8601 in ``zone`` (UTC with Z), milliseconds only when it has them."""
    local = slot.astimezone(zone)
    text = local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z" if str(zone) in ("UTC", "Etc/UTC") else text
