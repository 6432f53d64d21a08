"""The public API is typed: user code type-checks under mypy --strict, and mistakes show."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import athenad

REPO = Path(__file__).resolve().parents[2]

USER_CODE = """
from __future__ import annotations

import asyncio
from typing import Any

from athenad import (
    AthenaError,
    BaseAgent,
    Job,
    JobContext,
    JobFailed,
    JobNotFound,
    JobStatus,
    TaskOrchestrator,
    WaitTimeout,
)


class Planner(BaseAgent):
    checkpoint_every = 2

    def step(self) -> bool:
        self.messages.append({"role": "assistant", "content": "thinking"})
        return self.iteration >= 3

    def result(self) -> Any:
        return self.messages[-1]


def summarise(ctx: JobContext) -> dict[str, Any]:
    ctx.raise_if_cancelled()
    ctx.save_checkpoint(1, state={"seen": ctx.payload})
    return {"job": ctx.job_id, "attempt": ctx.attempt}


async def fan_out(orchestrator: TaskOrchestrator) -> list[Any]:
    ids: list[str] = await orchestrator.run_parallel_tasks(
        [{"type": "plan"}, {"type": "plan"}], then={"type": "summarise"}
    )
    try:
        return await orchestrator.wait_for_jobs(ids, timeout=60)
    except (JobFailed, WaitTimeout) as exc:
        raise AthenaError(exc.message) from exc


def status_of(orchestrator: TaskOrchestrator, job_id: str) -> JobStatus | None:
    try:
        job: Job = orchestrator.job(job_id)
    except JobNotFound:
        return None
    if job.status is JobStatus.FAILED and job.error is not None:
        print(job.error.splitlines()[0], job.attempts, len(job.parents))
    return job.status


with TaskOrchestrator("athena.db", ".athena") as orchestrator:
    results = asyncio.run(fan_out(orchestrator))
    session_id: str = orchestrator.create_conversation_session(name="review")
"""

MISTAKES = """
from athenad import JobStatus, TaskOrchestrator

orchestrator = TaskOrchestrator("athena.db")
count: int = orchestrator.submit("echo")
orchestrator.submit_jobs("echo")
status = JobStatus.RUNING
"""


def run_mypy(tmp_path: Path, **files: str) -> str:
    for name, code in files.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *(str(tmp_path / f"{name}.py") for name in files),
        ],
        cwd=REPO,  # where mypy finds athenad and workers
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("mypy", reason="mypy comes with the test extra")
    return run_mypy(tmp_path_factory.mktemp("typed"), user_code=USER_CODE, mistakes=MISTAKES)


def test_user_code_is_clean_under_strict(mypy_output):
    assert not [line for line in mypy_output.splitlines() if "user_code.py" in line], mypy_output


def test_mistakes_against_the_api_are_reported(mypy_output):
    # Each would pass silently if the names were Any.
    errors = set(re.findall(r"mistakes\.py:(\d+): error: .*\[([a-z-]+)\]", mypy_output))
    assert errors == {("5", "assignment"), ("6", "attr-defined"), ("7", "attr-defined")}, (
        mypy_output
    )


def test_every_public_name_imports_lazily():
    assert sorted(athenad.__all__) == sorted(athenad._EXPORTS)
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, athenad; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('athenad', 'workers', 'structlog', 'apsw')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fresh.stdout.strip() == "['athenad']", fresh.stderr
    for name in athenad.__all__:
        value = getattr(athenad, name)
        assert value is getattr(importlib.import_module(athenad._EXPORTS[name]), name)
    with pytest.raises(AttributeError, match="NoSuchName"):
        athenad.NoSuchName  # noqa: B018


def test_py_typed_ships_with_both_packages():
    assert (REPO / "athenad" / "py.typed").exists() and (REPO / "workers" / "py.typed").exists()
