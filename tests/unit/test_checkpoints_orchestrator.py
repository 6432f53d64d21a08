"""The orchestrator's checkpoint calls against a real queue on a temp database."""

from __future__ import annotations

import asyncio
import os

import pytest
from structlog.testing import capture_logs

from athenad.api import TaskOrchestrator
from athenad.errors import InvalidInput, JobNotFound, StaleFence
from athenad.paths import Home

MESSAGES = [{"role": "user", "content": "Design microservices architecture"}]


@pytest.fixture
def orch(tmp_path):
    home = Home(tmp_path).ensure()
    with TaskOrchestrator(home.db_path, home.state_dir) as orchestrator:
        yield orchestrator


def create(orch, payload=None, interval=5, **options) -> str:
    return asyncio.run(orch.create_task_with_checkpoints("plan", payload, interval, **options))


def resume(orch, job_id):
    return asyncio.run(orch.resume_task_from_checkpoint(job_id))


def test_create_puts_the_interval_in_a_dict_payload(orch):
    job_id = create(orch, {"prompt": "p"}, 7, priority=3)
    job = orch.queue.get(job_id)
    assert job["payload"] == {"prompt": "p", "checkpoint_interval": 7}
    assert job["type"] == "plan" and job["priority"] == 3 and job["status"] == "pending"
    assert orch.queue.get(create(orch))["payload"] == {"checkpoint_interval": 5}
    assert orch.queue.get(create(orch, ["a", "b"]))["payload"] == ["a", "b"]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInput):
            create(orch, {}, bad)


def test_resume_without_checkpoint_starts_from_zero(orch):
    job_id = create(orch, {"prompt": "p"})
    resumed = resume(orch, job_id)
    assert resumed["iteration"] == 0 and resumed["messages"] == [] and resumed["state"] is None
    assert resumed["job"]["id"] == job_id and resumed["job"]["status"] == "pending"


def test_save_outside_a_worker_then_resume(orch):
    job_id = create(orch, {"prompt": "p"})
    for iteration in (5, 10, 15, 20):
        info = orch.save_task_checkpoint(job_id, iteration, MESSAGES * iteration, {"i": iteration})
        assert info.valid
    # A job no worker holds records the iteration too, so a worker resumes from it.
    assert orch.queue.get(job_id)["checkpoint_iteration"] == 20
    assert orch.checkpoints.iterations(job_id) == [10, 15, 20]
    resumed = resume(orch, job_id)
    assert resumed["iteration"] == 20
    assert resumed["messages"] == MESSAGES * 20
    assert resumed["state"] == {"i": 20}
    assert resumed["created_at"] is not None
    assert resumed["job"]["payload"] == {"prompt": "p", "checkpoint_interval": 5}


def test_save_while_running_records_the_iteration(orch):
    job_id = create(orch, {"prompt": "p"})
    claimed = orch.queue.claim("w1")
    assert claimed.id == job_id
    orch.save_task_checkpoint(job_id, 5, MESSAGES)
    orch.save_task_checkpoint(job_id, 10, MESSAGES * 2)
    assert orch.queue.get(job_id)["checkpoint_iteration"] == 10
    resumed = resume(orch, job_id)
    assert resumed["iteration"] == 10 and resumed["job"]["status"] == "running"


def test_resume_ignores_a_stray_newer_than_the_row(orch):
    job_id = create(orch)
    orch.queue.claim("w1")
    orch.save_task_checkpoint(job_id, 5, MESSAGES, "recorded")
    orch.checkpoints.save(job_id, 10, "stray", MESSAGES)
    assert resume(orch, job_id)["state"] == "recorded"


def test_resume_skips_a_corrupt_newest_checkpoint(orch):
    job_id = create(orch)
    orch.queue.claim("w1")
    orch.save_task_checkpoint(job_id, 5, MESSAGES, "five")
    info = orch.save_task_checkpoint(job_id, 10, MESSAGES, "ten")
    with open(info.path, "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"!!!")
    with capture_logs() as logs:
        resumed = resume(orch, job_id)
    assert resumed["iteration"] == 5 and resumed["state"] == "five"
    assert [e["event"] for e in logs] == ["checkpoint_invalid"]


def test_save_refused_when_the_job_was_reclaimed(orch, monkeypatch):
    job_id = create(orch)
    first = orch.queue.claim("w1")
    orch.save_task_checkpoint(job_id, 5, MESSAGES, "mine")
    # Another worker takes the job over between reading the fence and recording.
    assert orch.queue.rescue(job_id, first.fence, reason="lease expired") == "pending"
    second = orch.queue.claim("w2")
    assert second.fence > first.fence
    monkeypatch.setattr(orch.queue, "job_control", lambda _id: (first.fence, "running", False))
    with pytest.raises(StaleFence):
        orch.save_task_checkpoint(job_id, 10, MESSAGES, "stale")
    assert orch.checkpoints.iterations(job_id) == [5]
    assert orch.queue.get(job_id)["checkpoint_iteration"] == 5


def test_unknown_job(orch):
    with pytest.raises(JobNotFound):
        orch.save_task_checkpoint("nope", 1, MESSAGES)
    with pytest.raises(JobNotFound):
        resume(orch, "nope")
    assert not orch.checkpoints.dir.joinpath("job-nope-iter1.json").exists()


def test_save_after_a_failed_run_is_what_resume_returns(orch):
    job_id = create(orch, {"prompt": "p"})
    claimed = orch.queue.claim("w1")
    orch.save_task_checkpoint(job_id, 2, MESSAGES)
    orch.queue.fail(job_id, claimed.fence, "boom")
    orch.save_task_checkpoint(job_id, 7, MESSAGES * 2, {"k": 1})
    resumed = resume(orch, job_id)
    assert resumed["iteration"] == 7 and resumed["state"] == {"k": 1}


def test_a_completed_job_takes_no_more_checkpoints(orch):
    from athenad.errors import InvalidTransition

    job_id = create(orch, {"prompt": "p"})
    claimed = orch.queue.claim("w1")
    orch.save_task_checkpoint(job_id, 2, MESSAGES)
    orch.queue.complete(job_id, claimed.fence, "done")
    with pytest.raises(InvalidTransition, match="is completed"):
        orch.save_task_checkpoint(job_id, 7, MESSAGES)
    assert resume(orch, job_id)["iteration"] == 2


def test_submit_job_and_create_workflow_take_the_flow_options(tmp_path):
    from athenad import TaskOrchestrator

    with TaskOrchestrator(tmp_path / "athena.db", tmp_path / ".athena") as athena:
        first = athena.submit_job("echo", {"n": 1}, queue="models", unique_key="only-one")
        assert athena.submit_job("echo", unique_key="only-one") == first
        later = athena.submit_job("echo", delay="5m", concurrency_key="repo")
        ids = athena.create_workflow(
            [{"type": "echo"}, {"type": "echo", "after": [0], "queue": "models"}]
        )
        assert athena.get_job(first)["queue"] == "models"
        assert athena.get_job(later)["status"] == "scheduled"
        assert athena.get_job(ids[1])["status"] == "blocked"
