"""Job log lines and progress, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from athenad.errors import JobNotFound
from athenad.storage.job_logs import JobLogError, new_line, open_job_logs


@pytest.fixture
def logs(store):
    found = open_job_logs(store)
    assert found is not None
    return found


def test_lines_come_back_in_order_with_their_fields(store, logs):
    job = store.submit("echo")
    kept = logs.append(
        job,
        [
            new_line("fetching", fields={"url": "https://example.org", "try": 1}),
            new_line("slow answer", "warning", {"seconds": 2.5, "tags": ["a", None]}),
        ],
    )
    assert kept == 2
    lines = logs.read(job)
    assert [(line.seq, line.level, line.message) for line in lines] == [
        (1, "info", "fetching"),
        (2, "warning", "slow answer"),
    ]
    assert lines[0].fields == {"url": "https://example.org", "try": 1}
    assert lines[1].fields == {"seconds": 2.5, "tags": ["a", None]}
    assert len(lines[0].at) == len("2026-11-26 10:00:00.123")
    assert [line.seq for line in logs.read(job, after=1)] == [2]
    state = logs.state(job)
    assert (state.status, state.lines, state.dropped) == ("pending", 2, 0)
    assert state.bytes == lines[0].message.__len__() + len(
        '{"url":"https://example.org","try":1}'
    ) + len("slow answer") + len('{"seconds":2.5,"tags":["a",null]}')


def test_reading_pages_on_from_the_last_seq(store, logs):
    job = store.submit("echo")
    logs.append(job, [new_line(f"line {n}") for n in range(25)])
    first = logs.read(job, limit=10)
    rest = logs.read(job, after=first[-1].seq)
    assert [line.message for line in first + rest] == [f"line {n}" for n in range(25)]


def test_lines_past_the_cap_are_dropped_and_counted(store, logs):
    job = store.submit("echo")
    kept = logs.append(job, [new_line("x" * 40) for _ in range(5)], max_bytes=100)
    assert kept == 2
    assert logs.append(job, [new_line("y" * 30)], max_bytes=100) == 0
    # A line the worker must keep (how a run ended) is stored past the cap.
    assert logs.append(job, [new_line("job failed", "error", capped=False)], max_bytes=100) == 1
    state = logs.state(job)
    assert (state.lines, state.dropped) == (3, 4)
    assert [line.message for line in logs.read(job)][-1] == "job failed"
    assert [line.seq for line in logs.read(job)] == [1, 2, 3]


def test_no_cap_when_max_bytes_is_zero(store, logs):
    job = store.submit("echo")
    assert logs.append(job, [new_line("z" * 5000) for _ in range(3)], max_bytes=0) == 3


def test_an_unknown_job_is_one_clear_error(logs):
    with pytest.raises(JobNotFound, match="does not exist"):
        logs.append("nope", [new_line("hello")])
    with pytest.raises(JobNotFound):
        logs.state("nope")
    with pytest.raises(JobNotFound):
        logs.set_progress("nope", 0.5, None)
    assert logs.read("nope") == []


def test_progress_keeps_the_part_left_out(store, logs):
    job = store.submit("echo")
    logs.set_progress(job, 0.25, "downloading")
    state = logs.state(job)
    assert (state.progress, state.progress_message) == (0.25, "downloading")
    assert state.progress_at is not None
    logs.set_progress(job, 0.5, None)
    logs.set_progress(job, None, "parsing")
    state = logs.state(job)
    assert (state.progress, state.progress_message) == (0.5, "parsing")
    assert store.get(job)["progress"] == 0.5


def test_running_progress_is_the_current_runs_only(store, logs):
    job = store.submit("echo", max_attempts=2, backoff_s=0.0)
    other = store.submit("echo")
    claimed = store.claim("w:1:0")
    assert claimed is not None and claimed.id == job
    assert logs.running_progress() == {}
    logs.set_progress(job, 0.75, "three quarters")
    logs.set_progress(other, 0.1, "not running")
    found = logs.running_progress()
    assert list(found) == [job]
    assert (found[job].fraction, found[job].message) == (0.75, "three quarters")


def test_concurrent_appenders_never_share_a_seq(store_factory):
    first = store_factory()
    job = first.submit("echo")
    errors: list[BaseException] = []

    def append(name: str) -> None:
        try:
            queue = store_factory()
            logs = open_job_logs(queue)
            assert logs is not None
            for n in range(20):
                logs.append(job, [new_line(f"{name} {n}")])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    logs = open_job_logs(first)
    assert logs is not None
    lines = logs.read(job, limit=100)
    assert [line.seq for line in lines] == list(range(1, 61))
    assert logs.state(job).lines == 60


def test_bad_lines_and_progress_are_clear_errors():
    with pytest.raises(JobLogError, match="log field 'when'"):
        new_line("hi", fields={"ok": 1, "when": object()})
    with pytest.raises(JobLogError, match="log level 'loud'"):
        new_line("hi", "loud")
    with pytest.raises(JobLogError, match="must be text"):
        new_line(42)
    assert new_line("hi", fields={"when": object()}, lenient=True).fields is not None
