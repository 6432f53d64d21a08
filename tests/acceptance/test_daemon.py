"""athenad as a user runs it: start, submit, kill things, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import time

import psutil
import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import NOTHING_WAITING, cli, cli_json, submit, wait_status, wait_until

pytestmark = pytest.mark.timeout(90)

AGENTS = textwrap.dedent(
    """
    import time

    def boom(ctx):
        raise RuntimeError("agent exploded on purpose")

    def slow(ctx):
        deadline = time.time() + ctx.payload.get("seconds", 30)
        while time.time() < deadline:
            if ctx.cancelled:
                raise RuntimeError("stopping because cancelled")
            time.sleep(0.02)
        return {"slept": ctx.payload.get("seconds", 30), "attempt": ctx.attempt}

    def stubborn(ctx):
        time.sleep(ctx.payload.get("seconds", 30))
        return "finished anyway"
    """
)


@pytest.fixture
def agents_home(home):
    (home.root / "testagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[daemon]\ncancel_grace = 1\n\n[agents]\nboom = "testagents:boom"\n'
        'slow = "testagents:slow"\nstubborn = "testagents:stubborn"\n'
    )
    return home


def alive(pid: int) -> bool:
    """Running and not a zombie (an exited daemon may wait for init to reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def show(home, job_id):
    return cli_json("athenactl", "show", job_id, home=home)


def test_start_status_stop_as_a_background_service(home):
    started = cli("athenad", "start", "--workers", "2", home=home)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.strip())
    try:
        report = cli_json("athenad", "status", home=home)
        assert report["running"] is True and report["pid"] == pid
        assert len(report["workers"]) == 2
        assert set(report["workers"][0]) >= {
            "pid",
            "rss_bytes",
            "cpu_percent",
            "job",
            "jobs_done",
            "started_at",
        }
        assert set(report["queue"]) == set(NOTHING_WAITING)
        # On SQLite the hosts are this daemon alone, named by the machine's hostname.
        assert [(entry["host"], entry["pid"]) for entry in report["hosts"]] == [
            (socket.gethostname(), pid)
        ]
        assert set(report["hosts"][0]) >= {"host", "pid", "workers", "last_seen"}
        worker_pids = [w["pid"] for w in report["workers"]]

        again = cli("athenad", "start", home=home)
        assert again.returncode != 0 and "already running" in again.stderr

        job = submit(home, "echo", "--payload", '{"hello": "world"}')
        assert cli("athenactl", "wait", job, "--timeout", "20", home=home).returncode == 0
        assert show(home, job)["result"] == {"hello": "world"}
        # Complete lines only: workers may be writing the last one right now.
        log_lines = home.log_file.read_text().split("\n")[:-1]
        events = [json.loads(line) for line in log_lines]  # every line is a JSON event
        assert any(event.get("event") == "job_completed" for event in events)
    finally:
        stopped = cli("athenad", "stop", home=home)
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(pid)
    assert not any(alive(p) for p in worker_pids)
    after = cli_json("athenad", "status", home=home)
    assert after["running"] is False and after["hosts"] == []  # a clean stop leaves no record


def test_stale_pid_file_is_taken_over(home):
    home.pid_file.write_text("999999\n")
    started = cli("athenad", "start", "--workers", "1", home=home)
    assert started.returncode == 0, started.stderr
    assert cli("athenad", "stop", home=home).returncode == 0


def test_bad_submissions_get_one_clear_error(home):
    unknown = cli("athenactl", "submit", "no-such-agent", home=home)
    assert unknown.returncode != 0
    assert "unknown job type 'no-such-agent'" in unknown.stderr and "echo" in unknown.stderr
    bad_json = cli("athenactl", "submit", "echo", "--payload", "{nope", home=home)
    assert bad_json.returncode != 0 and "not JSON" in bad_json.stderr
    nowhere = cli("athenactl", "jobs", "--home", str(home.root / "typo"))
    assert nowhere.returncode == 1 and "has no athena.db" in nowhere.stderr
    assert not (home.root / "typo").exists()
    huge = cli("athenactl", "submit", "echo", "--priority", str(10**20), home=home)
    assert huge.returncode == 1 and "too large" in huge.stderr
    usage = cli("athenactl", "jobs", "--status", "bogus", home=home)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    missing = cli("athenactl", "show", "zzzzzzzzzzzzzzz", home=home)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    with JobQueue(home.db_path) as queue:
        assert queue.list_jobs() == []


