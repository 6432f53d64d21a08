"""Job ids stay unique across os.fork(): parent and children never share a counter."""

from __future__ import annotations

import os
import types

import pytest

from athenad.store.sqlite.queue import JobQueue
from athenad.util import ids as ids

CHILDREN = 8
JOBS_EACH = 50


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every id of this test, in every process, is made in the same millisecond."""
    now_ns = ids.time.time_ns()
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: now_ns))


def _submit_in_child(db_path, run_dir) -> None:
    """Runs in a forked child: submit jobs to the shared database, exit 0 on success
    (else write why next to the database, for the test's message)."""
    code = 1
    try:
        with JobQueue(db_path, run_dir=run_dir) as queue:
            for _ in range(JOBS_EACH):
                queue.submit("echo")
        code = 0
    except BaseException:
        import traceback

        with open(f"{db_path}.child-{os.getpid()}.error", "w") as out:
            out.write(traceback.format_exc())
    finally:
        os._exit(code)


def test_forked_children_submit_distinct_ids(home, frozen_clock):
    ids.new_job_id()  # the parent's counter now holds a position in this millisecond
    children = []
    for _ in range(CHILDREN):
        pid = os.fork()
        if pid == 0:
            _submit_in_child(home.db_path, home.run_dir)
        children.append(pid)
    try:
        with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
            for _ in range(JOBS_EACH):
                queue.submit("echo")
    finally:
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    # A child whose id collided with another's fails its insert and exits 1.
    errors = [path.read_text() for path in home.db_path.parent.glob("*.child-*.error")]
    assert codes == [0] * CHILDREN, errors
    with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
        made = [row[0] for row in queue.conn.execute("SELECT id FROM jobs")]
    assert len(made) == len(set(made)) == (CHILDREN + 1) * JOBS_EACH


def test_ids_made_after_fork_differ_from_the_parents(frozen_clock):
    ids.new_job_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, ",".join(ids.new_job_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    parent = {ids.new_job_id() for _ in range(100)}
    with os.fdopen(read_end, "rb") as pipe:
        child = set(pipe.read().decode().split(","))
    os.waitpid(pid, 0)
    assert len(child) == 100 and not parent & child
