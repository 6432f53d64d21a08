"""The checkpoint store's behaviour, run on files and on PostgreSQL."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from athenad.errors import InvalidInput
from athenad.storage.checkpoints import Checkpoint, CheckpointCorrupt
from tests.conformance.storage_backends import corrupt_checkpoint

JOB = "01abcdefghjkmnp"
MESSAGES = [{"role": "user", "content": "plan it"}, {"role": "assistant", "content": "ok\n2"}]


def invalid_events(logs):
    return [entry for entry in logs if entry["event"] == "checkpoint_invalid"]


def test_save_then_load_round_trips_state_and_messages(stores):
    store = stores.checkpoints
    info = store.save(JOB, 5, {"plan": [1, 2], "done": False, "big": 2**62}, MESSAGES)
    assert info.valid and info.iteration == 5 and info.size_bytes > 0
    loaded = store.load_latest(JOB)
    assert isinstance(loaded, Checkpoint)
    assert (loaded.job_id, loaded.iteration) == (JOB, 5)
    assert loaded.state == {"plan": [1, 2], "done": False, "big": 2**62}
    assert loaded.messages == MESSAGES
    assert loaded.created_at == info.created_at
    assert store.load(JOB, 5) == loaded


def test_defaults_and_an_unknown_job(stores):
    store = stores.checkpoints
    store.save(JOB, 0)
    loaded = store.load_latest(JOB)
    assert loaded.iteration == 0 and loaded.state is None and loaded.messages == []
    assert store.load_latest("other") is None
    assert store.list("other") == [] and store.iterations("other") == []
    with pytest.raises(FileNotFoundError):
        store.load(JOB, 1)


def test_saving_an_iteration_again_replaces_it(stores):
    store = stores.checkpoints
    store.save(JOB, 4, "first")
    store.save(JOB, 4, "second")
    assert store.load_latest(JOB).state == "second"
    assert store.iterations(JOB) == [4]


def test_latest_is_the_newest_at_or_below_the_recorded_iteration(stores):
    store = stores.checkpoints
    for iteration in (3, 6, 9):
        store.save(JOB, iteration, iteration)
    assert store.load_latest(JOB).iteration == 9
    assert store.load_latest(JOB, at_most=8).iteration == 6  # 9 is a lost worker's stray
    assert store.load_latest(JOB, at_most=2) is None
    assert store.load_latest(JOB, at_most=None) is None  # the row records no checkpoint


def test_jobs_sharing_a_prefix_are_kept_apart(stores):
    store = stores.checkpoints
    store.save("a", 1, "a")
    store.save("a-b", 2, "a-b")
    assert store.iterations("a") == [1] and store.load_latest("a").state == "a"
    assert store.iterations("a-b") == [2]


def test_prune_keeps_the_newest_k(stores):
    store = stores.checkpoints
    for iteration in (2, 4, 6, 8, 10, 12):
        store.save(JOB, iteration, iteration)
    store.save("other", 1, 1)
    assert store.prune(JOB, keep=3) == [2, 4, 6]
    assert store.iterations(JOB) == [8, 10, 12]
    assert store.prune(JOB) == []
    assert store.prune(JOB, keep=1) == [8, 10]  # a completed job keeps its final one
    assert store.iterations(JOB) == [12] and store.iterations("other") == [1]
    with pytest.raises(InvalidInput):
        store.prune(JOB, keep=0)


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_previous(stores):
    store = stores.checkpoints
    store.save(JOB, 5, "five")
    newest = store.save(JOB, 10, "ten")
    corrupt_checkpoint(stores, JOB, 10)
    with capture_logs() as logs:
        loaded = store.load_latest(JOB)
    assert loaded.iteration == 5 and loaded.state == "five"
    events = invalid_events(logs)
    assert len(events) == 1 and events[0]["log_level"] == "warning"
    assert events[0]["job_id"] == JOB and events[0]["path"] == newest.path
    assert "checksum" in events[0]["reason"]
    with pytest.raises(CheckpointCorrupt, match="checksum"):
        store.load(JOB, 10)


def test_all_corrupt_means_no_checkpoint(stores):
    store = stores.checkpoints
    for iteration in (1, 2, 3):
        store.save(JOB, iteration, iteration)
        corrupt_checkpoint(stores, JOB, iteration)
    with capture_logs() as logs:
        assert store.load_latest(JOB) is None
    assert len(invalid_events(logs)) == 3


def test_list_reports_each_checkpoint_and_whether_it_verifies(stores):
    store = stores.checkpoints
    first = store.save(JOB, 1, "one")
    bad = store.save(JOB, 2, "two")
    corrupt_checkpoint(stores, JOB, 2)
    infos = store.list(JOB)
    assert [(i.iteration, i.valid) for i in infos] == [(1, True), (2, False)]
    assert infos[0].error is None and "checksum" in infos[1].error
    assert infos[0].size_bytes == first.size_bytes and infos[0].path == first.path
    assert infos[1].created_at == bad.created_at


def test_discard_and_remove_all(stores):
    store = stores.checkpoints
    for iteration in (1, 2, 3):
        store.save(JOB, iteration)
    store.save("other", 1)
    assert store.discard(JOB, 3) is True
    assert store.discard(JOB, 3) is False
    assert store.remove_all(JOB) == 2
    assert store.iterations(JOB) == [] and store.iterations("other") == [1]


@pytest.mark.parametrize("job_id", ["", "../x", "a/b", "a b", None])
def test_ids_that_cannot_name_a_checkpoint_are_refused(stores, job_id):
    with pytest.raises(InvalidInput):
        stores.checkpoints.save(job_id, 1)


@pytest.mark.parametrize("iteration", [-1, 1.5, True, "3"])
def test_iterations_must_be_non_negative_integers(stores, iteration):
    with pytest.raises(InvalidInput):
        stores.checkpoints.save(JOB, iteration)


def test_unencodable_state_is_invalid_input_and_stores_nothing(stores):
    with pytest.raises(InvalidInput, match="cannot be encoded"):
        stores.checkpoints.save(JOB, 1, state=object())
    assert stores.checkpoints.iterations(JOB) == []


def test_a_second_store_on_the_same_backend_sees_the_checkpoints(stores, stores_factory):
    stores.checkpoints.save(JOB, 7, {"n": 7}, MESSAGES)
    other = stores_factory().checkpoints  # another process or host, in effect
    assert other.load_latest(JOB).state == {"n": 7}
