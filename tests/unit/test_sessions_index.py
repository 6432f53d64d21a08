"""index.json as a cache: ordering, branch filters, staleness, rebuilds."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from athenad.storage.sessions import SessionManager
from athenad.storage.sessions import index as index_mod
from athenad.storage.sessions.files import encode_line, make_message


@pytest.fixture
def sessions_dir(tmp_path):
    return tmp_path / ".athena" / "sessions"


def make(manager, name, branch, messages=1):
    session_id = manager.create_session(name, git_branch=branch)
    for n in range(messages):
        manager.add_message(session_id, "user", f"{name} {n}")
    return session_id


def test_list_is_newest_activity_first_and_filters_by_branch(sessions_dir):
    manager = SessionManager(sessions_dir)
    a = make(manager, "a", "main")
    b = make(manager, "b", "feature")
    c = make(manager, "c", "main")
    assert [s.id for s in manager.list_sessions()] == [c, b, a]
    assert [s.id for s in manager.list_sessions("main")] == [c, a]
    assert [s.id for s in manager.list_sessions("feature")] == [b]
    assert manager.list_sessions("nope") == []
    time.sleep(0.002)
    manager.add_message(a, "assistant", "back to a")
    assert [s.id for s in manager.list_sessions()] == [a, c, b]
    assert manager.resume_most_recent_session() == a
    assert manager.resume_most_recent_session("main") == a
    assert manager.resume_most_recent_session("feature") == b
    info = manager.list_sessions("main")[0]
    assert info.message_count == 2 and info.name == "a" and info.git_branch == "main"


def test_no_sessions_means_none(sessions_dir):
    manager = SessionManager(sessions_dir)
    assert manager.resume_most_recent_session() is None
    assert manager.list_sessions() == []


def test_a_second_manager_sees_appends_and_creations_of_the_first(sessions_dir):
    reader = SessionManager(sessions_dir)
    writer = SessionManager(sessions_dir)  # stands for another process
    old = make(writer, "old", "main")
    newer = make(writer, "newer", "main")
    assert reader.resume_most_recent_session("main") == newer
    time.sleep(0.002)
    writer.add_message(old, "user", "again")
    assert reader.resume_most_recent_session("main") == old
    assert reader.list_sessions("main")[0].message_count == 2
    third = make(writer, "third", "other")
    assert reader.resume_most_recent_session() == third
    writer.delete_session(third)
    assert reader.resume_most_recent_session() == old
    assert {s.id for s in reader.list_sessions()} == {old, newer}


def test_deleting_index_json_loses_nothing(sessions_dir):
    manager = SessionManager(sessions_dir)
    ids = [make(manager, f"s{n}", "main", messages=n) for n in range(4)]
    manager.list_sessions()
    index_file = sessions_dir / "index.json"
    assert index_file.exists()
    index_file.unlink()
    fresh = SessionManager(sessions_dir)
    listed = fresh.list_sessions()
    assert [s.id for s in listed] == ids[::-1]
    assert [s.message_count for s in listed] == [3, 2, 1, 0]
    assert index_file.exists()


def test_stale_index_is_noticed_by_size_and_mtime(sessions_dir):
    manager = SessionManager(sessions_dir)
    session_id = make(manager, "s", "main", messages=1)
    manager.list_sessions()
    cached = json.loads((sessions_dir / "index.json").read_text())
    # Grow the file behind the index's back (as an old build or another tool might),
    # dropping the activity journal so only size and mtime can tell.
    (sessions_dir / "activity.log").unlink()
    other = SessionManager(sessions_dir)
    for n in range(3):
        other.add_message(session_id, "user", f"x{n}")
    (sessions_dir / "index.json").write_text(json.dumps(cached))
    fresh = SessionManager(sessions_dir)
    assert fresh.list_sessions()[0].message_count == 4
    rewritten = json.loads((sessions_dir / "index.json").read_text())
    assert rewritten["sessions"][0]["message_count"] == 4


def test_an_index_that_lies_about_sessions_is_corrected(sessions_dir):
    manager = SessionManager(sessions_dir)
    real = make(manager, "real", "main")
    manager.list_sessions()
    data = json.loads((sessions_dir / "index.json").read_text())
    ghost = dict(data["sessions"][0], id="session-ghost")
    data["sessions"].append(ghost)
    (sessions_dir / "index.json").write_text(json.dumps(data))
    assert [s.id for s in SessionManager(sessions_dir).list_sessions()] == [real]
    (sessions_dir / "index.json").write_text("{not json")
    assert [s.id for s in SessionManager(sessions_dir).list_sessions()] == [real]


def test_files_copied_in_or_removed_by_other_tools_are_noticed(sessions_dir):
    manager = SessionManager(sessions_dir)
    a = make(manager, "a", "main")
    assert [s.id for s in manager.list_sessions()] == [a]
    copy = sessions_dir / "session-copied1.jsonl"
    shutil.copy(manager.path_for(a), copy)
    os.utime(sessions_dir, ns=(time.time_ns(), time.time_ns() + 10**9))  # coarse clocks
    assert {s.id for s in manager.list_sessions()} == {a, "session-copied1"}
    copy.unlink()
    os.utime(sessions_dir, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert [s.id for s in manager.list_sessions()] == [a]


def test_journal_restart_keeps_everything(sessions_dir, monkeypatch):
    monkeypatch.setattr(index_mod, "JOURNAL_MAX_BYTES", 200)
    reader = SessionManager(sessions_dir)
    writer = SessionManager(sessions_dir)
    ids = []
    for n in range(30):
        ids.append(make(writer, f"s{n}", "main"))
        assert reader.resume_most_recent_session() == ids[-1]
        if n % 7 == 0:
            reader.reindex()  # a rebuild drops the big journal
    assert (sessions_dir / "activity.log").stat().st_size < 2000
    assert len(reader.list_sessions()) == 30


def test_reindex_counts_sessions(sessions_dir):
    manager = SessionManager(sessions_dir)
    for n in range(3):
        make(manager, f"s{n}", None)
    assert manager.reindex() == 3


def test_a_file_replaced_by_another_tool_is_re_read(sessions_dir, tmp_path):
    manager = SessionManager(sessions_dir)
    session_id = make(manager, "s", "main", messages=1)
    saved = tmp_path / "saved.jsonl"
    shutil.copy(manager.path_for(session_id), saved)
    make(manager, "t", "main")
    other = SessionManager(sessions_dir)
    other.add_message(session_id, "user", "two")
    other.add_message(session_id, "user", "three")
    assert manager.list_sessions()[0].message_count == 3
    # A checkout of an older version: a new inode with the old content, as git does.
    replacement = sessions_dir / "incoming.tmp"
    shutil.copy(saved, replacement)
    os.replace(replacement, manager.path_for(session_id))
    os.utime(sessions_dir, ns=(time.time_ns(), time.time_ns() + 10**9))
    counts = {s.id: s.message_count for s in manager.list_sessions()}
    assert counts[session_id] == 1


def test_the_folder_moved_away_and_back(sessions_dir, tmp_path):
    manager = SessionManager(sessions_dir)
    a = make(manager, "a", "main")
    assert manager.resume_most_recent_session() == a
    shutil.move(sessions_dir, tmp_path / "elsewhere")
    assert manager.resume_most_recent_session() is None
    shutil.rmtree(sessions_dir)
    shutil.move(tmp_path / "elsewhere", sessions_dir)
    os.utime(sessions_dir, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert manager.resume_most_recent_session() == a


def test_message_count_counts_messages_after_a_quarantine(sessions_dir):
    manager = SessionManager(sessions_dir)
    session_id = make(manager, "q", "main", messages=5)
    path = manager.path_for(session_id)
    path.write_bytes(path.read_bytes().replace(b'"q 2"', b'"q 2 edited"'))  # bad checksum
    with pytest.warns(UserWarning):
        assert len(manager.get_messages(session_id)) == 4
    assert manager.get_session(session_id).message_count == 4
    assert manager.list_sessions()[0].message_count == 4
    manager.add_message(session_id, "user", "after")  # counted from the new bytes
    assert manager.list_sessions()[0].message_count == 5
    assert SessionManager(sessions_dir).list_sessions()[0].message_count == 5
    assert manager.reindex() == 1 and manager.list_sessions()[0].message_count == 5


def test_list_sees_a_file_appended_in_place_by_another_tool(sessions_dir):
    manager = SessionManager(sessions_dir)
    a = make(manager, "a", "main", messages=1)
    b = make(manager, "b", "main", messages=1)
    assert [s.id for s in manager.list_sessions()] == [b, a]
    writer = SessionManager(sessions_dir)
    time.sleep(0.002)
    line = writer.add_message(a, "user", "x")
    # Replay that append as a foreign tool would: no activity journal entry.
    path = manager.path_for(a)
    manager.list_sessions()
    data = path.read_bytes()
    extra = encode_line(make_message(line.seq + 1, "user", "by hand"))
    with open(path, "ab") as handle:
        handle.write(extra)
    listed = {s.id: s for s in manager.list_sessions()}
    assert listed[a].size == len(data) + len(extra)
    assert listed[a].message_count == 3


def test_list_rewrites_a_deleted_index_json(sessions_dir):
    manager = SessionManager(sessions_dir)
    make(manager, "a", "main")
    manager.list_sessions()
    index_file = sessions_dir / "index.json"
    assert index_file.exists()
    index_file.unlink()
    assert len(manager.list_sessions()) == 1
    assert [s["name"] for s in json.loads(index_file.read_bytes())["sessions"]] == ["a"]
