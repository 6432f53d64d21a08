"""``athenactl stats | failed | trends | top | metrics``: looking at what happened.

Figures come from :mod:`athenad.analytics.queries`; this module only parses options and draws
them (rich tables, unicode bars and sparklines, Prometheus text, a live ``top``). Each
command reads athena.db as it finds it: never created, migrated or written, and closed
before anything is drawn.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from athenad.analytics import metrics
from athenad.analytics import queries as analytics
from athenad.analytics.readers import Reader, open_reader
from athenad.analytics.usage import GROUPINGS
from athenad.config import load_config
from athenad.daemon.slots import crash_totals
from athenad.daemon.status import sample_workers, worker_processes
from athenad.paths import Home, read_pid
from athenad.storage.job_logs import Progress, running_progress
from athenad.store.backend import has_database
from athenad.store.contract import UNFINISHED
from athenad.util.fsutil import atomic_write
from athenad.util.timefmt import parse_since, parse_ts, utc_now_text

from .common import (
    FiniteFloat,
    fail,
    handle_errors,
    home_option,
    json_option,
    print_json,
    resolve_home,
)

SPARKS = "▁▂▃▄▅▆▇█"
BAR = "█"
since_help = "Window by creation time: 30m, 1h, 1d, 7d, 2w ... or 'all'."
by_option = click.option(
    "--by",
    type=click.Choice(list(GROUPINGS)),
    help="Tokens and cost per agent type or per model.",
)

# The unfinished statuses as column titles, in UNFINISHED's order.
WAITING_COLUMNS = tuple(status.replace("awaiting_approval", "approval") for status in UNFINISHED)


@contextlib.contextmanager
def _reading(home: str | None) -> Iterator[Reader]:
    """The home's database (athena.db or the server), opened to look at and closed after."""
    resolved = resolve_home(home)
    with open_reader(resolved, load_config(resolved).daemon) as reader:
        yield reader


