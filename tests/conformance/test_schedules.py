"""Schedules' slots on every backend: each slot enqueued once however many schedulers
race for it, a restart that replays nothing but the latest missed slot, catch_up that
replays them all (up to its cap), and the unique key as a second guard.

``now`` is passed in, so a test moves time forward without waiting; slots lie after
the real clock, so a schedule first seen now has them all ahead of it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

from athenad.config import ScheduleConfig
from athenad.store.queues import QueueLimits
from athenad.store.schedules import (
    SlotJob,
    describe_all,
    enqueue_due,
    slot_fields,
    slot_store,
    unique_key,
)
from athenad.store.timetable import slot_text

MINUTE = dt.timedelta(minutes=1)
EVERY_MINUTE = ScheduleConfig(agent="echo", every="1m", payload={"n": 1})
CATCH_UP = ScheduleConfig(agent="echo", every="1m", catch_up=True)


def next_minute(slots: Any) -> dt.datetime:
    """The first whole minute after the database's clock."""
    now = slots.now()
    return now.replace(second=0, microsecond=0) + MINUTE


def slot_jobs(store: Any, name: str) -> list[dict[str, Any]]:
    """The jobs of a schedule's slots, oldest slot first."""
    prefix = f"schedule:{name}:"
    jobs = [
        job for job in store.list_jobs(limit=10_000) if (job["unique_key"] or "").startswith(prefix)
    ]
    return sorted(jobs, key=lambda job: job["unique_key"])


def test_a_new_schedule_starts_with_its_next_slot_then_enqueues_each_slot_once(store):
    slots = slot_store(store)
    assert enqueue_due(slots, "tick", EVERY_MINUTE, slots.now()).enqueued == []
    first = next_minute(slots)
    outcome = enqueue_due(slots, "tick", EVERY_MINUTE, first + dt.timedelta(seconds=30))
    assert [item.slot for item in outcome.enqueued] == [first]
    assert not outcome.skipped and not outcome.capped
    assert enqueue_due(slots, "tick", EVERY_MINUTE, first + dt.timedelta(seconds=59)).enqueued == []
    (job,) = slot_jobs(store, "tick")
    assert job["id"] == outcome.enqueued[0].job_id
    assert (job["type"], job["payload"], job["status"]) == ("echo", {"n": 1}, "pending")
    assert job["unique_key"] == f"schedule:tick:{slot_text(first)}"
    assert store.claim("w").id == job["id"]


def test_two_schedulers_racing_on_the_same_slots_enqueue_each_once(store_factory):
    stores = [store_factory(), store_factory()]  # a connection each, like two daemons
    start = next_minute(slot_store(stores[0]))
    rounds = 12
    # Some rounds jump several minutes, so catch-up batches race too.
    moments = [start + MINUTE * (step * 2 + step % 3) for step in range(rounds)]
    barrier = threading.Barrier(2)
    enqueued: list[list[dt.datetime]] = [[], []]
    errors: list[BaseException] = []

    def scheduler(index: int) -> None:
        slots = slot_store(stores[index])
        try:
            for now in moments:
                barrier.wait(timeout=30)
                outcome = enqueue_due(slots, "race", CATCH_UP, now)
                assert not any(item.duplicate for item in outcome.enqueued)
                enqueued[index] += [item.slot for item in outcome.enqueued]
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    expected = [start + MINUTE * n for n in range(int((moments[-1] - start) / MINUTE) + 1)]
    together = Counter(enqueued[0] + enqueued[1])
    assert sorted(together) == expected and set(together.values()) == {1}
    assert [job["unique_key"] for job in slot_jobs(stores[0], "race")] == [
        unique_key("race", slot) for slot in expected
    ]


def test_the_compare_and_set_lets_one_of_two_readers_of_a_row_move_it(store_factory):
    first, second = slot_store(store_factory()), slot_store(store_factory())
    slot = next_minute(first)
    seen = first.state("cas")
    assert seen == second.state("cas") and seen.last_slot is None
    jobs = [SlotJob(slot, slot_fields("cas", EVERY_MINUTE, slot))]
    won = first.enqueue_slots("cas", seen.last_slot, jobs)
    assert won is not None and len(won) == 1
    assert second.enqueue_slots("cas", seen.last_slot, jobs) is None
    assert second.state("cas").last_slot == slot
    # Never backwards, even from the value it holds.
    assert second.enqueue_slots("cas", slot, jobs) is None


