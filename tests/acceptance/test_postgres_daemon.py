"""athenad and athenactl with the queue on PostgreSQL, chosen by database_url, as a
user runs them."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from athenad.util.timefmt import parse_ts
from tests.conftest import cli, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server_env(postgres_url: str, postgres_schema: str) -> dict[str, str]:
    """The environment that puts this home's queue in a fresh schema of the server."""
    return {"ATHENA_DATABASE_URL": postgres_url, "ATHENA_DATABASE_SCHEMA": postgres_schema}


def ctl(home, env, *args: str):
    result = cli("athenactl", *args, home=home, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def show(home, env, job_id: str) -> dict:
    return json.loads(ctl(home, env, "show", job_id, "--json"))


def test_migrate_creates_the_schema_once(home, server_env, postgres_schema):
    first = json.loads(ctl(home, server_env, "migrate", "--json"))
    again = json.loads(ctl(home, server_env, "migrate", "--json"))
    assert first == again
    assert first["backend"] == "postgres" and first["version"] >= 1
    assert postgres_schema in first["database"]
    assert not home.db_path.exists()  # nothing of the queue lands in the home


def test_a_workflow_runs_and_a_killed_worker_resumes_from_its_checkpoint(
    home, server_env, daemon_factory
):
    daemon = daemon_factory(workers=2, env=server_env)
    fan_out = [
        ctl(home, server_env, "submit", "echo", "--payload", f'{{"n": {n}}}') for n in (1, 2)
    ]
    after = [arg for job in fan_out for arg in ("--after", job)]
    fan_in = ctl(home, server_env, "submit", "echo", "--payload", '{"n": 3}', *after)
    long = ctl(home, server_env, "submit", "sleep", "--payload", '{"seconds": 4}')
    wait_until(lambda: show(home, server_env, long)["checkpoint_iteration"], what="a checkpoint")
    worker = show(home, server_env, long)["worker_pid"]
    os.kill(worker, signal.SIGKILL)
    result = cli("athenactl", "wait", *fan_out, fan_in, long, home=home, env=server_env, timeout=60)
    assert result.returncode == 0, result.stderr + daemon.log_text()
    done = show(home, server_env, long)
    assert done["status"] == "completed" and done["worker_pid"] != worker
    assert done["resumed_from"] >= 1  # the work before the checkpoint was not redone
    assert show(home, server_env, fan_in)["parents"] == sorted(fan_out)
    assert not home.db_path.exists()


def test_an_idle_daemon_starts_a_new_job_at_once(home, server_env, daemon_factory):
    daemon_factory(workers=1, env=server_env)
    waits = []
    for _ in range(5):
        time.sleep(0.3)  # the worker goes back to its idle wait
        job = ctl(home, server_env, "submit", "echo")
        assert cli("athenactl", "wait", job, home=home, env=server_env).returncode == 0
        row = show(home, server_env, job)
        waits.append(parse_ts(row["started_at"]) - parse_ts(row["created_at"]))
    # Woken through LISTEN/NOTIFY: a worker left to its 1 s idle poll would, most of
    # the time, start at least one of five jobs later than this.
    assert max(waits).total_seconds() < 0.25, waits


def test_an_unreachable_server_is_one_sentence_without_the_password(home):
    env = {"ATHENA_DATABASE_URL": "postgresql://alice:hunter2@127.0.0.1:1/orders"}
    for tool, args in (("athenactl", ("jobs",)), ("athenad", ("start",))):
        result = cli(tool, *args, home=home, env=env)
        assert result.returncode == 1
        assert result.stderr.startswith('error: cannot use PostgreSQL database "orders"')
        assert "127.0.0.1:1" in result.stderr and "hunter2" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_url_of_another_kind_is_refused(home):
    result = cli("athenactl", "jobs", home=home, env={"ATHENA_DATABASE_URL": "mysql://u:pw@h/db"})
    assert result.returncode == 1
    assert "database_url must be a postgresql:// URL" in result.stderr
    assert "pw" not in result.stderr


def test_the_flag_outranks_the_environment(home, server_env, postgres_url):
    dead = {**server_env, "ATHENA_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}
    result = cli("athenactl", "--database-url", postgres_url, "submit", "echo", home=home, env=dead)
    assert result.returncode == 0, result.stderr
    listed = cli("athenactl", "--database-url", postgres_url, "jobs", "--json", home=home, env=dead)
    assert [job["id"] for job in json.loads(listed.stdout)] == [result.stdout.strip()]
