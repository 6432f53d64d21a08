"""Job logs and progress through a running athenad, as a user follows them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from athenad.store.sqlite.queue import JobQueue
from tests.conftest import submit, wait_status

pytestmark = pytest.mark.timeout(120)

AGENTS = textwrap.dedent(
    """
    import time

    def report(ctx):
        ctx.log("fetching", url="https://example.org", attempt=ctx.attempt)
        for step in range(1, 5):
            time.sleep(0.3)
            ctx.progress(step / 4, f"step {step} of 4")
            ctx.log.info("step_done", step=step)
        return "ok"

    def broken(ctx):
        ctx.log("about to fail", level="warning")
        raise RuntimeError("no luck")
    """
)

RUN_LOGS = "from athenad.cli.logs_cmd import logs_command; logs_command(prog_name='athenactl logs')"


def logs(home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_LOGS, *args, "--home", str(home.root)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def agents_home(home):
    (home.root / "logagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[agents]\nreport = "logagents:report"\nbroken = "logagents:broken"\n'
    )
    return home


def test_an_agents_lines_and_progress_can_be_followed(agents_home, daemon_factory):
    home = agents_home
    daemon_factory(workers=2)
    job = submit(home, "report")
    failing = submit(home, "broken")
    wait_status(home, job, {"running"})
    followed = logs(home, job, "--follow", "--json")
    assert followed.returncode == 0, followed.stderr
    records = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [r["message"] for r in records] == [
        "job started",
        "fetching",
        "step_done",
        "step_done",
        "step_done",
        "step_done",
        "job completed",
    ]
    assert records[1]["fields"] == {"url": "https://example.org", "attempt": 1}
    assert [r["fields"]["step"] for r in records[2:6]] == [1, 2, 3, 4]
    assert [r["seq"] for r in records] == list(range(1, 8))
    with JobQueue(home.db_path) as queue:
        row = queue.get(job)
    assert row["status"] == "completed"
    assert (row["progress"], row["progress_message"]) == (1.0, "step 4 of 4")

    wait_status(home, failing, {"failed"})
    text = logs(home, failing)
    assert text.returncode == 0, text.stderr
    shown = [line.split(None, 3)[2:] for line in text.stdout.splitlines()]
    assert [(level, message.split("  ")[0]) for level, message in shown] == [
        ("info", "job started"),
        ("warning", "about to fail"),
        ("error", "job failed: RuntimeError: no luck"),
    ]
    assert "  attempt=1 max_attempts=1 run_s=" in shown[2][1]
