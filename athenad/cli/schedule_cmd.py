"""``athenactl schedule``: the ``[schedules.NAME]`` of athena.toml, what they last
enqueued and when they run next."""

from __future__ import annotations

from typing import Any

import click

from athenad.cli.common import handle_errors, home_option, json_option, print_json, resolve_home
from athenad.config import load_config
from athenad.store.backend import has_database
from athenad.store.schedules import describe_all, slot_store


@click.group(name="schedule")
def schedule_group() -> None:
    """Schedules from athena.toml: when they run, their last slot and next runs."""


@schedule_group.command(name="list")
@json_option
@home_option
@handle_errors
def list_command(as_json: bool, home: str | None) -> None:
    """Each schedule: cron or every, time zone, queue, last slot enqueued (and its job)
    and the next run times, in the schedule's time zone."""
    where = resolve_home(home)
    config = load_config(where)
    if config.schedules and has_database(where, config.daemon):
        from athenad.cli.ctl import open_queue

        with open_queue(home) as queue:
            rows = describe_all(config.schedules, slot_store(queue))
    else:
        rows = describe_all(config.schedules, None)  # nothing enqueued yet
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"no schedules: add [schedules.NAME] to {where.config_path}")
        return
    from athenad.cli.plain_table import echo_table

    headers = ["schedule", "when", "timezone", "queue", "agent", "last slot", "job", "next run"]
    echo_table(headers, [_cells(row) for row in rows])


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    when = row["cron"] if row["cron"] is not None else f"every {row['every']}"
    if row["catch_up"]:
        when += " (catch up)"
    return (
        row["name"],
        when,
        row["timezone"],
        row["queue"],
        row["agent"],
        row["last_slot"] or "-",
        row["last_job_id"] or "-",
        row["next_runs"][0] if row["next_runs"] else "-",
    )
