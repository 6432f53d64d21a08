"""``athenactl logs JOB``: a job's log lines (its agent's and the worker's about each
run); ``--follow`` prints new ones as they come, until the job ends."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any

import click
import msgspec

from athenad.cli.common import fail, handle_errors, home_option, json_option, resolve_home
from athenad.config import load_config
from athenad.storage.job_logs import READ_PAGE, LogLine, open_job_logs
from athenad.store.backend import has_database, open_store
from athenad.store.waiting import FINISHED

if TYPE_CHECKING:
    from athenad.storage.job_logs import JobLogStore

POLL_S = 0.25
EXIT_INTERRUPTED = 130
_json = msgspec.json.Encoder()


def _value(value: Any) -> str:
    """A field's value as typed on a command line: bare when that is unambiguous."""
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'=" for c in value):
        return value
    return _json.encode(value).decode()


def format_line(line: LogLine) -> str:
    """``2026-11-26 10:00:00.123 info    message  key=value ...``"""
    text = f"{line.at} {line.level:<7} {line.message}"
    if line.fields:
        text += "  " + " ".join(f"{key}={_value(value)}" for key, value in line.fields.items())
    return text


def _print(job_id: str, lines: list[LogLine], as_json: bool) -> None:
    for line in lines:
        if as_json:
            record = {"job_id": job_id, **msgspec.structs.asdict(line)}
            click.echo(_json.encode(record).decode())
        else:
            click.echo(format_line(line))
    if lines:
        sys.stdout.flush()  # a follower reads each line as it comes, through a pipe too


def _print_new(store: JobLogStore, job_id: str, after: int, as_json: bool) -> tuple[int, bool]:
    """Print the lines after seq ``after``; returns the last seq and whether more wait."""
    lines = store.read(job_id, after=after, limit=READ_PAGE)
    _print(job_id, lines, as_json)
    return (lines[-1].seq if lines else after), len(lines) == READ_PAGE


def _show(store: JobLogStore, job_id: str, follow: bool, as_json: bool) -> int:
    """Print the log (following it until the job ends); returns the lines dropped."""
    after, more = 0, True
    while True:
        # The status first: a worker stores its last line before it records the end, so
        # once the status says the job ended, the read after it has every line.
        state = store.state(job_id)
        while more:
            after, more = _print_new(store, job_id, after, as_json)
        if not follow or state.status in FINISHED:
            if after == 0 and not as_json and not follow:
                click.echo(f"job {job_id} has no log lines ({state.status}).", err=True)
            return state.dropped
        time.sleep(POLL_S)
        more = True


@click.command("logs")
@click.argument("job_id", metavar="JOB")
@click.option(
    "--follow", "-f", is_flag=True, help="Print new lines as they come until the job ends."
)
@json_option
@home_option
@handle_errors
def logs_command(job_id: str, follow: bool, as_json: bool, home: str | None) -> None:
    """Print the log lines of job JOB: its agent's ctx.log lines and the worker's.

    --json prints one JSON object a line (job_id, seq, at, level, message, fields).
    """
    where = resolve_home(home)
    settings = load_config(where).daemon
    if not has_database(where, settings):
        # Opening the queue would create an empty database; say what is missing instead.
        fail(f"job {job_id!r} does not exist: there is no database at {where.db_path}.")
    with contextlib.closing(open_store(where, settings)) as queue:
        store = open_job_logs(queue)
        assert store is not None  # both backends' queues have one
        try:
            dropped = _show(store, job_id, follow, as_json)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)  # Ctrl-C ends a --follow quietly
    if dropped:
        click.echo(
            f"note: {dropped} more line{'s' * (dropped != 1)} of job {job_id} were dropped: "
            "its log reached [daemon] job_log_max_bytes.",
            err=True,
        )
