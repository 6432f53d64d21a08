"""Sessions in the dashboard: the list with search, the viewer, the exports."""

from __future__ import annotations

import json

import pytest

from athenad.config import load_config
from athenad.storage import open_stores
from tests.conftest import cli_json


@pytest.fixture
def session_id(home, jobs) -> str:
    stores = open_stores(home, load_config(home).daemon)
    try:
        sessions = stores.sessions
        made = sessions.create_session(name="fix the parser", tags=["bugs"], git_branch="main")
        sessions.add_message(made, "user", "Why does <parse> fail?")
        sessions.add_message(
            made, "assistant", '{"command": "pytest -q"}', {"kind": "tool_use", "tool": "Bash"}
        )
        sessions.add_message(made, "assistant", "It fails on empty input.")
        sessions.create_session(name="other work", git_branch="dev")
    finally:
        stores.close()
    return made


def test_list_and_search(client, session_id, home):
    listed = client.get("/api/sessions").json()
    assert listed == cli_json("athenactl", "sessions", "list", home=home)
    assert [row["id"] for row in client.get("/api/sessions?q=PARSER").json()] == [session_id]
    assert [row["id"] for row in client.get("/api/sessions?q=bugs").json()] == [session_id]
    assert len(client.get("/api/sessions?branch=dev").json()) == 1
    html = client.get("/sessions", params={"q": "parser"}).text
    assert f'href="/sessions/{session_id}"' in html and "other work" not in html


def test_viewer_shows_messages_and_tool_calls(client, session_id, home):
    shown = client.get(f"/api/sessions/{session_id}").json()
    assert shown == cli_json("athenactl", "sessions", "show", session_id, home=home)
    html = client.get(f"/sessions/{session_id}").text
    assert "Why does &lt;parse&gt; fail?" in html  # escaped
    assert "assistant (tool_use Bash)" in html and "pytest -q" in html
    assert f"/api/sessions/{session_id}/export?format=jsonl" in html


def test_export_jsonl_and_errors(client, session_id):
    answer = client.get(f"/api/sessions/{session_id}/export")
    assert answer.headers["content-disposition"].endswith(f'{session_id}.jsonl"')
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert len(lines) == 4 and lines[1]["content"] == "Why does <parse> fail?"
    assert "# " in client.get(f"/api/sessions/{session_id}/export?format=md").text
    bad = client.get(f"/api/sessions/{session_id}/export?format=pdf")
    assert bad.status_code == 400
    assert client.get("/api/sessions/session-nope0").status_code == 404
    assert client.get("/api/sessions/..%2F..%2Fetc").status_code == 404
    assert client.get("/sessions/session-nope0").status_code == 404


def test_a_home_without_sessions_lists_none(client):
    assert client.get("/api/sessions").json() == []
    assert "no sessions" in client.get("/sessions").text
