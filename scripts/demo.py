"""Run a small fan-out / fan-in workflow through a real daemon and show it finish.

Three `shell` jobs run in parallel (a "security check", a "style check" and a
"test run"), then a fourth summarises them once all three completed; the jobs table
refreshes as they finish. With ``ATHENA_DATABASE_URL=postgresql://...`` set, the queue
is on that PostgreSQL server instead of ``athena.db`` in the scratch home.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from athenad.config import load_config
from athenad.paths import Home
from athenad.store.backend import describe_database, open_store
from athenad.store.contract import JobStore
from athenad.store.waiting import FINISHED

console = Console()

TASKS = [
    ("security check", "sleep 1; echo 'no secrets in the diff'"),
    ("style check", "sleep 1.5; echo '2 long lines'"),
    ("test run", "sleep 2; echo '41 passed'"),
]


def athena(tool: str, *args: str, home: Path) -> str:
    module = {"athenad": "athenad.cli.daemon", "athenactl": "athenad.cli.ctl"}[tool]
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        console.print(f"[red]{tool} {' '.join(args)} failed:[/] {done.stderr.strip()}")
        sys.exit(done.returncode)
    return done.stdout.strip()


def table(queue: JobStore, ids: list[str], names: dict[str, str]) -> Table:
    view = Table("job", "id", "status", "duration", "output", title="athena jobs")
    colours = {"completed": "green", "failed": "red", "running": "cyan", "blocked": "dim"}
    for job_id in ids:
        job = queue.get(job_id)
        output = ""
        if isinstance(job["result"], dict):
            output = job["result"].get("stdout", "").strip().replace("\n", " | ")
        duration = f"{job['duration_ms'] / 1000:.2f} s" if job["duration_ms"] is not None else ""
        colour = colours.get(job["status"], "white")
        view.add_row(names[job_id], job_id, f"[{colour}]{job['status']}[/]", duration, output)
    return view


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=None, help="default: a new scratch directory")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="athena-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    settings = load_config(Home.resolve(home)).daemon
    console.print(f"home: {home}")
    console.print(f"queue: {describe_database(Home.resolve(home), settings)}")
    pid = athena("athenad", "start", "--workers", "3", home=home)
    console.print(f"athenad started (pid {pid}) with 3 workers")
    try:
        ids, names = [], {}
        for name, cmd in TASKS:
            job_id = athena(
                "athenactl", "submit", "shell", "--payload", f'{{"cmd": "{cmd}"}}', home=home
            )
            ids.append(job_id)
            names[job_id] = name
        after = [flag for job_id in ids for flag in ("--after", job_id)]
        summary = athena(
            "athenactl",
            "submit",
            "shell",
            "--payload",
            '{"cmd": "echo summary: 3 checks done, 2 findings"}',
            *after,
            home=home,
        )
        ids.append(summary)
        names[summary] = "summary (after all 3)"
        queue = open_store(Home.resolve(home), settings)
        with queue, Live(console=console) as live:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                live.update(table(queue, ids, names))
                if all(queue.get(job_id)["status"] in FINISHED for job_id in ids):
                    break
                time.sleep(0.2)
            ok = all(queue.get(job_id)["status"] == "completed" for job_id in ids)
    finally:
        console.print()
        console.print(athena("athenad", "stop", home=home))
    console.print("[green]workflow finished[/]" if ok else "[red]workflow did not finish[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
