"""Importing and using athenad as a library leaves the program's logging alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

USE_THE_LIBRARY = """
import asyncio
import athenad
from athenad import TaskOrchestrator

with TaskOrchestrator(HOME + "/athena.db", HOME + "/.athena") as orchestrator:
    job_id = orchestrator.submit("echo", {"msg": "hi"})
    orchestrator.get_job(job_id)
    asyncio.run(orchestrator.run_parallel_tasks([{"type": "echo"}], then={"type": "echo"}))
    orchestrator.create_conversation_session(name="talk", git_branch="main")
"""


def run_python(home, *parts: str) -> str:
    """Run the parts (each dedented) as one script with HOME set; return its stdout."""
    script = "\n".join([f"HOME = {str(home)!r}", *map(textwrap.dedent, parts)])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_and_use_configure_nothing(tmp_path):
    out = run_python(
        tmp_path,
        "import structlog",
        USE_THE_LIBRARY,
        "print('configured' if structlog.is_configured() else 'untouched')",
    )
    assert out.splitlines()[-1] == "untouched"


def test_the_programs_own_structlog_config_stays(tmp_path):
    out = run_python(
        tmp_path,
        """
        import structlog

        def mine(logger, name, event):
            return event

        structlog.configure(processors=[mine, structlog.processors.KeyValueRenderer()])
        before = structlog.get_config()
        """,
        USE_THE_LIBRARY,
        """
        after = structlog.get_config()
        print("kept" if after["processors"][0] is mine and after == before else "changed")
        """,
    )
    assert out.splitlines()[-1] == "kept"


def test_without_any_logging_set_up_the_library_prints_nothing_on_stdout(tmp_path):
    out = run_python(tmp_path, USE_THE_LIBRARY)
    assert out == ""


def test_events_reach_pythons_logging_when_structlog_is_not_configured(tmp_path):
    out = run_python(
        tmp_path,
        """
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")
        """,
        USE_THE_LIBRARY,
    )
    assert "athenad.storage.sessions event='session_created'" in out
