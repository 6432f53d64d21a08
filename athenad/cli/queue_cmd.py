"""``athenactl queue``: named queues' state, counts and limits, changed live."""

from __future__ import annotations

from typing import Any

import click

from athenad.cli.common import handle_errors, home_option, json_option, print_json
from athenad.cli.ctl import open_queue
from athenad.store.queues import UNSET, QueueLimits

NO_LIMIT = ("none", "0", "off")


@click.group(name="queue")
def queue_group() -> None:
    """Named queues: list them with their counts and limits, pause, resume, set limits."""


@queue_group.command(name="list")
@json_option
@home_option
@handle_errors
def list_command(as_json: bool, home: str | None) -> None:
    """Each queue: state (open, paused, held), limits and unfinished jobs by status."""
    with open_queue(home) as queue:
        rows = queue.queues()
    if as_json:
        print_json(rows)
        return
    from athenad.cli.plain_table import echo_table

    headers = ["queue", "state", "concurrency", "rate", "priority", "scheduled", "pending"]
    headers += ["running", "blocked", "approval", "waiting", "note"]
    cells = []
    for row in rows:
        counts = row["counts"]
        note = ""
        if row["state"] == "held":
            note = f"held until {row['held_until']}: {row['hold_reason'] or ''}"
        elif row["starts_in_window"] is not None:
            note = f"{row['starts_in_window']} started in the rate's window"
        cells.append(
            (
                row["name"],
                row["state"],
                _text(row["concurrency"]),
                _text(row["rate"]),
                _text(row["priority"]),
                str(counts["scheduled"]),
                str(counts["pending"]),
                str(counts["running"]),
                str(counts["blocked"]),
                str(counts["awaiting_approval"]),
                str(counts["waiting"]),
                note,
            )
        )
    colours = [{"paused": "yellow", "held": "red"}.get(row["state"]) for row in rows]
    echo_table(headers, cells, colours=colours, colour_column=1)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


@queue_group.command()
@click.argument("name")
@json_option
@home_option
@handle_errors
def pause(name: str, as_json: bool, home: str | None) -> None:
    """Stop claims from queue NAME (running jobs finish); lasts until resumed."""
    with open_queue(home) as queue:
        queue.pause_queue(name, paused=True)
    print_json({"queue": name, "state": "paused"}) if as_json else click.echo(f"{name} paused")


@queue_group.command()
@click.argument("name")
@json_option
@home_option
@handle_errors
def resume(name: str, as_json: bool, home: str | None) -> None:
    """Let workers claim from queue NAME again."""
    with open_queue(home) as queue:
        queue.pause_queue(name, paused=False)
    print_json({"queue": name, "state": "open"}) if as_json else click.echo(f"{name} resumed")


@queue_group.command(name="set")
@click.argument("name")
@click.option("--concurrency", default=None, metavar="N", help="At most N running (none: no cap).")
@click.option("--rate", default=None, metavar="R", help="Starts per period: 60/m, 5/s (none).")
@click.option("--priority", default=None, metavar="P", help="Default priority of its jobs.")
@json_option
@home_option
@handle_errors
def set_command(
    name: str,
    concurrency: str | None,
    rate: str | None,
    priority: str | None,
    as_json: bool,
    home: str | None,
) -> None:
    """Change queue NAME's limits now, for every worker and host (until athenad restarts
    with other values for it in athena.toml)."""
    if concurrency is None and rate is None and priority is None:
        raise click.UsageError("give at least one of --concurrency, --rate, --priority.")
    limits = QueueLimits(
        concurrency=UNSET if concurrency is None else _whole("--concurrency", concurrency),
        rate=UNSET if rate is None else (None if rate.lower() in NO_LIMIT else rate),
        priority=UNSET if priority is None else _whole("--priority", priority, allow_zero=True),
    )
    with open_queue(home) as queue:
        queue.set_queue_limits(name, limits)
        row = next(row for row in queue.queues() if row["name"] == name)
    if as_json:
        print_json(row)
    else:
        click.echo(
            f"{name}: concurrency {_text(row['concurrency'])}, rate {_text(row['rate'])}, "
            f"priority {_text(row['priority'])}"
        )


def _whole(option: str, text: str, *, allow_zero: bool = False) -> int | None:
    if not allow_zero and text.lower() in NO_LIMIT:
        return None
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a whole number.", param_hint=option) from None
