"""Process faults, counted: a run of jobs through a real daemon while its workers are
SIGKILLed every 250 ms, its supervisor is SIGKILLed once and started again, and (on
PostgreSQL) its workers' connections are terminated; then the ledger the agents kept
and the queue are checked against each other.

Used by ``tests/chaos`` (a short run) and ``scripts/chaos`` (a long one, with a report).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from athenad.daemon.rescue import is_worker_of
from athenad.paths import Home
from tests.conftest import Daemon

LEASE_S = 2
FINISHED = ("completed", "failed", "cancelled")
POISON = "poison pill"
AGENT_NAMES = ("noop", "sleeper", "looper", "stepper")


@dataclass
class ChaosSettings:
    """One run: how many jobs, how long the faults last, on which queue."""

    jobs: int = 300
    fault_seconds: float = 12.0
    kill_every_s: float = 0.25
    workers: int = 4
    drain_timeout_s: float = 90.0
    database_url: str | None = None  # PostgreSQL when set, else SQLite in the home
    database_schema: str | None = None
    terminate_connections: bool = True  # PostgreSQL: one worker's connections ...
    terminate_every_s: float = 0.5  # ... terminated this often
    seed: int = 15


@dataclass
class ChaosReport:
    """The figures of one run; ``problems()`` lists each must-be-zero that is not."""

    backend: str
    jobs: int = 0
    fault_seconds: float = 0.0
    worker_kills: int = 0
    supervisor_restarts: int = 0
    connections_terminated: int = 0
    completed: int = 0
    interrupted_runs: int = 0
    lost: int = 0
    stuck: int = 0
    doubles: int = 0
    order_violations: int = 0
    redone_checkpointed_work: int = 0
    step_reruns: int = 0
    allowed_step_reruns: int = 0
    poison_pills: int = 0
    cancelled_after_poison_pill: int = 0
    integrity: str = "not checked"
    drained_after_s: float | None = None
    wall_seconds: float = 0.0
    examples: dict[str, list[str]] = field(default_factory=dict)

    MUST_BE_ZERO = (
        "lost",
        "stuck",
        "doubles",
        "order_violations",
        "redone_checkpointed_work",
        "step_reruns",
    )

    def problems(self) -> list[str]:
        found = [
            f"{name} = {getattr(self, name)}" for name in self.MUST_BE_ZERO if getattr(self, name)
        ]
        if self.integrity != "ok":
            found.append(f"integrity: {self.integrity}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- the scratch home ------------------------------------------------------------------


def prepare_home(root: Path) -> tuple[Home, Path]:
    """A home whose agents are the chaos agents, with a short lease; and the ledger folder."""
    home = Home.resolve(root / "home").ensure()
    shutil.copy(Path(__file__).with_name("chaos_agents.py"), home.root / "chaos_agents.py")
    agents = "".join(f'chaos_{name} = "chaos_agents:{name}"\n' for name in AGENT_NAMES)
    (home.root / "athena.toml").write_text(f"[daemon]\nlease = {LEASE_S}\n\n[agents]\n{agents}")
    ledger = root / "ledger"
    (ledger / "locks").mkdir(parents=True)
    return home, ledger


def job_specs(count: int, ledger: Path, rng: random.Random) -> list[list[dict[str, Any]]]:
    """About ``count`` jobs in batches: independent jobs of each kind, and fan-out /
    fan-in workflows (``after`` names jobs of the same batch by index)."""
    base = {"ledger": str(ledger)}
    batches: list[list[dict[str, Any]]] = []
    made = 0
    while made < count:
        batch: list[dict[str, Any]] = []
        for _ in range(10):
            kind = rng.choice(AGENT_NAMES)
            payload = {
                **base,
                "seconds": rng.uniform(0.02, 0.3),
                "iterations": rng.randint(3, 8),
                "steps": rng.randint(2, 5),
            }
            if kind == "looper":
                payload["seconds"] = rng.uniform(0.05, 0.15)
            if kind == "stepper":
                payload["seconds"] = rng.uniform(0.02, 0.1)
            batch.append({"type": f"chaos_{kind}", "payload": payload})
        # A workflow: 4 in parallel, one after all of them, one after that.
        start = len(batch)
        for _ in range(4):
            batch.append({"type": "chaos_sleeper", "payload": {**base, "seconds": 0.1}})
        batch.append(
            {"type": "chaos_noop", "payload": base, "after": list(range(start, start + 4))}
        )
        batch.append({"type": "chaos_noop", "payload": base, "after": [start + 4]})
        batches.append(batch)
        made += len(batch)
    return batches


# ---- faults ----------------------------------------------------------------------------


def live_workers(home: Home) -> list[int]:
    """Workers of this home that are ready (their heartbeat file exists) and running."""
    pids = []
    for path in home.run_dir.glob("worker-*.json"):
        with contextlib.suppress(ValueError):
            pid = int(path.stem.split("-")[1])
            if is_worker_of(home, pid) and psutil.Process(pid).status() not in (
                psutil.STATUS_ZOMBIE,
                psutil.STATUS_STOPPED,
            ):
                pids.append(pid)
    return pids


def daemon_log_events(home: Home, event: str) -> list[dict[str, Any]]:
    path = home.state_dir / "test-daemon.log"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(errors="replace").split("\n")[:-1]:
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict) and parsed.get("event") == event:
                found.append(parsed)
    return found


class ConnectionKiller:
    """Terminates a worker's PostgreSQL connections, found by their client ports."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=5)

    def terminate(self, pid: int) -> int:
        with contextlib.suppress(psutil.Error):
            ports = [
                c.laddr.port
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.raddr and c.status == psutil.CONN_ESTABLISHED
            ]
            if ports:
                rows = self.conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()",
                    (ports,),
                ).fetchall()
                return sum(1 for (done,) in rows if done)
        return 0

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def daemons(home: Home, workers: int, env: dict[str, str]) -> Iterator[list[Daemon]]:
    """The daemons a run starts; every one, and every worker of the home, killed after."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()
        # Workers of a killed supervisor are in their own process groups.
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if is_worker_of(home, process.pid):
                    process.kill()


def start_daemon(home: Home, workers: int, env: dict[str, str], started: list[Daemon]) -> Daemon:
    ready_before = len(daemon_log_events(home, "daemon_ready"))
    daemon = Daemon(home, workers=workers, env=env)
    started.append(daemon)
    # Kills resume only once it serves: a worker killed while the daemon is starting
    # would be a boot failure, which stops the daemon (by design).
    deadline = time.monotonic() + 60
    while len(daemon_log_events(home, "daemon_ready")) <= ready_before:
        if time.monotonic() > deadline or daemon.proc.poll() is not None:
            raise RuntimeError(f"the daemon did not become ready: {daemon.log_text()}")
        time.sleep(0.05)
    return daemon


# ---- the queue's rows ------------------------------------------------------------------


class Rows:
    """Plain SQL over the queue's tables, on either backend."""

    def __init__(self, home: Home, settings: ChaosSettings) -> None:
        self.settings = settings
        self.home = home

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.settings.database_url is None:
            lite = sqlite3.connect(f"file:{self.home.db_path}?mode=ro", uri=True, timeout=30)
            try:
                return lite.execute(sql).fetchall()
            finally:
                lite.close()
        import psycopg

        with psycopg.connect(
            self.settings.database_url,
            options=f"-c search_path={self.settings.database_schema}",
            connect_timeout=5,
        ) as server:
            return server.execute(sql).fetchall()

    def statuses(self) -> dict[str, tuple[str, str | None, int, str]]:
        """Each job's status, error, interruptions and agent."""
        rows = self.query("SELECT id, status, error, interruptions, agent_type FROM jobs")
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def parents(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        for job_id, parent in self.query("SELECT job_id, parent_id FROM job_parents"):
            found[job_id].append(parent)
        return found

    def integrity(self) -> str:
        """The database's own check (SQLite) and the queue's invariants (both)."""
        problems = []
        if self.settings.database_url is None:
            conn = sqlite3.connect(f"file:{self.home.db_path}?mode=ro", uri=True, timeout=30)
            try:
                result = conn.execute("PRAGMA integrity_check").fetchall()
                if result != [("ok",)]:
                    problems.append(f"integrity_check: {result[:3]}")
                keys = conn.execute("PRAGMA foreign_key_check").fetchall()
                if keys:
                    problems.append(f"{len(keys)} foreign key violations")
            finally:
                conn.close()
        checks = {
            "running jobs without a lease or worker": (
                "SELECT count(*) FROM jobs WHERE status = 'running' "
                "AND (lease_expires_at IS NULL OR worker_id IS NULL)"
            ),
            "completed jobs with an unfinished parent": (
                "SELECT count(*) FROM jobs j JOIN job_parents p ON p.job_id = j.id "
                "JOIN jobs pj ON pj.id = p.parent_id "
                "WHERE j.status = 'completed' AND pj.status <> 'completed'"
            ),
            "blocked jobs whose pending_parents disagrees": (
                "SELECT count(*) FROM jobs j WHERE j.status = 'blocked' AND j.pending_parents <> "
                "(SELECT count(*) FROM job_parents p JOIN jobs pj ON pj.id = p.parent_id "
                "WHERE p.job_id = j.id AND pj.status <> 'completed')"
            ),
            "finished jobs still holding a lease": (
                "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') "
                "AND lease_expires_at IS NOT NULL"
            ),
        }
        for what, sql in checks.items():
            count = self.query(sql)[0][0]
            if count:
                problems.append(f"{count} {what}")
        return "; ".join(problems) or "ok"


# ---- the run ---------------------------------------------------------------------------


def read_ledger(ledger: Path) -> list[dict[str, Any]]:
    path = ledger / "ledger.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by a kill is not an event
            events.append(json.loads(line))
    return events


def run_chaos(
    root: Path, settings: ChaosSettings, progress: Callable[[str], None] = lambda _: None
) -> ChaosReport:
    """Run the jobs through the faults, wait for them, and count."""
    from athenad.store.backend import open_postgres_queue
    from athenad.store.sqlite.queue import JobQueue

    began = time.monotonic()
    rng = random.Random(settings.seed)
    home, ledger = prepare_home(root)
    on_postgres = settings.database_url is not None
    report = ChaosReport(backend="postgres" if on_postgres else "sqlite")
    env: dict[str, str] = {}
    if on_postgres:
        assert settings.database_schema is not None
        env = {
            "ATHENA_DATABASE_URL": str(settings.database_url),
            "ATHENA_DATABASE_SCHEMA": settings.database_schema,
        }
    killer = None
    if on_postgres and settings.terminate_connections:
        killer = ConnectionKiller(str(settings.database_url))
    try:
        with daemons(home, settings.workers, env) as started:
            daemon = start_daemon(home, settings.workers, env, started)
            store: Any
            if on_postgres:
                assert settings.database_schema is not None
                store = open_postgres_queue(str(settings.database_url), settings.database_schema)
            else:
                store = JobQueue(home.db_path, run_dir=home.run_dir)
            with contextlib.closing(store):
                job_ids: list[str] = []
                for batch in job_specs(settings.jobs, ledger, rng):
                    job_ids += store.submit_many(batch)
            report.jobs = len(job_ids)
            progress(f"{report.jobs} jobs submitted; faults for {settings.fault_seconds:.0f} s")

            rows = Rows(home, settings)
            fault_began = time.monotonic()
            next_terminate = fault_began
            restarted = False
            next_look = fault_began + 2
            while time.monotonic() - fault_began < settings.fault_seconds:
                time.sleep(settings.kill_every_s)
                elapsed = time.monotonic() - fault_began
                if restarted and time.monotonic() >= next_look:
                    next_look += 2
                    done = rows.statuses()
                    if all(done[j][0] in FINISHED for j in job_ids):
                        break  # nothing left to break
                if not restarted and elapsed > settings.fault_seconds / 2:
                    daemon.proc.kill()  # the supervisor only: its workers carry on alone
                    daemon.proc.wait(timeout=10)
                    report.supervisor_restarts += 1
                    daemon = start_daemon(home, settings.workers, env, started)
                    restarted = True
                    progress("supervisor killed and started again")
                    continue
                if daemon.proc.poll() is not None:
                    raise RuntimeError(f"the daemon stopped: {daemon.log_text()}")
                victims = live_workers(home)
                if killer is not None and victims and time.monotonic() >= next_terminate:
                    report.connections_terminated += killer.terminate(rng.choice(victims))
                    next_terminate += settings.terminate_every_s
                if victims:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rng.choice(victims), signal.SIGKILL)
                        report.worker_kills += 1
            report.fault_seconds = round(time.monotonic() - fault_began, 1)
            faults_ended = time.monotonic()
            progress(
                f"faults over: {report.worker_kills} kills, "
                f"{report.connections_terminated} connections terminated; draining"
            )

            statuses: dict[str, tuple[str, str | None, int, str]] = {}
            while time.monotonic() - faults_ended < settings.drain_timeout_s:
                statuses = rows.statuses()
                if all(statuses[j][0] in FINISHED for j in job_ids):
                    report.drained_after_s = round(time.monotonic() - faults_ended, 1)
                    break
                time.sleep(0.5)
            statuses = rows.statuses()
            parents = rows.parents()
            for daemon in started:
                daemon.stop()
            report.integrity = rows.integrity()
        count(report, job_ids, statuses, parents, read_ledger(ledger))
    finally:
        if killer is not None:
            killer.close()
    report.wall_seconds = round(time.monotonic() - began, 1)
    return report


