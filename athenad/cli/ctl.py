"""``athenactl``: submit, wait for, inspect, cancel and retry jobs.

Everything but execution works while the daemon is stopped: it only reads and
writes athena.db.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from athenad.cli.common import (
    AthenaGroup,
    FiniteFloat,
    fail,
    group_database_url_option,
    group_home_option,
    handle_errors,
    home_option,
    json_option,
    print_json,
    resolve_home,
)
from athenad.config import MAX_SECONDS, load_config
from athenad.errors import InvalidInput, WaitTimeout
from athenad.store.backend import (
    backend_of,
    describe_database,
    has_database,
    migrate_database,
    open_store,
)
from athenad.store.contract import STATUSES
from athenad.store.jobspec import MAX_PAYLOAD_BYTES, parse_moment, payload_too_large
from athenad.util.timefmt import parse_duration

if TYPE_CHECKING:
    from athenad.store.contract import JobStore

SHOW_KEYS = (
    "id",
    "type",
    "agent_type",
    "status",
    "queue",
    "run_after",
    "wait_reason",
    "progress",
    "progress_message",
    "progress_at",
    "approval_question",
    "approval_decision",
    "approval_note",
    "approval_deadline",
    "wait_event_key",
    "priority",
    "attempts",
    "max_attempts",
    "parents",
    "result",
    "error",
    "created_at",
    "started_at",
    "completed_at",
    "duration_ms",
    "worker_pid",
    "payload",
    "interruptions",
    "cancelled_by",
    "checkpoint_iteration",
    "resumed_from",
    "checkpoint_note",
    "session_id",
    "model",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "budget_usd",
    "steps",
    "unique_key",
    "concurrency_key",
    "timeout_s",
    "log_seq",
    "log_dropped",
    "traceback",
)
EXIT_WAIT_FAILED = 1
EXIT_WAIT_TIMEOUT = 2


# The commands defined elsewhere, loaded when named: "module:attribute" (a dotted
# attribute names a group's subcommand) and the summary `athenactl --help` shows,
# which tests/unit/test_cli_imports.py checks against the command's own.
LAZY_COMMANDS = {
    "backup": (
        "athenad.cli.sessions_cmd:backup_command",
        "Write athena.db (a consistent snapshot) and .athena/ into one archive at DEST.",
    ),
    "checkpoints": (
        "athenad.cli.checkpoints_cmd:checkpoints_command",
        "List the checkpoints of job JOB_ID: iteration, time, size, and whether each verifies.",
    ),
    # The seed's `athena --continue` / `--resume`, at the top level too.
    "continue": (
        "athenad.cli.sessions_cmd:sessions_group.continue",
        "Show the most recent session on the current git branch.",
    ),
    "failed": (
        "athenad.cli.analytics_cmd:failed_command",
        "Failed jobs, newest first: error, attempts, when. `show ID` prints a traceback.",
    ),
    "logs": (
        "athenad.cli.logs_cmd:logs_command",
        "Print the log lines of job JOB: its agent's ctx.log lines and the worker's.",
    ),
    "metrics": (
        "athenad.cli.analytics_cmd:metrics_command",
        "Job counters by agent type, queue gauges and durations as Prometheus text.",
    ),
    "restore": (
        "athenad.cli.sessions_cmd:restore_command",
        "Restore athena.db and .athena/ from an archive (the daemon must be stopped).",
    ),
    "resume": (
        "athenad.cli.sessions_cmd:sessions_group.resume",
        "Show a session to resume; without ID, pick one interactively.",
    ),
    "schedule": (
        "athenad.cli.schedule_cmd:schedule_group",
        "Schedules from athena.toml: when they run, their last slot and next runs.",
    ),
    "sessions": (
        "athenad.cli.sessions_cmd:sessions_group",
        "Conversation sessions: JSON Lines files under .athena/sessions/ (tables on PostgreSQL).",
    ),
    "stats": (
        "athenad.cli.analytics_cmd:stats_command",
        "Jobs, outcomes and durations per agent type; the queue; throughput.",
    ),
    "prune": (
        "athenad.cli.prune_cmd:prune_command",
        "Delete old finished jobs and checkpoints, and idle sessions.",
    ),
    "queue": (
        "athenad.cli.queue_cmd:queue_group",
        "Named queues: list them with their counts and limits, pause, resume, set limits.",
    ),
    # `athenad status`, the very command.
    "status": (
        "athenad.cli.daemon:status",
        "Show the supervisor, its workers (memory, CPU, current job) and the queue.",
    ),
    "top": (
        "athenad.cli.analytics_cmd:top_command",
        "A live view of the workers and the queue; q or Ctrl-C quits.",
    ),
    "trends": (
        "athenad.cli.analytics_cmd:trends_command",
        "Jobs, failures and p95 duration per hour or day (by creation time).",
    ),
    "web": (
        "athenad.cli.web_cmd:web_command",
        "Serve a web dashboard and a JSON API of the home's jobs (read-only by default).",
    ),
}


@click.group(
    cls=AthenaGroup,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="athena", prog_name="athenactl")
@group_home_option
@group_database_url_option
def main() -> None:
    """Control Athena: submit agent jobs, follow them, and look at what happened."""
    # AthenaGroup.invoke sends library log events to stderr, so --json output on
    # stdout stays parseable.


def open_queue(home: str | None, *, create: bool = False) -> JobStore:
    """The home's queue; only ``submit`` creates a home that has no athena.db yet."""
    resolved = resolve_home(home)
    settings = load_config(resolved).daemon
    if not create and not has_database(resolved, settings):
        raise InvalidInput(
            f"{resolved.root} has no athena.db: submit a job or start athenad there first "
            "(or pass --home / set ATHENA_HOME)."
        )
    resolved.ensure()
    return open_store(resolved, settings)


