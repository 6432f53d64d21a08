"""``athenactl prune``: delete finished jobs (with their checkpoints) and idle sessions
by age, as the daemon does by ``[retention]``; ``--dry-run`` only counts them."""

from __future__ import annotations

import click

from athenad.cli.common import (
    fail,
    handle_errors,
    home_option,
    json_option,
    print_json,
    resolve_home,
)
from athenad.config import load_config
from athenad.store.backend import has_database
from athenad.store.retention import (
    FINISHED_STATUSES,
    PrunePlan,
    PruneReport,
    make_plan,
    open_pruner,
    run_plan,
)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def summary(report: PruneReport) -> str:
    """One sentence of what was (or would be) pruned, then the jobs kept, if any."""
    by_status = ", ".join(f"{status} {count:,}" for status, count in report.jobs.items())
    jobs = _count(report.jobs_total, "job") + (f" ({by_status})" if by_status else "")
    verb = "would prune" if report.dry_run else "pruned"
    line = (
        f"{verb} {jobs}, {_count(report.checkpoints, 'checkpoint')} and "
        f"{_count(report.sessions, 'session')}"
    )
    if not report.dry_run:
        line += f" in {report.elapsed_ms / 1000:.1f} s"
    line += "."
    if report.kept:
        line += f"\nkept {_count(report.kept, 'old job')}: jobs that are not pruned depend on them."
    return line


def report_json(report: PruneReport, plan: PrunePlan) -> dict[str, object]:
    """The ``--json`` document: the report's figures and the ages it pruned by."""
    return {**report.as_dict(), "ages_s": plan.ages, "sessions_age_s": plan.session_age}


@click.command("prune")
@click.option(
    "--older-than",
    default=None,
    metavar="AGE",
    help="Prune finished jobs that ended longer ago than this (90m, 12h, 7d, 2w); "
    "default: the ages in [retention] of athena.toml.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help=f"Only jobs of this status ({', '.join(FINISHED_STATUSES)}); repeatable. "
    "Default: every finished status (with --older-than) or those [retention] sets.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be pruned; delete nothing.")
@json_option
@home_option
@handle_errors
def prune_command(
    older_than: str | None,
    statuses: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    home: str | None,
) -> None:
    """Delete old finished jobs and checkpoints, and idle sessions.

    Only completed, failed and cancelled jobs go, by when they ended, each status after
    its age in [retention] of athena.toml (or --older-than), and only once no job that
    stays depends on them. Sessions go after [retention] sessions (not with --status)
    unless an unfinished job names them. The totals of `athenactl metrics` still count
    pruned jobs.
    """
    where = resolve_home(home)
    config = load_config(where)
    plan = make_plan(config.retention, older_than, statuses)
    if not has_database(where, config.daemon):
        fail(f"{where.root} has no athena.db, so there is nothing to prune (pass --home?).")
    pruner = open_pruner(where, config)
    try:
        report = run_plan(pruner, plan, dry_run=dry_run)
    finally:
        pruner.close()
    if as_json:
        print_json(report_json(report, plan))
    else:
        click.echo(summary(report))
