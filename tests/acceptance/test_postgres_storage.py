"""Checkpoints and sessions on PostgreSQL, as a user runs the daemon there: nothing of
either lands in the home, and a resumed job finds its checkpoint in the table."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.conftest import cli, wait_until

pytestmark = pytest.mark.timeout(120)

CHAT_AGENT = '''
def chat(ctx):
    """Reads the conversation so far and answers with what it saw."""
    seen = [m.content for m in ctx.session_messages()]
    reply = ctx.add_message("assistant", f"I saw {len(seen)}: " + " | ".join(seen))
    return {"seen": seen, "reply_seq": reply.seq}
'''


@pytest.fixture
def server_env(postgres_url: str, postgres_schema: str) -> dict[str, str]:
    return {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}


def ctl(home, env, *args: str) -> str:
    result = cli("athenactl", *args, home=home, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def ctl_json(home, env, *args: str):
    return json.loads(ctl(home, env, *args, "--json"))


def files_under(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_killed_worker_resumes_from_the_checkpoint_in_the_table(home, server_env, daemon_factory):
    daemon = daemon_factory(workers=2, env=server_env)
    job = ctl(home, server_env, "submit", "sleep", "--payload", '{"seconds": 4}')
    wait_until(
        lambda: (ctl_json(home, server_env, "show", job)["checkpoint_iteration"] or 0) >= 2,
        what="a second checkpoint",
    )
    stored = ctl_json(home, server_env, "checkpoints", job)
    assert stored and all(c["valid"] for c in stored)
    assert all(c["path"].endswith(f"checkpoints/{job}/{c['iteration']}") for c in stored)
    worker = ctl_json(home, server_env, "show", job)["worker_pid"]
    os.kill(worker, signal.SIGKILL)
    result = cli("athenactl", "wait", job, home=home, env=server_env, timeout=60)
    assert result.returncode == 0, result.stderr + daemon.log_text()
    done = ctl_json(home, server_env, "show", job)
    assert done["status"] == "completed" and done["worker_pid"] != worker
    assert done["resumed_from"] >= 1 and done["result"]["resumed_from"] >= 1
    # After completion only the final checkpoint is kept, in the table.
    final = ctl_json(home, server_env, "checkpoints", job)
    assert [c["iteration"] for c in final] == [done["checkpoint_iteration"]]
    assert files_under(home.checkpoints_dir) == []
    assert not home.db_path.exists()


def test_a_job_with_a_session_reads_and_writes_its_conversation_in_the_tables(
    home, server_env, daemon_factory, tmp_path
):
    (home.root / "chatagent.py").write_text(CHAT_AGENT)
    (home.root / "athena.toml").write_text('[agents]\nchat = "chatagent:chat"\n')
    session = ctl(home, server_env, "sessions", "new", "--name", "on the server")
    ctl(home, server_env, "sessions", "add", session, "--role", "user", "hello")
    ctl(home, server_env, "sessions", "add", session, "--role", "user", "again")
    missing = cli(
        "athenactl", "submit", "chat", "--session", "session-0", home=home, env=server_env
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    daemon_factory(workers=1, env=server_env)
    job = ctl(home, server_env, "submit", "chat", "--session", session)
    result = cli("athenactl", "wait", job, home=home, env=server_env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ctl_json(home, server_env, "show", job)["result"] == {
        "seen": ["hello", "again"],
        "reply_seq": 3,
    }
    shown = ctl_json(home, server_env, "sessions", "show", session)
    assert [m["content"] for m in shown["messages"]][-1] == "I saw 2: hello | again"
    assert shown["session"]["message_count"] == 3
    assert files_under(home.sessions_dir) == []
    # The same JSON Lines moves the session to a home on files and back unchanged.
    exported = tmp_path / "session.jsonl"
    ctl(home, server_env, "sessions", "export", session, "--format", "jsonl", "-o", str(exported))
    on_files = home.root.parent / "files-home"
    on_files.mkdir()
    imported = cli("athenactl", "sessions", "import", str(exported), "--home", str(on_files))
    assert imported.returncode == 0 and imported.stdout.strip() == session, imported.stderr
    again = cli(
        "athenactl", "sessions", "export", session, "--format", "jsonl", "--home", str(on_files)
    )
    assert again.stdout == exported.read_text()
