"""Flow control through a running daemon, as a user sets it up: a rate-limited queue
from athena.toml, a provider's rate limit, a delayed job, a paused queue."""

from __future__ import annotations

import textwrap
import time

import pytest

from athenad.store.sqlite.queue import JobQueue
from athenad.util.timefmt import parse_ts
from tests.conftest import cli, cli_json, submit, wait_status, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

AGENTS = textwrap.dedent(
    """
    import os
    from athenad import RateLimited

    def flaky_provider(ctx):
        # The first call meets the provider's limit; the next one gets through.
        marker = ctx.payload["marker"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RateLimited(retry_after=1.0)
        return "answered"
    """
)


@pytest.fixture
def flow_home(home):
    (home.root / "flowagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text(
        '[agents]\nflaky = "flowagents:flaky_provider"\n\n'
        '[queues.api]\nrate = "4/s"\n\n[queues.provider]\nconcurrency = 1\n'
    )
    return home


def test_a_rate_limited_queue_starts_no_more_than_its_rate(flow_home, daemon_factory):
    daemon_factory(workers=2)
    ids = [submit(flow_home, "echo", "--queue", "api") for _ in range(14)]
    for job_id in ids:
        wait_status(flow_home, job_id, {"completed"}, timeout=30)
    with JobQueue(flow_home.db_path) as queue:
        starts = sorted(parse_ts(queue.get(i)["started_at"]).timestamp() for i in ids)
    # Any window of one second holds at most 4 starts.
    for index, start in enumerate(starts):
        in_window = [s for s in starts[index:] if s < start + 1.0]
        assert len(in_window) <= 4, (index, in_window)
    assert starts[-1] - starts[0] >= 2.0  # 14 starts at 4/s need three windows


def test_a_provider_rate_limit_retries_without_spending_an_attempt(flow_home, daemon_factory):
    daemon_factory(workers=1)
    marker = flow_home.root / "limited-once"
    job_id = submit(
        flow_home, "flaky", "--queue", "provider", "--payload", f'{{"marker": "{marker}"}}'
    )
    other = submit(flow_home, "echo", "--queue", "provider")
    waiting = wait_until(
        lambda: (
            (row := cli_json("athenactl", "show", job_id, home=flow_home))["wait_reason"] and row
        ),
        timeout=20,
        what="the job to wait out the limit",
    )
    assert waiting["status"] == "pending" and "rate limited" in waiting["wait_reason"]
    held = next(q for q in cli_json("athenactl", "queue", "list", home=flow_home)
                if q["name"] == "provider")  # fmt: skip
    assert held["state"] == "held"
    shown = cli("athenactl", "show", job_id, home=flow_home).stdout
    assert "wait_reason" in shown and "run_after" in shown
    done = wait_status(flow_home, job_id, {"completed", "failed"}, timeout=20)
    assert (done["status"], done["result"], done["attempts"]) == ("completed", "answered", 1)
    assert done["max_attempts"] == 1
    wait_status(flow_home, other, {"completed"}, timeout=20)


def test_a_delayed_job_starts_on_time_and_a_paused_queue_waits(flow_home, daemon_factory):
    daemon_factory(workers=1)
    submitted = time.time()
    delayed = submit(flow_home, "echo", "--delay", "2s")
    assert cli_json("athenactl", "show", delayed, home=flow_home)["status"] == "scheduled"
    assert cli("athenactl", "queue", "pause", "later", home=flow_home).returncode == 0
    parked = submit(flow_home, "echo", "--queue", "later")
    row = wait_status(flow_home, delayed, {"completed"}, timeout=20)
    started = parse_ts(row["started_at"]).timestamp()
    assert 2.0 <= started - submitted < 3.0
    time.sleep(0.5)
    assert cli_json("athenactl", "show", parked, home=flow_home)["status"] == "pending"
    assert cli("athenactl", "queue", "resume", "later", home=flow_home).returncode == 0
    wait_status(flow_home, parked, {"completed"}, timeout=20)
