"""``athenactl checkpoints ID``: list a job's checkpoints (files, or rows on PostgreSQL)
and whether they verify."""

from __future__ import annotations

import contextlib

import click
from rich.console import Console
from rich.table import Table

from athenad.cli.common import (
    fail,
    handle_errors,
    home_option,
    json_option,
    print_json,
    resolve_home,
)
from athenad.config import load_config
from athenad.storage import open_stores
from athenad.storage.checkpoints import CheckpointInfo
from athenad.store.backend import has_database, open_store


def format_size(size: int) -> str:
    """Bytes as a short human figure: 512 B, 3.4 KB, 1.0 MB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _table(job_id: str, infos: list[CheckpointInfo], recorded: int | None) -> Table:
    table = Table(title=f"checkpoints of job {job_id}")
    table.add_column("iteration", justify="right", no_wrap=True)
    table.add_column("created_at", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("valid")
    table.add_column("error")
    for info in infos:
        marker = " *" if info.iteration == recorded else ""
        table.add_row(
            f"{info.iteration}{marker}",
            info.created_at or "-",
            format_size(info.size_bytes),
            "yes" if info.valid else "[red]no[/red]",
            info.error or "",
        )
    return table


@click.command("checkpoints")
@click.argument("job_id")
@json_option
@home_option
@handle_errors
def checkpoints_command(job_id: str, as_json: bool, home: str | None) -> None:
    """List the checkpoints of job JOB_ID: iteration, time, size, and whether each verifies."""
    where = resolve_home(home)
    settings = load_config(where).daemon
    if not has_database(where, settings):
        # Opening the queue would create an empty database; say what is missing instead.
        fail(f"job {job_id!r} does not exist: there is no database at {where.db_path}.")
    with contextlib.closing(open_store(where, settings)) as queue:
        recorded = queue.get(job_id).get("checkpoint_iteration")
        with contextlib.closing(open_stores(where, settings, queue=queue)) as stores:
            infos = stores.checkpoints.list(job_id)
    if as_json:
        print_json(infos)
        return
    if not infos:
        click.echo(f"job {job_id} has no checkpoints.")
        return
    console = Console()
    console.print(_table(job_id, infos, recorded))
    if recorded is not None:
        console.print(f"* the job's record resumes from iteration {recorded}.")
