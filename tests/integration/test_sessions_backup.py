"""Backup while another process runs jobs and appends to a session, then restore."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import apsw
import pytest

from athenad.errors import DaemonError, InvalidInput
from athenad.paths import Home
from athenad.storage.backup import backup, restore
from athenad.storage.sessions import SessionManager
from athenad.store.sqlite.queue import JobQueue

ROOT = Path(__file__).resolve().parents[2]

LOOP = textwrap.dedent(
    """
    import sys
    from athenad.store.sqlite.queue import JobQueue
    from athenad.storage.sessions import SessionManager
    db, sessions_dir, session_id = sys.argv[1:4]
    queue = JobQueue(db, fast_writes=True)
    manager = SessionManager(sessions_dir)
    n = 0
    while True:
        parent = queue.submit("echo", {"n": n})
        queue.submit("echo", {"child_of": n}, after=[parent])
        job = queue.claim("loop-worker")
        if job is not None:
            queue.complete(job.id, job.fence, {"echo": job.payload})
        manager.add_message(session_id, "assistant", f"turn {n}")
        n += 1
        if n == 20:
            print("running", flush=True)
    """
)


def job_rows(db_path: Path) -> list[tuple]:
    conn = apsw.Connection(str(db_path))
    try:
        return conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    finally:
        conn.close()


def archive_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}


def session_files(home: Home) -> dict[str, bytes]:
    return {f".athena/sessions/{p.name}": p.read_bytes() for p in home.sessions_dir.glob("*.jsonl")}


@pytest.mark.timeout(90)
def test_backup_while_jobs_run_then_restore_gives_the_same_rows_and_files(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    JobQueue(home.db_path).close()  # create and migrate the database
    manager = SessionManager(home.sessions_dir)
    session_id = manager.create_session("busy", git_branch="main")
    (home.run_dir / "worker-1.sock").write_text("not a real socket")
    (home.pid_file).write_text("12345\n")
    loop = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(home.db_path), str(home.sessions_dir), session_id],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    try:
        assert loop.stdout.readline().strip() == "running"
        archive = tmp_path / "backup.tar.gz"
        info = backup(home, archive)
        time.sleep(0.2)  # the loop keeps writing after the snapshot
    finally:
        os.killpg(loop.pid, signal.SIGKILL)
        loop.wait()
    assert info["database"] and info["path"] == str(archive)

    members = archive_members(archive)
    assert "manifest.json" in members and "athena.db" in members
    assert not any(name.startswith(".athena/run") for name in members)
    assert ".athena/athenad.pid" not in members
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(members["athena.db"])
    conn = apsw.Connection(str(snapshot))
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    completed_without_result = conn.execute(
        "SELECT count(*) FROM jobs WHERE status = 'completed' AND result IS NULL"
    ).fetchall()
    conn.close()
    assert completed_without_result == [(0,)]
    snapshot_rows = job_rows(snapshot)
    assert len(snapshot_rows) >= 40
    live_rows = job_rows(home.db_path)
    assert len(live_rows) > len(snapshot_rows)  # the loop went on after the backup
    archived_sessions = {k: v for k, v in members.items() if k.endswith(".jsonl")}
    assert f".athena/sessions/{session_id}.jsonl" in archived_sessions
    assert archived_sessions[f".athena/sessions/{session_id}.jsonl"].endswith(b"\n")

    # Restore into the same home: the pid file names no locked daemon, so it proceeds.
    result = restore(home, archive)
    assert job_rows(home.db_path) == snapshot_rows
    assert session_files(home) == archived_sessions
    aside = Path(result["previous_saved_to"])
    assert job_rows(aside / "athena.db") == live_rows  # what was replaced is kept
    assert home.run_dir.is_dir()
    restored = SessionManager(home.sessions_dir)
    messages = restored.get_messages(session_id)
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    assert restored.resume_most_recent_session() == session_id

    # And into a fresh home.
    other = Home.resolve(tmp_path / "other")
    restore(other, archive)
    assert job_rows(other.db_path) == snapshot_rows
    assert session_files(other) == archived_sessions


@pytest.mark.timeout(30)
def test_restore_refuses_while_the_daemon_runs(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    archive = tmp_path / "b.tar.gz"
    backup(home, archive)
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.write(str(__import__('os').getpid())); f.flush(); print('up', flush=True)\n"
            "time.sleep(60)",
            str(home.pid_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert daemon.stdout.readline().strip() == "up"
        with pytest.raises(DaemonError, match="daemon is running"):
            restore(home, archive)
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
    fd = os.open(home.pid_file, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the lock is gone with the process
    os.close(fd)
    restore(home, archive)


def test_archives_with_unsafe_paths_are_refused(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        for name in ("manifest.json", "../escaped.txt"):
            data = b'{"format":1}'
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    with pytest.raises(InvalidInput, match="unsafe path"):
        restore(home, evil)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (home.root / "escaped.txt").exists()


def test_backup_refuses_a_destination_inside_state_or_in_a_missing_directory(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    SessionManager(home.sessions_dir).create_session(git_branch="main")
    for dest in (home.state_dir / "b.tar.gz", home.state_dir, home.sessions_dir / "x.tar.gz"):
        with pytest.raises(InvalidInput, match="inside .*write the backup outside"):
            backup(home, dest)
    with pytest.raises(InvalidInput, match="does not exist; create it first"):
        backup(home, tmp_path / "nonexistent" / "dir" / "b.tar.gz")
    assert not (tmp_path / "nonexistent").exists()
    leftovers = [p.name for p in home.state_dir.iterdir() if p.name.startswith(".athena-backup")]
    assert leftovers == []
    result = backup(home, tmp_path)  # a directory: a dated file inside it
    with tarfile.open(result["path"]) as archive:
        names = archive.getnames()
    assert not any("athena-backup" in name for name in names)
    assert any(name.endswith(".jsonl") for name in names)


@pytest.mark.timeout(30)
def test_restore_refuses_while_an_orphaned_worker_of_the_home_lives(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    archive = tmp_path / "b.tar.gz"
    backup(home, archive)
    other = Home.resolve(tmp_path / "other").ensure()
    # Same command line shape as the supervisor's workers; no pid file is locked.
    code = "print('up', flush=True); import time; time.sleep(60)"
    worker = subprocess.Popen(
        [sys.executable, "-c", code, "-m", "workers", "--home", str(home.root), "--index", "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert worker.stdout.readline().strip() == "up"
        with pytest.raises(DaemonError, match=f"worker process.*pid {worker.pid}"):
            restore(home, archive)
        restore(other, archive)  # a worker of another home does not matter
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    restore(home, archive)


@pytest.mark.timeout(30)
def test_output_cut_short_by_the_reader_ends_quietly(tmp_path):
    home = Home.resolve(tmp_path / "home").ensure()
    manager = SessionManager(home.sessions_dir)
    session_id = manager.create_session(git_branch="main")
    for n in range(10):
        manager.add_message(session_id, "user", f"{n}\n" + "x" * 100_000)
    command = [sys.executable, "-m", "athenad.cli.ctl", "sessions", "continue", "--branch", "main"]
    proc = subprocess.Popen(
        [*command, "--home", str(home.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=20) == 141
    finally:
        proc.kill()
        proc.wait()
    assert stderr == ""
