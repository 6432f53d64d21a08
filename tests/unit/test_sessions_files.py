"""Session files: append, read back, repair of torn and corrupt lines, ids, checkpoints."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from athenad.errors import InvalidInput
from athenad.storage.sessions import Role, SessionManager, SessionNotFound, SessionRepaired
from athenad.storage.sessions.files import UnsupportedFormat, checksum


@pytest.fixture
def manager(tmp_path):
    return SessionManager(tmp_path / ".athena" / "sessions")


def lines_of(manager, session_id):
    return manager.path_for(session_id).read_bytes().split(b"\n")


def test_dot_athena_means_its_sessions_folder(tmp_path):
    manager = SessionManager(tmp_path / ".athena")
    assert manager.dir == tmp_path / ".athena" / "sessions"
    assert manager.dir.is_dir()


def test_file_is_a_header_then_one_plain_json_line_per_message(manager):
    session_id = manager.create_session("PR #123 Review", tags=["code-review"], git_branch="main")
    assert session_id.startswith("session-")
    manager.add_message(session_id, Role.USER, "Review PR #123")
    manager.add_message(session_id, "assistant", "Review complete: 2 issues found")
    raw = lines_of(manager, session_id)
    assert raw[-1] == b""  # every line ends with a newline
    header, first, second = (json.loads(line) for line in raw[:-1])
    assert header["type"] == "header" and header["id"] == session_id
    assert header["name"] == "PR #123 Review" and header["tags"] == ["code-review"]
    assert header["git_branch"] == "main" and header["format"] == 1
    assert header["cwd"] and header["created_at"]
    assert first["seq"] == 1 and first["role"] == "user" and first["content"] == "Review PR #123"
    assert second["seq"] == 2 and second["role"] == "assistant"
    assert first["checksum"] == checksum(1, "user", first["timestamp"], first["content"], None)


def test_append_never_rewrites_earlier_bytes(manager):
    session_id = manager.create_session(git_branch="main")
    manager.add_message(session_id, "user", "one")
    before = manager.path_for(session_id).read_bytes()
    inode = os.stat(manager.path_for(session_id)).st_ino
    manager.add_message(session_id, "user", "two")
    after = manager.path_for(session_id).read_bytes()
    assert after.startswith(before)
    assert os.stat(manager.path_for(session_id)).st_ino == inode


def test_messages_come_back_in_order_with_metadata(manager):
    session_id = manager.create_session(git_branch="main")
    for n in range(5):
        manager.add_message(session_id, "tool", f"result {n}", metadata={"n": n, "z": [1]})
    messages = manager.get_messages(session_id)
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert [m.content for m in messages] == [f"result {n}" for n in range(5)]
    assert messages[3].metadata == {"n": 3, "z": [1]}
    assert all(m.role == Role.TOOL for m in messages)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=5))
def test_unicode_and_newlines_round_trip(tmp_path_factory, contents):
    manager = SessionManager(tmp_path_factory.mktemp("home") / "sessions")
    session_id = manager.create_session("ünïcødé ✓ 名前", git_branch="main")
    for content in contents:
        manager.add_message(session_id, "user", content)
    assert [m.content for m in manager.get_messages(session_id)] == contents
    assert manager.list_sessions()[0].name == "ünïcødé ✓ 名前"


def test_roles_accept_strings_and_refuse_unknown(manager):
    session_id = manager.create_session(git_branch="main")
    assert manager.add_message(session_id, "SYSTEM", "x").role == "system"
    with pytest.raises(InvalidInput, match="role 'bot'"):
        manager.add_message(session_id, "bot", "x")
    with pytest.raises(InvalidInput):
        manager.add_message(session_id, "user", 42)


def test_torn_last_line_is_cut_and_earlier_messages_kept(manager):
    session_id = manager.create_session(git_branch="main")
    for n in range(3):
        manager.add_message(session_id, "user", f"m{n}")
    path = manager.path_for(session_id)
    good = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"type":"message","seq":4,"role":"user","timest')  # killed mid-write
    with pytest.warns(SessionRepaired, match="torn last line") as caught:
        messages = manager.get_messages(session_id)
    assert len(caught) == 1
    assert [m.content for m in messages] == ["m0", "m1", "m2"]
    assert path.read_bytes() == good
    sidecar = manager.dir / f"{session_id}.quarantine.jsonl"
    saved = [json.loads(line) for line in sidecar.read_text().splitlines()]
    assert [q["raw"] for q in saved] == ['{"type":"message","seq":4,"role":"user","timest']
    assert manager.add_message(session_id, "user", "m3").seq == 4


def test_append_after_a_torn_line_cuts_it_first(manager):
    session_id = manager.create_session(git_branch="main")
    manager.add_message(session_id, "user", "m0")
    with open(manager.path_for(session_id), "ab") as handle:
        handle.write(b'{"type":"mess')
    with pytest.warns(SessionRepaired, match="torn last line"):
        assert manager.add_message(session_id, "user", "m1").seq == 2
    assert [m.content for m in manager.get_messages(session_id)] == ["m0", "m1"]
    sidecar = manager.dir / f"{session_id}.quarantine.jsonl"
    assert json.loads(sidecar.read_text())["raw"] == '{"type":"mess'


def test_valid_last_line_missing_only_its_newline_is_kept(manager):
    session_id = manager.create_session(git_branch="main")
    for n in range(3):
        manager.add_message(session_id, "user", f"m{n}")
    path = manager.path_for(session_id)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])  # truncate -s -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was lost: no repair warning
        assert [m.content for m in manager.get_messages(session_id)] == ["m0", "m1", "m2"]
    assert path.read_bytes() == whole
    assert not (manager.dir / f"{session_id}.quarantine.jsonl").exists()


def test_append_after_a_valid_unterminated_line_keeps_it(manager):
    session_id = manager.create_session(git_branch="main")
    manager.add_message(session_id, "user", "m0")
    manager.add_message(session_id, "user", "m1")
    path = manager.path_for(session_id)
    path.write_bytes(path.read_bytes()[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manager.add_message(session_id, "user", "m2").seq == 3
        assert [m.content for m in manager.get_messages(session_id)] == ["m0", "m1", "m2"]


def test_corrupt_header_keeps_what_can_be_read_of_it(manager):
    session_id = manager.create_session(name="PR review", tags=["review"], git_branch="dev")
    manager.add_message(session_id, "user", "m0")
    path = manager.path_for(session_id)
    header, rest = path.read_bytes().split(b"\n", 1)
    created = json.loads(header)["created_at"]
    path.write_bytes(header.replace(b'"format":1', b'"format":1\x00,') + b"\n" + rest)
    with pytest.warns(SessionRepaired, match="recovered created_at, .*name, tags") as caught:
        head, messages = manager.read_session(session_id)
    assert len(caught) == 1
    assert (head.name, head.tags, head.git_branch, head.created_at) == (
        "PR review",
        ["review"],
        "dev",
        created,
    )
    assert [m.content for m in messages] == ["m0"]
    assert manager.get_session(session_id).name == "PR review"


def test_unreadable_header_takes_created_at_from_the_first_message(manager):
    session_id = manager.create_session(name="x", git_branch="dev")
    first = manager.add_message(session_id, "user", "m0")
    path = manager.path_for(session_id)
    rest = path.read_bytes().split(b"\n", 1)[1]
    path.write_bytes(b"\x00\x01 garbage\n" + rest)
    with pytest.warns(SessionRepaired, match="created_at is the first message's time"):
        head, _ = manager.read_session(session_id)
    assert head.created_at == first.timestamp and head.id == session_id


def test_a_newer_format_is_refused_and_left_alone(manager):
    session_id = manager.create_session(git_branch="main")
    manager.add_message(session_id, "user", "m0")
    path = manager.path_for(session_id)
    data = path.read_bytes().replace(b'"format":1', b'"format":2').replace(b'"m0"', b'"m0x"')
    path.write_bytes(data)
    for call in (
        lambda: manager.get_messages(session_id),
        lambda: manager.add_message(session_id, "user", "m1"),
    ):
        with pytest.raises(UnsupportedFormat, match="format 2, newer"):
            call()
    assert path.read_bytes() == data
    assert not (manager.dir / f"{session_id}.quarantine.jsonl").exists()


def test_corrupt_middle_line_is_quarantined_with_a_warning(manager):
    session_id = manager.create_session(git_branch="main")
    for n in range(5):
        manager.add_message(session_id, "user", f"m{n}")
    path = manager.path_for(session_id)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"type":"message","seq":2,"role":"us\x00garbage'
    lines[4] = lines[4].replace(b'"m3"', b'"m3 edited"')  # checksum no longer matches
    path.write_bytes(b"\n".join(lines))
    with pytest.warns(SessionRepaired, match="line\\(s\\) 3, 5"):
        messages = manager.get_messages(session_id)
    assert [m.content for m in messages] == ["m0", "m2", "m4"]
    sidecar = manager.dir / f"{session_id}.quarantine.jsonl"
    quarantined = [json.loads(line) for line in sidecar.read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [3, 5]
    assert "garbage" in quarantined[0]["raw"] and "m3 edited" in quarantined[1]["raw"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(manager.get_messages(session_id)) == 3  # repaired once, quiet after
    assert manager.add_message(session_id, "user", "m5").seq == 6


def test_corrupt_last_complete_line_does_not_reuse_its_seq(manager):
    session_id = manager.create_session(git_branch="main")
    manager.add_message(session_id, "user", "m0")
    manager.add_message(session_id, "user", "m1")
    path = manager.path_for(session_id)
    path.write_bytes(path.read_bytes().replace(b'"m1"', b'"mX"'))
    assert manager.add_message(session_id, "user", "m2").seq == 2
    with pytest.warns(SessionRepaired):
        assert [m.content for m in manager.get_messages(session_id)] == ["m0", "m2"]


@pytest.mark.parametrize(
    "bad_id",
    [
        "../index",
        "session-../../etc/passwd",
        "/etc/passwd",
        "session-abc/../../x",
        "session-ABC",
        "session-abc.jsonl",
        "session-",
        "",
        "session-abc\n",
        None,
    ],
)
def test_ids_that_could_escape_the_folder_are_refused(manager, bad_id):
    for call in (
        lambda: manager.path_for(bad_id),
        lambda: manager.get_messages(bad_id),
        lambda: manager.add_message(bad_id, "user", "x"),
        lambda: manager.delete_session(bad_id),
        lambda: manager.save_checkpoint(bad_id, 1, []),
        lambda: manager.load_checkpoint(bad_id),
    ):
        with pytest.raises(InvalidInput):
            call()


def test_unknown_session_is_a_clear_error(manager):
    with pytest.raises(SessionNotFound, match="session-nothere"):
        manager.get_messages("session-nothere")
    with pytest.raises(SessionNotFound):
        manager.add_message("session-nothere", "user", "x")
    assert not (manager.dir / "session-nothere.jsonl").exists()


def test_checkpoint_round_trip_is_atomic(manager):
    session_id = manager.create_session(git_branch="main")
    assert manager.load_checkpoint(session_id) is None
    messages = [{"role": "user", "content": "plan ü"}, {"role": "assistant", "content": "ok"}]
    manager.save_checkpoint(session_id, 5, messages)
    manager.save_checkpoint(session_id, 10, messages + [{"role": "user", "content": "more"}])
    checkpoint = manager.load_checkpoint(session_id)
    assert checkpoint.iteration == 10 and checkpoint.session_id == session_id
    assert checkpoint.messages[0] == {"role": "user", "content": "plan ü"}
    assert len(checkpoint.messages) == 3
    leftovers = [p.name for p in manager.dir.rglob("*.tmp")]
    assert leftovers == []
    with pytest.raises(InvalidInput):
        manager.save_checkpoint(session_id, -1, [])


def test_delete_removes_the_file_and_sidecars(manager):
    session_id = manager.create_session(git_branch="main")
    manager.save_checkpoint(session_id, 1, [])
    manager.delete_session(session_id)
    assert not manager.path_for(session_id).exists()
    assert manager.load_checkpoint(session_id) is None
    assert manager.list_sessions() == []
