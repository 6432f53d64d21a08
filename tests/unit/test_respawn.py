"""The per-slot respawn backoff, its record for ``athenad status``, and crash reasons."""

from __future__ import annotations

import pytest

from athenad.daemon.respawn import (
    CRASH_WINDOW_S,
    MAX_DELAY_S,
    STABLE_AFTER_S,
    SlotBackoff,
    backoff_delay,
    crash_reason,
    is_crash,
)
from athenad.daemon.slots import SlotsRecord, crash_totals, read_slots, slot_report, write_slots


def test_the_first_crash_is_replaced_at_once_then_the_wait_doubles_to_the_cap() -> None:
    delays = [backoff_delay(streak) for streak in range(1, 14)]
    assert delays[:6] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8, 1.6])
    assert delays[-1] == MAX_DELAY_S and max(delays) == MAX_DELAY_S
    assert backoff_delay(10_000) == MAX_DELAY_S  # no overflow on a very long streak


def test_crashes_in_a_row_back_the_slot_off() -> None:
    slot = SlotBackoff()
    now = 1000.0
    waits = []
    for _ in range(5):
        slot.came_up(now + 1)  # up briefly each time: far from settling
        now += 2
        waits.append(slot.crashed(now))
        assert slot.wait_s(now) == pytest.approx(waits[-1])
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8])
    assert slot.backoff_s(now) == pytest.approx(0.8)
    assert slot.wait_s(now + 0.5) == pytest.approx(0.3)
    assert slot.wait_s(now + 1) == 0.0


def test_a_worker_that_stays_up_a_minute_ends_the_streak() -> None:
    slot = SlotBackoff()
    for at in (0.0, 1.0, 2.0):
        slot.crashed(at)
    slot.came_up(3.0)
    assert slot.backoff_s(3.0 + STABLE_AFTER_S - 1) == pytest.approx(0.2)
    assert slot.backoff_s(3.0 + STABLE_AFTER_S) == 0.0  # shown as over before any crash
    assert slot.crashed(3.0 + STABLE_AFTER_S) == 0.0  # the next crash starts a new streak
    assert slot.streak == 1


def test_a_worker_that_never_came_up_does_not_end_the_streak() -> None:
    slot = SlotBackoff()
    slot.crashed(0.0)
    assert slot.crashed(STABLE_AFTER_S * 5) == pytest.approx(0.1)


def test_crashes_are_counted_over_the_last_window_only() -> None:
    slot = SlotBackoff()
    for at in (0.0, 10.0, 20.0):
        slot.crashed(at)
    assert len(slot.recent_crashes(20.0)) == 3
    assert len(slot.recent_crashes(CRASH_WINDOW_S + 5)) == 2
    slot.crashed(CRASH_WINDOW_S + 15)
    assert slot.crash_times == [20.0, CRASH_WINDOW_S + 15]  # older ones are dropped


def test_shifting_to_another_clock_keeps_every_answer() -> None:
    slot = SlotBackoff()
    for at in (5.0, 6.0, 7.0):
        slot.crashed(at)
    moved = slot.shifted(1_000_000.0)
    for now in (7.0, 7.1, 7.5, 50.0, 70.0):
        later = now + 1_000_000.0
        assert moved.wait_s(later) == pytest.approx(slot.wait_s(now))
        assert moved.backoff_s(later) == slot.backoff_s(now)
        assert len(moved.recent_crashes(later)) == len(slot.recent_crashes(now))


@pytest.mark.parametrize(
    ("code", "reason"),
    [(-9, "SIGKILL"), (-11, "SIGSEGV"), (1, "exit"), (3, "exit"), (-50, "SIG50")],
)
def test_crash_reason_names_the_signal_or_says_exit(code: int, reason: str) -> None:
    assert crash_reason(code) == reason


@pytest.mark.parametrize(
    ("up", "code", "serving", "crash"),
    [
        (True, -9, True, True),  # killed while serving
        (True, 1, True, True),  # an agent's os._exit(1)
        (True, -9, False, True),  # ready, then killed before the daemon said so
        (False, -9, True, True),  # killed while starting, the daemon serving: someone's kill
        (False, 3, True, False),  # cannot import its agents: a boot failure
        (False, 1, True, False),
        (False, -11, False, False),  # dies starting before the daemon ever served
    ],
)
def test_what_counts_as_a_crash_and_what_as_a_boot_failure(
    up: bool, code: int, serving: bool, crash: bool
) -> None:
    assert is_crash(up=up, code=code, serving=serving) is crash


def test_slot_report_and_totals_come_from_the_record(home) -> None:
    busy = SlotBackoff()
    busy.crashed(100.0)
    busy.crashed(101.0)
    record = SlotsRecord(
        pid=42,
        slots={0: SlotBackoff(), 1: busy},
        workers={1234: 0},
        crashes_total={"SIGKILL": 2},
    )
    write_slots(home, record)
    loaded = read_slots(home)
    assert loaded == record
    assert crash_totals(home) == {"SIGKILL": 2}
    assert slot_report(loaded, {1234}, 101.05) == [
        {"slot": 0, "crashes_last_minute": 0, "respawn_backoff_s": 0.0, "respawn_in_s": None},
        {"slot": 1, "crashes_last_minute": 2, "respawn_backoff_s": 0.1, "respawn_in_s": 0.05},
    ]


def test_no_record_means_no_crashes(home) -> None:
    assert read_slots(home) is None and crash_totals(home) == {}
    (home.run_dir / "slots.json").write_text("{torn")
    assert read_slots(home) is None