def test_status_shows_the_job_each_worker_runs(home, daemon_factory):
    daemon_factory(workers=1)
    job = submit(home, "sleep", "--payload", '{"seconds": 3}')
    wait_status(home, job, {"running"})
    worker = cli_json("athenad", "status", home=home)["workers"][0]
    assert worker["job"] == job and worker["job_started_at"]


def test_outcomes_of_agents(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=2)
    raising = submit(home, "boom")
    failing_shell = submit(home, "shell", "--payload", '{"cmd": "echo out; echo bad >&2; exit 3"}')
    timed = submit(home, "stubborn", "--payload", '{"seconds": 30}', "--timeout", "0.5")
    ok_shell = submit(home, "shell", "--payload", '{"cmd": "echo hi"}')
    code = cli(
        "athenactl", "wait", raising, failing_shell, timed, ok_shell, "--timeout", "40", home=home
    )
    assert code.returncode == 1

    boom = show(home, raising)
    assert boom["status"] == "failed" and "agent exploded on purpose" in boom["error"]
    assert "Traceback" in boom["traceback"]
    shell = show(home, failing_shell)
    assert shell["status"] == "failed" and "status 3" in shell["error"] and "bad" in shell["error"]
    assert show(home, timed)["status"] == "failed"
    assert "timed out after 0.5 s" in show(home, timed)["error"]
    result = show(home, ok_shell)["result"]
    assert result["exit_code"] == 0 and result["stdout"] == "hi\n"


def test_fan_out_fan_in_and_cancel(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=2)
    a = submit(home, "echo", "--payload", "1")
    b = submit(home, "echo", "--payload", "2")
    c = submit(home, "echo", "--payload", "3", "--after", a, "--after", b)
    assert cli("athenactl", "wait", c, "--timeout", "20", home=home).returncode == 0
    assert show(home, c)["parents"] == sorted([a, b])

    long = submit(home, "slow", "--payload", '{"seconds": 60}')
    wait_status(home, long, {"running"})
    assert "cancelling" in cli("athenactl", "cancel", long, home=home).stdout
    assert wait_status(home, long, {"cancelled"})["status"] == "cancelled"


def test_worker_killed_mid_job_runs_again_elsewhere(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=2)
    job = submit(home, "slow", "--payload", '{"seconds": 2}')
    running = wait_status(home, job, {"running"})
    victim = running["worker_pid"]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    with JobQueue(home.db_path) as queue:
        wait_until(
            lambda: queue.get(job)["status"] == "pending" or queue.get(job)["worker_pid"] != victim,
            timeout=5,
            what="the job to be requeued",
        )
    assert time.monotonic() - killed_at < 1.5
    done = wait_status(home, job, {"completed", "failed"})
    assert done["status"] == "completed"
    assert done["worker_pid"] != victim
    assert done["attempts"] == 1 and done["interruptions"] == 1


def test_supervisor_killed_then_new_start_recovers(agents_home, daemon_factory):
    home = agents_home
    first = daemon_factory(workers=1)
    job = submit(home, "slow", "--payload", '{"seconds": 3}')
    running = wait_status(home, job, {"running"})
    worker = running["worker_pid"]
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=5)
    wait_until(lambda: not alive(worker), timeout=10, what="the orphaned worker to exit")
    daemon_factory(workers=1)
    done = wait_status(home, job, {"completed", "failed"})
    assert done["status"] == "completed" and done["worker_pid"] != worker


def test_stop_drains_running_jobs(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1)
    job = submit(home, "slow", "--payload", '{"seconds": 1}')
    wait_status(home, job, {"running"})
    assert cli("athenad", "stop", "--timeout", "20", home=home).returncode == 0
    assert daemon.proc.wait(timeout=5) == 0
    assert show(home, job)["status"] == "completed"


def test_stop_timeout_requeues_instead_of_failing(agents_home, daemon_factory):
    home = agents_home
    daemon = daemon_factory(workers=1)
    job = submit(home, "stubborn", "--payload", '{"seconds": 60}')
    wait_status(home, job, {"running"})
    assert cli("athenad", "stop", "--timeout", "0.5", home=home).returncode == 0
    assert daemon.proc.wait(timeout=5) == 0
    row = show(home, job)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert not any(
        p.info["cmdline"] and "workers" in p.info["cmdline"] and str(home.root) in p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
    )


