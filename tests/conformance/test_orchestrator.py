"""TaskOrchestrator, the Python API, on either backend: jobs, waiting, checkpoints,
sessions and the seed's analytics calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from athenad import TaskOrchestrator
from athenad.storage.sessions import Role


@pytest.fixture(params=["sqlite", "postgres"])
def orchestrator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskOrchestrator]:
    if request.param == "sqlite":
        made = TaskOrchestrator(tmp_path / "athena.db", tmp_path / ".athena")
    else:
        made = TaskOrchestrator(
            tmp_path / "athena.db",
            tmp_path / ".athena",
            database_url=request.getfixturevalue("postgres_url"),
            database_schema=request.getfixturevalue("postgres_schema"),
        )
    with made:
        yield made
    assert request.param == "sqlite" or not (tmp_path / "athena.db").exists()


def work_off(orchestrator: TaskOrchestrator, results: dict[str, object]) -> None:
    """Do what a worker does: claim every ready job and complete it."""
    queue = orchestrator.queue
    while (job := queue.claim("host:1:0")) is not None:
        queue.complete(job.id, job.fence, results.get(job.type, job.payload))


def test_fan_out_fan_in_and_wait(orchestrator):
    tasks = [{"type": "review", "payload": n} for n in range(3)]
    ids = asyncio.run(orchestrator.run_parallel_tasks(tasks, then={"type": "merge"}))
    assert orchestrator.get_job(ids[-1])["status"] == "blocked"
    work_off(orchestrator, {"merge": "merged"})
    work_off(orchestrator, {"merge": "merged"})
    results = asyncio.run(orchestrator.wait_for_jobs(ids, timeout=10))
    assert results == [0, 1, 2, "merged"]
    assert list(orchestrator.job(ids[-1]).parents) == sorted(ids[:3])


def test_checkpoints_and_sessions(orchestrator):
    job_id = asyncio.run(orchestrator.create_task_with_checkpoints("plan", {"goal": "x"}, 2))
    orchestrator.save_task_checkpoint(job_id, 3, [{"role": "user", "content": "hi"}])
    resumed = asyncio.run(orchestrator.resume_task_from_checkpoint(job_id))
    assert resumed["iteration"] == 3 and resumed["messages"][0]["content"] == "hi"
    session = orchestrator.create_conversation_session(name="PR #1", git_branch="main")
    orchestrator.add_message_to_session(session, Role.USER, "Review PR #1")
    orchestrator.add_message_to_session(session, Role.ASSISTANT, "2 findings")
    history = orchestrator.get_conversation_history(session)
    assert [message.content for message in history] == ["Review PR #1", "2 findings"]
    assert orchestrator.resume_most_recent_session("main") == session


def test_the_seed_analytics(orchestrator):
    orchestrator.submit("explore")
    work_off(orchestrator, {})
    orchestrator.submit("plan")
    job = orchestrator.queue.claim("host:1:0")
    orchestrator.queue.fail(job.id, job.fence, "RuntimeError: no plan", retryable=False)
    slow = orchestrator.agent_performance(since="1d")
    assert [row["agent_type"] for row in slow] == ["explore"] and slow[0]["jobs"] == 1
    failures = orchestrator.recent_failures()
    assert [row["id"] for row in failures] == [job.id]
    counts = orchestrator.counts_by_type_and_status("2000-01-01 00:00:00", "2999-01-01 00:00:00")
    assert {(row["type"], row["status"], row["count"]) for row in counts} == {
        ("explore", "completed", 1),
        ("plan", "failed", 1),
    }
