"""``athenad``: start, stop, reload and inspect the supervisor of a home."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

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
from athenad.config import MAX_SECONDS, DaemonConfig, apply_overrides, load_config, parse_size
from athenad.errors import AthenaError
from athenad.paths import Home, read_pid
from athenad.store.backend import open_store

START_TIMEOUT_S = 90.0


@click.group(cls=AthenaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="athena", prog_name="athenad")
@group_home_option
@group_database_url_option
def main() -> None:
    """Athena's daemon: a supervisor running worker processes that execute agent jobs."""


def flag_settings(
    workers: int | None,
    max_jobs: int | None,
    max_memory: str | None,
    drain_timeout: float | None,
) -> dict[str, object]:
    """The ``[daemon]`` settings given as flags; they win over the environment and file."""
    overrides: dict[str, object] = {}
    if workers is not None:
        overrides["workers"] = workers
    if max_jobs is not None:
        overrides["max_jobs_per_worker"] = max_jobs
    if max_memory is not None:
        overrides["max_memory_per_worker"] = parse_size(max_memory)
    if drain_timeout is not None:
        overrides["drain_timeout"] = drain_timeout
    return overrides


@main.command()
@home_option
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1, max=1024),
    default=None,
    help="Worker processes (default: [daemon] workers, else the CPU count).",
)
@click.option("--foreground", is_flag=True, help="Stay attached and log to stderr (for systemd).")
@click.option("--reload", "watch", is_flag=True, help="Replace workers when agent sources change.")
@click.option(
    "--max-jobs-per-worker",
    type=click.IntRange(min=0),
    default=None,
    help="Recycle a worker after this many jobs (0 = never).",
)
@click.option(
    "--max-memory-per-worker",
    default=None,
    metavar="SIZE",
    help="Recycle a worker above this RSS, e.g. 512MB (0 = never).",
)
@click.option(
    "--drain-timeout",
    type=FiniteFloat(min=0, max=MAX_SECONDS),
    default=None,
    help="Seconds jobs may take to finish when stopping (default 30).",
)
@click.option(
    "--http",
    default=None,
    metavar="HOST:PORT",
    help="Also serve the web dashboard there (athenactl web), restarted if it dies.",
)
@click.option(
    "--http-allow-actions",
    is_flag=True,
    default=None,
    help="Let the dashboard act (cancel, retry ...) for holders of ATHENA_WEB_TOKEN.",
)
@click.option("--ready-fd", type=int, default=None, hidden=True)
@handle_errors
def start(
    home: str | None,
    workers: int | None,
    foreground: bool,
    watch: bool,
    max_jobs_per_worker: int | None,
    max_memory_per_worker: str | None,
    drain_timeout: float | None,
    http: str | None,
    http_allow_actions: bool | None,
    ready_fd: int | None,
) -> None:
    """Start the daemon; without --foreground it detaches once every worker is up."""
    resolved = resolve_home(home).ensure()
    resolved.ensure_private_files()
    # A bad athena.toml, or a database that cannot be used, is reported here, before
    # detaching; the database is created or migrated here, once.
    open_store(resolved, load_config(resolved).daemon).close()
    overrides = flag_settings(workers, max_jobs_per_worker, max_memory_per_worker, drain_timeout)
    if http is not None:
        overrides["http"] = http
    if http_allow_actions:
        overrides["http_allow_actions"] = True
    _check_http(apply_overrides(load_config(resolved), overrides).daemon)
    running = read_pid(resolved)
    if running is not None and running != os.getpid():
        fail(f"athenad is already running in {resolved.root} (pid {running}); stop it first.")
    if foreground:
        from athenad.daemon.supervisor import run_supervisor
        from athenad.util.logs import configure_logging

        configure_logging(sys.stderr)
        sys.exit(
            run_supervisor(
                resolved, workers=workers, ready_fd=ready_fd, watch=watch, overrides=overrides
            )
        )
    web_flags = [] if http is None else ["--http", http]
    web_flags += ["--http-allow-actions"] if http_allow_actions else []
    pid = _start_detached(
        resolved,
        workers,
        watch,
        max_jobs_per_worker,
        max_memory_per_worker,
        drain_timeout,
        web_flags,
    )
    click.echo(pid)


