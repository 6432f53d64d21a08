"""Process faults, the long run: several thousand jobs through a daemon whose workers
are SIGKILLed every 250 ms, whose supervisor is SIGKILLed once and started again, and
(on PostgreSQL) whose workers' connections are terminated; then a report of what was
lost, stuck, run twice at once, run out of order or redone (issue 15).

    scripts/chaos [--backend sqlite|postgres] [--jobs N] [--seconds S] [--json PATH]

Exits 1 when a figure that must be zero is not (or the integrity check fails). On
PostgreSQL the server is ``--database-url`` (default ``$ATHENA_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``), in a fresh schema dropped at the end.
``tests/chaos`` runs the short version of the same harness in CI.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import ChaosSettings, report_table, run_chaos  # noqa: E402
from tests.conftest import database_url_for_tests, drop_schema  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs in the run (3000)")
    parser.add_argument(
        "--seconds", type=float, help="how long the faults last at most (120; less if done)"
    )
    parser.add_argument("--minutes", type=float, help="the same in minutes")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=600, help="seconds (600)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--database-url", default=database_url_for_tests())
    parser.add_argument("--workdir", type=Path, help="keep the home and ledger here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    seconds = args.seconds or (args.minutes * 60 if args.minutes else 120.0)

    settings = ChaosSettings(
        jobs=args.jobs,
        fault_seconds=seconds,
        workers=args.workers,
        drain_timeout_s=args.drain_timeout,
        seed=args.seed,
    )
    if args.backend == "postgres":
        settings.database_url = args.database_url
        settings.database_schema = f"athena_chaos_{secrets.token_hex(4)}"

    def progress(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="athena-chaos-") as scratch:
        root = args.workdir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        try:
            report = run_chaos(root, settings, progress)
        finally:
            if settings.database_schema is not None:
                drop_schema(args.database_url, settings.database_schema)
    print(report_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    problems = report.problems()
    if problems:
        print("NOT OK: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("ok: every must-be-zero figure is zero and the database is consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
