"""When schedules' slots fall, and which are due: cron in a time zone (daylight saving
time included), every, the latest slot only or a catch-up, and its cap."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest

from athenad.config import ScheduleConfig, load_config
from athenad.errors import ConfigError, InvalidInput
from athenad.paths import Home
from athenad.store.schedules import unique_key
from athenad.store.timetable import (
    MAX_CATCH_UP,
    CronTable,
    IntervalTable,
    due_slots,
    slot_text,
    timetable,
    upcoming,
)

UTC = dt.UTC


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def between(table, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    return list(itertools.takewhile(lambda slot: slot <= end, table.forwards(start)))


def test_cron_is_read_in_the_schedules_time_zone():
    table = CronTable("0 9 * * 1-5", "Europe/Paris")
    # Friday 2026-12-04 10:00 UTC: the next weekday 09:00 in Paris is Monday, 08:00 UTC.
    assert upcoming(table, at(2026, 12, 4, 10), 2) == [at(2026, 12, 7, 8), at(2026, 12, 8, 8)]
    # In summer Paris is UTC+2.
    assert upcoming(table, at(2026, 7, 1), 1) == [at(2026, 7, 1, 7)]


def test_a_slot_at_exactly_now_is_due_and_next_runs_start_after_now():
    table = CronTable("*/15 * * * *")
    now = at(2026, 12, 2, 9, 15)
    assert due_slots(table, at(2026, 12, 2, 9, 0), now).slots == [now]
    assert upcoming(table, now, 1) == [at(2026, 12, 2, 9, 30)]
    assert due_slots(table, now, now + dt.timedelta(minutes=14, seconds=59)).slots == []


def test_spring_forward_runs_a_skipped_local_time_once_after_the_gap():
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    daily = CronTable("30 2 * * *", "Europe/Berlin")
    day = between(daily, at(2026, 3, 28, 12), at(2026, 3, 29, 12))
    assert day == [at(2026, 3, 29, 1)]  # 03:00 CEST, the first moment after the gap
    hourly = CronTable("30 * * * *", "Europe/Berlin")
    assert len(between(hourly, at(2026, 3, 28, 23), at(2026, 3, 29, 22))) == 23


def test_fall_back_runs_fixed_times_once_and_wildcard_hours_in_real_time():
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    daily = CronTable("30 2 * * *", "Europe/Berlin")
    day = between(daily, at(2026, 10, 24, 12), at(2026, 10, 25, 12))
    assert day == [at(2026, 10, 25, 0, 30)]  # 02:30 CEST only
    assert list(itertools.islice(daily.backwards(at(2026, 10, 25, 12)), 1)) == day
    hourly = CronTable("30 * * * *", "Europe/Berlin")
    slots = between(hourly, at(2026, 10, 24, 22), at(2026, 10, 25, 22, 59))
    assert len(slots) == 25  # the longer day: both 02:30s
    assert at(2026, 10, 25, 0, 30) in slots and at(2026, 10, 25, 1, 30) in slots


@pytest.mark.parametrize(
    "expression", ["30 2 * * *", "0 3 * * *", "*/15 * * * *", "0 */2 * * *", "15 1-3 * * *"]
)
@pytest.mark.parametrize("day", [at(2026, 3, 28, 12), at(2026, 10, 24, 12)])
def test_backwards_and_forwards_agree_across_daylight_saving_changes(expression, day):
    table = CronTable(expression, "Europe/Berlin")
    end = day + dt.timedelta(days=2)
    forwards = between(table, day, end)
    backwards = list(itertools.takewhile(lambda slot: slot > day, table.backwards(end)))
    assert backwards[::-1] == forwards


def test_every_counts_from_the_epoch_so_every_daemon_agrees():
    table = IntervalTable(600)
    assert upcoming(table, at(2026, 12, 2, 9, 7, 30), 2) == [
        at(2026, 12, 2, 9, 10),
        at(2026, 12, 2, 9, 20),
    ]
    assert next(table.backwards(at(2026, 12, 2, 9, 10))) == at(2026, 12, 2, 9, 10)
    seven = IntervalTable(7)
    assert upcoming(seven, at(2026, 12, 2), 1)[0].timestamp() % 7 == 0


def test_without_catch_up_only_the_latest_missed_slot_is_due():
    table = timetable(ScheduleConfig(agent="echo", every="10m"))
    due = due_slots(table, at(2026, 12, 1, 0, 0), at(2026, 12, 2, 9, 5))
    assert due.slots == [at(2026, 12, 2, 9, 0)]
    assert due.skipped and not due.capped
    one = due_slots(table, at(2026, 12, 2, 8, 50), at(2026, 12, 2, 9, 5))
    assert one.slots == [at(2026, 12, 2, 9, 0)] and not one.skipped


def test_a_scheduler_that_was_watching_but_late_enqueues_every_slot_since_its_last_look():
    table = IntervalTable(1)
    last_look = at(2026, 12, 2, 9, 0, 0, 200_000)
    # A stalled machine: the look after 09:00:00.2 comes at 09:00:03.1.
    now = at(2026, 12, 2, 9, 0, 3, 100_000)
    due = due_slots(table, at(2026, 12, 2, 9, 0), now, watched_since=last_look)
    assert due.slots == [at(2026, 12, 2, 9, 0, s) for s in (1, 2, 3)]
    assert not due.skipped and not due.capped
    # Slots due before its last look (while no one watched) still count as missed.
    due = due_slots(table, at(2026, 12, 2, 8, 59, 50), now, watched_since=last_look)
    assert due.slots == [at(2026, 12, 2, 9, 0, s) for s in (1, 2, 3)] and due.skipped
    capped = due_slots(table, at(2026, 12, 2, 9, 0), now, watched_since=last_look, cap=2)
    assert capped.slots == [at(2026, 12, 2, 9, 0, s) for s in (2, 3)] and capped.capped


def test_catch_up_replays_every_missed_slot_in_order():
    table = CronTable("*/15 * * * *")
    due = due_slots(table, at(2026, 12, 2, 8, 0), at(2026, 12, 2, 9, 5), catch_up=True)
    assert due.slots == [at(2026, 12, 2, 8, 15), at(2026, 12, 2, 8, 30), at(2026, 12, 2, 8, 45),
                         at(2026, 12, 2, 9, 0)]  # fmt: skip
    assert not due.skipped and not due.capped


@pytest.mark.parametrize("schedule", [{"every": "1m"}, {"cron": "* * * * *"}])
def test_a_catch_up_replays_at_most_the_cap_latest_slots_and_quickly(schedule):
    table = timetable(ScheduleConfig(agent="echo", **schedule))
    now = at(2026, 12, 2, 9, 0)
    started = time.monotonic()
    due = due_slots(table, now - dt.timedelta(days=365), now, catch_up=True)
    assert time.monotonic() - started < 2  # not one step per missed minute of a year
    assert len(due.slots) == MAX_CATCH_UP == 1000 and due.capped
    assert due.slots[-1] == now and due.slots[0] == now - dt.timedelta(minutes=999)
    small = due_slots(table, now - dt.timedelta(minutes=10), now, catch_up=True, cap=3)
    assert small.slots == [now - dt.timedelta(minutes=m) for m in (2, 1, 0)] and small.capped


def test_slots_are_written_in_utc_with_z_or_in_the_schedules_zone():
    from zoneinfo import ZoneInfo

    slot = at(2026, 12, 2, 9, 15)
    assert slot_text(slot) == "2026-12-02T09:15:00Z"
    assert slot_text(slot, ZoneInfo("Europe/Paris")) == "2026-12-02T10:15:00+01:00"
    assert slot_text(slot + dt.timedelta(milliseconds=500)) == "2026-12-02T09:15:00.500Z"
    assert unique_key("nightly", slot) == "schedule:nightly:2026-12-02T09:15:00Z"


def test_bad_schedules_are_one_sentence_each(tmp_path):
    with pytest.raises(InvalidInput, match="too short"):
        IntervalTable(0.5)
    with pytest.raises(InvalidInput, match="not a known time zone"):
        CronTable("* * * * *", "Mars/Olympus")
    with pytest.raises(InvalidInput, match="not a cron expression"):
        CronTable("every day")
    home = Home.resolve(tmp_path / "home").ensure()
    home.config_path.write_text('[schedules.fast]\nevery = "500ms"\nagent = "echo"\n')
    with pytest.raises(ConfigError, match="not a duration"):
        load_config(home)
    home.config_path.write_text('[schedules.fast]\nevery = "0.5s"\nagent = "echo"\n')
    with pytest.raises(ConfigError, match=r"\[schedules.fast\] every '0.5s' is too short"):
        load_config(home)
