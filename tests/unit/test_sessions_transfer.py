"""Export as md/json/jsonl and import back, including id collisions."""

from __future__ import annotations

import json

import pytest

from athenad.errors import InvalidInput
from athenad.storage.sessions import SessionManager
from athenad.storage.sessions.transfer import export_session, import_session

TRICKY = [
    ("user", "plain"),
    ("assistant", "multi\nline\n\nwith blank lines and trailing newline\n"),
    ("tool", ""),
    ("user", 'unicode ✓ 名前 😀 and a fake marker:\n<!-- athena-message {"role":"x"} -->'),
    ("system", "## a heading inside\n```\ncode\n```"),
]


@pytest.fixture
def source(tmp_path):
    manager = SessionManager(tmp_path / "a" / "sessions")
    session_id = manager.create_session("Export me", tags=["t1", "t2"], git_branch="main")
    for role, content in TRICKY:
        manager.add_message(session_id, role, content)
    manager.add_message(session_id, "user", "with meta", metadata={"job_id": "j1", "n": [1, 2]})
    return manager, session_id


def comparable(manager, session_id):
    header, messages = manager.read_session(session_id)
    return (
        (header.name, header.tags, header.git_branch, header.created_at),
        [(m.seq, m.role, m.content, m.timestamp, m.metadata) for m in messages],
    )


@pytest.mark.parametrize("fmt", ["md", "json", "jsonl"])
def test_round_trip_into_another_home_keeps_the_id(source, tmp_path, fmt):
    manager, session_id = source
    text = export_session(manager, session_id, fmt)
    target = SessionManager(tmp_path / "b" / "sessions")
    new_id = import_session(target, text, source=f"x.{fmt}")
    assert new_id == session_id
    assert comparable(target, new_id) == comparable(manager, session_id)
    assert target.get_session(new_id).imported_from is None
    assert export_session(target, new_id, fmt) == text


@pytest.mark.parametrize("fmt", ["md", "json", "jsonl"])
def test_id_collision_gets_a_new_id_and_records_the_origin(source, fmt):
    manager, session_id = source
    text = export_session(manager, session_id, fmt)
    new_id = import_session(manager, text.encode(), source="file")
    assert new_id != session_id
    assert manager.get_session(new_id).imported_from == session_id
    assert comparable(manager, new_id) == comparable(manager, session_id)


def test_json_export_is_one_documented_document(source):
    manager, session_id = source
    document = json.loads(export_session(manager, session_id, "json"))
    assert document["format"] == 1
    assert document["session"]["id"] == session_id
    assert [m["seq"] for m in document["messages"]] == list(range(1, 7))
    assert set(document["messages"][0]) >= {"seq", "role", "timestamp", "content", "checksum"}


def test_markdown_reads_like_a_conversation(source):
    manager, session_id = source
    text = export_session(manager, session_id, "md")
    assert text.startswith("# Export me\n")
    assert "## assistant · " in text and "multi\nline" in text


def test_hand_made_json_history_can_be_imported(tmp_path):
    manager = SessionManager(tmp_path / "sessions")
    document = {
        "format": 1,
        "session": {"name": "old chat"},
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    }
    new_id = import_session(manager, json.dumps(document))
    assert [(m.seq, m.role, m.content) for m in manager.get_messages(new_id)] == [
        (1, "user", "hi"),
        (2, "assistant", "yo"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "just some text",
        "{not json",
        '{"type":"header","id":"session-a"}\nnot a message\n',
        '{"format":1,"session":{},"messages":[{"role":"alien","content":"x"}]}',
        "# t\n\n<!-- athena-session {broken -->\n",
    ],
)
def test_unrecognised_input_is_refused(tmp_path, text):
    manager = SessionManager(tmp_path / "sessions")
    with pytest.raises(InvalidInput):
        import_session(manager, text, source="in.txt")
    assert manager.list_sessions() == []


def test_unknown_export_format(source):
    manager, session_id = source
    with pytest.raises(InvalidInput, match="xml"):
        export_session(manager, session_id, "xml")


def _jsonl(header: dict, *messages: dict) -> bytes:
    lines = [{"type": "header", "format": 1, **header}, *messages]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def test_import_refuses_a_bad_timestamp_naming_the_line(tmp_path):
    manager = SessionManager(tmp_path / "s")
    good = {
        "type": "message",
        "role": "user",
        "content": "a",
        "timestamp": "2026-01-02 03:04:05.678",
    }
    bad = {"type": "message", "role": "user", "content": "b", "timestamp": "not a time"}
    with pytest.raises(InvalidInput, match="line 3 of x.jsonl: timestamp 'not a time' is not"):
        import_session(manager, _jsonl({"id": "session-t1"}, good, bad), source="x.jsonl")
    with pytest.raises(InvalidInput, match="header of x.jsonl: created_at 'yesterday'"):
        import_session(manager, _jsonl({"created_at": "yesterday"}, good), source="x.jsonl")
    assert manager.list_sessions() == []
    assert manager.resume_most_recent_session() is None


def test_import_normalises_iso_times_and_checks_roles_and_text(tmp_path):
    manager = SessionManager(tmp_path / "s")
    msg = {"type": "message", "role": "user", "content": "a", "timestamp": "2026-01-02T03:04:05Z"}
    session_id = import_session(manager, _jsonl({"created_at": "2026-01-02T03:00:00+00:00"}, msg))
    header, messages = manager.read_session(session_id)
    assert header.created_at == "2026-01-02 03:00:00.000"
    assert messages[0].timestamp == "2026-01-02 03:04:05.000"
    with pytest.raises(InvalidInput, match="line 2 of input: role 'bot'"):
        import_session(manager, _jsonl({}, {**msg, "role": "bot"}))
    with pytest.raises(InvalidInput, match="line 2 of input"):
        import_session(manager, _jsonl({}, {**msg, "content": "bad \udcff"}))


def test_import_of_a_binary_file_is_a_clear_error(tmp_path):
    manager = SessionManager(tmp_path / "s")
    with pytest.raises(InvalidInput, match="bin.dat is not UTF-8 text"):
        import_session(manager, b"\x89PNG\r\n\x1a\n\xff\xfe", source="bin.dat")
