"""``athenactl logs JOB [--follow] [--json]`` as a user runs it, on a queue the test drives."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from athenad.storage.job_logs import new_line, open_job_logs
from athenad.store.sqlite.queue import JobQueue

# The command as athenactl runs it (ctl.py lists it among its lazy commands).
RUN_LOGS = "from athenad.cli.logs_cmd import logs_command; logs_command(prog_name='athenactl logs')"


def logs_command_line(home, *args: str) -> list[str]:
    return [sys.executable, "-c", RUN_LOGS, *args, "--home", str(home.root)]


def logs(home, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        logs_command_line(home, *args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def running_job(queue, **options) -> tuple[str, int]:
    job_id = queue.submit("echo", **options)
    claimed = queue.claim("test:1:0", lease_s=60)
    assert claimed is not None and claimed.id == job_id
    return job_id, claimed.fence


def append(queue, job_id: str, *messages: str, **kwargs) -> None:
    store = open_job_logs(queue)
    assert store is not None
    store.append(job_id, [new_line(message, **kwargs) for message in messages])


@pytest.fixture
def sqlite_queue(home):
    with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
        yield queue


def test_the_lines_of_a_finished_job(home, sqlite_queue):
    job_id, fence = running_job(sqlite_queue)
    append(sqlite_queue, job_id, "job started")
    append(sqlite_queue, job_id, "fetched", fields={"url": "https://x.org/a b", "n": 2})
    append(sqlite_queue, job_id, "job completed")
    sqlite_queue.complete(job_id, fence, "done")
    result = logs(home, job_id)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert [line.split(None, 3)[3] for line in printed] == [
        "job started",
        'fetched  url="https://x.org/a b" n=2',
        "job completed",
    ]
    assert printed[1].split()[2] == "info"


def test_json_prints_one_object_a_line(home, sqlite_queue):
    job_id, _fence = running_job(sqlite_queue)
    append(sqlite_queue, job_id, "one", fields={"k": [1, None]})
    append(sqlite_queue, job_id, "two", level="error")
    result = logs(home, job_id, "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(record) for record in records] == [
        {"job_id", "seq", "at", "level", "message", "fields"}
    ] * 2
    assert [(r["seq"], r["level"], r["message"], r["fields"]) for r in records] == [
        (1, "info", "one", {"k": [1, None]}),
        (2, "error", "two", None),
    ]
    assert all(record["job_id"] == job_id for record in records)


def test_dropped_lines_are_counted_on_stderr(home, sqlite_queue):
    job_id = sqlite_queue.submit("echo")
    store = open_job_logs(sqlite_queue)
    assert store is not None
    store.append(job_id, [new_line("x" * 60) for _ in range(5)], max_bytes=150)
    result = logs(home, job_id)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "3 more lines of job" in result.stderr and "job_log_max_bytes" in result.stderr


def test_an_unknown_job_is_one_clear_error(home, sqlite_queue):
    result = logs(home, "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: job 'nope' does not exist."


def test_a_home_without_a_database_creates_none(tmp_path):
    from athenad.paths import Home

    home = Home.resolve(tmp_path / "empty").ensure()
    result = logs(home, "nope")
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert not home.db_path.exists()


def read_line(proc: subprocess.Popen, timeout: float = 10) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no line from logs --follow"
    return proc.stdout.readline()


@pytest.mark.timeout(60)
def test_follow_streams_new_lines_and_ends_with_the_job(home, sqlite_queue):
    job_id, fence = running_job(sqlite_queue)
    append(sqlite_queue, job_id, "job started")
    proc = subprocess.Popen(
        logs_command_line(home, job_id, "--follow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc).rstrip().endswith("job started")
        append(sqlite_queue, job_id, "halfway")
        assert read_line(proc).rstrip().endswith("halfway")
        time.sleep(0.6)
        assert proc.poll() is None  # still following a running job
        # As the worker does: the last line first, then the end.
        append(sqlite_queue, job_id, "job completed")
        sqlite_queue.complete(job_id, fence, "done")
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("job completed")


@pytest.mark.timeout(60)
def test_ctrl_c_ends_a_follow_quietly(home, sqlite_queue):
    job_id, _fence = running_job(sqlite_queue)
    append(sqlite_queue, job_id, "job started")
    proc = subprocess.Popen(
        logs_command_line(home, job_id, "-f"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_line(proc)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err == ""


def test_the_same_on_postgresql(home, postgres_url, postgres_schema):
    from athenad.store.postgres.queue import PostgresJobQueue

    env = {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}
    queue = PostgresJobQueue(postgres_url, schema=postgres_schema)
    try:
        job_id, fence = running_job(queue)
        append(queue, job_id, "job started", "job completed")
        queue.complete(job_id, fence, "done")
        followed = logs(home, job_id, "--follow", "--json", env=env)
        missing = logs(home, "nope", env=env)
    finally:
        queue.close()
    assert followed.returncode == 0, followed.stderr
    messages = [json.loads(line)["message"] for line in followed.stdout.splitlines()]
    assert messages == ["job started", "job completed"]
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not home.db_path.exists()