@pytest.mark.parametrize(
    ("where", "extra", "env"),
    [
        ("athena.toml", (), {}),
        ("the environment", (), {"ATHENA_DRAIN_TIMEOUT": "0.5"}),
        ("start's flag", ("--drain-timeout", "0.5"), {}),
    ],
)
def test_stop_without_a_timeout_uses_the_drain_timeout_setting(
    agents_home, daemon_factory, where, extra, env
):
    home = agents_home
    if where == "athena.toml":
        text = home.config_path.read_text()
        home.config_path.write_text(text.replace("[daemon]\n", "[daemon]\ndrain_timeout = 0.5\n"))
    daemon = daemon_factory(workers=1, extra=extra, env=env)
    job = submit(home, "stubborn", "--payload", '{"seconds": 60}')
    wait_status(home, job, {"running"})
    began = time.monotonic()
    assert cli("athenad", "stop", home=home, env=env).returncode == 0
    assert daemon.proc.wait(timeout=5) == 0
    assert time.monotonic() - began < 10, f"stop did not honour drain_timeout from {where}"
    assert show(home, job)["status"] == "pending"


def test_systemd_notify_ready_and_watchdog(home, daemon_factory, tmp_path):
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(20)
    daemon_factory(workers=1, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while not {"READY=1", "WATCHDOG=1"} <= seen and time.monotonic() < deadline:
        seen.update(sock.recv(4096).decode().splitlines())
    sock.close()
    assert "READY=1" in seen and "WATCHDOG=1" in seen
    assert any(line.startswith("STATUS=") for line in seen)


def test_boot_failure_stops_the_daemon_with_the_reason(home):
    (home.root / "athena.toml").write_text("[daemon]\nworkers = 'many'\n")
    result = cli("athenad", "start", home=home)
    assert result.returncode != 0
    assert "athena.toml" in result.stderr and result.stderr.count("\n") == 1


def test_everything_but_execution_works_while_the_daemon_is_stopped(home):
    job = submit(home, "echo", "--payload", '{"n": 1}', "--priority", "3")
    child = submit(home, "echo", "--after", job)
    waited = cli("athenactl", "wait", job, "--timeout", "0.3", home=home)
    assert waited.returncode == 2 and "still unfinished" in waited.stderr
    listed = cli_json("athenactl", "jobs", "--status", "pending", home=home)
    assert [j["id"] for j in listed] == [job] and listed[0]["parents"] == []
    blocked = cli_json("athenactl", "jobs", "--status", "blocked", home=home)
    assert [j["parents"] for j in blocked] == [[job]]
    shown = show(home, child)
    assert shown["status"] == "blocked" and shown["parents"] == [job]
    assert cli("athenactl", "cancel", job, home=home).returncode == 0
    assert show(home, child)["status"] == "cancelled"
    assert cli_json("athenactl", "retry", job, home=home) == {"id": job, "status": "pending"}
    assert show(home, child)["status"] == "blocked"
    again = cli("athenactl", "retry", job, home=home)
    assert again.returncode == 1 and "only failed or cancelled" in again.stderr


def test_a_file_that_is_not_a_database_is_reported_and_left_alone(home):
    garbage = b"this is not an SQLite database\n" * 4
    home.db_path.write_bytes(garbage)
    for tool, args in (
        ("athenactl", ("jobs",)),
        ("athenactl", ("submit", "echo")),
        ("athenad", ("start",)),
        ("athenad", ("status", "--json")),
    ):
        result = cli(tool, *args, home=home)
        assert result.returncode == 1, (tool, args, result.stderr)
        assert "not a usable SQLite database" in result.stderr
        assert "Traceback" not in result.stderr
    assert home.db_path.read_bytes() == garbage


def test_backup_never_overwrites_by_accident(home, tmp_path):
    submit(home, "echo")
    existing = tmp_path / "keep.tar.gz"
    existing.write_bytes(b"precious")
    refused = cli("athenactl", "backup", str(existing), home=home)
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert existing.read_bytes() == b"precious"
    empty = cli("athenactl", "backup", "", home=home)
    assert empty.returncode != 0
    assert cli("athenactl", "backup", str(existing), "--force", home=home).returncode == 0
    assert existing.read_bytes() != b"precious"
