"""Several hosts on one PostgreSQL database: when a whole host dies, the others take
its jobs back within about a lease, every job completes exactly once, and the host
joins back when it is started again.

Each host is a daemon with its own home and ``ATHENA_HOST``; a ledger agent notes
every run's start and end (job, attempt, host, pid) in one file all hosts share.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from athenad.config import load_config
from athenad.daemon.identity import worker_host
from athenad.paths import Home
from athenad.store.backend import open_store
from tests.conftest import Daemon, cli, wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

LEASE_S = 2
HOSTS = ("host-a", "host-b", "host-c")
WORKERS = 2
WORKFLOWS = 20  # each: 10 parallel steps, a fan-in after all of them, one step after that
FAN_OUT = 10
INDEPENDENT = 60
LATER = 40  # submitted once the dead host is back

LEDGER_AGENT = textwrap.dedent(
    """
    import json, os, time

    def run(ctx):
        def note(event):
            line = {"job": ctx.job_id, "attempt": ctx.attempt, "event": event,
                    "host": os.environ["ATHENA_HOST"], "pid": os.getpid()}
            with open(ctx.payload["ledger"], "a") as ledger:
                ledger.write(json.dumps(line) + "\\n")

        note("start")
        time.sleep(ctx.payload["seconds"])
        note("end")

    def stepwise(ctx):
        # Steps after the last checkpoint only: each noted, then checkpointed.
        done = ctx.checkpoint.iteration if ctx.checkpoint else 0
        for step in range(done + 1, ctx.payload["steps"] + 1):
            time.sleep(ctx.payload["seconds"])
            with open(ctx.payload["ledger"], "a") as ledger:
                line = {"job": ctx.job_id, "step": step, "host": os.environ["ATHENA_HOST"]}
                ledger.write(json.dumps(line) + "\\n")
            ctx.save_checkpoint(step, state={"step": step})
        return done
    """
)

# Checkpoints reach another host only when they are stored on the database.
CHECKPOINTS_ON_POSTGRES = importlib.util.find_spec("athenad.storage.postgres") is not None


class Host:
    """One host: a home with the ledger agent, run by a daemon named by ATHENA_HOST."""

    def __init__(self, root: Path, name: str, url: str, schema: str) -> None:
        self.name = name
        self.home = Home.resolve(root / name).ensure()
        (self.home.root / "ledgeragent.py").write_text(LEDGER_AGENT)
        self.home.config_path.write_text(
            f'[daemon]\nlease = {LEASE_S}\n\n[agents]\nledgered = "ledgeragent:run"\n'
            'stepwise = "ledgeragent:stepwise"\n'
        )
        self.env = {
            "ATHENA_DATABASE_URL": url,
            "ATHENA_DATABASE_SCHEMA": schema,
            "ATHENA_HOST": name,
        }
        self.daemon: Daemon | None = None

    def start(self) -> Daemon:
        # Heartbeat files a killed host's workers left would pass for live workers.
        for stale in self.home.run_dir.glob("worker-*"):
            stale.unlink()
        self.daemon = Daemon(self.home, workers=WORKERS, env=self.env)
        return self.daemon

    def status(self) -> dict:
        result = cli("athenad", "status", "--json", home=self.home, env=self.env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def hosts(tmp_path, postgres_url, postgres_schema):
    started = [Host(tmp_path, name, postgres_url, postgres_schema) for name in HOSTS]
    yield started
    for host in started:
        if host.daemon is not None:
            host.daemon.stop()


@pytest.fixture
def store(hosts):
    host = hosts[0]
    with contextlib.closing(open_store(host.home, load_config(host.home, host.env).daemon)) as s:
        yield s


def ledger_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def workload(ledger: Path) -> tuple[list[dict], list[tuple[int, list[int]]]]:
    """The tasks (``after`` by index) and each fan-in's (index, parent indexes)."""
    tasks: list[dict] = []
    fan_ins = []

    def add(seconds: float, after: list[int] | None = None) -> int:
        payload = {"ledger": str(ledger), "seconds": seconds}
        tasks.append({"type": "ledgered", "payload": payload, "after": after or []})
        return len(tasks) - 1

    for workflow in range(WORKFLOWS):
        steps = [add(0.1 + 0.02 * ((workflow + n) % 10)) for n in range(FAN_OUT)]
        fan_in = add(0.1, steps)
        fan_ins.append((fan_in, steps))
        add(0.05, [fan_in])
    for _ in range(INDEPENDENT):
        add(0.2)
    return tasks, fan_ins


def running_on(store, host: str) -> list[dict]:
    return [job for job in store.running_jobs() if worker_host(job["worker_id"]) == host]


