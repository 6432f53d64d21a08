"""One benchmark, every peer, one run: Athena beside Huey, RQ, Celery and procrastinate.

Run ``python scripts/bench_peers.py`` (``--quick`` for a smoke run of a couple of
minutes, ``--peers athena-sqlite,huey-sqlite`` to pick, ``--json PATH`` to keep the
figures). On this machine, with 2 worker processes each, every peer gets:

- enqueue then drain N no-op jobs (jobs/s, from the first enqueue to the end of the
  last job), with the peer's bulk API where it has one;
- a mixed run of N jobs where 10% are fan-in dependents of 9 others (Athena: ``after=``
  batch indexes; Celery: a chord of 9 with a callback; RQ: ``depends_on=[9 jobs]``;
  Huey and procrastinate have no fan-in: n/a);
- idle submit-to-start latency, p50 and p99: each job is submitted to an idle system
  (30 ms after the previous one started) and the submit time is compared with the
  time the task itself writes to a file as it begins (for Athena, a ``bench-mark``
  agent registered in the scratch home's ``athena.toml``; same machine, same clock);
- claim + complete cost with 10k and with 1M finished jobs in the table (Athena on
  SQLite and on PostgreSQL; the peers are not measured);
- RSS of the supervisor and of one idle worker (psutil, after the latency samples).

Peers: ``athena-sqlite`` (the default ``synchronous=NORMAL``), ``athena-sqlite-full``,
``athena-postgres``, ``huey-sqlite`` (SQLite's default ``synchronous=FULL``),
``huey-sqlite-normal``, ``huey-redis``, ``rq`` (2 ``rq worker`` processes, which fork a
work horse per job), ``celery`` (Redis broker and result backend, prefork with 2
processes, ``task_acks_late``) and ``procrastinate`` (2 worker processes of
concurrency 1). The peers run from ``.venv-bench/`` (installed there on first use,
never a project dependency); this same file drives each of them there with ``--role
peer``, a side that imports nothing from Athena. A peer that cannot be installed or
run gets its reason in its row and the others go on: no figure is ever estimated.

Redis is used in db 15 (FLUSHDB before and after each peer); PostgreSQL peers get a
fresh database or schema, dropped at the end. Every process the run starts is stopped
by its process group, and every scratch directory removed, also on failure or timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_support import BENCH_VENV, athenad, kill_daemon, peer_python, quantile, stop_group

ATHENA_PEERS = ("athena-sqlite", "athena-sqlite-full", "athena-postgres")
VENV_PEERS = ("huey-sqlite", "huey-sqlite-normal", "huey-redis", "rq", "celery", "procrastinate")
PEERS = ATHENA_PEERS + VENV_PEERS
REDIS_PEERS = ("huey-redis", "rq", "celery")

# Each peer's packages in .venv-bench/: (module to import, pip requirement).
REQUIREMENTS: dict[str, list[tuple[str, str]]] = {
    "huey-sqlite": [("huey", "huey>=2.5,<4")],
    "huey-sqlite-normal": [("huey", "huey>=2.5,<4")],
    "huey-redis": [("huey", "huey>=2.5,<4"), ("redis", "redis>=5")],
    "rq": [("rq", "rq>=1.16,<3"), ("redis", "redis>=5")],
    "celery": [("celery", "celery[redis]>=5.3,<6"), ("redis", "redis>=5")],
    "procrastinate": [("procrastinate", "procrastinate>=3,<4")],
}
DISTRIBUTION = {"huey": "huey", "rq": "rq", "celery": "celery", "procrastinate": "procrastinate"}

REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_DB = 15
DEFAULT_PG_URL = os.environ.get(
    "ATHENA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

FAN_IN = 9  # a dependent job waits for this many others: 10% of the mixed run
IDLE_GAP_S = 0.03  # before each latency sample: every worker is back in its idle wait
LATENCY_POLL_S = 0.001  # how often a sample looks for its start (not part of the figure)
DRAIN_POLL_S = 0.01
STEP_TIMEOUT_S = 300.0  # no single drain, wait or start-up may take longer than this
START_TIMEOUT_S = 10.0  # one latency sample's job must start within this


@dataclass(frozen=True)
class Sizes:
    jobs: int
    warmup: int
    samples: int
    workers: int
    small: int
    big: int
    cycles: int


def mixed_shape(jobs: int) -> tuple[int, int]:
    """(plain jobs, fan-in groups) for a mixed run of ``jobs``: each group is FAN_IN
    jobs and one dependent on all of them, so 10% of the jobs wait on others."""
    groups = jobs // (FAN_IN + 1)
    return jobs - groups * (FAN_IN + 1), groups


def rss_mib(supervisor: int | None, workers: list[int]) -> dict[str, float | None]:
    """RSS of the supervisor (None: the peer has none) and of the smallest worker."""
    import psutil

    sizes = [psutil.Process(pid).memory_info().rss / 2**20 for pid in workers]
    return {
        "supervisor_rss_mib": (
            None if supervisor is None else psutil.Process(supervisor).memory_info().rss / 2**20
        ),
        "worker_rss_mib": min(sizes) if sizes else None,
    }


# ---- the peers' side (run under .venv-bench/python; imports nothing from Athena) -------

MARK = '''
import os
import time


def mark(path):
    """Write the time this task began to ``path`` (whole, by a rename)."""
    now = time.time()
    with open(path + ".tmp", "w") as out:
        out.write(repr(now))
    os.replace(path + ".tmp", path)
'''

HUEY_APP = (
    MARK
    + """
