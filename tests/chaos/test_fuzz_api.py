"""Bad input to the Python API (issue 15): TaskOrchestrator and the JobStore submit path
given values of every wrong type and size. Each call either does what it says or raises
a typed error (a subclass of athenad.errors.AthenaError), and a refused call leaves
the stored jobs exactly as they were."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from athenad import TaskOrchestrator
from athenad.errors import AthenaError
from athenad.paths import Home
from athenad.store.jobspec import MAX_PAYLOAD_BYTES
from tests.chaos.fuzz_support import NASTY_TEXT, dump_state, files_of, seed

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Deep(list):
    """Lists nested ``depth`` deep, shown short (hypothesis prints failing examples)."""

    def __init__(self, depth: int) -> None:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        super().__init__([value])
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


def _deep(depth: int) -> list[Any]:
    return Deep(depth)


# Anything a caller might pass by mistake.
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**63) + 2),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    NASTY_TEXT,
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just({1, 2}),
    st.just(_deep(5000)),
)


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Home, dict]]:
    home = Home.resolve(tmp_path_factory.mktemp("fuzz-api") / "home")
    jobs = seed(home)
    with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as orch:
        yield orch, home, jobs


def call(function: Callable[[], Any]) -> Any:
    result = function()
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return result


def refused_or_done(home: Home, function: Callable[[], Any]) -> tuple[bool, Any]:
    """Run a call: (True, result), or (False, error) for a typed refusal that changed
    nothing. Any other exception fails the test."""
    before, files = dump_state(home), files_of(home)
    try:
        return True, call(function)
    except AthenaError as exc:
        assert exc.message and "\n" not in exc.message.strip(), exc.message
        assert dump_state(home) == before, f"{exc.message} yet the jobs changed"
        assert files_of(home) == files, f"{exc.message} yet files changed"
        return False, exc


SUBMIT_OPTIONS = (
    "queue",
    "priority",
    "after",
    "delay",
    "run_at",
    "unique_key",
    "concurrency_key",
    "approval_timeout",
    "budget_usd",
    "max_attempts",
    "timeout",
    "session_id",
)


@FUZZ
@given(
    task_type=st.one_of(st.just("echo"), WRONG),
    payload=st.one_of(st.just({"ok": 1}), WRONG),
    options=st.dictionaries(st.sampled_from(SUBMIT_OPTIONS), WRONG, max_size=3),
)
def test_submit_job_with_wrong_values_is_done_or_a_typed_refusal(
    orchestrator, task_type, payload, options
) -> None:
    orch, home, _ = orchestrator
    done, outcome = refused_or_done(home, lambda: orch.submit_job(task_type, payload, **options))
    if done:
        job = orch.get_job(outcome)
        assert job["type"] == task_type


@FUZZ
@given(
    tasks=st.lists(
        st.fixed_dictionaries(
            {"type": st.just("echo")},
            optional={
                "after": st.lists(
                    st.one_of(st.integers(min_value=-3, max_value=6), NASTY_TEXT, WRONG),
                    max_size=3,
                ),
                "priority": WRONG,
                "payload": WRONG,
            },
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_workflow_is_submitted_whole_or_not_at_all(orchestrator, tasks) -> None:
    """Forward and self references (cycles), unknown ids and bad fields anywhere in a
    batch refuse the whole batch."""
    orch, home, _ = orchestrator
    before = len(dump_state(home)["jobs"])
    done, outcome = refused_or_done(home, lambda: orch.create_workflow(tasks))
    if done:
        assert len(outcome) == len(tasks)
        assert len(dump_state(home)["jobs"]) == before + len(tasks)


@pytest.mark.parametrize(
    "tasks",
    [
        [{"type": "echo", "after": [0]}],  # itself
        [{"type": "echo", "after": [1]}, {"type": "echo", "after": [0]}],  # a cycle
        [{"type": "echo"}, {"type": "echo", "after": ["../../etc/passwd"]}],
        [{"type": "echo"}, {"type": "echo", "after": [2**70]}],
        [{"type": "echo"}, 5],
        5,
        "echo",
        [{"type": "echo", "bogus": 1}],
        [{"type": "echo", "payload": "x" * (MAX_PAYLOAD_BYTES + 1)}],
    ],
)
def test_each_bad_workflow_is_a_typed_refusal(orchestrator, tasks) -> None:
    orch, home, _ = orchestrator
    done, error = refused_or_done(home, lambda: orch.create_workflow(tasks))
    assert not done


def test_huge_payloads_are_refused_naming_the_limit(orchestrator) -> None:
    orch, home, jobs = orchestrator
    huge = {"data": "x" * MAX_PAYLOAD_BYTES}
    for function in (
        lambda: orch.submit_job("echo", huge),
        lambda: orch.submit("echo", huge),
        lambda: orch.run_parallel_tasks([{"type": "echo", "payload": huge}]),
        lambda: orch.send(jobs["waiting"], "key", huge),
    ):
        done, error = refused_or_done(home, function)
        assert not done and "at most 16 MiB" in error.message, error


@FUZZ
@given(
    job_id=st.one_of(NASTY_TEXT, WRONG),
    method=st.sampled_from(
        [
            "get_job",
            "job",
            "cancel_job",
            "retry_job",
            "approve_job",
            "reject_job",
            "resume_task_from_checkpoint",
        ]
    ),
)
def test_an_id_that_names_no_job_is_a_typed_refusal(orchestrator, job_id, method) -> None:
    orch, home, _ = orchestrator
    done, _ = refused_or_done(home, lambda: getattr(orch, method)(job_id))
    assert not done


@FUZZ
@given(job_id=st.one_of(NASTY_TEXT, st.just("waiting")), iteration=WRONG, messages=WRONG)
def test_checkpoints_with_wrong_values_are_typed_refusals(
    orchestrator, job_id, iteration, messages
) -> None:
    orch, home, jobs = orchestrator
    job_id = jobs.get(job_id, job_id)
    refused_or_done(home, lambda: orch.save_task_checkpoint(job_id, iteration, messages))
    assert all(p.parent == home.checkpoints_dir for p in home.checkpoints_dir.rglob("*"))


@FUZZ
@given(
    session=st.one_of(NASTY_TEXT, WRONG, st.just("real")),
    role=st.one_of(st.just("user"), WRONG),
    content=st.one_of(st.just("hello"), WRONG),
    metadata=st.one_of(st.none(), WRONG),
)
def test_sessions_with_wrong_values_are_typed_refusals(
    orchestrator, session, role, content, metadata
) -> None:
    orch, home, jobs = orchestrator
    session = jobs["session"] if session == "real" else session
    refused_or_done(home, lambda: orch.add_message_to_session(session, role, content, metadata))
    refused_or_done(home, lambda: orch.get_conversation_history(session))
    assert all(p.parent == home.sessions_dir for p in home.sessions_dir.iterdir())


@FUZZ
@given(
    name=st.one_of(st.none(), NASTY_TEXT, WRONG),
    tags=st.one_of(st.just(()), st.lists(st.one_of(NASTY_TEXT, WRONG), max_size=3)),
)
def test_new_sessions_with_wrong_names_are_typed_refusals(orchestrator, name, tags) -> None:
    orch, home, _ = orchestrator
    done, session_id = refused_or_done(
        home, lambda: orch.create_conversation_session(name=name, tags=tags)
    )
    if done:
        assert (home.sessions_dir / f"{session_id}.jsonl").is_file()


@FUZZ
@given(since=st.one_of(NASTY_TEXT, WRONG), limit=WRONG)
def test_analytics_with_wrong_windows_are_typed_refusals(orchestrator, since, limit) -> None:
    orch, home, _ = orchestrator
    refused_or_done(home, lambda: orch.agent_performance(since=since))
    refused_or_done(home, lambda: orch.recent_failures(limit=limit, since="1d"))


@FUZZ
@given(job_ids=st.lists(st.one_of(NASTY_TEXT, WRONG), min_size=1, max_size=3), timeout=WRONG)
def test_waiting_on_wrong_ids_or_timeouts_is_a_typed_refusal(orchestrator, job_ids, timeout):
    orch, home, _ = orchestrator
    done, _ = refused_or_done(home, lambda: orch.wait_for_jobs(job_ids, timeout=timeout))
    assert not done


@FUZZ
@given(
    spec=st.fixed_dictionaries(
        {"type": st.one_of(st.just("echo"), WRONG)},
        optional={
            name: WRONG
            for name in (
                "payload",
                "agent_type",
                "priority",
                "after",
                "max_attempts",
                "backoff_s",
                "timeout_s",
                "session_id",
                "delay_s",
                "run_at",
                "queue",
                "unique_key",
                "concurrency_key",
                "approval_timeout_s",
                "budget_usd",
            )
        },
    )
)
def test_the_store_submit_path_takes_or_refuses_any_spec(orchestrator, spec) -> None:
    """JobQueue.submit_many, under the orchestrator and the CLI, on its own."""
    orch, home, _ = orchestrator
    refused_or_done(home, lambda: orch.queue.submit_many([spec]))