def _check_http(settings: DaemonConfig) -> None:
    """A dashboard the daemon would serve must be able to start: say why not, now."""
    if not settings.http:
        return
    import importlib.util

    from athenad.cli.web_cmd import parse_bind

    parse_bind(settings.http, "--http")
    if importlib.util.find_spec("starlette") is None:
        fail("--http needs the web extra: pip install 'athena[web]'.")
    if settings.http_allow_actions and not os.environ.get("ATHENA_WEB_TOKEN"):
        fail("--http-allow-actions needs ATHENA_WEB_TOKEN set: actions need a token.")


def _start_detached(
    home: Home, workers, watch, max_jobs, max_memory, drain_timeout, extra: list[str]
) -> int:
    """Launch ``athenad start --foreground`` in a new session; wait for it to report READY."""
    read_end, write_end = os.pipe()
    command = [
        sys.executable,
        "-m",
        "athenad.cli.daemon",
        "start",
        "--foreground",
        "--home",
        str(home.root),
        "--ready-fd",
        str(write_end),
    ]
    if workers:
        command += ["--workers", str(workers)]
    if watch:
        command.append("--reload")
    if max_jobs is not None:
        command += ["--max-jobs-per-worker", str(max_jobs)]
    if max_memory is not None:
        command += ["--max-memory-per-worker", str(max_memory)]
    if drain_timeout is not None:
        command += ["--drain-timeout", str(drain_timeout)]
    command += extra
    with open(home.log_file, "ab") as log_file:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    line = _read_line(read_end, START_TIMEOUT_S)
    os.close(read_end)
    if line.startswith("READY"):
        return int(line.split()[1])
    if line.startswith("FAILED"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        raise AthenaError(f"athenad did not start: {line[len('FAILED ') :]}")
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=0 if line else 10)
    if proc.poll() is None:
        proc.kill()
        raise AthenaError(
            f"athenad did not report ready within {START_TIMEOUT_S:g} s; see {home.log_file}."
        )
    raise AthenaError(
        f"athenad exited with code {proc.wait()} while starting; see {home.log_file}."
    )


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


@main.command()
@home_option
@click.option(
    "--timeout",
    type=FiniteFloat(min=0, max=MAX_SECONDS),
    default=None,
    help="Seconds running jobs may take to finish; then they are requeued "
    "(default: the daemon's drain_timeout, 30 s unless set).",
)
@handle_errors
def stop(home: str | None, timeout: float | None) -> None:
    """Stop claiming, let running jobs finish within the timeout, and exit."""
    from athenad.daemon.start_settings import daemon_settings
    from athenad.daemon.supervisor import STOP_TIMEOUT_FILE

    resolved = resolve_home(home)
    pid = read_pid(resolved)
    if pid is None:
        click.echo(f"athenad is not running in {resolved.root}.", err=True)
        return
    if timeout is None:
        timeout = daemon_settings(resolved).drain_timeout
    resolved.run_dir.mkdir(parents=True, exist_ok=True)
    (resolved.run_dir / STOP_TIMEOUT_FILE).write_text(str(timeout))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout + 15.0):
        settings = daemon_settings(resolved)  # read while the daemon's own record is valid
        _kill_daemon(pid)
        _requeue_orphans(resolved, settings)
    click.echo(f"athenad stopped (pid {pid}).")


def _wait_gone(pid: int, timeout: float) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _kill_daemon(pid: int) -> None:
    """SIGKILL a supervisor that did not stop, and every process it started."""
    import psutil

    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        process.kill()
        process.wait(timeout=5)


def _requeue_orphans(home: Home, settings: DaemonConfig) -> None:
    """Requeue what the killed daemon's workers held (the daemon's settings name its host)."""
    from athenad.daemon.rescue import rescue_if_abandoned

    with contextlib.closing(open_store(home, settings)) as queue:
        for job in queue.running_jobs():
            rescue_if_abandoned(
                queue,
                home,
                job,
                settings.lease,
                reason="daemon stopped",
                count_interruption=False,
                host=settings.host,
            )