def read_payload(payload: str | None, payload_file: str | None) -> Any:
    if payload is not None and payload_file is not None:
        raise InvalidInput("give either --payload or --payload-file, not both.")
    if payload_file is not None:
        if not payload_file:
            raise InvalidInput("--payload-file needs a file name, or - for stdin.")
        try:
            text = _read_limited(payload_file)
        except OSError as exc:
            raise InvalidInput(
                f"cannot read payload file {payload_file}: {exc.strerror}."
            ) from None
        except UnicodeDecodeError:
            raise InvalidInput(f"payload file {payload_file} is not UTF-8 text.") from None
        source = "stdin" if payload_file == "-" else payload_file
    elif payload is not None:
        text, source = payload, "--payload"
    else:
        return None
    if len(text) > MAX_PAYLOAD_BYTES:  # characters: at least as many bytes
        raise InvalidInput(payload_too_large(f"the payload from {source}"))
    import json

    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the payload from {source} is not JSON: {exc}.") from None
    except ValueError as exc:
        raise InvalidInput(f"the payload from {source} is not JSON: {exc}.") from None
    except RecursionError:
        raise InvalidInput(f"the payload from {source} nests too deeply.") from None


def _read_limited(payload_file: str) -> str:
    """The payload file's text (``-``: stdin), reading no more than the payload limit
    allows, so a huge file is refused before it fills the memory."""
    if payload_file == "-":
        text = sys.stdin.read(MAX_PAYLOAD_BYTES + 1)
    else:
        with open(payload_file, encoding="utf-8") as stream:
            text = stream.read(MAX_PAYLOAD_BYTES + 1)
    if len(text) > MAX_PAYLOAD_BYTES:
        source = "stdin" if payload_file == "-" else payload_file
        raise InvalidInput(payload_too_large(f"the payload from {source}"))
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