import sqlite3

from huey import Huey, RedisHuey
from huey.storage import SqliteStorage

SYNCHRONOUS = os.environ.get("BENCH_SYNCHRONOUS")


class Storage(SqliteStorage):
    def _create_connection(self):
        conn = super()._create_connection()
        if SYNCHRONOUS:
            conn.execute(f"pragma synchronous={SYNCHRONOUS}")
        return conn


if os.environ.get("BENCH_REDIS_URL"):
    huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])
else:
    huey = Huey("bench", storage_class=Storage, filename=os.environ["BENCH_SQLITE"])


@huey.task()
def noop(marker=None):
    if marker:
        mark(marker)
"""
)

RQ_APP = (
    MARK
    + """

def noop(marker=None):
    if marker:
        mark(marker)
"""
)

CELERY_APP = (
    MARK
    + """
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop", ignore_result=True)
def noop(marker=None):
    if marker:
        mark(marker)


@app.task(name="part")  # a chord's header: its result is what the chord waits for
def part():
    return None


@app.task(name="join", ignore_result=True)
def join(results, marker=None):
    if marker:
        mark(marker)
"""
)

PROCRASTINATE_APP = (
    MARK
    + """
import logging

import procrastinate

logging.getLogger("procrastinate").setLevel(logging.ERROR)
connector = procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PG_URL"])
app = procrastinate.App(connector=connector)


@app.task(name="noop")
async def noop(marker=None):
    if marker:
        mark(marker)
"""
)


@dataclass
class PeerOps:
    """What the harness needs of a running peer."""

    enqueue: Callable[[int, str], None]  # N no-op jobs, the last one marks the path
    enqueue_mixed: Callable[[int, str], None] | None  # None: the peer has no fan-in
    submit: Callable[[str], None]  # one job that marks the path as it starts
    empty: Callable[[], bool]  # nothing queued or running, nothing failed
    processes: Callable[[], tuple[int | None, list[int]]]  # supervisor, workers


class Peer:
    """A peer's workers, started in this driver's process group, stopped at the end."""

    def __init__(self, scratch: Path, env: dict[str, str]) -> None:
        self.scratch = scratch
        self.env = {**os.environ, **env, "PYTHONPATH": str(scratch)}
        self.procs: list[subprocess.Popen[bytes]] = []
        os.environ.update(self.env)
        sys.path.insert(0, str(scratch))

    def app(self, name: str, text: str) -> Any:
        (self.scratch / f"{name}.py").write_text(text, encoding="utf-8")
        return importlib.import_module(name)

    def start(self, command: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            command,
            cwd=self.scratch,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def problem(self) -> str | None:
        for proc in self.procs:
            if proc.poll() is not None:
                return f"worker {proc.args!r} exited with {proc.returncode}"
        return None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def read_mark(path: Path, timeout: float, problem: Callable[[], str | None]) -> float:
    """The start time a task wrote to ``path``, once it is there; RuntimeError when
    ``problem()`` names one (a worker died) or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return float(path.read_text())
        if (reason := problem()) is not None:
            raise RuntimeError(reason)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no job marked {path.name} within {timeout:g} s")
        time.sleep(LATENCY_POLL_S if timeout <= START_TIMEOUT_S else DRAIN_POLL_S)


