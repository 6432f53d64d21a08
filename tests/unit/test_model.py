"""Job and JobStatus: typed views of the queue's rows."""

from __future__ import annotations

import msgspec
import pytest

from athenad.api import TaskOrchestrator
from athenad.errors import JobNotFound
from athenad.model import Job, JobStatus
from athenad.store.sqlite.queue import STATUSES


def test_job_status_names_every_status_of_the_queue():
    assert [status.value for status in JobStatus] == list(STATUSES)
    assert JobStatus("failed") is JobStatus.FAILED and JobStatus.FAILED == "failed"
    assert {status for status in JobStatus if status.finished} == {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }


def test_orchestrator_job_is_the_row_typed_and_read_only(home):
    with TaskOrchestrator(home.db_path, home.state_dir) as orchestrator:
        parent = orchestrator.submit("plan", {"prompt": "p"}, priority=3)
        child = orchestrator.submit("review", after=[parent], max_attempts=2)
        job = orchestrator.job(child)
        row = orchestrator.get_job(child)
        with pytest.raises(JobNotFound):
            orchestrator.job("0000000000nope0")
    assert isinstance(job, Job) and job.status is JobStatus.BLOCKED
    assert job.parents == (parent,) and job.max_attempts == 2 and job.attempts == 0
    assert (job.id, job.type, job.created_at, job.payload) == (
        row["id"],
        row["type"],
        row["created_at"],
        row["payload"],
    )
    with pytest.raises(AttributeError):
        job.status = JobStatus.PENDING  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(job), type=Job) == job