@main.command()
@click.argument("job_type", metavar="TYPE")
@click.option("--payload", default=None, help="The payload as JSON text.")
@click.option(
    "--payload-file", default=None, help="Read the JSON payload from a file, or - for stdin."
)
@click.option(
    "--after", multiple=True, metavar="ID", help="Run after this job completes (repeatable)."
)
@click.option(
    "--priority", type=int, default=None, help="Higher runs first [default: the queue's, else 0]."
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--queue", "queue_name", default="default", show_default=True, help="Named queue.")
@click.option("--delay", default=None, metavar="DURATION", help="Start after 90s, 5m, 2h ...")
@click.option("--at", "run_at", default=None, metavar="TIME", help="Start at an ISO 8601 time.")
@click.option("--unique-key", default=None, metavar="KEY", help="One live job per key.")
@click.option(
    "--concurrency-key", default=None, metavar="KEY", help="Limit running jobs sharing KEY."
)
@click.option(
    "--budget-usd",
    type=FiniteFloat(min=0, min_open=True, max=1e12),
    default=None,
    help="Model calls of this job stop once it spent this much (USD).",
)
@click.option(
    "--approval-timeout",
    default=None,
    metavar="DURATION",
    help="A request for approval not decided in time comes back rejected.",
)
@click.option(
    "--timeout",
    type=FiniteFloat(min=0, min_open=True, max=MAX_SECONDS),
    default=None,
    help="Seconds.",
)
@click.option("--session", "session_id", default=None, help="Attach a conversation session.")
@click.option("--wait", "wait_for", is_flag=True, help="Wait until the job finishes.")
@json_option
@home_option
@handle_errors
def submit(
    job_type: str,
    payload: str | None,
    payload_file: str | None,
    after: tuple[str, ...],
    priority: int | None,
    max_attempts: int,
    queue_name: str,
    delay: str | None,
    run_at: str | None,
    unique_key: str | None,
    concurrency_key: str | None,
    approval_timeout: str | None,
    budget_usd: float | None,
    timeout: float | None,
    session_id: str | None,
    wait_for: bool,
    as_json: bool,
    home: str | None,
) -> None:
    """Submit a job of TYPE (an agent name) and print its id."""
    from workers.registry import BUILTIN_AGENTS, known_agents

    resolved = resolve_home(home)
    config = load_config(resolved)
    # A built-in or configured type needs no look through every installed package.
    if job_type not in BUILTIN_AGENTS and job_type not in config.agents:
        agents = known_agents(config)
        if job_type not in agents:
            fail(f"unknown job type {job_type!r}; known types: {', '.join(sorted(agents))}.")
    data = read_payload(payload, payload_file)
    delay_s = parse_duration(delay, "--delay") if delay is not None else 0.0
    if run_at is not None:
        parse_moment(run_at, "--at")
    task = {
        "type": job_type,
        "payload": data,
        "after": list(after),
        "priority": priority,
        "max_attempts": max_attempts,
        "timeout_s": timeout,
        "session_id": session_id,
        "queue": queue_name,
        "delay_s": delay_s,
        "run_at": run_at,
        "unique_key": unique_key,
        "concurrency_key": concurrency_key,
        "budget_usd": budget_usd,
        "approval_timeout_s": (
            parse_duration(approval_timeout, "--approval-timeout") if approval_timeout else None
        ),
    }
    with open_queue(home, create=True) as queue:
        (outcome,) = queue.enqueue([task])
        job_id = outcome.id
        if not wait_for:
            if as_json:
                print_json({"id": job_id, "duplicate": outcome.duplicate})
            else:
                click.echo(job_id)
            return
        if not as_json:
            click.echo(job_id)
            sys.stdout.flush()  # the id is useful while waiting
        code = _wait(queue, [job_id], None, quiet=as_json)
        if as_json:
            print_json(_show_dict(queue.get(job_id)))
        sys.exit(code)


@main.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--timeout",
    type=FiniteFloat(min=0, max=MAX_SECONDS),
    default=None,
    help="Give up after S seconds.",
)
@json_option
@home_option
@handle_errors
def wait(job_ids: tuple[str, ...], timeout: float | None, as_json: bool, home: str | None) -> None:
    """Wait for jobs: exit 0 if all completed, 1 if any failed or was cancelled, 2 on timeout."""
    with open_queue(home) as queue:
        code = _wait(queue, list(job_ids), timeout, quiet=as_json)
        if as_json:
            print_json([_show_dict(queue.get(job_id)) for job_id in job_ids])
    sys.exit(code)


