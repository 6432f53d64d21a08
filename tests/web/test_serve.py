"""``athenactl web`` as a process: it serves real HTTP on the port it is given."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import cli, free_port


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.status, answer.read().decode()


def test_web_serves_pages_and_api_over_http(home, jobs):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATHENA_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "athenad.cli.ctl",
            "web",
            "--home",
            str(home.root),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert fetch(base + "/healthz") == (200, '{"ok":true}')
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"athenactl web did not start: {server.communicate()[1]}")
                time.sleep(0.1)
        status, html = fetch(base + "/")
        assert status == 200 and "Overview" in html
        status, text = fetch(base + "/api/jobs")
        assert status == 200
        assert {job["id"] for job in json.loads(text)["jobs"]} == set(jobs.values())
        # Another name for this address (a DNS rebinding) is refused.
        rebound = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        rebound.request("GET", "/api/jobs", headers={"Host": f"evil.example:{port}"})
        assert rebound.getresponse().status == 421
        rebound.close()
        # An event stream left open does not keep the server from stopping.
        stream = urllib.request.urlopen(base + "/api/events", timeout=5)
        assert stream.readline().startswith(b"id: 20")
        server.terminate()
        server.wait(timeout=10)
        stream.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "read-only" in server.stderr.read()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bind", "localhost"], "--bind must be HOST:PORT"),
        (["--bind", "127.0.0.1:0"], "--bind must be HOST:PORT"),
        (["--bind", "example.com:80"], "--bind needs an IP address"),
        (["--allow-actions"], "--allow-actions needs a token in ATHENA_WEB_TOKEN"),
    ],
)
def test_bad_options_are_one_sentence(home, jobs, args, words):
    result = cli("athenactl", "web", *args, home=home, env={"ATHENA_WEB_TOKEN": ""})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_a_taken_port_is_one_sentence(home, jobs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli("athenactl", "web", "--bind", f"127.0.0.1:{port}", home=home)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_home_without_a_database_is_refused(tmp_path):
    result = cli("athenactl", "web", "--home", str(tmp_path / "empty"))
    assert result.returncode == 1 and "has no athena.db" in result.stderr


def test_help_and_other_commands_load_no_web_module(tmp_path):
    from tests.unit.test_cli_imports import loaded_modules, offending

    web = ("athenad.web", "starlette", "uvicorn", "jinja2", "anyio", "httpx")
    result, modules = loaded_modules(tmp_path, "--help")
    assert result.returncode == 0 and " web " in result.stdout
    assert offending(modules, web) == []
    result, modules = loaded_modules(tmp_path, "web", "--help")
    assert result.returncode == 0 and "--allow-actions" in result.stdout
    assert offending(modules, web) == []
