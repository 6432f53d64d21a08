"""``athenactl`` imports only what the command it runs uses, so it starts quickly.

Each check runs the real command line in a fresh interpreter and looks at the modules
it had loaded when the command ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NOTHING_WAITING, cli, cli_json

# Runs athenactl's main with the arguments after the output file, then writes the names
# of the loaded modules there, one a line.
RUNNER = """
import sys
from athenad.cli.ctl import main

code = 0
try:
    main(sys.argv[2:], prog_name="athenactl")
except SystemExit as done:
    code = done.code
with open(sys.argv[1], "w") as out:
    out.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""

NEVER_AT_START = (
    "structlog",
    "rich",
    "psutil",
    "psycopg",
    "psycopg_pool",
    "prometheus_client",
    "athenad.analytics",
    "athenad.cli.analytics_cmd",
    "athenad.cli.sessions_cmd",
    "athenad.cli.checkpoints_cmd",
    "athenad.storage.sessions",
    "athenad.storage.checkpoints",
    "athenad.daemon",
)


def loaded_modules(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    listing = tmp_path / "modules.txt"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATHENA_")}
    env["ATHENA_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(listing), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return result, set(listing.read_text().split("\n"))


def offending(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_loads_no_heavy_module(tmp_path):
    result, modules = loaded_modules(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "submit" in result.stdout and "checkpoints" in result.stdout
    assert offending(modules, (*NEVER_AT_START, "asyncio", "athenad.store.sqlite")) == []
    assert not (tmp_path / "home").exists()


def test_submit_loads_no_heavy_module(tmp_path):
    result, modules = loaded_modules(tmp_path, "submit", "echo", "--payload", "{}")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert offending(modules, NEVER_AT_START) == []
    shown = cli_json("athenactl", "show", job_id, "--home", str(tmp_path / "home"))
    assert (shown["type"], shown["status"], shown["payload"]) == ("echo", "pending", {})


def test_ls_loads_no_heavy_module_and_prints_plain_columns(tmp_path):
    home = str(tmp_path / "home")
    submitted = cli("athenactl", "submit", "echo", "--payload", "{}", "--home", home)
    result, modules = loaded_modules(tmp_path, "ls")
    assert result.returncode == 0, result.stderr
    assert offending(modules, NEVER_AT_START) == []
    header, row = result.stdout.splitlines()
    assert header.split()[:4] == ["id", "type", "status", "prio"]
    assert row.split()[:3] == [submitted.stdout.strip(), "echo", "pending"]
    assert "\x1b[" not in result.stdout  # no colour codes when piped


def test_ls_with_nothing_to_list_says_so(tmp_path):
    cli("athenactl", "submit", "echo", "--payload", "{}", "--home", str(tmp_path / "home"))
    result, _ = loaded_modules(tmp_path, "ls", "--status", "failed")
    assert result.returncode == 0 and result.stdout.strip() == "no jobs"


def test_a_lazy_command_loads_its_module_when_run(tmp_path):
    result, modules = loaded_modules(tmp_path, "checkpoints", "--help")
    assert result.returncode == 0, result.stderr
    assert "athenad.cli.checkpoints_cmd" in modules
    assert offending(modules, ("athenad.cli.analytics_cmd", "athenad.cli.sessions_cmd")) == []


def test_help_lists_each_lazy_command_as_the_command_itself_would():
    from athenad.cli.common import load_command
    from athenad.cli.ctl import LAZY_COMMANDS

    for name, (target, summary) in LAZY_COMMANDS.items():
        command = load_command(target)
        assert summary == (command.help or "").split("\n\n")[0].strip(), name
        assert not command.hidden and command.short_help is None, name


def test_unknown_job_type_is_still_refused(tmp_path):
    home = tmp_path / "home"
    result = cli("athenactl", "submit", "no-such-agent", "--home", str(home))
    assert result.returncode == 1
    assert "unknown job type 'no-such-agent'; known types:" in result.stderr
    assert "echo" in result.stderr


def test_ls_is_jobs_and_status_is_the_daemons(tmp_path):
    home = str(tmp_path / "home")
    assert cli("athenactl", "submit", "echo", "--payload", "{}", "--home", home).returncode == 0
    listed = cli_json("athenactl", "ls", "--home", home)
    assert listed == cli_json("athenactl", "jobs", "--home", home)
    assert len(listed) == 1
    text = cli("athenactl", "ls", "--status", "pending", "--home", home)
    assert text.returncode == 0 and listed[0]["id"] in text.stdout
    ctl_status = cli_json("athenactl", "status", "--home", home)
    daemon_status = cli_json("athenad", "status", "--home", home)
    assert ctl_status == daemon_status
    assert ctl_status["queue"] == {**NOTHING_WAITING, "pending": 1}
    assert set(ctl_status) == {"running", "pid", "workers", "slots", "queue", "hosts"}


@pytest.mark.parametrize("command", ["submit", "show", "ls", "status", "sessions"])
def test_each_command_has_its_help(command):
    result = cli("athenactl", command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: python -m athenad.cli.ctl {command} ")


LIBRARY_WARNS = """
import sys
from athenad.storage.checkpoints import log

assert "structlog" not in sys.modules  # nothing is paid for until something logs
log.info("quiet_event")
log.warning("loud_event", n=1)
"""


def test_without_structlog_set_up_warnings_reach_stderr_and_stdout_stays_clean():
    """What a command gets, since commands configure no structlog."""
    done = subprocess.run([sys.executable, "-c", LIBRARY_WARNS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "loud_event" in lines[0] and "n=1" in lines[0], lines
