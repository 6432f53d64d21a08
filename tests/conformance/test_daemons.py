"""The daemons list: each daemon's heartbeat, its clean stop, and who counts as seen."""

from __future__ import annotations

import time

from tests.conformance.test_reading_shapes import is_timestamp_text

DAEMON_KEYS = {"host", "pid", "workers", "started_at", "last_seen"}


def test_a_heartbeat_lists_the_daemon_and_a_clean_stop_removes_it(store_factory):
    first, second = store_factory(), store_factory()
    first.record_daemon("host-b", 20, 2)
    second.record_daemon("host-a", 10, 4)
    listed = first.daemons(60)
    assert [(d["host"], d["pid"], d["workers"]) for d in listed] == [
        ("host-a", 10, 4),
        ("host-b", 20, 2),
    ]
    for daemon in listed:
        assert set(daemon) == DAEMON_KEYS
        assert is_timestamp_text(daemon["started_at"]) and is_timestamp_text(daemon["last_seen"])
    second.forget_daemon("host-a", 10)
    assert [d["host"] for d in first.daemons(60)] == ["host-b"]


def test_a_later_heartbeat_keeps_the_start_and_moves_last_seen(store):
    store.record_daemon("host-a", 10, 1)
    before = store.daemons(60)[0]
    time.sleep(0.02)
    store.record_daemon("host-a", 10, 3)
    (after,) = store.daemons(60)
    assert after["started_at"] == before["started_at"]
    assert after["last_seen"] > before["last_seen"] and after["workers"] == 3


def test_a_daemon_not_seen_within_the_window_is_not_listed(store):
    store.record_daemon("host-a", 10, 1)
    time.sleep(0.3)
    store.record_daemon("host-b", 20, 1)
    assert [d["host"] for d in store.daemons(0.2)] == ["host-b"]
    assert [d["host"] for d in store.daemons(60)] == ["host-a", "host-b"]
