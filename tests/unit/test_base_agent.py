"""BaseAgent: auto-checkpoints, graceful stop, resume, session sync."""

from __future__ import annotations

import errno
import tempfile

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from athenad.storage.checkpoints import CheckpointStore, CheckpointWriteError
from athenad.storage.sessions import SessionManager
from workers.base_agent import BaseAgent, checkpoint_interval
from workers.interrupts import Cancelled, ShuttingDown

JOB = "job1"


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a step."""


class Counter(BaseAgent):
    """A deterministic agent: its result depends on every iteration it ran once."""

    checkpoint_every = 3

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.state = {"total": 0}
        self.steps_run: list[int] = []
        self.crash_at = crash_at

    def step(self) -> bool:
        if self.iteration == self.crash_at:
            raise Crash
        self.steps_run.append(self.iteration)
        self.state = {"total": self.state["total"] * 3 + self.iteration}
        self.messages.append({"role": "assistant", "content": f"step {self.iteration}"})
        return self.iteration >= self.ctx.payload["until"]

    def result(self):
        return {"total": self.state["total"], "messages": list(self.messages)}


class FakeContext:
    """What the worker hands an agent, backed by a real checkpoint store."""

    def __init__(self, store, payload, *, stop_after_polls=None, cancel_after_polls=None):
        self.job_id = JOB
        self.payload = payload
        self.attempt = 1
        self.store = store
        self.checkpoint = store.load_latest(JOB)
        self.log = structlog.get_logger().bind(job_id=JOB)
        self.saved: list[int] = []
        self.polls = 0
        self.stop_after_polls = stop_after_polls
        self.cancel_after_polls = cancel_after_polls

    @property
    def cancelled(self) -> bool:
        self.polls += 1
        return self.cancel_after_polls is not None and self.polls > self.cancel_after_polls

    @property
    def stopping(self) -> bool:
        return self.stop_after_polls is not None and self.polls > self.stop_after_polls

    def save_checkpoint(self, iteration, state=None, messages=None):
        self.store.save(self.job_id, iteration, state, messages)
        self.saved.append(iteration)
        return True


class SessionContext(FakeContext):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.session_id = "s1"
        self.session: list[tuple[str, str]] = []

    def add_message(self, role, content):
        self.session.append((role, content))


@pytest.fixture
def store(tmp_path):
    return CheckpointStore(tmp_path)


def test_runs_to_completion_and_checkpoints_every_n(store):
    ctx = FakeContext(store, {"until": 10})
    result = Counter().run(ctx)
    assert ctx.saved == [3, 6, 9]
    assert len(result["messages"]) == 10
    assert store.load_latest(JOB).iteration == 9
    assert store.load_latest(JOB).state == expected_total(9)


def expected_total(n: int) -> dict:
    total = 0
    for i in range(1, n + 1):
        total = total * 3 + i
    return {"total": total}


def test_payload_interval_overrides_class_default(store):
    ctx = FakeContext(store, {"until": 9, "checkpoint_interval": 4})
    Counter().run(ctx)
    assert ctx.saved == [4, 8]
    assert checkpoint_interval({"checkpoint_interval": 0}, 5) == 5
    assert checkpoint_interval({"checkpoint_interval": True}, 5) == 5
    assert checkpoint_interval(["not", "a", "dict"], 7) == 7


def test_resume_continues_at_next_iteration(store):
    first = Counter(crash_at=8)
    with pytest.raises(Crash):
        first.run(FakeContext(store, {"until": 12}))
    assert first.steps_run == [1, 2, 3, 4, 5, 6, 7]
    ctx = FakeContext(store, {"until": 12})
    assert ctx.checkpoint.iteration == 6
    second = Counter()
    result = second.run(ctx)
    assert second.steps_run == [7, 8, 9, 10, 11, 12]
    assert result == Counter().run(FakeContext(CheckpointStore(store.dir / "x"), {"until": 12}))


def test_graceful_stop_saves_and_raises_shutting_down(store):
    ctx = FakeContext(store, {"until": 20}, stop_after_polls=5)
    agent = Counter()
    with pytest.raises(ShuttingDown, match="resumes after iteration 5"):
        agent.run(ctx)
    assert ctx.saved == [3, 5]
    assert store.load_latest(JOB).iteration == 5
    second = Counter()
    second.run(FakeContext(store, {"until": 20}))
    assert second.steps_run[0] == 6


def test_graceful_stop_right_after_a_save_does_not_save_twice(store):
    ctx = FakeContext(store, {"until": 20}, stop_after_polls=6)
    with pytest.raises(ShuttingDown):
        Counter().run(ctx)
    assert ctx.saved == [3, 6]


def test_graceful_stop_before_any_step_saves_nothing(store):
    ctx = FakeContext(store, {"until": 20}, stop_after_polls=0)
    with pytest.raises(ShuttingDown):
        Counter().run(ctx)
    assert ctx.saved == [] and store.iterations(JOB) == []


def test_cancel_raises_cancelled(store):
    ctx = FakeContext(store, {"until": 20}, cancel_after_polls=4)
    agent = Counter()
    with pytest.raises(Cancelled):
        agent.run(ctx)
    assert agent.iteration == 4


def test_refused_write_is_logged_and_run_goes_on(store):
    class FullDisk(FakeContext):
        def save_checkpoint(self, iteration, state=None, messages=None):
            raise CheckpointWriteError(f"iteration {iteration} not written: the disk is full.")

    ctx = FullDisk(store, {"until": 7}, stop_after_polls=None)
    with structlog.testing.capture_logs() as logs:
        result = Counter().run(ctx)
    assert len(result["messages"]) == 7
    failed = [e for e in logs if e["event"] == "checkpoint_write_failed"]
    assert [e["iteration"] for e in failed] == [3, 6]


def test_disk_full_in_store_keeps_previous_checkpoint(store, monkeypatch):
    """With the real store: the save at 6 fails, the job still completes, 3 stays valid."""
    from athenad.storage import checkpoints as cpmod

    class Ctx(FakeContext):
        def save_checkpoint(self, iteration, state=None, messages=None):
            if iteration == 6:
                monkeypatch.setattr(
                    cpmod.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "x"))
                )
            try:
                return super().save_checkpoint(iteration, state, messages)
            finally:
                monkeypatch.undo()

    with structlog.testing.capture_logs():
        Counter().run(Ctx(store, {"until": 8}))
    assert store.iterations(JOB) == [3]
    assert store.load_latest(JOB).state == expected_total(3)


def test_step_is_required():
    with pytest.raises(NotImplementedError):
        BaseAgent().step()


def test_new_messages_go_to_the_session(store):
    ctx = SessionContext(store, {"until": 4})
    Counter().run(ctx)
    assert ctx.session == [("assistant", f"step {i}") for i in range(1, 5)]


def test_resumed_messages_are_not_re_added_to_the_session(store):
    with pytest.raises(ShuttingDown):
        Counter().run(SessionContext(store, {"until": 6}, stop_after_polls=2))
    ctx = SessionContext(store, {"until": 6})
    Counter().run(ctx)
    assert ctx.session == [("assistant", f"step {i}") for i in range(3, 7)]


def test_no_session_attached_is_fine(store):
    ctx = SessionContext(store, {"until": 3})
    ctx.session_id = None
    Counter().run(ctx)
    assert ctx.session == []


@settings(max_examples=40, deadline=None)
@given(
    until=st.integers(min_value=1, max_value=25),
    every=st.integers(min_value=1, max_value=6),
    interrupt_at=st.integers(min_value=1, max_value=30),
    graceful=st.booleans(),
)
def test_interrupted_run_resumes_to_the_same_result(until, every, interrupt_at, graceful):
    payload = {"until": until, "checkpoint_interval": every}
    with tempfile.TemporaryDirectory() as clean_dir, tempfile.TemporaryDirectory() as run_dir:
        expected = Counter().run(FakeContext(CheckpointStore(clean_dir), payload))

        store = CheckpointStore(run_dir)
        first = Counter(crash_at=None if graceful else interrupt_at)
        ctx = FakeContext(store, payload, stop_after_polls=interrupt_at if graceful else None)
        try:
            result = first.run(ctx)
        except (Crash, ShuttingDown):
            second = Counter()
            resume_ctx = FakeContext(store, payload)
            resumed_from = resume_ctx.checkpoint.iteration if resume_ctx.checkpoint else 0
            result = second.run(resume_ctx)
            assert second.steps_run[0] == resumed_from + 1
            # Nothing before the last checkpoint was redone.
            redone = set(first.steps_run) & set(second.steps_run)
            assert all(i > resumed_from for i in redone)
            if graceful:
                assert not redone
            else:
                assert len(redone) < every
        assert result == expected


class StoredSessionContext(FakeContext):
    """A context whose session is a real session file, shared by every run of the job."""

    def __init__(self, store, payload, manager, session_id, **kwargs):
        super().__init__(store, payload, **kwargs)
        self.manager = manager
        self.session_id = session_id

    def add_message(self, role, content):
        return self.manager.add_message(self.session_id, role, content)

    def session_messages(self):
        return self.manager.get_messages(self.session_id)


@pytest.fixture
def sessions(tmp_path):
    manager = SessionManager(tmp_path / "sessions")
    return manager, manager.create_session(git_branch="main")


def contents(manager, session_id):
    return [m.content for m in manager.get_messages(session_id)]


def test_crash_resume_does_not_duplicate_session_messages(store, sessions):
    manager, session_id = sessions
    first = Counter(crash_at=8)
    with pytest.raises(Crash):
        first.run(StoredSessionContext(store, {"until": 12}, manager, session_id))
    assert contents(manager, session_id) == [f"step {i}" for i in range(1, 8)]
    manager.add_message(session_id, "user", "meanwhile")  # another writer
    ctx = StoredSessionContext(store, {"until": 12}, manager, session_id)
    assert ctx.checkpoint.iteration == 6
    second = Counter()
    result = second.run(ctx)
    assert second.steps_run == [7, 8, 9, 10, 11, 12]
    assert contents(manager, session_id) == [
        *(f"step {i}" for i in range(1, 8)),
        "meanwhile",
        *(f"step {i}" for i in range(8, 13)),
    ]
    assert result["total"] == expected_total(12)["total"]
    saved = store.load_latest(JOB)  # iteration 9: the run ended before saving at 12
    assert saved.state["state"] == expected_total(9)
    assert saved.state["session_sync"]["synced"] == 9


def test_a_redo_that_differs_is_added(store, sessions):
    manager, session_id = sessions

    class Moody(Counter):
        second = False

        def step(self):
            done = super().step()
            if Moody.second:
                self.messages[-1] = {"role": "assistant", "content": f"again {self.iteration}"}
            return done

    with pytest.raises(Crash):
        Moody(crash_at=5).run(StoredSessionContext(store, {"until": 5}, manager, session_id))
    Moody.second = True
    Moody().run(StoredSessionContext(store, {"until": 5}, manager, session_id))
    assert contents(manager, session_id) == [
        "step 1",
        "step 2",
        "step 3",
        "step 4",
        "again 4",
        "again 5",
    ]


def test_non_string_content_and_unknown_roles_do_not_fail_the_job(store, sessions):
    manager, session_id = sessions

    class Tooling(BaseAgent):
        def step(self):
            self.messages.append({"role": "tool", "content": {"ok": True, "n": [1, 2]}})
            self.messages.append({"role": "function", "content": "refused role"})
            self.messages.append({"role": "assistant", "content": None})
            return True

        def result(self):
            return "done"

    ctx = StoredSessionContext(store, {}, manager, session_id)
    with structlog.testing.capture_logs() as logs:
        assert Tooling().run(ctx) == "done"
    stored = manager.get_messages(session_id)
    assert [(m.role, m.content) for m in stored] == [
        ("tool", '{"ok":true,"n":[1,2]}'),
        ("assistant", ""),
    ]
    assert [e["role"] for e in logs if e["event"] == "session_message_skipped"] == ["function"]


@settings(max_examples=25, deadline=None)
@given(
    until=st.integers(min_value=1, max_value=15),
    every=st.integers(min_value=1, max_value=5),
    interrupts=st.lists(st.integers(min_value=1, max_value=15), max_size=3),
)
def test_session_holds_each_message_once_after_any_crashes(until, every, interrupts):
    """Crash at several points; once a checkpoint exists nothing is added twice."""
    payload = {"until": until, "checkpoint_interval": every}
    with tempfile.TemporaryDirectory() as work:
        store = CheckpointStore(f"{work}/cp")
        manager = SessionManager(f"{work}/sessions")
        session_id = manager.create_session(git_branch="main")
        for crash_at in [*interrupts, None]:
            ctx = StoredSessionContext(store, payload, manager, session_id)
            try:
                Counter(crash_at=crash_at).run(ctx)
                break
            except Crash:
                continue
        got = contents(manager, session_id)
        assert got[-1] == f"step {until}"
        for i in range(1, until + 1):
            # A step after the first checkpoint is only ever redone from a checkpoint;
            # before it, a crash leaves nothing to compare with.
            assert got.count(f"step {i}") == 1 if i > every else got.count(f"step {i}") >= 1
