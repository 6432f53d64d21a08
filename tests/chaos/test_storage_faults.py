"""Storage faults (issue 15): a disk that fills up under a running daemon, and a
database another process locks, that cannot be written, or that a newer Athena made.

Each refused command says so in one sentence (``error: ...``, non-zero exit, no
traceback), the API raises a typed AthenaError, the daemon keeps running, and what was
stored before is intact.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from athenad.api import TaskOrchestrator
from athenad.errors import AthenaError, DiskFull, WriteFailed
from athenad.paths import Home
from athenad.storage.checkpoints import CheckpointWriteError, FileCheckpointStore
from athenad.storage.sessions import SessionManager
from athenad.store.sqlite.migrations import latest_version
from tests.chaos.storage import (
    daemon_alive,
    detached_daemon,
    digest,
    fill,
    integrity,
    no_traceback,
    one_sentence,
    prepare_home,
    small_disk,
)
from tests.conftest import cli, wait_status, wait_until

pytestmark = pytest.mark.timeout(120)


def ledger_lines(ledger: Path) -> list[dict]:
    path = ledger / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def submit_ok(home: Home, *args: str) -> str:
    result = cli("athenactl", "submit", *args, home=home, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[0]


def add_message(home: Home, session_id: str, text: str) -> None:
    added = cli("athenactl", "sessions", "add", session_id, "--role", "user", text, home=home)
    assert added.returncode == 0, added.stderr


# ---- disk full -------------------------------------------------------------------------


MAX_SUBMITS_INTO_WAL_ROOM = 400


def test_a_full_disk_refuses_new_work_in_one_sentence_and_everything_resumes_once_freed(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"  # outside the small disk: the saver's answers
    ledger.mkdir()
    with small_disk(tmp_path / "disk") as disk:
        home = prepare_home(disk / "home")
        with detached_daemon(home, workers=2) as pid:
            # Stored before the disk fills: a finished job, a session, a checkpoint.
            done = submit_ok(home, "echo", "--payload", '{"msg": "before"}', "--wait")
            session = cli("athenactl", "sessions", "new", "--name", "before", home=home)
            session_id = session.stdout.strip()
            for text in ("first", "second"):
                add_message(home, session_id, text)
            later = submit_ok(home, "echo", "--delay", "1h")
            with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as api:
                api.save_task_checkpoint(later, 1, ["kept"], state={"n": 1})
            saver = submit_ok(home, "saver", "--payload", json.dumps({"ledger": str(ledger)}))
            wait_until(
                lambda: sum(e.get("saved") is True for e in ledger_lines(ledger)) >= 2,
                what="the saver's first checkpoints",
            )

            # Work that must be recorded while the disk is full: a job that ends, and a
            # scheduled one the supervisor makes due.
            ending = submit_ok(home, "sleep", "--payload", '{"seconds": 1}')
            due = submit_ok(home, "echo", "--delay", "2s")
            filler = fill(disk)
            full_since = time.time()

            # A submit that still fits in the WAL's room (written back and reused by the
            # daemon) is stored; once that room is used up, submits are refused.
            payload = json.dumps({"msg": "full", "pad": "z" * 50_000})
            for _ in range(MAX_SUBMITS_INTO_WAL_ROOM):
                result = cli("athenactl", "submit", "echo", "--payload", payload, home=home)
                if result.returncode != 0:
                    break
            refused = one_sentence(result)
            assert "disk" in refused and "full" in refused, refused
            big = "y" * 20_000  # needs new pages, whatever the last page of the file has
            refused = one_sentence(
                cli("athenactl", "sessions", "add", session_id, "--role", "user", big, home=home)
            )
            assert "full" in refused and "unchanged" in refused, refused
            refused = one_sentence(cli("athenactl", "sessions", "new", home=home))
            assert "full" in refused, refused

            with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as api:
                with pytest.raises(DiskFull, match="full"):  # noqa: PT012 - until refused
                    for _ in range(MAX_SUBMITS_INTO_WAL_ROOM):
                        api.submit_job("echo", {"msg": "full", "pad": "z" * 50_000})
                with pytest.raises(WriteFailed, match="full"):
                    api.add_message_to_session(session_id, "user", big)
                with pytest.raises(CheckpointWriteError, match="full"):
                    api.save_task_checkpoint(later, 2, [big])

            # The running job's saves are refused (and said so), the job runs on.
            wait_until(
                lambda: any(
                    e["t"] > full_since and e.get("saved") is False for e in ledger_lines(ledger)
                ),
                what="a save refused by the full disk",
            )
            assert not [e for e in ledger_lines(ledger) if "error" in e]
            time.sleep(max(0.0, full_since + 3 - time.time()))  # `ending` ended, `due` is due
            assert daemon_alive(home, pid)
            # Reading still works, and the daemon is still there.
            assert no_traceback(cli("athenactl", "show", done, home=home)).returncode == 0
            assert no_traceback(cli("athenad", "status", home=home)).returncode == 0
            assert daemon_alive(home, pid)

            filler.unlink()
            freed_at = time.time()
            wait_until(
                lambda: any(
                    e["t"] > freed_at and e.get("saved") is True for e in ledger_lines(ledger)
                ),
                what="a save once the disk has room",
            )
            (ledger / "stop").touch()
            after = submit_ok(home, "echo", "--payload", '{"msg": "after"}', "--wait")
            assert wait_status(home, saver, ("completed",))["status"] == "completed"
            assert wait_status(home, after, ("completed",))["status"] == "completed"
            assert wait_status(home, ending, ("completed",))["status"] == "completed"
            assert wait_status(home, due, ("completed",))["status"] == "completed"
            add_message(home, session_id, "third")
            assert daemon_alive(home, pid)

            # Nothing stored before was damaged, and no half-written line was left.
            assert integrity(home.db_path) == "ok"
            _header, messages = SessionManager(home.state_dir).read_session(session_id)
            assert [m.content for m in messages] == ["first", "second", "third"]
            assert not (home.sessions_dir / f"{session_id}.quarantine.jsonl").exists()
            checkpoints = FileCheckpointStore(home.checkpoints_dir)
            assert checkpoints.load(later, 1).state == {"n": 1}
            assert all(info.valid for info in checkpoints.list(saver))
            assert not list(home.checkpoints_dir.glob(".*.tmp"))


# ---- database trouble -------------------------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def test_submit_waits_for_another_process_s_write_lock_then_goes_through(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    submit_ok(home, "echo")  # creates athena.db
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(home.db_path), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = no_traceback(cli("athenactl", "submit", "echo", home=home, timeout=60))
        waited = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert waited > 1.5  # it waited for the lock rather than failing at once
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert integrity(home.db_path) == "ok"


def test_a_database_from_a_newer_athena_is_refused_by_every_command_and_left_unchanged(
    tmp_path: Path,
) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    job = submit_ok(home, "echo")
    newer = latest_version() + 5
    conn = sqlite3.connect(home.db_path)
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()
    before = digest(home.db_path)
    commands = [
        ("athenactl", "submit", "echo"),
        ("athenactl", "ls"),
        ("athenactl", "show", job),
        ("athenactl", "migrate"),
        ("athenactl", "stats"),
        ("athenad", "status"),
        ("athenad", "start", "--workers", "1"),
    ]
    for command in commands:
        line = one_sentence(cli(*command, home=home, timeout=60))
        assert f"schema version {newer}" in line and "upgrade Athena" in line, (command, line)
    assert digest(home.db_path) == before
    with pytest.raises(AthenaError, match="upgrade Athena"):
        TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir)


def test_a_read_only_home_refuses_writes_in_one_sentence_and_still_reads(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        home = Home.resolve(disk / "home").ensure()
        job = submit_ok(home, "echo", "--payload", '{"msg": "kept"}')
        session_id = cli("athenactl", "sessions", "new", "--name", "kept", home=home).stdout.strip()
        remount = subprocess.run(
            ["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True, timeout=10
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
        try:
            before = digest(home.db_path, home.sessions_dir / f"{session_id}.jsonl")
            writes: list[tuple[str, ...]] = [
                ("athenactl", "submit", "echo"),
                ("athenactl", "cancel", job),
                ("athenactl", "sessions", "add", session_id, "--role", "user", "no"),
                ("athenactl", "sessions", "new"),
            ]
            for command in writes:
                line = one_sentence(cli(*command, home=home, timeout=60))
                assert "read-only" in line.lower(), (command, line)
            # Reading a read-only home is fine, or refused in one sentence.
            reads: list[tuple[str, ...]] = [
                ("athenactl", "show", job),
                ("athenactl", "sessions", "show", session_id),
                ("athenad", "status"),
            ]
            for command in reads:
                no_traceback(cli(*command, home=home, timeout=60))
            assert digest(home.db_path, home.sessions_dir / f"{session_id}.jsonl") == before
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], timeout=10)
        assert integrity(home.db_path) == "ok"


def test_an_immutable_database_file_refuses_writes_in_one_sentence(tmp_path: Path) -> None:
    # Tests run as root, whom chmod 0400 does not stop; the immutable flag does.
    if shutil.which("chattr") is None:
        pytest.skip("no chattr to make athena.db immutable (root ignores chmod)")
    home = Home.resolve(tmp_path / "home").ensure()
    job = submit_ok(home, "echo")
    flagged = subprocess.run(
        ["chattr", "+i", str(home.db_path)], capture_output=True, text=True, timeout=10
    )
    if flagged.returncode != 0:
        pytest.skip(f"cannot make athena.db immutable here: {flagged.stderr.strip()}")
    try:
        before = digest(home.db_path)
        for command in (("athenactl", "submit", "echo"), ("athenactl", "cancel", job)):
            line = one_sentence(cli(*command, home=home, timeout=60))
            assert "read-only" in line, (command, line)
        shown = no_traceback(cli("athenactl", "show", job, "--json", home=home))
        assert json.loads(shown.stdout)["status"] == "pending"
        with (
            TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as api,
            pytest.raises(WriteFailed, match="read-only"),
        ):
            api.submit_job("echo")
        assert digest(home.db_path) == before
    finally:
        subprocess.run(["chattr", "-i", str(home.db_path)], timeout=10)
    assert integrity(home.db_path) == "ok"


def test_a_full_disk_with_no_daemon_running_is_named_not_taken_for_a_broken_database(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        home = Home.resolve(disk / "home").ensure()
        job = submit_ok(home, "echo", "--payload", '{"msg": "kept"}')
        session_id = cli("athenactl", "sessions", "new", "--name", "kept", home=home).stdout.strip()
        (home.sessions_dir / "index.json").unlink(missing_ok=True)  # listing writes it
        before = digest(home.db_path)
        filler = fill(disk)
        # Opening athena.db needs room for its -shm file, so even reads are refused.
        for command in (("submit", "echo"), ("show", job), ("ls",)):
            line = one_sentence(cli("athenactl", *command, home=home))
            assert "disk holding it is full" in line and "not a usable" not in line, line
        listed = no_traceback(cli("athenactl", "sessions", "list", "--json", home=home))
        assert [s["id"] for s in json.loads(listed.stdout)] == [session_id]
        assert digest(home.db_path) == before
        filler.unlink()
        shown = no_traceback(cli("athenactl", "show", job, "--json", home=home))
        assert json.loads(shown.stdout)["payload"] == {"msg": "kept"}
        assert integrity(home.db_path) == "ok"
