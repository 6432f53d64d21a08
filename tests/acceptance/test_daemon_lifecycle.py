"""Reloads, recycling, enforced cancellation and timeouts, boot failures, sessions."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time

import pytest

from athenad.storage.sessions import SessionManager
from tests.conftest import cli, cli_json, job_row, submit, wait_status, wait_until

pytestmark = pytest.mark.timeout(90)

AGENTS = textwrap.dedent(
    """
    import signal, time

    VERSION = 1

    def version(ctx):
        return VERSION

    def stubborn(ctx):
        time.sleep(ctx.payload.get("seconds", 30))
        return "finished anyway"

    def hung(ctx):
        # Like a call stuck in C code: no Python-level interrupt can reach it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGUSR1})
        time.sleep(ctx.payload.get("seconds", 60))
        return "never"

    def opaque(ctx):
        return object()

    def polite(ctx):
        for _ in range(600):
            if ctx.cancelled:
                break  # stops early and returns what it has
            time.sleep(0.05)
        return "partial"

    def forker(ctx):
        import os
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        with open(ctx.payload["pidfile"], "w") as f:
            f.write(str(pid))
        return pid

    def quitter(ctx):
        import sys
        sys.exit(3)

    def chat(ctx):
        history = ctx.session_messages()
        ctx.add_message("assistant", f"I saw {len(history)} message(s)")
        return len(history)
    """
)


@pytest.fixture
def agents_home(home):
    (home.root / "lifeagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        "[daemon]\ncancel_grace = 1\n\n[agents]\n"
        + "".join(
            f'{name} = "lifeagents:{name}"\n'
            for name in (
                "version",
                "stubborn",
                "hung",
                "chat",
                "opaque",
                "quitter",
                "polite",
                "forker",
            )
        )
    )
    return home


def run_version(home) -> int:
    job_id = submit(home, "version")
    return wait_status(home, job_id, {"completed"})["result"]


def test_reload_replaces_workers_without_dropping_jobs(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=2)
    before = set(daemon.worker_pids())
    long = submit(home, "stubborn", "--payload", '{"seconds": 2}')
    wait_status(home, long, {"running"})
    (home.root / "lifeagents.py").write_text(AGENTS.replace("VERSION = 1", "VERSION = 2"))
    assert cli("athenad", "reload", home=home).returncode == 0
    wait_until(
        lambda: not (set(daemon.worker_pids()) & before) and len(daemon.worker_pids()) == 2,
        timeout=30,
        what="every worker to be replaced",
    )
    assert wait_status(home, long, {"completed", "failed"})["status"] == "completed"
    assert run_version(home) == 2
    assert job_row(home, long)["interruptions"] == 0


def test_reload_with_broken_agent_code_keeps_the_old_workers(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1)
    before = daemon.worker_pids()
    (home.root / "lifeagents.py").write_text("this is not python(\n")
    result = cli("athenad", "reload", home=home)
    assert result.returncode == 1
    assert "reload failed" in result.stderr and "SyntaxError" in result.stderr
    assert "reload_failed" in daemon.log_text()
    assert daemon.proc.poll() is None and daemon.worker_pids() == before
    assert run_version(home) == 1


def test_source_watch_reloads_on_change(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1, extra=("--reload",))
    before = set(daemon.worker_pids())
    assert run_version(home) == 1
    (home.root / "lifeagents.py").write_text(AGENTS.replace("VERSION = 1", "VERSION = 3"))
    wait_until(
        lambda: set(daemon.worker_pids()) and not (set(daemon.worker_pids()) & before),
        timeout=30,
        what="the worker to be replaced",
    )
    assert run_version(home) == 3


def test_workers_are_recycled_after_max_jobs(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1, extra=("--max-jobs-per-worker", "1"))
    ids = [submit(home, "echo", "--payload", str(n)) for n in range(12)]
    assert cli("athenactl", "wait", *ids, "--timeout", "60", home=home).returncode == 0
    pids = {job_row(home, job_id)["worker_pid"] for job_id in ids}
    assert len(pids) == 12  # a fresh worker for every job
    assert daemon.proc.poll() is None  # recycling is not a crash
    assert all(job_row(home, job_id)["interruptions"] == 0 for job_id in ids)


def test_cancel_is_enforced_after_the_grace_period(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=1)
    job_id = submit(home, "stubborn", "--payload", '{"seconds": 60}')
    wait_status(home, job_id, {"running"})
    cli("athenactl", "cancel", job_id, home=home)
    row = wait_status(home, job_id, {"cancelled", "completed", "failed"}, timeout=15)
    assert row["status"] == "cancelled"


def test_hung_worker_past_its_timeout_is_killed(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1)
    job_id = submit(home, "hung", "--payload", '{"seconds": 60}', "--timeout", "0.5")
    running = wait_status(home, job_id, {"running"})
    row = wait_status(home, job_id, {"failed"}, timeout=20)
    assert "timed out after 0.5 s" in row["error"]
    wait_until(
        lambda: running["worker_pid"] not in daemon.worker_pids(),
        timeout=10,
        what="the hung worker to be replaced",
    )
    assert run_version(home) == 1  # the daemon carries on with a fresh worker


def test_broken_agent_module_stops_start_with_the_reason(home):
    (home.root / "athena.toml").write_text('[agents]\nbad = "no_such_module:run"\n')
    result = cli("athenad", "start", "--workers", "1", home=home)
    assert result.returncode != 0
    assert "no_such_module" in result.stderr
    assert cli_json("athenad", "status", home=home)["running"] is False


def test_job_with_a_session_reads_and_writes_the_conversation(agents_home, daemon_factory):
    home = agents_home
    sessions = SessionManager(home.sessions_dir)
    session_id = sessions.create_session(name="review")
    sessions.add_message(session_id, "user", "Review PR #123")
    daemon_factory(workers=1)
    job_id = submit(home, "chat", "--session", session_id)
    assert wait_status(home, job_id, {"completed"})["result"] == 1
    messages = SessionManager(home.sessions_dir).get_messages(session_id)
    assert [m.content for m in messages] == ["Review PR #123", "I saw 1 message(s)"]
    unknown = cli("athenactl", "submit", "chat", "--session", "session-nope", home=home)
    assert unknown.returncode != 0 and "session" in unknown.stderr


def test_status_json_after_stop(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=1)
    report = cli_json("athenad", "status", home=home)
    assert report["running"] and len(report["workers"]) == 1
    assert cli("athenad", "stop", home=home).returncode == 0
    assert json.loads(cli("athenad", "status", "--json", home=home).stdout)["running"] is False


def test_result_that_is_not_json_fails_the_job_clearly(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=1)
    job_id = submit(home, "opaque")
    row = wait_status(home, job_id, {"failed", "completed"})
    assert row["status"] == "failed" and "cannot be encoded as JSON" in row["error"]
    assert run_version(home) == 1


def test_shell_command_dies_with_its_worker_and_on_cancel(agents_home, daemon_factory):
    import psutil

    home = agents_home
    daemon_factory(workers=2)

    def commands(marker: str) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if marker in " ".join(process.info["cmdline"] or []):
                found.append(process)
        return found

    job_id = submit(home, "shell", "--payload", '{"cmd": "sleep 31.25"}')
    running = wait_status(home, job_id, {"running"})
    first = wait_until(lambda: commands("sleep 31.25"), timeout=10, what="the command to start")
    os.kill(running["worker_pid"], signal.SIGKILL)
    # The job runs again elsewhere, and the first copy of the command is killed.
    wait_until(
        lambda: job_row(home, job_id)["worker_pid"] not in (None, running["worker_pid"]),
        timeout=10,
        what="the job to run again",
    )
    wait_until(
        lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in first),
        timeout=10,
        what="the orphaned command to die",
    )

    cli("athenactl", "cancel", job_id, home=home)
    row = wait_status(home, job_id, {"cancelled", "failed", "completed"}, timeout=5)
    assert row["status"] == "cancelled"
    wait_until(lambda: not commands("sleep 31.25"), timeout=5, what="the command to be killed")


def test_agent_calling_sys_exit_fails_its_job_not_the_worker(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1)
    before = daemon.worker_pids()
    job_id = submit(home, "quitter")
    row = wait_status(home, job_id, {"failed", "completed"})
    assert row["status"] == "failed" and "SystemExit(3)" in row["error"]
    assert daemon.worker_pids() == before


def test_agent_that_returns_early_when_cancelled_ends_cancelled(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=1)
    job_id = submit(home, "polite")
    wait_status(home, job_id, {"running"})
    time.sleep(0.5)  # let the agent run a little
    cli("athenactl", "cancel", job_id, home=home)
    row = wait_status(home, job_id, {"cancelled", "completed", "failed"}, timeout=15)
    assert row["status"] == "cancelled" and row["result"] is None


def test_processes_an_agent_forks_end_with_its_job(agents_home, daemon_factory, tmp_path):
    import psutil

    home = agents_home
    daemon_factory(workers=1)
    pidfile = tmp_path / "child.pid"
    job_id = submit(home, "forker", "--payload", json.dumps({"pidfile": str(pidfile)}))
    assert wait_status(home, job_id, {"completed", "failed"})["status"] == "completed"
    child = int(pidfile.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, timeout=10, what="the forked child to be killed")


def test_timeouts_must_be_finite_and_bounded(home):
    for bad in ("inf", "nan", "1e309", "1e23"):
        result = cli("athenactl", "submit", "echo", "--timeout", bad, home=home)
        assert result.returncode != 0 and result.stderr.count("\n") == 1, (bad, result.stderr)
