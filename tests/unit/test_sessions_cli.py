"""athenactl sessions / backup / restore through click's CliRunner."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from click.testing import CliRunner

from athenad.api import TaskOrchestrator
from athenad.cli import sessions_cmd
from athenad.cli.sessions_cmd import backup_command, restore_command, sessions_group
from athenad.storage.sessions import Role


@pytest.fixture
def home(tmp_path):
    return str(tmp_path / "home")


def run(args, home, input=None, code=0):
    result = CliRunner().invoke(sessions_group, [*args, "--home", home], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def new(home, *extra):
    return run(["new", *extra], home).stdout.strip()


def test_new_add_show_list(home):
    session_id = new(home, "--name", "Review", "--tag", "a", "--tag", "b", "--branch", "main")
    assert session_id.startswith("session-")
    assert run(["add", session_id, "--role", "user", "hello\nworld"], home).stdout.strip() == "1"
    run(["add", session_id, "--role", "ASSISTANT", "-"], home, input="from stdin ✓")
    shown = json.loads(run(["show", session_id, "--json"], home).stdout)
    assert shown["session"]["id"] == session_id and shown["session"]["tags"] == ["a", "b"]
    assert [(m["seq"], m["role"], m["content"]) for m in shown["messages"]] == [
        (1, "user", "hello\nworld"),
        (2, "assistant", "from stdin ✓"),
    ]
    human = run(["show", session_id], home).output
    assert "Review" in human and "    world" in human
    listed = json.loads(run(["list", "--json"], home).stdout)
    assert [s["id"] for s in listed] == [session_id]
    assert set(listed[0]) == {
        "id", "name", "tags", "git_branch", "cwd", "created_at", "updated_at",
        "message_count", "size", "mtime_ns", "imported_from",
    }  # fmt: skip
    assert session_id in run(["list"], home).output
    assert json.loads(run(["list", "--branch", "other", "--json"], home).stdout) == []


def test_bad_role_and_bad_ids_fail_cleanly(home):
    session_id = new(home, "--branch", "main")
    run(["add", session_id, "--role", "bot", "x"], home, code=2)
    result = run(["show", "../../etc/passwd"], home, code=1)
    assert result.output.startswith("error:") and "not a session id" in result.output
    result = run(["show", "session-missing"], home, code=1)
    assert "does not exist" in result.output


def test_continue_picks_the_latest_on_the_branch(home):
    a = new(home, "--branch", "main")
    b = new(home, "--branch", "feature")
    for n in range(15):
        run(["add", a, "--role", "user", f"m{n}"], home)
    run(["add", b, "--role", "user", "feature work"], home)
    data = json.loads(run(["continue", "--branch", "main", "--json"], home).stdout)
    assert data["session"]["id"] == a
    assert [m["content"] for m in data["messages"]] == [f"m{n}" for n in range(5, 15)]
    data = json.loads(run(["continue", "--branch", "main", "--last", "2", "--json"], home).stdout)
    assert [m["seq"] for m in data["messages"]] == [14, 15]
    assert b in run(["continue", "--branch", "feature"], home).output
    assert (
        "no session to continue on branch nope"
        in run(["continue", "--branch", "nope"], home, code=1).output
    )


def test_resume_without_id_and_without_terminal_exits_2(home):
    new(home, "--branch", "main")
    result = run(["resume"], home, code=2)
    assert "no terminal" in result.output


def test_resume_picker_searches_and_picks(home, monkeypatch):
    monkeypatch.setattr(sessions_cmd, "_interactive", lambda: True)
    alpha = new(home, "--name", "alpha work", "--branch", "main")
    beta = new(home, "--name", "beta work", "--branch", "main")
    result = run(["resume", "--json"], home, input="alpha\n1\n")
    body = result.output[result.output.index('{"session"') :]
    assert json.loads(body)["session"]["id"] == alpha
    result = run(["resume"], home, input="1\n")
    assert beta in result.output.split("session   ")[1]
    run(["resume"], home, input="\n", code=1)
    run(["resume", alpha, "--json"], home)


def test_export_import_rm_reindex(home, tmp_path):
    session_id = new(home, "--name", "x", "--branch", "main")
    run(["add", session_id, "--role", "user", "hi ✓"], home)
    out = tmp_path / "s.json"
    run(["export", session_id, "--format", "json", "-o", str(out)], home)
    assert json.loads(out.read_text())["session"]["id"] == session_id
    md = run(["export", session_id, "--format", "md"], home).output
    assert "hi ✓" in md
    imported = json.loads(run(["import", str(out), "--json"], home).stdout)
    assert imported["imported_from"] == session_id and imported["id"] != session_id
    assert json.loads(run(["reindex", "--json"], home).stdout) == {"sessions": 2}
    run(["rm", session_id], home)
    listed = json.loads(run(["list", "--json"], home).stdout)
    assert [s["id"] for s in listed] == [imported["id"]]
    bad = tmp_path / "bad.txt"
    bad.write_text("hello")
    assert "not a session export" in run(["import", str(bad)], home, code=1).output


def test_restore_refuses_while_the_daemon_runs(home, tmp_path):
    state = tmp_path / "home" / ".athena"
    state.mkdir(parents=True)
    pid_file = state / "athenad.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"whatever")
    with open(pid_file) as holder:  # the daemon locks its pid file while it lives
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = CliRunner().invoke(restore_command, [str(archive), "--home", home])
    assert result.exit_code == 1
    assert "daemon is running" in result.output
    result = CliRunner().invoke(restore_command, [str(archive), "--home", home])
    assert result.exit_code == 1
    assert "not a readable .tar.gz backup archive" in result.output


def test_orchestrator_uses_the_seed_names(tmp_path):
    orchestrator = TaskOrchestrator(tmp_path / "athena.db", tmp_path / ".athena")
    session_id = orchestrator.create_conversation_session(name="PR #123 Review", tags=["cr"])
    orchestrator.add_message_to_session(session_id, Role.USER, "Review PR #123")
    orchestrator.add_message_to_session(session_id, Role.ASSISTANT, "2 issues found")
    assert orchestrator.resume_most_recent_session() == session_id
    history = orchestrator.get_conversation_history(session_id)
    assert [m.content for m in history] == ["Review PR #123", "2 issues found"]
    assert [s.id for s in orchestrator.list_sessions()] == [session_id]


def test_backup_and_restore_commands(home, tmp_path):
    session_id = new(home, "--branch", "main")
    run(["add", session_id, "--role", "user", "keep me"], home)
    archive = tmp_path / "out.tar.gz"
    result = CliRunner().invoke(backup_command, [str(archive), "--home", home, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(archive)
    run(["rm", session_id], home)
    result = CliRunner().invoke(restore_command, [str(archive), "--home", home, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["previous_saved_to"]
    shown = json.loads(run(["show", session_id, "--json"], home).stdout)
    assert [m["content"] for m in shown["messages"]] == ["keep me"]


def test_export_never_writes_into_athena_state_and_never_overwrites_unasked(home, tmp_path):
    session_id = new(home, "--name", "x", "--branch", "main")
    run(["add", session_id, "--role", "user", "precious"], home)
    live = tmp_path / "home" / ".athena" / "sessions" / f"{session_id}.jsonl"
    before = live.read_bytes()
    for target in (live, tmp_path / "home" / ".athena" / "notes.md"):
        result = run(["export", session_id, "--format", "md", "-o", str(target)], home, code=1)
        assert "inside Athena's state directory" in result.output
    assert live.read_bytes() == before
    shown = json.loads(run(["show", session_id, "--json"], home).stdout)
    assert [m["content"] for m in shown["messages"]] == ["precious"]

    out = tmp_path / "out.md"
    out.write_text("mine")
    result = run(["export", session_id, "-o", str(out)], home, code=1)
    assert "exists; pass --force" in result.output and out.read_text() == "mine"
    run(["export", session_id, "-o", str(out), "--force"], home)
    assert "precious" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    result = run(["export", session_id, "-o", str(tmp_path / "no" / "x.md")], home, code=1)
    assert "does not exist" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["show", "session-abc"],
        ["continue"],
        ["resume", "session-abc"],
        ["export", "session-abc"],
        ["reindex"],
        ["rm", "session-abc"],
    ],
)
def test_read_only_commands_refuse_a_home_without_state(home, tmp_path, args):
    result = run(args, home, code=1)
    assert "is not an Athena home" in result.output
    assert not (tmp_path / "home").exists()


def test_non_utf8_input_is_one_clear_error(home, tmp_path):
    session_id = new(home, "--branch", "main")
    cases = [
        (["add", session_id, "--role", "user", "-"], b"ok\xff", "stdin is not UTF-8"),
        (["add", session_id, "--role", "user", "bad\udcff"], None, "content is not valid UTF-8"),
        (["new", "--name", "n\udcff"], None, "session name is not valid UTF-8"),
        (["new", "--tag", "t\udcff"], None, "a tag is not valid UTF-8"),
    ]
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    cases.append((["import", str(binary)], None, "is not UTF-8 text"))
    for args, stdin, expected in cases:
        result = run(args, home, input=stdin, code=1)
        assert result.output.startswith("error:") and expected in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert json.loads(run(["list", "--json"], home).stdout)[0]["message_count"] == 0


def test_new_from_a_directory_whose_name_is_not_utf8(home, tmp_path, monkeypatch):
    odd = os.path.join(os.fsencode(tmp_path), b"dir\xff")
    os.mkdir(odd)
    monkeypatch.chdir(odd)
    session_id = new(home, "--branch", "main")
    info = json.loads(run(["list", "--json"], home).stdout)[0]
    assert info["id"] == session_id and info["cwd"].endswith("dir\ufffd")