def _wait(queue: JobStore, job_ids: list[str], timeout: float | None, *, quiet: bool) -> int:
    from athenad.store.waiting import FINISHED, wait_steps

    progress = None
    if sys.stderr.isatty() and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        progress = Progress(
            TextColumn("waiting"), BarColumn(), MofNCompleteColumn(), transient=True
        )
        task = progress.add_task("jobs", total=len(job_ids))
        progress.start()
    steps = wait_steps(queue, job_ids, timeout)
    try:
        while True:
            delay, states = next(steps)
            if progress is not None:
                finished = sum(1 for state in states.values() if state[0] in FINISHED)
                progress.update(task, completed=finished)
            time.sleep(delay)
    except StopIteration as done:
        states = done.value
    except WaitTimeout as exc:
        click.echo(f"error: {exc.message}", err=True)
        return EXIT_WAIT_TIMEOUT
    finally:
        if progress is not None:
            progress.stop()
    bad = [j for j in job_ids if states[j][0] != "completed"]
    for job_id in bad:
        status, _result, error, _cause = states[job_id]
        click.echo(f"error: job {job_id} {status}: {error or 'no error recorded'}", err=True)
    return EXIT_WAIT_FAILED if bad else 0


def _show_dict(job: dict[str, Any]) -> dict[str, Any]:
    return {key: job.get(key) for key in SHOW_KEYS}


@main.command()
@click.argument("job_id", metavar="ID")
@json_option
@home_option
@handle_errors
def show(job_id: str, as_json: bool, home: str | None) -> None:
    """Show one job: status, timings, result, and the whole traceback of a failure."""
    from athenad.store.steps import step_store

    with open_queue(home) as queue:
        job = _show_dict(queue.get(job_id))
        job["steps"] = step_store(queue).count(job_id)
    if as_json:
        print_json(job)
        return
    import json

    width = max(len(key) for key in SHOW_KEYS)
    for key in SHOW_KEYS:
        value = job[key]
        if (
            key == "traceback"
            or value is None
            or value == []
            or (key == "log_dropped" and not value)
        ):
            continue
        if key in ("steps", "tokens_in", "tokens_out", "cost_usd", "log_seq") and not value:
            continue
        if key == "progress":
            value = f"{value:.0%}"
        if (
            key == "run_after"
            and job["status"] not in ("scheduled", "waiting")
            and not job["wait_reason"]
        ):
            continue  # only said of a job waiting for its time
        if key in ("payload", "result", "parents"):
            value = json.dumps(value, ensure_ascii=False)
        click.echo(f"{key:<{width}}  {value}")
    if job["traceback"]:
        click.echo("\ntraceback:\n" + job["traceback"].rstrip())


@main.command()
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--type", "job_type", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@home_option
@handle_errors
def jobs(
    status: str | None, job_type: str | None, limit: int, as_json: bool, home: str | None
) -> None:
    """List jobs, newest first."""
    with open_queue(home) as queue:
        rows = queue.list_jobs(status=status, type=job_type, limit=limit)
    if as_json:
        print_json([_show_dict(row) for row in rows])
        return
    print_jobs_table(rows)


main.add_command(jobs, name="ls")


STATUS_COLOURS = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def print_jobs_table(rows: list[dict[str, Any]]) -> None:
    """Jobs as aligned columns, the first line of each error last."""
    from athenad.cli.plain_table import echo_table

    if not rows:
        click.echo("no jobs")
        return
    headers = ("id", "type", "status", "prio", "try", "created (UTC)", "duration", "error")
    cells = []
    for row in rows:
        duration = f"{row['duration_ms'] / 1000:.2f} s" if row["duration_ms"] is not None else "-"
        error = (row["error"] or "").splitlines()[0][:60] if row["error"] else ""
        cells.append(
            (
                row["id"],
                row["type"],
                row["status"],
                str(row["priority"]),
                f"{row['attempts']}/{row['max_attempts']}",
                row["created_at"][:19].replace("T", " "),
                duration,
                error,
            )
        )
    colours = [STATUS_COLOURS.get(row["status"]) for row in rows]
    echo_table(headers, cells, colours=colours, colour_column=2)


@main.command()
@click.argument("job_id", metavar="JOB")
@click.argument("key")
@click.option("--payload", default=None, help="The event's payload as JSON text.")
@click.option("--payload-file", default=None, help="Read the JSON payload from a file, or -.")
@json_option
@home_option
@handle_errors
def send(
    job_id: str,
    key: str,
    payload: str | None,
    payload_file: str | None,
    as_json: bool,
    home: str | None,
) -> None:
    """Send event KEY to job JOB: a job waiting for it resumes; otherwise it is kept for
    the job's next wait on KEY."""
    from athenad.store.steps import step_store

    data = read_payload(payload, payload_file)
    with open_queue(home) as queue:
        outcome = step_store(queue).send_event(job_id, key, data)
    if as_json:
        print_json({"id": job_id, "key": key, "outcome": outcome})
    else:
        click.echo(f"{job_id} {key} {outcome}")