def count(
    report: ChaosReport,
    job_ids: list[str],
    statuses: dict[str, tuple[str, str | None, int, str]],
    parents: dict[str, list[str]],
    events: list[dict[str, Any]],
) -> None:
    """Fill the report's figures from the final rows and the ledger (in its write order)."""
    examples: dict[str, list[str]] = defaultdict(list)

    def flag(name: str, text: str) -> None:
        setattr(report, name, getattr(report, name) + 1)
        if len(examples[name]) < 5:
            examples[name].append(text)

    starts: dict[str, list[float]] = defaultdict(list)
    ends: dict[str, dict[int, float]] = defaultdict(dict)  # job -> fence -> end time
    checkpointed: dict[str, int] = {}
    steps_done: set[tuple[str, int]] = set()
    steps_called: set[tuple[str, int]] = set()
    for event in events:
        kind, job = event["event"], event["job"]
        if kind == "start":
            starts[job].append(event["t"])
        elif kind == "end":
            ends[job][event["fence"]] = event["t"]
        elif kind == "overlap":
            flag("doubles", f"{job} fence {event['fence']} pid {event['pid']}")
        elif kind == "iter":
            if event["i"] <= checkpointed.get(job, 0):
                flag("redone_checkpointed_work", f"{job} iteration {event['i']} ran again")
        elif kind == "ckpt":
            checkpointed[job] = max(checkpointed.get(job, 0), event["i"])
        elif kind == "step_call":
            key = (job, event["k"])
            if key in steps_done:
                flag("step_reruns", f"{job} step {event['k']} ran after its result was recorded")
            elif key in steps_called:
                report.allowed_step_reruns += 1  # killed before its result was recorded
            steps_called.add(key)
        elif kind == "step_done":
            steps_done.add((job, event["k"]))

    poisoned: set[str] = set()
    for job in job_ids:
        status, error, interruptions, agent = statuses.get(job, ("missing", None, 0, "?"))
        report.interrupted_runs += interruptions
        if status == "completed":
            report.completed += 1
            if not ends[job]:
                flag("lost", f"{job} completed without a finished run in the ledger")
        elif status == "failed" and POISON in (error or ""):
            report.poison_pills += 1
            poisoned.add(job)
        elif status == "cancelled":
            pass  # counted below, once every poison pill is known
        elif status in FINISHED:
            flag("lost", f"{job} ({agent}) {status}: {(error or '').splitlines()[:1]}")
        else:
            flag("stuck", f"{job} still {status}")
    for job in job_ids:
        status, error, _, agent = statuses.get(job, ("missing", None, 0, "?"))
        if status == "cancelled":
            if any(p in (error or "") for p in poisoned):
                report.cancelled_after_poison_pill += 1
            else:
                flag("lost", f"{job} ({agent}) cancelled: {(error or '').splitlines()[:1]}")

    for job, of in parents.items():
        if not starts[job]:
            continue
        for parent in of:
            if not ends[parent]:
                flag("order_violations", f"{job} started, its parent {parent} never ended")
                continue
            # The end of the parent's last holder (the highest fence) is its completion.
            parent_end = ends[parent][max(ends[parent])]
            if min(starts[job]) < parent_end:
                flag("order_violations", f"{job} started before its parent {parent} ended")
    report.examples = dict(examples)