def wait_empty(ops: PeerOps, peer: Peer) -> None:
    deadline = time.monotonic() + 30
    while not ops.empty():
        if (problem := peer.problem()) is not None:
            raise RuntimeError(problem)
        if time.monotonic() > deadline:
            raise RuntimeError("the queue did not empty within 30 s of its last job")
        time.sleep(DRAIN_POLL_S)


def measure(ops: PeerOps, peer: Peer, sizes: Sizes) -> dict[str, Any]:
    """Warm up, drain, mixed, idle latency, RSS: the same steps for every peer."""
    marks = peer.scratch / "marks"
    marks.mkdir()

    def run(enqueue: Callable[[int, str], None], jobs: int, tag: str, timeout: float) -> float:
        marker = marks / tag
        started = time.time()
        enqueue(jobs, str(marker))
        ended = read_mark(marker, timeout, peer.problem)
        wait_empty(ops, peer)  # every job done, not only the last one
        return jobs / (ended - started)

    run(ops.enqueue, sizes.warmup, "warmup", STEP_TIMEOUT_S)  # start-up, imports
    figures: dict[str, Any] = {"drain_jobs_per_s": run(ops.enqueue, sizes.jobs, "drain", 300)}
    if ops.enqueue_mixed is not None:
        figures["mixed_jobs_per_s"] = run(ops.enqueue_mixed, sizes.jobs, "mixed", 300)
    latencies = []
    for i in range(sizes.samples):
        time.sleep(IDLE_GAP_S)
        marker = marks / f"start-{i}"
        submitted = time.time()
        ops.submit(str(marker))
        latencies.append((read_mark(marker, START_TIMEOUT_S, peer.problem) - submitted) * 1000)
    figures["start_p50_ms"] = quantile(latencies, 50)
    figures["start_p99_ms"] = quantile(latencies, 99)
    time.sleep(0.5)
    figures.update(rss_mib(*ops.processes()))
    return figures


def children(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children()]


def huey_ops(peer: Peer, name: str, workers: int) -> tuple[PeerOps, list[str]]:
    app = peer.app("bench_huey_app", HUEY_APP)
    consumer = peer.start(
        [sys.executable, "-m", "huey.bin.huey_consumer", "bench_huey_app.huey"]
        + ["-w", str(workers), "-k", "process", "-q"]
    )

    def enqueue(jobs: int, marker: str) -> None:
        for _ in range(jobs - 1):
            app.noop()
        app.noop(marker)

    ops = PeerOps(
        enqueue=enqueue,
        enqueue_mixed=None,
        submit=lambda marker: app.noop(marker),
        empty=lambda: app.huey.pending_count() == 0,
        processes=lambda: (consumer.pid, children(consumer.pid)),
    )
    storage = {
        "huey-redis": "Redis",
        "huey-sqlite": "SQLite, synchronous=FULL (SQLite's default)",
        "huey-sqlite-normal": "SQLite, synchronous=NORMAL",
    }[name]
    notes = [
        f"Huey on {storage}: huey_consumer -w {workers} -k process (default polling "
        "-d 0.1 s); enqueued one by one (no bulk API); no fan-in dependencies"
    ]
    return ops, notes


