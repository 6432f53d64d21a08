"""What the bad-input tests share: athenactl run in-process, a dump of the stored state
to compare before and after, and the shape of a clean refusal."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from hypothesis import strategies as st

from athenad.cli.ctl import main as athenactl
from athenad.paths import Home

# The tables a refused command must leave exactly as they were.
STATE_TABLES = ("jobs", "job_parents", "queues", "job_events", "schedules")

# Text that tries to leave a directory, end a C string, or be read as something else.
NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "..",
            "../",
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "\x00",
            "job\x00id",
            "é",
            "💥" * 3,
            "\u202e",
            "\ud800",
            " ",
            "-",
            "--help",
            "x" * 300,
        ]
    ),
    st.builds(
        lambda parts: "".join(parts),
        st.lists(st.sampled_from(["../", "/", "\x00", "é", "a", ".", "%2e", "\\"]), max_size=8),
    ),
)


def dump_state(home: Home) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the state tables (read-only), to compare before and after."""
    if not home.db_path.exists():
        return {}
    conn = sqlite3.connect(f"file:{home.db_path}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}"), key=repr)  # noqa: S608
            for table in STATE_TABLES
            if table in tables
        }
    finally:
        conn.close()


def files_of(home: Home) -> dict[str, int]:
    """Every file under the home's .athena/ with its size."""
    return {
        str(path.relative_to(home.root)): path.stat().st_size
        for path in sorted(home.state_dir.rglob("*"))
        if path.is_file()
    }


def ctl(home: Home, *args: str, input: str | bytes | None = None) -> Result:
    """``athenactl ARGS --home HOME`` in this process (click's runner)."""
    # The home goes after the command, where it does not set ATHENA_HOME for the process.
    runner = CliRunner()
    return runner.invoke(
        athenactl, [*args, "--home", str(home.root)], input=input, env={"ATHENA_HOME": None}
    )


def assert_no_traceback(result: Result) -> None:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"athenactl raised {type(exc).__name__}: {exc!r}") from exc
    assert "Traceback" not in result.stderr, result.stderr


def assert_refused(result: Result, *, mentions: str | None = None) -> str:
    """A clean refusal: no traceback, a non-zero exit, one ``error: ...`` sentence."""
    assert_no_traceback(result)
    assert result.exit_code != 0, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    # One sentence: click's list of choices is the only error spread over lines.
    assert len(lines) == 1 or "Choose from" in lines[0], result.stderr
    assert result.stdout == "", result.stdout
    if mentions is not None:
        assert mentions in result.stderr, result.stderr
    return lines[0]


def seed(home: Home) -> dict[str, str]:
    """A home with a few jobs of every shape (finished, waiting, a child) and a session."""
    from athenad.storage.sessions import SessionManager
    from athenad.store.sqlite.queue import JobQueue

    home.ensure()
    with JobQueue(home.db_path, run_dir=home.run_dir) as queue:
        done = queue.submit("echo", {"n": 1})
        claimed = queue.claim("fuzz", 1)
        assert claimed is not None
        queue.complete(claimed.id, claimed.fence, {"ok": True})
        waiting = queue.submit("echo", {"n": 2}, queue="slow", priority=3)
        child = queue.submit("echo", [1, 2], after=[waiting])
    session = SessionManager(home.sessions_dir).create_session(name="fuzz")
    return {"done": done, "waiting": waiting, "child": child, "session": session}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
