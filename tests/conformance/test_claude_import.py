"""Importing Claude Code transcripts gives the same sessions on files and on PostgreSQL,
and importing again finds them on either."""

from __future__ import annotations

import shutil
from pathlib import Path

from athenad.storage.sessions.claude_import import import_claude

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "support" / "claude_transcripts"
MAIN = TRANSCRIPTS / "project" / "7b2f6a3e-3d1c-4c55-9a2e-1f0c9d8e7a61.jsonl"


def test_import_then_import_again_then_a_grown_file(stores, tmp_path):
    sessions = stores.sessions
    transcript = tmp_path / "copy" / "t.jsonl"
    transcript.parent.mkdir()
    shutil.copy(MAIN, transcript)
    first = import_claude(sessions, [str(tmp_path / "copy")]).files[0]
    assert first.status == "created"
    header, messages = sessions.read_session(first.id)
    assert (header.git_branch, header.cwd, header.created_at) == (
        "feature/login",
        "/home/dev/app",
        "2025-08-14 09:30:01.120",
    )
    assert [m.timestamp for m in messages][1:3] == [
        "2025-08-14 09:30:01.120",
        "2025-08-14 09:30:04.500",
    ]
    assert sessions.get_session(first.id).imported_from == f"claude-code:{first.claude_session_id}"

    assert import_claude(sessions, [str(transcript)]).files[0].status == "unchanged"
    with open(transcript, "a") as out:
        out.write((TRANSCRIPTS / "continued.jsonl").read_text())
    grown = import_claude(sessions, [str(transcript)]).files[0]
    assert (grown.status, grown.id) == ("updated", first.id)
    header, messages = sessions.read_session(first.id)
    assert len(messages) == 11 and messages[-1].content == "Committed."
    assert header.imported_from == f"claude-code:{first.claude_session_id}"
    assert import_claude(sessions, [str(transcript)]).files[0].status == "unchanged"
    assert [s.id for s in sessions.list_sessions()] == [first.id]


def test_both_backends_hold_the_same_messages(both_backends):
    read = {}
    for kind, stores in both_backends.items():
        report = import_claude(stores.sessions, [str(TRANSCRIPTS / "project")])
        assert [f.status for f in report.files] == ["created", "created"]
        read[kind] = [stores.sessions.get_messages(f.id) for f in report.files]
    assert read["files"] == read["postgres"]
