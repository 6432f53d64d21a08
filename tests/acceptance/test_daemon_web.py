"""``athenad start --http``: the supervisor serves the dashboard as its child, restarts it
when it dies, does not count it as a worker, and stops it on the way out."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import psutil
import pytest

from tests.conftest import cli, cli_json, free_port, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_the_daemon_serves_the_dashboard_and_restarts_it(home, daemon_factory):
    bind = f"127.0.0.1:{free_port()}"
    daemon_factory(workers=2, extra=("--http", bind))
    url = f"http://{bind}/"
    wait_until(lambda: healthy(url), timeout=30, what="the dashboard to answer")
    status = cli_json("athenad", "status", home=home)
    web = status["web"]
    assert web["url"] == url and len(status["workers"]) == 2
    with urllib.request.urlopen(url + "api/jobs", timeout=5) as answer:
        assert "jobs" in json.loads(answer.read())

    os.kill(web["pid"], signal.SIGKILL)
    wait_until(
        lambda: (
            (again := cli_json("athenad", "status", home=home).get("web"))
            and again["pid"] != web["pid"]
            and healthy(url)
        ),
        timeout=30,
        what="a new dashboard process",
    )
    new_pid = cli_json("athenad", "status", home=home)["web"]["pid"]
    assert "web_died" in (home.state_dir / "test-daemon.log").read_text()
    assert cli("athenad", "stop", "--timeout", "5", home=home).returncode == 0
    wait_until(lambda: not psutil.pid_exists(new_pid), timeout=20, what="the dashboard to stop")
    assert not (home.run_dir / "web.json").exists()


def test_a_bad_http_address_is_refused_before_starting(home):
    result = cli("athenad", "start", "--http", "nowhere", home=home)
    assert result.returncode == 1
    assert "--http must be HOST:PORT" in result.stderr
