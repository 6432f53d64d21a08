"""The checkpoint store: format, atomic writes, verification, retention."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from athenad.errors import AthenaError, InvalidInput
from athenad.storage import checkpoints as cpmod
from athenad.storage.checkpoints import (
    Checkpoint,
    CheckpointCorrupt,
    CheckpointStore,
    CheckpointWriteError,
)

JOB = "01abcdefghjkmnp"
MESSAGES = [{"role": "user", "content": "plan it"}, {"role": "assistant", "content": "ok\nline 2"}]


@pytest.fixture
def store(tmp_path):
    return CheckpointStore(tmp_path / "checkpoints")


def invalid_events(logs):
    return [entry for entry in logs if entry["event"] == "checkpoint_invalid"]


def test_round_trip(store):
    info = store.save(JOB, 5, {"plan": [1, 2], "done": False}, MESSAGES)
    assert info.valid and info.iteration == 5 and info.size_bytes == os.path.getsize(info.path)
    assert os.path.basename(info.path) == f"job-{JOB}-iter5.json"
    loaded = store.load_latest(JOB)
    assert isinstance(loaded, Checkpoint)
    assert (loaded.job_id, loaded.iteration) == (JOB, 5)
    assert loaded.state == {"plan": [1, 2], "done": False}
    assert loaded.messages == MESSAGES
    assert loaded.created_at == info.created_at
    assert store.load(JOB, 5) == loaded


def test_file_is_two_readable_json_lines(store):
    info = store.save(JOB, 3, {"k": "v"}, MESSAGES)
    lines = Path(info.path).read_bytes().split(b"\n")
    assert lines[2] == b"" and len(lines) == 3
    header = msgspec.json.decode(lines[0])
    body = msgspec.json.decode(lines[1])
    assert header["format"] == cpmod.FORMAT_VERSION
    assert (header["job_id"], header["iteration"]) == (JOB, 3)
    assert header["checksum"].startswith("sha256:")
    assert header["body_bytes"] == len(lines[1])
    assert body == {"state": {"k": "v"}, "messages": MESSAGES}


def test_defaults_and_empty(store):
    store.save(JOB, 0)
    loaded = store.load_latest(JOB)
    assert loaded.iteration == 0 and loaded.state is None and loaded.messages == []
    assert store.load_latest("other") is None


def test_atomic_write_leaves_no_temp_files(store):
    for iteration in range(1, 6):
        store.save(JOB, iteration, {"i": iteration}, MESSAGES * iteration)
    names = sorted(os.listdir(store.dir))
    assert names == sorted(f"job-{JOB}-iter{i}.json" for i in range(1, 6))
    assert store.load_latest(JOB).state == {"i": 5}


def test_same_iteration_is_replaced(store):
    store.save(JOB, 4, "first")
    store.save(JOB, 4, "second")
    assert store.load_latest(JOB).state == "second"
    assert len(os.listdir(store.dir)) == 1


def test_newest_corrupt_falls_back_to_previous_with_warning(store):
    store.save(JOB, 5, "five")
    newest = store.save(JOB, 10, "ten")
    with open(newest.path, "r+b") as fh:
        fh.seek(-5, os.SEEK_END)
        fh.write(b"XXXX")
    with capture_logs() as logs:
        loaded = store.load_latest(JOB)
    assert loaded.iteration == 5 and loaded.state == "five"
    events = invalid_events(logs)
    assert len(events) == 1
    assert events[0]["log_level"] == "warning"
    assert events[0]["job_id"] == JOB and events[0]["path"] == newest.path
    assert "checksum" in events[0]["reason"]


def test_all_corrupt_returns_none(store):
    for iteration in (1, 2, 3):
        info = store.save(JOB, iteration, iteration)
        with open(info.path, "wb") as fh:
            fh.write(b"garbage")
    with capture_logs() as logs:
        assert store.load_latest(JOB) is None
    assert len(invalid_events(logs)) == 3


@pytest.mark.parametrize("keep_bytes", [0, 10, "header", "header+half", "minus1"])
def test_torn_file_is_rejected(store, keep_bytes):
    store.save(JOB, 1, "one")
    info = store.save(JOB, 2, {"big": "x" * 5000}, MESSAGES)
    data = Path(info.path).read_bytes()
    header_end = data.index(b"\n") + 1
    cut = {
        "header": header_end,
        "header+half": header_end + (len(data) - header_end) // 2,
        "minus1": len(data) - 1,
    }.get(keep_bytes, keep_bytes)
    with open(info.path, "wb") as fh:
        fh.write(data[:cut])
    with pytest.raises(CheckpointCorrupt, match="torn|unreadable"):
        store.load(JOB, 2)
    with capture_logs() as logs:
        assert store.load_latest(JOB).iteration == 1
    assert len(invalid_events(logs)) == 1


def test_every_single_bit_flip_in_body_is_detected(store):
    info = store.save(JOB, 7, {"n": 12345}, [{"role": "user", "content": "abc"}])
    data = bytearray(Path(info.path).read_bytes())
    body_start = data.index(b"\n") + 1
    for position in range(body_start, len(data) - 1):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        with pytest.raises(CheckpointCorrupt):
            cpmod.decode_file(bytes(flipped), JOB, 7)
    # And in the header, a flip either breaks it or changes a field that is checked.
    for position in range(0, body_start - 1):
        flipped = bytearray(data)
        flipped[position] ^= 0x04
        try:
            cp = cpmod.decode_file(bytes(flipped), JOB, 7)
        except CheckpointCorrupt:
            continue
        # Only created_at is not cross-checked; the content must still be intact.
        assert cp.state == {"n": 12345}


def test_header_must_match_file_name(store):
    info = store.save(JOB, 3, "three")
    store.save(JOB, 1, "one")
    os.replace(info.path, store.path_for(JOB, 8))
    with pytest.raises(CheckpointCorrupt, match="header names job .* iteration 3"):
        store.load(JOB, 8)
    other = store.save("otherjob", 9, "other")
    os.replace(other.path, store.path_for(JOB, 9))
    with capture_logs() as logs:
        assert store.load_latest(JOB).iteration == 1
    assert len(invalid_events(logs)) == 2


def test_unknown_format_version_is_rejected(store):
    info = store.save(JOB, 2, "two")
    data = Path(info.path).read_bytes().replace(b'"format":1', b'"format":99', 1)
    with pytest.raises(CheckpointCorrupt, match="format version 99"):
        cpmod.decode_file(data, JOB, 2)


def test_stray_higher_iteration_is_ignored_with_at_most(store):
    store.save(JOB, 5, "recorded")
    store.save(JOB, 10, "stray")
    assert store.load_latest(JOB, at_most=5).state == "recorded"
    assert store.load_latest(JOB, at_most=9).state == "recorded"
    assert store.load_latest(JOB, at_most=10).state == "stray"
    assert store.load_latest(JOB, at_most=4) is None
    # The row records no checkpoint: every file is a stray.
    assert store.load_latest(JOB, at_most=None) is None
    assert store.load_latest(JOB).state == "stray"


def test_other_jobs_with_a_shared_prefix_are_not_mixed(store):
    store.save("a", 1, "a1")
    store.save("a-b", 7, "ab7")
    assert store.iterations("a") == [1]
    assert store.iterations("a-b") == [7]
    assert store.load_latest("a").state == "a1"
    assert store.remove_all("a") == 1
    assert store.iterations("a-b") == [7]


def test_prune_keeps_newest_k(store):
    for iteration in (2, 4, 6, 8, 10, 12):
        store.save(JOB, iteration, iteration)
    store.save("other", 1, 1)
    assert store.prune(JOB, keep=3) == [2, 4, 6]
    assert store.iterations(JOB) == [8, 10, 12]
    assert store.prune(JOB) == []
    assert store.prune(JOB, keep=1) == [8, 10]
    assert store.iterations(JOB) == [12]
    assert store.iterations("other") == [1]
    with pytest.raises(InvalidInput):
        store.prune(JOB, keep=0)


def test_list_reports_valid_and_invalid(store):
    store.save(JOB, 1, "one")
    bad = store.save(JOB, 2, "two")
    with open(bad.path, "r+b") as fh:
        fh.seek(-3, os.SEEK_END)
        fh.write(b"zz")
    infos = store.list(JOB)
    assert [(i.iteration, i.valid) for i in infos] == [(1, True), (2, False)]
    assert infos[0].error is None and "checksum" in infos[1].error
    assert infos[1].created_at == bad.created_at
    assert infos[1].size_bytes == bad.size_bytes
    assert store.list("nobody") == []


def test_discard_and_remove_all(store):
    store.save(JOB, 1)
    store.save(JOB, 2)
    assert store.discard(JOB, 2) is True
    assert store.discard(JOB, 2) is False
    (store.dir / f".job-{JOB}-iter3.json.abc123.tmp").write_bytes(b"partial")
    assert store.remove_all(JOB) == 1
    assert os.listdir(store.dir) == []


def test_missing_directory_is_empty_and_created_on_save(tmp_path):
    store = CheckpointStore(tmp_path / "not" / "yet")
    assert store.load_latest(JOB) is None and store.list(JOB) == []
    store.save(JOB, 1)
    assert store.iterations(JOB) == [1]


@pytest.mark.parametrize("job_id", ["", "../x", "a/b", "a b", "-x", None])
def test_bad_job_ids_are_refused(store, job_id):
    with pytest.raises(InvalidInput):
        store.save(job_id, 1)


@pytest.mark.parametrize("iteration", [-1, 1.5, True, "3"])
def test_bad_iterations_are_refused(store, iteration):
    with pytest.raises(InvalidInput):
        store.save(JOB, iteration)


def test_unencodable_state_is_invalid_input(store):
    with pytest.raises(InvalidInput, match="cannot be encoded"):
        store.save(JOB, 1, state={"x": object()})
    assert not store.dir.exists() or os.listdir(store.dir) == []


@pytest.mark.parametrize("target", ["write", "fsync"])
def test_disk_full_keeps_previous_checkpoint(store, monkeypatch, target):
    store.save(JOB, 5, "five", MESSAGES)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cpmod.os, target, disk_full)
    with pytest.raises(CheckpointWriteError) as caught:
        store.save(JOB, 10, "ten", MESSAGES)
    monkeypatch.undo()
    assert isinstance(caught.value, AthenaError)
    assert "disk is full" in caught.value.message
    assert "previous checkpoint is unchanged" in caught.value.message
    assert os.listdir(store.dir) == [f"job-{JOB}-iter5.json"]
    assert store.load_latest(JOB).state == "five"


def test_disk_full_when_replacing_same_iteration_keeps_old_content(store, monkeypatch):
    store.save(JOB, 5, "old")
    monkeypatch.setattr(
        cpmod.os, "write", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
    )
    with pytest.raises(CheckpointWriteError):
        store.save(JOB, 5, "new")
    monkeypatch.undo()
    assert store.load_latest(JOB).state == "old"
    assert len(os.listdir(store.dir)) == 1


def test_partial_writes_are_completed(store, monkeypatch):
    real_write = os.write

    def short_write(fd, data):
        return real_write(fd, bytes(data[:1000]))

    monkeypatch.setattr(cpmod.os, "write", short_write)
    store.save(JOB, 1, {"big": "y" * 10_000}, MESSAGES)
    monkeypatch.undo()
    assert store.load_latest(JOB).state == {"big": "y" * 10_000}