def rq_ops(peer: Peer, workers: int, redis_url: str) -> tuple[PeerOps, list[str]]:
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    app = peer.app("bench_rq_app", RQ_APP)
    redis = Redis.from_url(redis_url)
    queue = Queue("bench", connection=redis)
    rq = str(Path(sys.executable).parent / "rq")
    for _ in range(workers):
        peer.start([rq, "worker", "--url", redis_url, "--quiet", "bench"])

    def enqueue(jobs: int, marker: str) -> None:
        specs = [Queue.prepare_data(app.noop) for _ in range(jobs - 1)]
        specs.append(Queue.prepare_data(app.noop, kwargs={"marker": marker}))
        queue.enqueue_many(specs)

    def enqueue_mixed(jobs: int, marker: str) -> None:
        plain, groups = mixed_shape(jobs)
        for _ in range(plain):
            queue.enqueue(app.noop)
        for group in range(groups):
            parents = [queue.enqueue(app.noop) for _ in range(FAN_IN)]
            last = {"marker": marker} if group == groups - 1 else {}
            queue.enqueue(app.noop, kwargs=last, depends_on=parents)

    def empty() -> bool:
        if queue.failed_job_registry.count:
            raise RuntimeError(f"{queue.failed_job_registry.count} RQ jobs failed")
        if queue.count or queue.deferred_job_registry.count:
            return False
        # With dependencies, RQ leaves finished jobs in its started registry: ask each.
        started = Job.fetch_many(queue.started_job_registry.get_job_ids(), connection=redis)
        return all(job is None or job.get_status() == "finished" for job in started)

    ops = PeerOps(
        enqueue=enqueue,
        enqueue_mixed=enqueue_mixed,
        submit=lambda marker: queue.enqueue(app.noop, kwargs={"marker": marker}),
        empty=empty,
        processes=lambda: (None, [proc.pid for proc in peer.procs]),
    )
    notes = [
        f"RQ: {workers} `rq worker` processes (each forks a work horse per job), no "
        "supervisor; enqueue_many for the drain; mixed: depends_on=[9 jobs], enqueued "
        "one by one"
    ]
    return ops, notes


def celery_ops(peer: Peer, workers: int, redis_url: str) -> tuple[PeerOps, list[str]]:
    from celery import chord
    from redis import Redis

    app = peer.app("bench_celery_app", CELERY_APP)
    redis = Redis.from_url(redis_url)
    celery = str(Path(sys.executable).parent / "celery")
    main = peer.start(
        [celery, "-A", "bench_celery_app", "worker", "-c", str(workers), "-P", "prefork"]
        + ["-l", "WARNING"]
    )

    def enqueue(jobs: int, marker: str) -> None:
        for _ in range(jobs - 1):
            app.noop.apply_async()
        app.noop.apply_async(kwargs={"marker": marker})

    def enqueue_mixed(jobs: int, marker: str) -> None:
        plain, groups = mixed_shape(jobs)
        for _ in range(plain):
            app.noop.apply_async()
        for group in range(groups):
            last = {"marker": marker} if group == groups - 1 else {}
            chord([app.part.s() for _ in range(FAN_IN)])(app.join.s(**last))

    ops = PeerOps(
        enqueue=enqueue,
        enqueue_mixed=enqueue_mixed,
        submit=lambda marker: app.noop.apply_async(kwargs={"marker": marker}),
        empty=lambda: redis.llen("celery") == 0 and redis.hlen("unacked") == 0,
        processes=lambda: (main.pid, children(main.pid)),
    )
    notes = [
        f"Celery: prefork -c {workers}, Redis broker and result backend, task_acks_late, "
        "default prefetch; no-ops ignore their result, enqueued one by one (no bulk API); "
        "mixed: chord(9 tasks with results) + callback"
    ]
    return ops, notes


def procrastinate_ops(peer: Peer, workers: int, pg_url: str) -> tuple[PeerOps, list[str]]:
    import psycopg

    app = peer.app("bench_procrastinate_app", PROCRASTINATE_APP)
    app.app.open()
    app.app.schema_manager.apply_schema()
    server = psycopg.connect(pg_url, autocommit=True)
    run_worker = "import bench_procrastinate_app as m; m.app.run_worker(concurrency=1)"
    for _ in range(workers):
        peer.start([sys.executable, "-c", run_worker])

    def enqueue(jobs: int, marker: str) -> None:
        kwargs: list[dict[str, Any]] = [{} for _ in range(jobs - 1)]
        app.noop.batch_defer(*kwargs, {"marker": marker})

    def empty() -> bool:
        row = server.execute(
            "SELECT count(*) FILTER (WHERE status IN ('todo', 'doing')), "
            "count(*) FILTER (WHERE status NOT IN ('todo', 'doing', 'succeeded')) "
            "FROM procrastinate_jobs"
        ).fetchone()
        assert row is not None
        if row[1]:
            raise RuntimeError(f"{row[1]} procrastinate jobs did not succeed")
        return bool(row[0] == 0)

    ops = PeerOps(
        enqueue=enqueue,
        enqueue_mixed=None,
        submit=lambda marker: app.noop.defer(marker=marker),
        empty=empty,
        processes=lambda: (None, [proc.pid for proc in peer.procs]),
    )
    notes = [
        f"procrastinate: {workers} worker processes of concurrency 1 (LISTEN/NOTIFY), no "
        "supervisor, an async no-op; batch_defer for the drain; no fan-in dependencies"
    ]
    return ops, notes