def test_a_restart_enqueues_only_the_latest_missed_slot_and_catch_up_replays_them(
    store_factory,
):
    before = store_factory()
    slots = slot_store(before)
    start = next_minute(slots)
    for name, schedule in (("latest", EVERY_MINUTE), ("replay", CATCH_UP)):
        slots.state(name)
        assert len(enqueue_due(slots, name, schedule, start).enqueued) == 1
    before.close()  # the daemon stops; ten slots pass

    after = store_factory()
    slots = slot_store(after)
    now = start + 10 * MINUTE + dt.timedelta(seconds=5)
    latest = enqueue_due(slots, "latest", EVERY_MINUTE, now)
    assert [item.slot for item in latest.enqueued] == [start + 10 * MINUTE]
    assert latest.skipped and latest.missed_after == start
    replay = enqueue_due(slots, "replay", CATCH_UP, now)
    assert [item.slot for item in replay.enqueued] == [start + n * MINUTE for n in range(1, 11)]
    assert not replay.skipped and not replay.capped

    again = slot_store(store_factory())  # another restart at the same moment
    assert enqueue_due(again, "latest", EVERY_MINUTE, now).enqueued == []
    assert enqueue_due(again, "replay", CATCH_UP, now).enqueued == []
    assert len(slot_jobs(after, "latest")) == 2 and len(slot_jobs(after, "replay")) == 11


def test_a_catch_up_past_its_cap_replays_the_latest_slots(store):
    slots = slot_store(store)
    start = next_minute(slots)
    slots.state("capped")
    enqueue_due(slots, "capped", CATCH_UP, start)
    outcome = enqueue_due(slots, "capped", CATCH_UP, start + 10 * MINUTE, cap=4)
    assert [item.slot for item in outcome.enqueued] == [start + n * MINUTE for n in range(7, 11)]
    assert outcome.capped and outcome.missed_after == start
    assert slots.state("capped").last_slot == start + 10 * MINUTE


def test_a_live_job_holding_the_slots_key_is_not_enqueued_twice(store):
    slots = slot_store(store)
    slot = next_minute(slots)
    slots.state("guarded")
    # As if the slot's job came from elsewhere (a row moved back by hand, say).
    (existing,) = store.enqueue([{"type": "echo", "unique_key": unique_key("guarded", slot)}])
    outcome = enqueue_due(slots, "guarded", EVERY_MINUTE, slot)
    assert [(item.job_id, item.duplicate) for item in outcome.enqueued] == [(existing.id, True)]
    assert [job["id"] for job in slot_jobs(store, "guarded")] == [existing.id]
    assert slots.state("guarded").last_slot == slot


def test_slot_jobs_take_the_schedules_queue_and_priority_or_the_queues(store):
    store.set_queue_limits("models", QueueLimits(priority=7))
    slots = slot_store(store)
    slot = next_minute(slots)
    queued = ScheduleConfig(agent="echo", every="1m", queue="models")
    urgent = ScheduleConfig(agent="echo", every="1m", queue="models", priority=9)
    for name in ("queued", "urgent"):
        slots.state(name)
    enqueue_due(slots, "queued", queued, slot)
    enqueue_due(slots, "urgent", urgent, slot)
    (by_queue,) = slot_jobs(store, "queued")
    (own,) = slot_jobs(store, "urgent")
    assert (by_queue["queue"], by_queue["priority"]) == ("models", 7)
    assert (own["queue"], own["priority"]) == ("models", 9)


def test_the_listing_shows_last_slot_its_job_and_next_runs(store):
    slots = slot_store(store)
    slot = next_minute(slots)
    config = {
        "tick": EVERY_MINUTE,
        "nightly": ScheduleConfig(agent="echo", cron="0 3 * * *", timezone="Europe/Paris"),
    }
    slots.state("tick")
    (item,) = enqueue_due(slots, "tick", EVERY_MINUTE, slot).enqueued
    nightly, tick = describe_all(config, slots)
    assert (tick["name"], tick["last_slot"], tick["last_job_id"]) == (
        "tick",
        slot_text(slot),
        item.job_id,
    )
    assert tick["every"] == "1m" and len(tick["next_runs"]) == 3
    assert nightly["last_slot"] is None and nightly["last_job_id"] is None
    assert all(run.endswith(("T03:00:00+01:00", "T03:00:00+02:00")) for run in nightly["next_runs"])
