"""Measure how quickly ``athenactl`` commands start and finish, against a bare-import floor.

Run ``python scripts/bench_cli.py`` (``--help`` for options). It builds a home holding
100,000 pending jobs (``submit_many`` in batches; ``--home DIR`` keeps it for the next
run), then times, round-robin so load on the machine hits every command alike:

* the floor: ``python -c "import click, apsw, msgspec"``
* ``athenactl --help`` and ``athenactl submit echo --payload '{}'`` (target: 1.5x the floor)
* ``athenactl show ID``, ``athenactl ls`` and ``athenactl status`` (target: 2x the floor)

and prints the median wall-clock time of each (15 runs by default) with its ratio to
the floor and the target; ``--json PATH`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = [sys.executable, "-c", "import click, apsw, msgspec"]
JOBS = 100_000
BATCH = 5_000
HELP_SUBMIT_TARGET = 1.5
READ_TARGET = 2.0


def athenactl() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("athenactl")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "athenad.cli.ctl"]


def fill_home(home: Path, count: int) -> str:
    """Give ``home`` at least ``count`` jobs; returns the id of one of them."""
    import apsw

    from athenad.config import load_config
    from athenad.paths import Home
    from athenad.store.backend import open_store

    resolved = Home.resolve(str(home)).ensure()
    with open_store(resolved, load_config(resolved).daemon) as queue:
        pass  # creates the schema
    reader = apsw.Connection(str(resolved.db_path))
    have = reader.execute("SELECT count(*) FROM jobs").fetchall()[0][0]
    reader.close()
    with open_store(resolved, load_config(resolved).daemon) as queue:
        while have < count:
            size = min(BATCH, count - have)
            queue.submit_many({"type": "echo", "payload": {"n": have + i}} for i in range(size))
            have += size
        newest = queue.list_jobs(limit=1000)
    return str(newest[len(newest) // 2]["id"])


def clean_env(home: Path) -> dict[str, str]:
    """The environment of every timed command: this home, and Python's bytecode cache
    on (an installed Athena has its .pyc files; without them every start recompiles)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATHENA_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["ATHENA_HOME"] = str(home)
    return env


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--jobs", type=int, default=JOBS, help="jobs in the home")
    parser.add_argument("--home", type=Path, default=None, help="keep the home here")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="athena-bench-cli-"))
    try:
        started = time.perf_counter()
        job_id = fill_home(home, args.jobs)
        print(f"home {home}: {args.jobs:,} jobs ready in {time.perf_counter() - started:.1f} s")
        env = clean_env(home)
        ctl = athenactl()
        commands: dict[str, tuple[list[str], float | None]] = {
            "floor: import click, apsw, msgspec": (FLOOR, None),
            "athenactl --help": ([*ctl, "--help"], HELP_SUBMIT_TARGET),
            "athenactl submit echo --payload '{}'": (
                [*ctl, "submit", "echo", "--payload", "{}"],
                HELP_SUBMIT_TARGET,
            ),
            "athenactl show ID": ([*ctl, "show", job_id], READ_TARGET),
            "athenactl ls": ([*ctl, "ls"], READ_TARGET),
            "athenactl status": ([*ctl, "status"], READ_TARGET),
        }
        # An athenactl without `ls` or `status`: time `jobs` and `athenad status`, the same.
        if subprocess.run([*ctl, "ls", "--help"], env=env, capture_output=True).returncode:
            commands["athenactl ls"] = ([*ctl, "jobs"], READ_TARGET)
            print("this athenactl has no ls: timing athenactl jobs")
        if subprocess.run([*ctl, "status", "--help"], env=env, capture_output=True).returncode:
            daemon = [ctl[0], str(Path(ctl[1]).with_name("athenad"))] if len(ctl) == 2 else []
            daemon = daemon or [sys.executable, "-m", "athenad.cli.daemon"]
            commands["athenactl status"] = ([*daemon, "status"], READ_TARGET)
            print("this athenactl has no status: timing athenad status")
        # Warm the page cache and the bytecode cache, and check that each command works.
        for command, _target in commands.values():
            timed(command, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, _target) in commands.items():
                samples[name].append(timed(command, env))
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    floor = statistics.median(samples[next(iter(commands))])
    rows = []
    print(f"\nmedian of {args.runs} runs, python {sys.version.split()[0]}")
    print(f"{'command':<40} {'median ms':>10} {'x floor':>8} {'target':>7}  ok")
    for name, (_command, target) in commands.items():
        median = statistics.median(samples[name])
        ratio = median / floor
        ok = "" if target is None else ("yes" if ratio <= target else "NO")
        shown = "" if target is None else f"{target:g}x"
        print(f"{name:<40} {median * 1000:>10.1f} {ratio:>7.2f}x {shown:>7}  {ok}")
        rows.append(
            {
                "command": name,
                "median_ms": round(median * 1000, 2),
                "ratio": round(ratio, 3),
                "target_ratio": target,
                "runs_ms": [round(s * 1000, 2) for s in samples[name]],
            }
        )
    if args.json_path:
        args.json_path.write_text(json.dumps({"jobs": args.jobs, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
