"""``athenactl sessions import-claude``: Claude Code transcripts (written by hand in
tests/support/claude_transcripts/, following Claude Code's format) become sessions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import cli, cli_json

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "support" / "claude_transcripts"
PROJECT = TRANSCRIPTS / "project"
MAIN_ID = "7b2f6a3e-3d1c-4c55-9a2e-1f0c9d8e7a61"
MAIN = PROJECT / f"{MAIN_ID}.jsonl"
SUBAGENT = PROJECT / "subagents" / "agent-4f2a9c1e.jsonl"


def import_claude(home, *paths: Path | str) -> dict:
    return cli_json("athenactl", "sessions", "import-claude", *map(str, paths), home=home)


def show(home, session_id: str) -> dict:
    return cli_json("athenactl", "sessions", "show", session_id, home=home)


def test_a_folder_of_transcripts_becomes_sessions(home):
    report = import_claude(home, TRANSCRIPTS / "project")
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert report["errors"] == []
    by_file = {Path(f["file"]).name: f for f in report["files"]}
    main = by_file[MAIN.name]
    assert (main["status"], main["claude_session_id"], main["messages"]) == (
        "created",
        MAIN_ID,
        9,
    )
    assert main["raw_events"] == 1
    # The usage of each message once, though Claude Code repeats it on every line of it.
    assert (main["tokens_in"], main["tokens_out"]) == (4 + 1200 + 13000 + 6 + 14300, 9 + 41)
    assert report["messages"] == 9 + 3 and report["raw_events"] == 1

    shown = show(home, main["id"])
    session, messages = shown["session"], shown["messages"]
    assert session["name"] == "Fix the login redirect test"  # the summary line
    assert (session["git_branch"], session["cwd"]) == ("feature/login", "/home/dev/app")
    assert session["tags"] == ["claude-code"]
    assert session["imported_from"] == f"claude-code:{MAIN_ID}"
    assert session["created_at"] == "2025-08-14 09:30:01.120"
    assert [(m["role"], m["metadata"]["kind"]) for m in messages] == [
        ("system", "summary"),
        ("user", "text"),
        ("assistant", "text"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("system", "raw"),
        ("assistant", "thinking"),
        ("assistant", "text"),
        ("system", "text"),
    ]
    summary, prompt, said, tool_use, result, raw, thinking, answer, compacted = messages
    assert summary["timestamp"] == "2025-08-14 09:30:01.120"  # a line without a time
    assert prompt["content"] == "The login test fails: fix it."
    assert prompt["metadata"] == {"kind": "text", "uuid": "a0000000-0000-4000-8000-000000000001"}
    assert said["timestamp"] == "2025-08-14 09:30:04.500"
    assert said["metadata"]["model"] == "claude-sonnet-4-20250514"
    assert said["metadata"]["message_id"] == "msg_01A"
    assert said["metadata"]["usage"]["cache_read_input_tokens"] == 13000
    assert said["metadata"]["parent_uuid"] == prompt["metadata"]["uuid"]
    assert json.loads(tool_use["content"]) == {
        "command": "pytest tests/test_login.py -q",
        "description": "Run the login test",
    }
    assert (tool_use["metadata"]["tool"], tool_use["metadata"]["tool_use_id"]) == (
        "Bash",
        "toolu_01X",
    )
    assert result["content"] == "F\nAssertionError: expected /home"
    assert result["metadata"]["is_error"] is True
    assert result["metadata"]["tool_use_id"] == "toolu_01X"
    assert json.loads(raw["content"])["type"] == "file-history-snapshot"  # kept whole
    assert raw["timestamp"] == result["timestamp"]
    assert thinking["content"] == "The redirect target changed."
    assert answer["content"].startswith("The redirect now goes to /dashboard")
    assert (compacted["content"], compacted["metadata"]["subtype"]) == (
        "Conversation compacted",
        "compact_boundary",
    )

    # A subagent's file shares its parent's sessionId yet is a session of its own.
    sub = by_file[SUBAGENT.name]
    shown = show(home, sub["id"])
    assert shown["session"]["imported_from"] == f"claude-code:{MAIN_ID}/agent-4f2a9c1e"
    assert shown["session"]["name"] == "Find where the redirect is set."
    assert [m["content"] for m in shown["messages"]][2] == "app/views.py:12"
    assert all(m["metadata"]["sidechain"] for m in shown["messages"])


def test_importing_again_never_duplicates_and_a_grown_file_is_rewritten(home, tmp_path):
    transcript = tmp_path / "transcript.jsonl"
    shutil.copy(MAIN, transcript)
    first = import_claude(home, transcript)["files"][0]
    again = import_claude(home, transcript)["files"][0]
    assert (again["status"], again["id"]) == ("unchanged", first["id"])

    # The conversation went on (and changed branch): the same session, rewritten.
    with open(transcript, "a") as out:
        out.write((TRANSCRIPTS / "continued.jsonl").read_text())
    grown = import_claude(home, transcript)["files"][0]
    assert (grown["status"], grown["id"], grown["messages"]) == ("updated", first["id"], 11)
    messages = show(home, first["id"])["messages"]
    assert [m["seq"] for m in messages] == list(range(1, 12))
    assert messages[9]["content"] == "Now commit it, ✓ merci."
    assert messages[9]["timestamp"] == "2025-08-14 09:35:00.250"
    assert messages[9]["metadata"]["git_branch"] == "main"  # the session's is feature/login
    assert import_claude(home, transcript)["files"][0]["status"] == "unchanged"
    assert len(cli_json("athenactl", "sessions", "list", home=home)) == 1


def test_a_damaged_line_is_kept_raw(home, tmp_path):
    lines = MAIN.read_text().splitlines()
    torn = lines[3][:70]
    transcript = tmp_path / "torn.jsonl"
    transcript.write_text("\n".join([*lines[:3], torn, *lines[4:]]) + "\n")
    report = import_claude(home, transcript)
    done = report["files"][0]
    assert (done["messages"], done["raw_events"]) == (9, 2)
    messages = show(home, done["id"])["messages"]
    assert (messages[3]["content"], messages[3]["metadata"]) == (
        torn,
        {"kind": "raw", "line": 4},
    )


def test_bad_paths_are_reported_one_by_one(home, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    missing = tmp_path / "nowhere.jsonl"
    result = cli(
        "athenactl",
        "sessions",
        "import-claude",
        str(missing),
        str(TRANSCRIPTS / "notes.jsonl"),
        str(TRANSCRIPTS / "no_session.jsonl"),
        str(empty),
        str(tmp_path / "bin"),
        home=home,
    )
    (tmp_path / "bin").mkdir()
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {missing} does not exist.",
        f"error: {tmp_path / 'bin'} does not exist.",
        f"error: {TRANSCRIPTS / 'notes.jsonl'} is not JSON Lines: line 1 is not a JSON object.",
        f"error: {TRANSCRIPTS / 'no_session.jsonl'} is not a Claude Code transcript: no line "
        "has a sessionId.",
        f"error: {empty} is empty.",
    ]
    folder = cli("athenactl", "sessions", "import-claude", str(tmp_path / "bin"), home=home)
    assert (folder.returncode, folder.stderr) == (
        1,
        f"error: {tmp_path / 'bin'} holds no .jsonl file.\n",
    )

    # One good file is enough for success; the others are still reported.
    mixed = cli(
        "athenactl", "sessions", "import-claude", str(missing), str(MAIN), "--json", home=home
    )
    assert mixed.returncode == 0, mixed.stderr
    report = json.loads(mixed.stdout)
    assert report["created"] == 1
    assert report["errors"] == [{"file": str(missing), "error": f"{missing} does not exist."}]
    assert mixed.stderr == f"error: {missing} does not exist.\n"


def test_text_output_names_each_file(home):
    result = cli("athenactl", "sessions", "import-claude", str(MAIN), home=home)
    assert result.returncode == 0, result.stderr
    status, session_id, *_ = result.stdout.split()
    assert status == "created" and session_id.startswith("session-")
    assert result.stdout.rstrip().endswith(f"9 messages, 1 kept raw  {MAIN}")
