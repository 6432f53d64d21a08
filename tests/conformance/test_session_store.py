"""The session store's behaviour, run on files and on PostgreSQL; sessions move between
the two by export and import."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from athenad.errors import InvalidInput
from athenad.storage.sessions import SessionNotFound
from athenad.storage.sessions.transfer import export_session, import_session
from tests.conformance.storage_backends import opener

TRICKY = [
    ("user", "plain"),
    ("assistant", "multi\nline\n\nwith a trailing newline\n"),
    ("tool", ""),
    ("user", "unicode ✓ 名前 😀 and a NUL-free \t tab"),
    ("system", "## a heading\n```\ncode\n```"),
]


def test_messages_come_back_in_order_with_seq_and_metadata(stores):
    sessions = stores.sessions
    session_id = sessions.create_session("Review", tags=["a", "b", "a"], git_branch="main")
    added = [sessions.add_message(session_id, role, content) for role, content in TRICKY]
    meta = {"job_id": "j1", "n": [1, 2.5, 1e3], "nested": {"z": 1, "a": None}}
    added.append(sessions.add_message(session_id, "USER", "with meta", metadata=meta))
    assert [m.seq for m in added] == list(range(1, len(TRICKY) + 2))
    header, messages = sessions.read_session(session_id)
    assert messages == added
    assert messages[-1].metadata == meta and messages[-1].role == "user"
    assert (header.id, header.name, header.tags, header.git_branch) == (
        session_id,
        "Review",
        ["a", "b"],
        "main",
    )
    assert sessions.get_messages(session_id) == added


def test_session_info_counts_and_sizes_like_the_session_file(stores):
    sessions = stores.sessions
    session_id = sessions.create_session("n", git_branch="main")
    empty = sessions.get_session(session_id)
    assert empty.message_count == 0 and empty.updated_at == empty.created_at
    for role, content in TRICKY:
        last = sessions.add_message(session_id, role, content)
    info = sessions.get_session(session_id)
    assert info.message_count == len(TRICKY) and info.updated_at == last.timestamp
    assert info.size == len(export_session(sessions, session_id, "jsonl").encode())
    assert info.git_branch == "main" and info.imported_from is None


def test_listing_is_most_recent_first_and_filters_by_branch(stores):
    sessions = stores.sessions
    a = sessions.create_session("a", git_branch="main")
    b = sessions.create_session("b", git_branch="feature")
    c = sessions.create_session("c", git_branch="main")
    for session_id in (c, b, a):
        time.sleep(0.01)  # activity times are to the millisecond
        sessions.add_message(session_id, "user", "hi")
    assert [s.id for s in sessions.list_sessions()] == [a, b, c]
    assert [s.id for s in sessions.list_sessions("main")] == [a, c]
    assert sessions.list_sessions("nope") == []
    assert sessions.resume_most_recent_session() == a
    assert sessions.resume_most_recent_session("feature") == b
    assert sessions.resume_most_recent_session("nope") is None
    assert sessions.reindex() == 3


def test_unknown_sessions_and_bad_ids(stores):
    sessions = stores.sessions
    missing = "session-0000000000000"
    for call in (
        lambda: sessions.add_message(missing, "user", "x"),
        lambda: sessions.read_session(missing),
        lambda: sessions.get_session(missing),
        lambda: sessions.delete_session(missing),
    ):
        with pytest.raises(SessionNotFound):
            call()
    with pytest.raises(InvalidInput):
        sessions.add_message("../etc/passwd", "user", "x")
    assert sessions.exists(missing) is False and sessions.exists("../x") is False


def test_roles_and_contents_are_checked(stores):
    sessions = stores.sessions
    session_id = sessions.create_session(git_branch="main")
    with pytest.raises(InvalidInput, match="role"):
        sessions.add_message(session_id, "robot", "x")
    with pytest.raises(InvalidInput, match="UTF-8"):
        sessions.add_message(session_id, "user", "bad \udcff")
    with pytest.raises(InvalidInput, match="metadata"):
        sessions.add_message(session_id, "user", "x", metadata=["not", "a", "dict"])
    assert sessions.get_messages(session_id) == []


def test_delete_removes_the_session(stores):
    sessions = stores.sessions
    session_id = sessions.create_session(git_branch="main")
    sessions.add_message(session_id, "user", "hi")
    assert sessions.exists(session_id)
    sessions.delete_session(session_id)
    assert not sessions.exists(session_id)
    assert sessions.list_sessions() == []


def test_a_taken_id_on_import_gets_a_new_id_naming_the_original(stores):
    sessions = stores.sessions
    session_id = sessions.create_session("orig", git_branch="main")
    sessions.add_message(session_id, "user", "hello")
    text = export_session(sessions, session_id, "jsonl")
    copy = import_session(sessions, text)
    assert copy != session_id
    assert sessions.get_session(copy).imported_from == session_id
    assert [m.content for m in sessions.get_messages(copy)] == ["hello"]


def test_concurrent_appenders_keep_one_order_and_lose_nothing(stores, stores_factory):
    session_id = stores.sessions.create_session(git_branch="main")
    writers, each = 4, 40
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def append(writer: int) -> None:
        mine = stores_factory().sessions  # its own connections, as another process has
        start.wait()
        try:
            for n in range(each):
                mine.add_message(session_id, "user", f"{writer}:{n}")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_complete_and_ordered(stores.sessions, session_id, writers, each)


def assert_complete_and_ordered(sessions, session_id: str, writers: int, each: int) -> None:
    messages = sessions.get_messages(session_id)
    assert [m.seq for m in messages] == list(range(1, writers * each + 1))
    for writer in range(writers):
        mine = [m.content for m in messages if m.content.startswith(f"{writer}:")]
        assert mine == [f"{writer}:{n}" for n in range(each)]  # each writer's own order
    assert sessions.get_session(session_id).message_count == writers * each


def _append_in_a_process(kind: str, where: str, session_id: str, writer: int, each: int) -> None:
    stores = opener(kind, where)()
    try:
        for n in range(each):
            stores.sessions.add_message(session_id, "assistant", f"{writer}:{n}")
    finally:
        stores.close()


def test_appenders_in_several_processes_keep_one_order(stores, backend_where):
    session_id = stores.sessions.create_session(git_branch="main")
    writers, each = 3, 30
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_append_in_a_process, args=(*backend_where, session_id, w, each))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert_complete_and_ordered(stores.sessions, session_id, writers, each)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "md"])
def test_export_then_import_moves_a_session_between_backends_unchanged(both_backends, fmt):
    files, server = both_backends["files"].sessions, both_backends["postgres"].sessions
    session_id = files.create_session("Move me", tags=["t"], git_branch="main")
    for role, content in TRICKY:
        files.add_message(session_id, role, content)
    files.add_message(session_id, "tool", "meta", metadata={"x": 1.0, "list": [1, "2"]})
    exported = export_session(files, session_id, fmt)
    assert import_session(server, exported) == session_id  # the id is free there: kept
    assert export_session(server, session_id, fmt) == exported
    assert server.read_session(session_id) == files.read_session(session_id)
    files.delete_session(session_id)
    assert import_session(files, export_session(server, session_id, "jsonl")) == session_id
    assert export_session(files, session_id, fmt) == exported
