"""The cli-agent runner through a running athenad, with fake ``claude`` and ``codex``
commands (tests/support/) that write the events the real ones write."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import cli, cli_json, submit, wait_status, wait_until

pytestmark = pytest.mark.timeout(120)

SUPPORT = Path(__file__).resolve().parent.parent / "support"


def shim(bin_dir: Path, name: str, script: str) -> None:
    """An executable NAME on PATH that runs a fake agent with this interpreter."""
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SUPPORT / script}" "$@"\n')
    path.chmod(0o755)


@pytest.fixture
def agents_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim(bin_dir, "claude", "fake_claude.py")
    shim(bin_dir, "codex", "fake_codex.py")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def run_job(home, *args: str) -> str:
    return submit(home, "cli-agent", *args)


def show(home, job_id: str) -> dict:
    return cli_json("athenactl", "show", job_id, home=home)


def session_messages(home, session_id: str) -> tuple[dict, list[dict]]:
    shown = cli_json("athenactl", "sessions", "show", session_id, home=home)
    return shown["session"], shown["messages"]


def kinds(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], m["metadata"]["kind"]) for m in messages]


def test_claude_codex_and_templates_run_into_sessions_with_usage(
    home, daemon_factory, agents_env, workdir
):
    fake = str(SUPPORT / "fake_claude.py")
    (home.root / "athena.toml").write_text(
        "[cli_agents.fake]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(fake)}, '-p', '{{prompt}}',"
        " '--output-format', 'stream-json', '--verbose', '--model', '{model}']\n"
        "[cli_agents.echoer]\n"
        f"command = [{json.dumps(sys.executable)}, '-c',"
        ' \'import os, sys; print("said " + sys.argv[1] + " in " + os.getcwd())\','
        " '{prompt}']\n"
        'format = "text"\n'
        '[llm.prices."gpt-fake"]\ninput = 1.0\noutput = 2.0\n'
    )
    daemon_factory(workers=3, env=agents_env)
    claude = run_job(
        home,
        "--payload",
        json.dumps({"command": "claude", "prompt": "list files", "cwd": str(workdir)}),
    )
    codex = run_job(
        home,
        "--payload",
        json.dumps(
            {"command": "codex", "prompt": "tidy up", "model": "gpt-fake", "cwd": str(workdir)}
        ),
    )
    templated = run_job(
        home, "--payload", json.dumps({"command": "fake", "prompt": "hi", "model": "claude-x"})
    )
    session = cli("athenactl", "sessions", "new", "--name", "mine", home=home).stdout.strip()
    echoed = run_job(
        home,
        "--session",
        session,
        "--payload",
        json.dumps({"command": "echoer", "prompt": "hello {cwd}", "cwd": str(workdir)}),
    )
    for job in (claude, codex, templated, echoed):
        wait_status(home, job, {"completed", "failed"})

    # Claude Code: every event in the session, usage and cost from its result event.
    job = show(home, claude)
    assert job["status"] == "completed", job["error"]
    result = job["result"]
    assert result["message"] == "Done with: list files"
    assert result["exit_code"] == 0
    assert result["agent_session_id"] == "5f1c7a52-0c4e-4a8b-9d36-fa6e2b1e0001"
    assert (job["model"], job["tokens_in"], job["tokens_out"]) == ("claude-fake-1", 225, 30)
    assert job["cost_usd"] == pytest.approx(0.0123)
    assert result["usage"] == {
        "model": "claude-fake-1",
        "tokens_in": 225,
        "tokens_out": 30,
        "cost_usd": pytest.approx(0.0123),
    }
    header, messages = session_messages(home, result["session_id"])
    assert header["cwd"] == str(workdir)
    assert header["tags"] == ["cli-agent", "claude"]
    assert kinds(messages) == [
        ("user", "text"),
        ("system", "event"),  # system/init
        ("assistant", "text"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("assistant", "text"),
        ("system", "raw"),  # an event type this version does not know
        ("system", "raw"),  # a line that is not JSON
        ("system", "event"),  # the result
    ]
    assert messages[0]["content"] == "list files"
    assert messages[0]["metadata"]["job_id"] == claude
    assert json.loads(messages[1]["content"])["subtype"] == "init"
    assert messages[3]["content"] == '{"command":"ls"}'
    assert messages[3]["metadata"]["tool"] == "Bash"
    assert messages[4]["content"] == "README.md\nsrc"
    assert messages[4]["metadata"]["tool_use_id"] == "toolu_1"
    assert json.loads(messages[6]["content"]) == {"type": "fake_future_event", "detail": {"n": 1}}
    assert messages[7]["content"] == "a line that is not JSON"
    assert messages[6]["metadata"]["event"] == "fake_future_event"

    # Codex: items as messages, tokens from turn.completed, cost from [llm.prices].
    job = show(home, codex)
    assert job["status"] == "completed", job["error"]
    assert job["result"]["message"] == "Codex did: tidy up"
    assert (job["model"], job["tokens_in"], job["tokens_out"]) == ("gpt-fake", 1200, 80)
    assert job["cost_usd"] == pytest.approx((1200 * 1.0 + 80 * 2.0) / 1e6)
    _, messages = session_messages(home, job["result"]["session_id"])
    assert kinds(messages) == [
        ("user", "text"),
        ("system", "event"),  # thread.started
        ("system", "event"),  # turn.started
        ("assistant", "thinking"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("assistant", "text"),
        ("system", "event"),  # turn.completed
    ]
    assert messages[4]["content"] == "bash -lc ls"
    assert messages[5]["metadata"] == {
        "kind": "tool_result",
        "tool_use_id": "item_1",
        "exit_code": 0,
    }

    # A template: its placeholders filled from the payload.
    job = show(home, templated)
    assert job["status"] == "completed", job["error"]
    assert job["model"] == "claude-x"
    assert job["result"]["message"] == "Done with: hi"

    # A text template, into the session the job was submitted with.
    job = show(home, echoed)
    assert job["status"] == "completed", job["error"]
    assert job["result"]["message"] == f"said hello {{cwd}} in {workdir}"
    assert job["result"]["session_id"] == session
    assert job["tokens_in"] == 0
    _, messages = session_messages(home, session)
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "hello {cwd}"),
        ("assistant", f"said hello {{cwd}} in {workdir}"),
    ]


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def started_pids(pidfile: Path) -> list[int]:
    wait_until(pidfile.exists, timeout=30, what="the fake agent to start")
    return [int(p) for p in pidfile.read_text().split()]


def test_timeout_and_cancel_kill_the_whole_process_group(
    home, daemon_factory, agents_env, tmp_path
):
    daemon_factory(workers=2, env=agents_env)
    timed_file, cancelled_file = tmp_path / "timed.pids", tmp_path / "cancelled.pids"
    timed = run_job(
        home,
        "--timeout",
        "3",
        "--payload",
        json.dumps({"command": "claude", "prompt": f"sleep {timed_file}"}),
    )
    cancelled = run_job(
        home, "--payload", json.dumps({"command": "claude", "prompt": f"sleep {cancelled_file}"})
    )
    timed_pids, cancelled_pids = started_pids(timed_file), started_pids(cancelled_file)
    assert not gone(timed_pids) and not gone(cancelled_pids)
    assert cli("athenactl", "cancel", cancelled, home=home).returncode == 0
    assert (
        wait_status(home, cancelled, {"cancelled", "failed", "completed"})["status"] == "cancelled"
    )
    wait_until(lambda: gone(cancelled_pids), timeout=10, what="the cancelled agent's group to die")

    job = wait_status(home, timed, {"failed", "completed", "cancelled"})
    assert job["status"] == "failed"
    assert "timed out" in job["error"]
    wait_until(lambda: gone(timed_pids), timeout=10, what="the timed-out agent's group to die")
    # What the agent said before it was stopped is in the session, as it arrived; the
    # tokens its messages reported are on the job though no result event came.
    sessions = cli_json("athenactl", "sessions", "list", home=home)
    assert len(sessions) == 2
    for info in sessions:
        _, messages = session_messages(home, info["id"])
        assert kinds(messages) == [("user", "text"), ("system", "event"), ("assistant", "text")]
        assert messages[2]["content"] == "Let me look."
    job = show(home, timed)
    assert (job["model"], job["tokens_in"], job["tokens_out"]) == ("claude-fake-1", 115, 7)


def test_failures_are_one_clear_sentence(home, daemon_factory, agents_env):
    daemon_factory(workers=2, env=agents_env)
    claude = run_job(home, "--payload", json.dumps({"command": "claude", "prompt": "fail"}))
    codex = run_job(home, "--payload", json.dumps({"command": "codex", "prompt": "fail"}))
    unknown = run_job(home, "--payload", json.dumps({"command": "aider", "prompt": "x"}))
    typo = run_job(home, "--payload", json.dumps({"command": "claude", "promt": "x"}))
    missing = run_job(
        home, "--payload", json.dumps({"argv": ["no-such-agent-here"], "prompt": "x"})
    )
    errors = {
        job: wait_status(home, job, {"failed", "completed"})["error"]
        for job in (claude, codex, unknown, typo, missing)
    }
    assert errors[claude].endswith(
        "claude exited with status 3: fake-claude: Invalid API key, please run /login"
    )
    assert errors[codex].endswith(
        "codex exited with status 1: ERROR: stream disconnected before completion"
    )
    assert "cli-agent knows no command 'aider' (known: claude, codex)" in errors[unknown]
    assert "does not know the payload key(s) promt" in errors[typo]
    assert "cannot run 'no-such-agent-here'" in errors[missing]


def test_on_postgresql_the_session_and_usage_are_in_the_database(
    home, daemon_factory, agents_env, postgres_url, postgres_schema
):
    env = {
        **agents_env,
        "ATHENA_DATABASE_URL": postgres_url,
        "ATHENA_DATABASE_SCHEMA": postgres_schema,
    }
    daemon_factory(workers=1, env=env)
    submitted = cli(
        "athenactl",
        "submit",
        "cli-agent",
        "--wait",
        "--json",
        "--payload",
        json.dumps({"command": "claude", "prompt": "on the server"}),
        home=home,
        env=env,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    job = json.loads(cli("athenactl", "show", job_id, "--json", home=home, env=env).stdout)
    assert job["status"] == "completed", job["error"]
    assert (job["tokens_in"], job["tokens_out"]) == (225, 30)
    shown = cli(
        "athenactl", "sessions", "show", job["result"]["session_id"], "--json", home=home, env=env
    )
    messages = json.loads(shown.stdout)["messages"]
    assert len(messages) == 9 and messages[0]["content"] == "on the server"
    assert not home.db_path.exists()
    assert not (home.state_dir / "sessions").exists() or not any(
        (home.state_dir / "sessions").glob("session-*.jsonl")
    )


def test_what_a_command_leaves_running_is_killed_when_it_ends(home, daemon_factory, tmp_path):
    daemon_factory(workers=1)
    pidfile = tmp_path / "helper.pid"
    # The helper keeps the command's stdout open after the command exited.
    script = f"sleep 300 & echo $! > {pidfile}; echo done"
    job_id = run_job(home, "--payload", json.dumps({"argv": ["sh", "-c", script]}))
    job = wait_status(home, job_id, {"completed", "failed"})
    assert job["status"] == "completed", job["error"]
    assert show(home, job_id)["result"]["message"] == "done"
    wait_until(lambda: gone([int(pidfile.read_text())]), timeout=10, what="the helper to die")