@main.command()
@click.argument("job_id", metavar="JOB")
@json_option
@home_option
@handle_errors
def steps(job_id: str, as_json: bool, home: str | None) -> None:
    """The durable steps a job recorded: name, number, status, tries, time, result size."""
    from athenad.store.steps import step_store

    with open_queue(home) as queue:
        rows = step_store(queue).steps(job_id)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no steps")
        return
    from athenad.cli.plain_table import echo_table

    headers = ("seq", "name", "status", "attempt", "tries", "ms", "bytes", "detail")
    cells = [
        (
            str(row["seq"]),
            row["name"],
            row["status"],
            str(row["attempt"]),
            str(row["tries"]),
            "-" if row["duration_ms"] is None else str(row["duration_ms"]),
            str(row["result_bytes"]),
            row["error"] or (f"until {row['wake_at']}" if row["wake_at"] else ""),
        )
        for row in rows
    ]
    colours = [
        {"failed": "red", "sleeping": "cyan", "waiting": "cyan"}.get(r["status"]) for r in rows
    ]
    echo_table(headers, cells, colours=colours, colour_column=2)


def _decide(job_id: str, approved: bool, note: str | None, as_json: bool, home: str | None) -> None:
    with open_queue(home) as queue:
        decision = queue.decide_approval(job_id, approved, note)
    if as_json:
        print_json({"id": job_id, "decision": decision, "status": "pending"})
    else:
        click.echo(f"{job_id} {decision}")


@main.command()
@click.argument("job_id", metavar="ID")
@click.option("--note", default=None, help="Said to the agent with the decision.")
@json_option
@home_option
@handle_errors
def approve(job_id: str, note: str | None, as_json: bool, home: str | None) -> None:
    """Approve a job awaiting approval; it resumes on a worker with the decision."""
    _decide(job_id, True, note, as_json, home)


@main.command()
@click.argument("job_id", metavar="ID")
@click.option("--note", default=None, help="Said to the agent with the decision.")
@json_option
@home_option
@handle_errors
def reject(job_id: str, note: str | None, as_json: bool, home: str | None) -> None:
    """Reject a job awaiting approval; its agent decides (by default it fails with the note)."""
    _decide(job_id, False, note, as_json, home)


@main.command()
@click.argument("job_id", metavar="ID")
@json_option
@home_option
@handle_errors
def cancel(job_id: str, as_json: bool, home: str | None) -> None:
    """Cancel a job and its descendants; a running job is asked to stop."""
    with open_queue(home) as queue:
        outcome = queue.cancel(job_id)
    print_json({"id": job_id, "status": outcome}) if as_json else click.echo(f"{job_id} {outcome}")


@main.command()
@click.argument("job_id", metavar="ID")
@json_option
@home_option
@handle_errors
def retry(job_id: str, as_json: bool, home: str | None) -> None:
    """Run a failed or cancelled job again; descendants it cancelled wait for it again."""
    with open_queue(home) as queue:
        status = queue.retry(job_id)
    print_json({"id": job_id, "status": status}) if as_json else click.echo(f"{job_id} {status}")


@main.command()
@home_option
@json_option
@handle_errors
def agents(home: str | None, as_json: bool) -> None:
    """List the agents jobs can name as their type."""
    from workers.registry import known_agents

    table = known_agents(load_config(resolve_home(home)))
    if as_json:
        print_json(table)
        return
    for name in sorted(table):
        click.echo(f"{name:<20} {table[name]}")


@main.command()
@home_option
@json_option
@handle_errors
def migrate(home: str | None, as_json: bool) -> None:
    """Create or upgrade the database schema (athenad start does it too)."""
    resolved = resolve_home(home).ensure()
    settings = load_config(resolved).daemon
    version = migrate_database(resolved, settings)
    where = describe_database(resolved, settings)
    if as_json:
        print_json({"backend": backend_of(settings), "database": where, "version": version})
    else:
        click.echo(f"{where} is at schema version {version}.")


if __name__ == "__main__":
    main()