@main.command()
@home_option
@json_option
@handle_errors
def status(home: str | None, as_json: bool) -> None:
    """Show the supervisor, its workers (memory, CPU, current job) and the queue."""
    from athenad.daemon.status import collect_status

    report = collect_status(resolve_home(home))
    if as_json:
        print_json(report)
        return
    if report["running"]:
        count = len(report["workers"])
        click.echo(
            f"athenad is running (pid {report['pid']}) with {count} worker{'s' * (count != 1)}"
        )
    else:
        click.echo("athenad is not running")
    if report["workers"] or report["hosts"]:
        _print_tables(report)
    for line in _slot_lines(report["slots"]):
        click.echo(line)
    queue = report["queue"]
    click.echo(
        f"queue: {queue['pending']} pending, {queue['running']} running, {queue['blocked']} blocked"
    )


def _print_tables(report: dict[str, Any]) -> None:
    """The workers and the daemons on the database (rich is loaded only for these)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report["workers"]:
        table = Table("pid", "slot", "rss", "cpu %", "job", "jobs done", "started")
        for worker in report["workers"]:
            table.add_row(
                str(worker["pid"]),
                "-" if worker["slot"] is None else str(worker["slot"]),
                f"{worker['rss_bytes'] / 1048576:.1f} MiB",
                f"{worker['cpu_percent']:.0f}",
                worker["job"] or "-",
                str(worker["jobs_done"]),
                worker["started_at"] or "-",
            )
        console.print(table)
    if report["hosts"]:
        hosts = Table("host", "daemon pid", "workers", "last seen")
        for daemon in report["hosts"]:
            hosts.add_row(
                daemon["host"], str(daemon["pid"]), str(daemon["workers"]), daemon["last_seen"]
            )
        console.print(hosts)


def _slot_lines(slots: list[dict[str, Any]]) -> list[str]:
    """One line per slot whose workers crashed lately or that is backing off."""
    lines = []
    for slot in slots:
        crashes, backoff = slot["crashes_last_minute"], slot["respawn_backoff_s"]
        if not crashes and not backoff:
            continue
        line = f"slot {slot['slot']}: {crashes} crash{'es' * (crashes != 1)} in the last minute"
        line += f", respawn backoff {backoff:g} s"
        if slot["respawn_in_s"] is not None:
            line += f", next worker in {slot['respawn_in_s']:.1f} s"
        lines.append(line)
    return lines


@main.command()
@home_option
@click.option(
    "--timeout",
    type=FiniteFloat(min=0, max=MAX_SECONDS),
    default=120.0,
    show_default=True,
    help="Seconds to wait for every new worker to be up.",
)
@click.option("--no-wait", is_flag=True, help="Ask for the reload and return at once.")
@handle_errors
def reload(home: str | None, timeout: float, no_wait: bool) -> None:
    """Replace workers one at a time so new agent code and config take effect."""
    resolved = resolve_home(home)
    pid = read_pid(resolved)
    if pid is None:
        fail(f"athenad is not running in {resolved.root}.")
    load_config(resolved)
    from athenad.daemon.supervisor import RELOAD_STATE_FILE

    state_file = resolved.run_dir / RELOAD_STATE_FILE
    with contextlib.suppress(FileNotFoundError):
        state_file.unlink()
    os.kill(pid, signal.SIGHUP)
    if no_wait:
        click.echo(f"athenad (pid {pid}) is replacing its workers.")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            state = {"state": "asked"}
        if state["state"] == "done":
            click.echo(f"athenad (pid {pid}) replaced its workers.")
            return
        if state["state"] == "failed":
            fail(f"reload failed, the old workers keep running: {state['error']}")
        time.sleep(0.05)
    fail(f"the reload did not finish within {timeout:g} s; see {resolved.log_file}.")


if __name__ == "__main__":
    main()