def drive_peer(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """The peer's side: start its workers, measure, stop them; figures as a dict."""
    from importlib.metadata import version

    name: str = args.peer
    env: dict[str, str] = {}
    if name.startswith("huey"):
        if name == "huey-redis":
            env["BENCH_REDIS_URL"] = args.redis_url
        else:
            env["BENCH_SQLITE"] = str(args.scratch / "huey.db")
        if name == "huey-sqlite-normal":
            env["BENCH_SYNCHRONOUS"] = "NORMAL"
    elif name == "celery":
        env["BENCH_REDIS_URL"] = args.redis_url
    elif name == "procrastinate":
        env["BENCH_PG_URL"] = args.pg_url
    peer = Peer(args.scratch, env)
    try:
        if name.startswith("huey"):
            ops, notes = huey_ops(peer, name, sizes.workers)
        elif name == "rq":
            ops, notes = rq_ops(peer, sizes.workers, args.redis_url)
        elif name == "celery":
            ops, notes = celery_ops(peer, sizes.workers, args.redis_url)
        else:
            ops, notes = procrastinate_ops(peer, sizes.workers, args.pg_url)
        figures = measure(ops, peer, sizes)
    finally:
        peer.stop()
    package = DISTRIBUTION[name.split("-")[0]]
    return {
        **figures,
        "version": f"{package} {version(package)}",
        "python": platform.python_version(),
        "notes": notes,
    }


# ---- Athena (under the project's .venv) -------------------------------------------------


def mixed_specs(jobs: int) -> list[dict[str, Any]]:
    """Athena's mixed batch: plain no-ops, then groups of FAN_IN and one ``after`` them."""
    plain, groups = mixed_shape(jobs)
    specs: list[dict[str, Any]] = [{"type": "echo"} for _ in range(plain)]
    for _ in range(groups):
        first = len(specs)
        specs += [{"type": "echo"} for _ in range(FAN_IN)]
        specs.append({"type": "echo", "after": list(range(first, first + FAN_IN))})
    return specs


ATHENA_MARK_AGENT = (
    MARK
    + """

def agent(ctx):
    mark(ctx.payload["marker"])
"""
)


def athena_home(scratch: Path) -> Any:
    """A scratch home whose ``bench-mark`` agent writes its start time to a file, the
    way every peer's task does (``started_at`` is kept to the millisecond only)."""
    from athenad.paths import Home

    home = Home.resolve(scratch / "home").ensure()
    (home.root / "bench_athena_mark.py").write_text(ATHENA_MARK_AGENT, encoding="utf-8")
    home.config_path.write_text(
        '[agents]\n"bench-mark" = "bench_athena_mark:agent"\n', encoding="utf-8"
    )
    return home


@contextlib.contextmanager
def athena_daemon(home: Path, env: dict[str, str], workers: int) -> Iterator[int]:
    pid = int(athenad(home, env, "start", "--workers", str(workers)))
    try:
        yield pid
    finally:
        try:
            athenad(home, env, "stop", "--timeout", "10", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"   !! {exc}; killing the daemon")
            kill_daemon(pid)


def athena_figures(
    queue: Any, finished: Callable[[list[str]], float], home: Any, pid: int, sizes: Sizes
) -> dict[str, Any]:
    """The harness's steps through the daemon: drain, mixed, idle latency, RSS."""

    def run(specs: list[dict[str, Any]]) -> float:
        started = time.time()
        ids = queue.submit_many(specs)
        return len(ids) / (finished(ids) - started)

    run([{"type": "echo"}] * sizes.warmup)
    figures: dict[str, Any] = {"drain_jobs_per_s": run([{"type": "echo"}] * sizes.jobs)}
    figures["mixed_jobs_per_s"] = run(mixed_specs(sizes.jobs))
    marks = home.root / "marks"
    marks.mkdir()
    latencies = []
    for i in range(sizes.samples):
        time.sleep(IDLE_GAP_S)
        marker = marks / f"start-{i}"
        submitted = time.time()
        job_id = queue.submit("bench-mark", {"marker": str(marker)})

        def failed(job_id: str = job_id) -> str | None:
            state = queue.get(job_id)
            return f"job {job_id} {state['status']}" if state["status"] == "failed" else None

        latencies.append((read_mark(marker, START_TIMEOUT_S, failed) - submitted) * 1000)
    figures["start_p50_ms"] = quantile(latencies, 50)
    figures["start_p99_ms"] = quantile(latencies, 99)
    time.sleep(0.5)
    figures.update(rss_mib(pid, children(pid)))
    return figures


def athena_version() -> str:
    from importlib.metadata import version

    return f"athena {version('athena')}"


def bench_athena_sqlite(sizes: Sizes, synchronous: str, claim: bool) -> dict[str, Any]:
    from bench_submit import wait_drained

    from athenad.store.sqlite.queue import JobQueue

    with tempfile.TemporaryDirectory(prefix="athena-bench-peers-") as scratch:
        home = athena_home(Path(scratch))
        env = {**os.environ, "ATHENA_SYNCHRONOUS": synchronous}
        with (
            athena_daemon(home.root, env, sizes.workers) as pid,
            JobQueue(home.db_path, synchronous=synchronous) as queue,
        ):
            figures = athena_figures(queue, lambda ids: wait_drained(queue, ids), home, pid, sizes)
        if claim:
            figures["claim"] = sqlite_claim_cost(Path(scratch), sizes)
    figures["version"] = athena_version()
    figures["notes"] = [
        f"Athena on SQLite, synchronous={synchronous}: athenad --workers {sizes.workers}, "
        "submit_many; mixed: after=[9 batch indexes]"
    ]
    return figures


def bench_athena_postgres(sizes: Sizes, url: str, claim: bool) -> dict[str, Any]:
    import psycopg
    from bench_postgres import STEP_TIMEOUT_S as PG_STEP_TIMEOUT_S
    from bench_postgres import bench_claim_cost, scratch_schema

    from athenad.store.postgres.queue import PostgresJobQueue

    with (
        scratch_schema(url, "peers") as schema,
        tempfile.TemporaryDirectory(prefix="athena-bench-peers-") as scratch,
    ):
        home = athena_home(Path(scratch))
        env = {**os.environ, "ATHENA_DATABASE_URL": url, "ATHENA_DATABASE_SCHEMA": schema}
        with (
            athena_daemon(home.root, env, sizes.workers) as pid,
            PostgresJobQueue(url, schema=schema) as queue,
            psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as server,
        ):

            def finished(ids: list[str]) -> float:
                deadline = time.monotonic() + PG_STEP_TIMEOUT_S
                while any(queue.counts()[s] for s in ("pending", "running", "blocked")):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{len(ids)} jobs were not drained in time")
                    time.sleep(DRAIN_POLL_S)
                row = server.execute(
                    "SELECT extract(epoch FROM max(completed_at)), count(*) FILTER "
                    "(WHERE status = 'completed') FROM jobs WHERE id >= %s AND id <= %s",
                    (min(ids), max(ids)),
                ).fetchone()
                assert row is not None and row[1] == len(ids), f"{row} of {len(ids)} completed"
                return float(row[0])

            figures = athena_figures(queue, finished, home, pid, sizes)
    if claim:
        figures["claim"] = bench_claim_cost(url, sizes.small, sizes.big, sizes.cycles)
    figures["version"] = athena_version()
    figures["notes"] = [
        f"Athena on PostgreSQL: athenad --workers {sizes.workers}, submit_many; mixed: "
        "after=[9 batch indexes]"
    ]
    return figures


def sqlite_claim_cost(work: Path, sizes: Sizes) -> dict[str, Any]:
    """Median claim + complete through JobQueue with ``small`` and ``big`` finished jobs;
    the two tables take turns, a block of cycles each, so a passing load hits both."""
    import statistics

    from bench_postgres import cycle_times
    from bench_queue import FILLER_SQL

    from athenad.store.sqlite.queue import JobQueue

    print(f"   claim + complete: {sizes.cycles:,} cycles, {sizes.small:,} vs {sizes.big:,}")
    queues: dict[int, Any] = {}
    try:
        for rows in (sizes.small, sizes.big):
            path = work / f"claim-{rows}.db"
            with JobQueue(path) as queue:
                with queue.conn:
                    queue.conn.execute(FILLER_SQL, {"count": rows})
                queue.submit_many([{"type": "noop"}] * sizes.cycles)
                queue.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            queues[rows] = JobQueue(path)
        samples: dict[int, list[float]] = {rows: [] for rows in queues}
        block = max(1, sizes.cycles // 10)
        for done in range(0, sizes.cycles, block):
            for rows, queue in queues.items():
                samples[rows] += cycle_times(queue, min(block, sizes.cycles - done))
    finally:
        for queue in queues.values():
            queue.close()
    small_us = statistics.median(samples[sizes.small]) * 1e6
    big_us = statistics.median(samples[sizes.big]) * 1e6
    return {
        "cycles": sizes.cycles,
        "small_rows": sizes.small,
        "big_rows": sizes.big,
        "small_us": small_us,
        "big_us": big_us,
        "ratio": big_us / small_us,
    }


# ---- running the peers from the main side ------------------------------------------------


def flush_redis() -> None:
    subprocess.run(
        ["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"],
        capture_output=True,
        check=True,
        timeout=10,
    )


def reap_group(pgid: int) -> None:
    """Members of a finished driver's process group still alive: TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        time.sleep(2)


def bench_venv_peer(
    name: str, sizes: Sizes, args: argparse.Namespace, pg_url: str | None
) -> dict[str, Any]:
    """Install the peer into the peers' virtualenv and run its side there."""
    python = None
    for module, requirement in [("psutil", "psutil"), *REQUIREMENTS[name]]:
        python = peer_python(args.venv, module, requirement)
    assert python is not None
    with tempfile.TemporaryDirectory(prefix=f"athena-bench-{name}-") as scratch:
        command = [str(python), __file__, "--role", "peer", "--peer", name]
        command += ["--scratch", scratch, "--redis-url", REDIS_URL, *size_args(sizes)]
        if args.quick:
            command.append("--quick")
        if pg_url is not None:
            command += ["--pg-url", pg_url]
        # Its own process group: the driver and every worker it starts go together.
        driver = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = driver.communicate(timeout=args.peer_timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"timed out after {args.peer_timeout:g} s") from exc
        finally:
            stop_group(driver)
            reap_group(driver.pid)
    if driver.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"the driver exited with {driver.returncode}")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def size_args(sizes: Sizes) -> list[str]:
    return [
        "--jobs", str(sizes.jobs), "--warmup", str(sizes.warmup),
        "--samples", str(sizes.samples), "--workers", str(sizes.workers),
    ]  # fmt: skip


def bench_peer(name: str, sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    if name in ("athena-sqlite", "athena-sqlite-full"):
        synchronous = "FULL" if name.endswith("full") else "NORMAL"
        return bench_athena_sqlite(sizes, synchronous, claim=name == "athena-sqlite")
    if name == "athena-postgres":
        return bench_athena_postgres(sizes, args.pg_url, claim=True)
    if name == "procrastinate":
        from bench_postgres import scratch_database

        with scratch_database(args.pg_url) as db_url:
            return bench_venv_peer(name, sizes, args, db_url)
    if name in REDIS_PEERS:
        flush_redis()
        try:
            return bench_venv_peer(name, sizes, args, None)
        finally:
            flush_redis()
    return bench_venv_peer(name, sizes, args, None)


def machine(peers: list[str], pg_url: str) -> dict[str, Any]:
    """CPU count, OS, Python, SQLite, and the servers' versions."""
    import apsw

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": apsw.sqlite_lib_version(),
    }
    if any(p in ("athena-postgres", "procrastinate") for p in peers):
        with contextlib.suppress(Exception):
            from bench_postgres import pg_version

            info["postgres"] = pg_version(pg_url)
    if any(p in REDIS_PEERS for p in peers):
        with contextlib.suppress(Exception):
            done = subprocess.run(
                ["redis-cli", "INFO", "server"], capture_output=True, text=True, timeout=10
            )
            for line in done.stdout.splitlines():
                if line.startswith("redis_version:"):
                    info["redis"] = line.split(":", 1)[1].strip()
    return info


# ---- the report --------------------------------------------------------------------------


def _cell(value: float | None, form: str) -> str:
    return "n/a" if value is None else format(value, form)


def report(results: dict[str, Any]) -> str:
    """The figures as one markdown table (a row per peer), the machine, and the notes."""
    sizes = results["sizes"]
    lines = [
        f"| peer | version | drain jobs/s | mixed jobs/s (10% fan-in) "
        f"| start p50 / p99 (ms) | claim cost {sizes['big']:,} / {sizes['small']:,} finished "
        f"| supervisor RSS (MiB) | idle worker RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes: list[str] = []
    for name, part in results["peers"].items():
        if "error" in part:
            lines.append(f"| {name} | failed: {part['error']} | | | | | | |")
            continue
        claim = part.get("claim")
        ratio = (
            f"{claim['ratio']:.2f}x ({claim['big_us']:,.0f} / {claim['small_us']:,.0f} us)"
            if claim
            else "not measured"
        )
        latency = f"{part['start_p50_ms']:.1f} / {part['start_p99_ms']:.1f}"
        lines.append(
            f"| {name} | {part['version']} | {_cell(part['drain_jobs_per_s'], ',.0f')} "
            f"| {_cell(part.get('mixed_jobs_per_s'), ',.0f')} | {latency} | {ratio} "
            f"| {_cell(part.get('supervisor_rss_mib'), '.1f')} "
            f"| {_cell(part.get('worker_rss_mib'), '.1f')} |"
        )
        notes += [f"- {name}: {note}" for note in part.get("notes", [])]
    info = results["machine"]
    described = [f"{info['cpus']} CPUs", info.get("platform", "?"), f"Python {info['python']}"]
    described += [f"SQLite {info['sqlite']}"] if "sqlite" in info else []
    described += [f"PostgreSQL {info['postgres']}"] if "postgres" in info else []
    described += [f"Redis {info['redis']}"] if "redis" in info else []
    lines += [
        "",
        f"Machine: {', '.join(described)}. {sizes['workers']} worker processes per peer; "
        f"{sizes['jobs']:,} jobs per drain and per mixed run; {sizes['samples']} latency "
        "samples; n/a: the peer has no such feature or no such process.",
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per drain (10,000)")
    parser.add_argument("--samples", type=int, default=None, help="latency samples (500)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the PostgreSQL server")
    parser.add_argument("--venv", type=Path, default=BENCH_VENV, help="the peers' virtualenv")
    parser.add_argument("--peer-timeout", type=float, default=None, help="seconds per peer")
    parser.add_argument("--role", choices=("main", "peer"), default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default=REDIS_URL, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    sizes = Sizes(
        jobs=args.jobs or (1_000 if quick else 10_000),
        warmup=args.warmup or (200 if quick else 500),
        samples=args.samples or (50 if quick else 500),
        workers=args.workers,
        small=10_000,
        big=100_000 if quick else 1_000_000,
        cycles=300 if quick else 2_000,
    )
    args.peer_timeout = args.peer_timeout or (300.0 if quick else 900.0)

    # A TERM (a timeout around this run) unwinds through every `finally` that cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.role == "peer":
        print(json.dumps(drive_peer(args, sizes)))
        return

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {', '.join(unknown)}; known: {', '.join(PEERS)}")
    results: dict[str, Any] = {
        "machine": machine(peers, args.pg_url),
        "sizes": {**sizes.__dict__, "fan_in": FAN_IN, "idle_gap_s": IDLE_GAP_S},
        "peers": {},
    }
    for name in peers:
        print(f"{name}: {sizes.jobs:,} jobs, {sizes.samples} latency samples", flush=True)
        started = time.monotonic()
        try:
            results["peers"][name] = bench_peer(name, sizes, args)
        except Exception as exc:  # one peer failing must not stop the others
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(f"   !! {name} failed: {reason}", flush=True)
            results["peers"][name] = {"error": reason}
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    print()
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