def report_table(report: ChaosReport) -> str:
    """The figures as a two-column text table."""
    figures: list[tuple[str, Any]] = [
        ("backend", report.backend),
        ("jobs", report.jobs),
        ("faults for (s)", report.fault_seconds),
        ("workers SIGKILLed", report.worker_kills),
        ("supervisor restarts", report.supervisor_restarts),
        ("connections terminated", report.connections_terminated),
        ("interrupted runs", report.interrupted_runs),
        ("completed", report.completed),
        ("poison pills (failed on purpose)", report.poison_pills),
        ("  their descendants cancelled", report.cancelled_after_poison_pill),
        ("lost", report.lost),
        ("stuck", report.stuck),
        ("concurrent doubles", report.doubles),
        ("order violations", report.order_violations),
        ("checkpointed work redone", report.redone_checkpointed_work),
        ("steps re-run after recorded", report.step_reruns),
        ("steps re-run before recorded (allowed)", report.allowed_step_reruns),
        ("integrity", report.integrity),
        ("all done after the faults (s)", report.drained_after_s),
        ("wall time (s)", report.wall_seconds),
    ]
    width = max(len(name) for name, _ in figures)
    lines = [f"{name:<{width}}  {value}" for name, value in figures]
    for name, texts in report.examples.items():
        lines += [f"{name}: {text}" for text in texts]
    return "\n".join(lines)
