"""What the peer benchmarks share: the daemon under test, children stopped by their ids,
percentiles, and a peer's own virtualenv (never a project dependency).

Imports nothing of Athena's: the peers' side of a benchmark runs under their own python.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"  # the peers' virtualenv, ignored by git


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of ``values``."""
    return statistics.quantiles(values, n=100)[q - 1]


def stop_group(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """End a child this run started, and its process group, by ids: TERM, then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def athenad(home: Path, env: dict[str, str], *args: str, timeout: float = 60.0) -> str:
    """Run ``athenad ARGS --home HOME``; its stdout, or RuntimeError with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "athenad.cli.daemon", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"athenad {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def kill_daemon(pid: int) -> None:
    """A daemon `athenad stop` did not end: kill its supervisor and workers by pid."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        supervisor = psutil.Process(pid)
        for proc in [*supervisor.children(recursive=True), supervisor]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def peer_python(venv: Path, module: str, requirement: str) -> Path:
    """The peers' virtualenv python with ``requirement`` installed (made on first use).

    Several peers share the virtualenv, so it is made once and never cleared.
    """
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {module}"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing {requirement} into {venv.name}/ (once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", requirement], check=True, timeout=300
    )
    return python