def _ms(value: float | int | None) -> str:
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s" if value < 60_000 else f"{value / 60_000:.1f}m"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _ago(timestamp: str | None, now: str) -> str:
    """'45s ago', '16m ago', '3h ago', '2d ago': the largest unit is enough in a list."""
    if not timestamp:
        return "-"
    seconds = max(int((parse_ts(now) - parse_ts(timestamp)).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def sparkline(values: Sequence[float | int | None]) -> str:
    """One block character per value, scaled to the largest; None draws a space."""
    top = max((v for v in values if v), default=0)
    if not top:
        return "".join(" " if v is None else SPARKS[0] for v in values)
    return "".join(
        " " if v is None else SPARKS[min(int(v / top * (len(SPARKS) - 1) + 0.5), 7)] for v in values
    )


def new_table(title: str) -> Table:
    """A compact table: narrow borders so 80 columns fit (output piped to a file)."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def _tokens(count: int) -> str:
    """950, 12.3k, 4.5M: token counts at a glance."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _usd(amount: float | None) -> str:
    """Cents for real money, four places for the fractions of a cent small calls cost."""
    if amount is None:
        return "-"
    return f"{amount:.2f}" if amount >= 1 or amount == 0 else f"{amount:.4f}"


def bar(value: float | int | None, top: float | int, width: int = 24) -> str:
    if not value or not top:
        return ""
    return BAR * max(1, round(value / top * width))


# ---- stats ----------------------------------------------------------------------------


def stats_tables(figures: dict[str, Any], by: str = "agent") -> Group:
    window = f"since {figures['since']} UTC" if figures["since"] else "all time"
    agents = new_table(f"agents ({window}), slowest first")
    agents.add_column("agent type", no_wrap=True)
    for name in ("jobs", "done", "failed", "cancel", "avg", "min", "max", "p50", "p95"):
        agents.add_column(name, justify="right", no_wrap=True, min_width=5)
    for row in figures["by_agent_type"]:
        agents.add_row(
            row["agent_type"],
            *(str(row[key]) for key in ("jobs", "completed", "failed", "cancelled")),
            *(_ms(row[key]) for key in ("avg_ms", "min_ms", "max_ms", "p50_ms", "p95_ms")),
        )
    statuses = new_table("jobs by status")
    for status in figures["by_status"]:
        statuses.add_column(status, justify="right")
    statuses.add_row(*(str(count) for count in figures["by_status"].values()))
    queue, rate = figures["queue"], figures["throughput"]
    now = new_table("queue now and throughput")
    for name in (*WAITING_COLUMNS, "oldest pending", "completed", "per minute"):
        now.add_column(name, justify="right")
    now.add_row(
        *(str(queue[status]) for status in UNFINISHED),
        _age(queue["oldest_pending_age_s"]),
        f"{rate['completed']} in {_age(rate['window_s'])}",
        f"{rate['per_minute']:.2f}",
    )
    return Group(agents, statuses, now, *usage_tables(figures, by))


def usage_tables(figures: dict[str, Any], by: str) -> list[Table]:
    """Tokens and cost per agent type or model (``by``), and the budgets."""
    column = "agent type" if by == "agent" else by
    usage = new_table(f"tokens and cost by {column}, costliest first")
    usage.add_column(column, no_wrap=True)
    for name in ("calls", "tokens in", "tokens out", "cost USD"):
        usage.add_column(name, justify="right", no_wrap=True)
    for row in figures["usage"]:
        usage.add_row(
            row["name"],
            str(row["calls"]),
            _tokens(row["tokens_in"]),
            _tokens(row["tokens_out"]),
            _usd(row["cost_usd"]),
        )
    budgets = figures["budgets"]
    daily, spent = budgets["daily_usd"], budgets["spent_today_usd"]
    limits = new_table("budgets")
    for name in ("daily USD", "spent today (UTC)", "jobs stopped by a budget"):
        limits.add_column(name, justify="right")
    reached = daily is not None and spent >= daily
    limits.add_row(
        "none" if daily is None else _usd(daily),
        Text(_usd(spent) + (" (reached)" if reached else ""), style="red" if reached else ""),
        Text(str(budgets["exceeded_jobs"]), style="red" if budgets["exceeded_jobs"] else ""),
    )
    return [usage, limits]


@click.command("stats")
@home_option
@click.option("--since", default="1d", show_default=True, help=since_help)
@by_option
@json_option
@handle_errors
def stats_command(home: str | None, since: str, by: str | None, as_json: bool) -> None:
    """Jobs, outcomes and durations per agent type; the queue; throughput.

    Then tokens and cost per agent type (or --by model), the home's [budgets] daily_usd
    with today's (UTC) spending, and the jobs a budget stopped.
    """
    lower = parse_since(since)
    daily_usd = load_config(resolve_home(home)).budgets.daily_usd
    with _reading(home) as conn:
        figures = analytics.stats(conn, since=lower, by=by or "agent", daily_usd=daily_usd)
    if as_json:
        print_json(figures)
    else:
        Console().print(stats_tables(figures, by or "agent"))


# ---- failed ---------------------------------------------------------------------------


@click.command("failed")
@home_option
@click.option("--since", default="all", show_default=True, help=since_help)
@click.option("--type", "job_type", default=None, help="Only jobs of this type.")
@click.option("--agent-type", default=None, help="Only jobs run by this agent type.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--cancelled", is_flag=True, help="List cancelled jobs too, with their cause.")
@json_option
@handle_errors
def failed_command(
    home: str | None,
    since: str,
    job_type: str | None,
    agent_type: str | None,
    limit: int,
    cancelled: bool,
    as_json: bool,
) -> None:
    """Failed jobs, newest first: error, attempts, when. `show ID` prints a traceback."""
    lower = parse_since(since)
    with _reading(home) as conn:
        rows = analytics.failed_jobs(
            conn,
            lower,
            type=job_type,
            agent_type=agent_type,
            limit=limit,
            include_cancelled=cancelled,
        )
    if as_json:
        print_json(rows)
        return
    console = Console()
    if not rows:
        console.print("no failed jobs" + (f" since {lower} UTC" if lower else "") + ".")
        return
    now = utc_now_text()
    table = new_table("failed jobs, newest first")
    table.add_column("id", no_wrap=True, min_width=15)
    table.add_column("type", max_width=18)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("when", no_wrap=True)
    table.add_column("error", min_width=24, ratio=1)
    for row in rows:
        kind = (
            row["type"]
            if row["type"] == row["agent_type"]
            else (f"{row['type']} ({row['agent_type']})")
        )
        if row["cancelled_by"]:
            cause = analytics.first_line(row["cause_error"]) or row["cause_status"] or "?"
            error = Text(f"cancelled by {row['cancelled_by']}: {cause}", style="yellow")
        elif row["status"] == "cancelled":
            error = Text(row["error_line"] or "cancelled", style="yellow")
        else:
            error = Text(row["error_line"], style="red")
        table.add_row(
            row["id"],
            kind,
            f"{row['attempts']}/{row['max_attempts']}",
            _ago(row["completed_at"] or row["created_at"], now),
            error,
        )
    console.print(table)
    console.print("[dim]athenactl show ID prints the whole traceback.[/dim]")


# ---- trends ---------------------------------------------------------------------------


def trends_view(buckets: list[dict[str, Any]], bucket: str) -> Group:
    jobs = [b["jobs"] for b in buckets]
    failed = [b["failed"] for b in buckets]
    p95 = [b["p95_ms"] for b in buckets]
    tokens = [b["tokens_in"] + b["tokens_out"] for b in buckets]
    cost = [b["cost_usd"] for b in buckets]
    summary = Table.grid(padding=(0, 2))
    summary.add_row("jobs", Text(sparkline(jobs), style="cyan"), f"max {max(jobs)}")
    summary.add_row("failed", Text(sparkline(failed), style="red"), f"max {max(failed)}")
    top_p95 = max((v for v in p95 if v is not None), default=None)
    summary.add_row("p95", Text(sparkline(p95), style="magenta"), f"max {_ms(top_p95)}")
    summary.add_row("tokens", Text(sparkline(tokens), style="blue"), f"max {_tokens(max(tokens))}")
    summary.add_row("cost", Text(sparkline(cost), style="green"), f"max {_usd(max(cost))} USD")
    for name, series in _cost_by_name(buckets).items():
        summary.add_row(
            Text(f"  {name}", overflow="ellipsis", no_wrap=True),
            Text(sparkline(series), style="green"),
            f"total {_usd(sum(series))} USD",
        )
    table = new_table(f"per {bucket}")
    table.add_column(bucket)
    table.add_column("jobs", justify="right")
    table.add_column("")
    table.add_column("failed", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("")
    table.add_column("tokens", justify="right")
    table.add_column("cost USD", justify="right")
    for row in buckets:
        table.add_row(
            row["bucket"],
            str(row["jobs"]),
            Text(bar(row["jobs"], max(jobs)), style="cyan"),
            Text(str(row["failed"]), style="red" if row["failed"] else ""),
            _ms(row["p95_ms"]),
            Text(bar(row["p95_ms"], top_p95 or 0, 16), style="magenta"),
            _tokens(row["tokens_in"] + row["tokens_out"]),
            _usd(row["cost_usd"]),
        )
    return Group(summary, table)


def _cost_by_name(buckets: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``{name: cost per bucket}`` from the buckets' ``usage`` rows (``--by``), costliest first."""
    names = sorted({row["name"] for b in buckets for row in b.get("usage", [])})
    series = {
        name: [sum(r["cost_usd"] for r in b.get("usage", []) if r["name"] == name) for b in buckets]
        for name in names
    }
    return dict(sorted(series.items(), key=lambda item: -sum(item[1])))


@click.command("trends")
@home_option
@click.option("--since", default="7d", show_default=True, help=since_help)
@click.option(
    "--bucket",
    type=click.Choice(["hour", "day", "auto"]),
    default="auto",
    show_default=True,
    help="Bucket size; auto is hour for windows up to 2 days, else day.",
)
@by_option
@json_option
@handle_errors
def trends_command(
    home: str | None, since: str, bucket: str, by: str | None, as_json: bool
) -> None:
    """Jobs, failures and p95 duration per hour or day (by creation time).

    Tokens and cost per bucket count by when they were spent; --by adds each agent
    type's or model's cost.
    """
    lower = parse_since(since)
    if bucket == "auto":
        short = lower is not None and (
            (parse_ts(utc_now_text()) - parse_ts(lower)).total_seconds() <= 2 * 86400
        )
        bucket = "hour" if short else "day"
    with _reading(home) as conn:
        buckets = analytics.trends(conn, lower, bucket, by=by)
    if as_json:
        print_json(buckets)
    elif not buckets:
        Console().print("no jobs" + (f" since {lower} UTC" if lower else "") + ".")
    else:
        Console().print(trends_view(buckets, bucket))


# ---- metrics --------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """A scraper reading the file meanwhile sees the old or the new text, never half."""
    path = path.resolve()
    if not path.parent.is_dir():
        fail(f"cannot write {path}: the directory {path.parent} does not exist.")
    atomic_write(path, text.encode("utf-8"), mode=0o644)


@click.command("metrics")
@home_option
@click.option("--window", default="1h", show_default=True, help="Window of the duration quantiles.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file atomically (e.g. node_exporter's textfile directory).",
)
@handle_errors
def metrics_command(home: str | None, window: str, output: Path | None) -> None:
    """Job counters by agent type, queue gauges and durations as Prometheus text.

    Tokens (in and out) and USD per model are counters too, summed over every model call.
    """
    lower = parse_since(window, "--window")
    with _reading(home) as conn:
        figures = metrics.metrics(conn, lower)
    pid = read_pid(resolve_home(home))
    gauges = {
        "athena_daemon_up": ("1 if the athenad supervisor is running.", int(pid is not None)),
        "athena_workers": ("Live worker processes.", len(worker_processes(pid)) if pid else 0),
    }
    text = metrics.prometheus_text(figures, gauges, crash_totals(resolve_home(home)))
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_atomically(output, text)


# ---- top ------------------------------------------------------------------------------


def _queue_now(home: Home, workers: list[dict[str, Any]], now: str) -> dict[str, Any]:
    """The queue, jobs completed in the last minute, and which worker runs which job.

    Without an athena.db there is nothing queued; the file is not created.
    """
    empty: dict[str, Any] = {**dict.fromkeys(UNFINISHED, 0), "oldest_pending_age_s": None}
    settings = load_config(home).daemon
    if not has_database(home, settings):
        return {**empty, "done": 0}
    with open_reader(home, settings) as reader, analytics.snapshot(reader) as conn:
        queue = analytics.queue_summary(conn, now)
        queue["done"] = analytics.throughput(conn, parse_since("1m"), now)["completed"]
        # The database, not the heartbeat file, is the truth about who runs what.
        held = {job["worker_pid"]: job for job in analytics.running_jobs(conn)}
        progress = running_progress(conn)
    for worker in workers:
        job = held.get(worker["pid"])
        worker["job"] = job["id"] if job else None
        worker["job_started_at"] = job["run_started_at"] if job else None
        worker["job_progress"] = progress.get(job["id"]) if job else None
    return queue


def top_frame(home: str | None) -> Group:
    """One screen of ``top``: the daemon, its workers and the queue."""
    resolved = resolve_home(home)
    pid = read_pid(resolved)
    workers = sample_workers(resolved, pid)
    now = utc_now_text()
    queue = _queue_now(resolved, workers, now)
    daemon = f"athenad pid {pid}" if pid is not None else "athenad is not running"
    header = Text.assemble(
        ("athena top", "bold"), f"  {daemon}  {now[:19]} UTC  ", ("q quits", "dim")
    )
    return Group(header, _workers_table(workers, now), _queue_table(queue))


def _workers_table(workers: list[dict[str, Any]], now: str) -> Table:
    table = new_table(f"workers ({len(workers)})")
    for name in ("pid", "rss", "cpu", "job", "runtime", "progress", "jobs done"):
        table.add_column(name, justify="left" if name in ("job", "progress") else "right")
    for worker in workers:
        started = worker["job_started_at"]
        runtime = (parse_ts(now) - parse_ts(started)).total_seconds() if started else None
        table.add_row(
            str(worker["pid"]),
            f"{worker['rss_bytes'] / 1e6:.1f} MB",
            f"{worker['cpu_percent']:.0f}%",
            worker["job"] or Text("idle", style="dim"),
            _age(runtime) if worker["job"] else "",
            _progress(worker.get("job_progress")),
            str(worker["jobs_done"]),
        )
    return table


def _progress(progress: Progress | None, width: int = 32) -> str:
    """``42% parsing page 3`` from what the job last reported (its message cut short)."""
    if progress is None:
        return ""
    parts = [] if progress.fraction is None else [f"{progress.fraction:.0%}"]
    if progress.message:
        message = " ".join(progress.message.split())
        parts.append(message if len(message) <= width else message[: width - 1] + "…")
    return " ".join(parts)


def _queue_table(queue: dict[str, Any]) -> Table:
    table = new_table("queue")
    for name in (*WAITING_COLUMNS, "oldest pending", "completed last min"):
        table.add_column(name, justify="right")
    table.add_row(
        *(str(queue[status]) for status in UNFINISHED),
        _age(queue["oldest_pending_age_s"]),
        str(queue["done"]),
    )
    return table


def _read_key(fd: int | None, timeout: float) -> str | None:
    """A key pressed within ``timeout`` seconds, '' when the terminal went away."""
    if fd is None:
        time.sleep(timeout)
        return None
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    return os.read(fd, 1).decode(errors="replace")


@click.command("top")
@home_option
@click.option("--interval", default=1.0, show_default=True, type=FiniteFloat(min=0.1, max=3600))
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@handle_errors
def top_command(home: str | None, interval: float, once: bool) -> None:
    """A live view of the workers and the queue; q or Ctrl-C quits."""
    console = Console()
    if once or not console.is_terminal:
        console.print(top_frame(home))
        return
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    try:
        if fd is not None:
            tty.setcbreak(fd)  # single keys without Enter; Ctrl-C still raises
        with Live(top_frame(home), console=console, screen=True, auto_refresh=False) as live:
            while True:
                key = _read_key(fd, interval)
                if key is not None and key in "qQ":  # '' (terminal gone) quits too
                    break
                live.update(top_frame(home), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
