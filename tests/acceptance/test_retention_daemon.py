"""A running athenad prunes by [retention] on its own."""

from __future__ import annotations

import json

import pytest

from athenad.errors import JobNotFound
from athenad.store.sqlite.queue import JobQueue
from tests.conftest import submit, wait_until

pytestmark = pytest.mark.timeout(60)


def test_the_daemon_prunes_completed_jobs_past_their_age(home, daemon_factory):
    home.config_path.write_text('[retention]\ncompleted = "1s"\n')
    daemon = daemon_factory(workers=1)
    jobs = [submit(home, "echo", "--payload", json.dumps({"n": n})) for n in range(3)]
    blocker = submit(home, "sleep", "--payload", '{"seconds": 30}', "--priority", "-1")
    waiting = submit(home, "echo", "--after", jobs[0], "--after", blocker)

    def gone(job_id: str) -> bool:
        with JobQueue(home.db_path) as queue:
            try:
                queue.get(job_id)
            except JobNotFound:
                return True
        return False

    wait_until(lambda: all(gone(job_id) for job_id in jobs[1:]), timeout=30, what="pruning")
    # jobs[0] stays: a job still waiting depends on it.
    assert not gone(jobs[0]) and not gone(waiting)
    with JobQueue(home.db_path) as queue:
        assert queue.get(waiting)["parents"] == sorted([jobs[0], blocker])
    pruned = [
        json.loads(line)
        for line in daemon.log_text().splitlines()
        if line.startswith("{") and '"pruned"' in line
    ]
    assert pruned and pruned[0]["jobs"]["completed"] >= 1