def test_a_dead_host_loses_its_jobs_to_the_others_and_joins_back(hosts, store, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    dead = hosts[0]
    for host in hosts:
        host.start()
    tasks, fan_ins = workload(ledger)
    ids = store.submit_many(tasks)

    # Kill host-a whole (supervisor and workers) while it holds jobs, a third of the way in.
    def a_third_done() -> bool:
        return len(ids) - sum(store.counts().values()) >= len(ids) // 3

    wait_until(
        lambda: a_third_done() and running_on(store, dead.name),
        timeout=60,
        what="host-a to be running jobs a third of the way in",
    )
    assert dead.daemon is not None
    dead.daemon.kill_all()
    killed_at = time.monotonic()
    held = {job["id"] for job in running_on(store, dead.name)}
    assert held, "host-a held no job when it was killed"

    wait_until(lambda: not running_on(store, dead.name), timeout=30, what="the take-back")
    taken_back_after = time.monotonic() - killed_at
    print(f"\nhost-a held {len(held)} jobs; taken back {taken_back_after:.2f} s after the kill")
    # The lease lapses at most one lease after the last renewal, then a grace of a
    # quarter lease and one sweep tick.
    assert taken_back_after < LEASE_S + 2.5

    def finished(job_ids) -> bool:
        states = store.states(job_ids)
        return all(states[j][0] in ("completed", "failed", "cancelled") for j in job_ids)

    wait_until(lambda: finished(held), timeout=30, what="the taken-back jobs to finish")

    # host-a comes back: it is listed again with its new pid, and takes new jobs.
    restarted = dead.start()
    survivor = hosts[1]

    def listed_again() -> bool:
        return any(
            entry["host"] == dead.name and entry["pid"] == restarted.proc.pid
            for entry in survivor.status()["hosts"]
        )

    wait_until(listed_again, timeout=20, interval=0.3, what="host-a in status hosts again")
    for entry in survivor.status()["hosts"]:
        assert set(entry) >= {"host", "pid", "workers", "last_seen"}
    later = store.submit_many(
        [{"type": "ledgered", "payload": {"ledger": str(ledger), "seconds": 0.2}}] * LATER
    )
    everything = ids + later
    wait_until(lambda: finished(everything), timeout=90, interval=0.2, what="every job to finish")

    rows = {job["id"]: job for job in store.list_jobs(limit=len(everything) + 10)}
    assert {rows[j]["status"] for j in everything} == {"completed"}
    lines = ledger_lines(ledger)
    ends: dict[str, list[dict]] = {}
    for line in lines:
        if line["event"] == "end":
            ends.setdefault(line["job"], []).append(line)

    # Exactly once: each job has one finished run, the one its row records; another
    # finished run is only possible on host-a, for a job it held when it died.
    for job_id in everything:
        host, pid = rows[job_id]["worker_id"].rsplit(":", 2)[:2]
        committed = [e for e in ends[job_id] if (e["host"], e["pid"]) == (host, int(pid))]
        assert len(committed) == 1, (job_id, ends[job_id])
        for other in ends[job_id]:
            if other is not committed[0]:
                assert other["host"] == dead.name and job_id in held, (job_id, ends[job_id])
    for job_id in held:
        assert worker_host(rows[job_id]["worker_id"]) != dead.name
        assert rows[job_id]["interruptions"] == 1

    # A fan-in started only after every one of its parents finished.
    position = {(e["job"], e["event"], e["pid"]): n for n, e in enumerate(lines)}
    for fan_in, steps in fan_ins:
        fan_in_id = ids[fan_in]
        starts = [n for n, e in enumerate(lines) if e["job"] == fan_in_id and e["event"] == "start"]
        for step in steps:
            parent = rows[ids[step]]
            parent_end = position[(ids[step], "end", int(parent["worker_id"].rsplit(":", 2)[1]))]
            assert min(starts) > parent_end

    # The restarted host took part again.
    ran_later = [worker_host(rows[j]["worker_id"]) for j in later]
    print(f"jobs submitted after the restart, by host: {Counter(ran_later)}")
    assert dead.name in ran_later
    assert {entry["host"] for entry in survivor.status()["hosts"]} == set(HOSTS)


@pytest.mark.skipif(
    not CHECKPOINTS_ON_POSTGRES, reason="checkpoints are not stored on PostgreSQL in this build"
)
def test_a_checkpointing_job_resumes_on_another_host_from_its_last_checkpoint(
    hosts, store, tmp_path
):
    ledger = tmp_path / "steps.jsonl"
    first, second = hosts[:2]
    first.start()
    payload = {"ledger": str(ledger), "steps": 8, "seconds": 0.5}
    job_id = store.submit("stepwise", payload)
    wait_until(
        lambda: (store.get(job_id)["checkpoint_iteration"] or 0) >= 3,
        timeout=30,
        what="three checkpoints",
    )
    second.start()  # a host to resume on, started only now so the job began on the first
    assert first.daemon is not None
    first.daemon.kill_all()
    saved = store.get(job_id)["checkpoint_iteration"]

    wait_until(
        lambda: store.get(job_id)["status"] in ("completed", "failed"),
        timeout=60,
        what="the job to finish on the other host",
    )
    row = store.get(job_id)
    assert row["status"] == "completed" and worker_host(row["worker_id"]) == second.name
    assert row["resumed_from"] >= saved and row["result"] == row["resumed_from"]
    steps = [(line["step"], line["host"]) for line in ledger_lines(ledger)]
    # Steps up to the checkpoint it resumed from ran once, on the first host; the rest ran
    # on the second (a step cut short by the kill may have been noted on both).
    before = [step for step, _host in steps if step <= row["resumed_from"]]
    assert sorted(before) == list(range(1, row["resumed_from"] + 1))
    assert {host for step, host in steps if step <= row["resumed_from"]} == {first.name}
    assert [step for step, host in steps if host == second.name] == list(
        range(row["resumed_from"] + 1, payload["steps"] + 1)
    )
