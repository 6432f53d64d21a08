"""Torn and corrupt files (issue 15): checkpoints, session lines, the sessions'
index.json, athena.toml and the daemon's pid file cut short or with bytes flipped at
random offsets, 50 seeds each. Each damage is detected and reported, then recovered
from (an older checkpoint, the good lines, a rebuilt index, the lock's real holder) or
quarantined; a broken athena.toml is refused in one sentence. Nothing crashes: no
exception but Athena's own from the API, no traceback from a command.
"""

from __future__ import annotations

import asyncio
import json
import random
import warnings
from pathlib import Path

import pytest

from athenad.api import TaskOrchestrator
from athenad.config import load_config
from athenad.errors import ConfigError
from athenad.paths import Home, read_pid
from athenad.storage.checkpoints import FileCheckpointStore
from athenad.storage.sessions import SessionManager
from athenad.storage.sessions.files import QUARANTINE_SUFFIX, SessionRepaired, UnsupportedFormat
from tests.chaos.storage import detached_daemon, no_traceback, one_sentence, prepare_home
from tests.conftest import cli

pytestmark = pytest.mark.timeout(120)

SEEDS = range(50)
CLI_EVERY = 10  # seeds whose damage is also looked at through the commands


def damage(data: bytes, rng: random.Random) -> bytes:
    """``data`` cut short, with a bit or bytes flipped, or with a run of zeros."""
    kind = rng.choice(("truncate", "bit", "bytes", "zeros"))
    out = bytearray(data)
    if kind == "truncate":
        return bytes(out[: rng.randrange(len(out))])
    if kind == "bit":
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    else:
        start = rng.randrange(len(out))
        out[start : start + rng.randint(1, 64)] = bytes(min(64, len(out) - start))
    return bytes(out) if bytes(out) != data else damage(data, rng)


# ---- checkpoints ------------------------------------------------------------------------


def test_a_damaged_checkpoint_is_detected_and_the_one_before_it_used(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as api:
        job = api.submit_job("echo", delay="1h")
        for i in (1, 2, 3):
            api.save_task_checkpoint(job, i, [f"message {i}"], state={"i": i})
        store = FileCheckpointStore(home.checkpoints_dir)
        newest = store.path_for(job, 3)
        pristine = newest.read_bytes()
        for seed in SEEDS:
            newest.write_bytes(damage(pristine, random.Random(seed)))
            info = {i.iteration: i for i in store.list(job)}[3]
            latest = store.load_latest(job)
            resumed = asyncio.run(api.resume_task_from_checkpoint(job))
            assert latest is not None
            if info.valid:  # only what no checksum covers was hit (the header's time)
                assert store.load(job, 3).state == {"i": 3}, seed
                assert latest.iteration == 3 and resumed["iteration"] == 3
            else:
                assert info.error, seed
                assert (latest.iteration, latest.state) == (2, {"i": 2}), seed
                assert (resumed["iteration"], resumed["messages"]) == (2, ["message 2"])
            if seed % CLI_EVERY == 0:
                shown = no_traceback(cli("athenactl", "checkpoints", job, "--json", home=home))
                assert shown.returncode == 0
                valid = {row["iteration"]: row["valid"] for row in json.loads(shown.stdout)}
                assert valid == {1: True, 2: True, 3: info.valid}


# ---- sessions ---------------------------------------------------------------------------


def test_a_damaged_session_file_keeps_every_good_message_and_quarantines_the_rest(
    tmp_path: Path,
) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    sessions = SessionManager(home.state_dir)
    session_id = sessions.create_session(name="pristine", tags=["chaos"], git_branch="main")
    for k in range(6):
        sessions.add_message(session_id, "user", f"message {k} " + "z" * 10 * k)
    path = sessions.path_for(session_id)
    sidecar = path.with_name(f"{session_id}{QUARANTINE_SUFFIX}")
    pristine = path.read_bytes()
    original = {m.seq: m.content for m in sessions.get_messages(session_id)}
    refused = 0
    for seed in SEEDS:
        path.write_bytes(damage(pristine, random.Random(seed)))
        sidecar.unlink(missing_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _header, messages = sessions.read_session(session_id)
            except UnsupportedFormat:
                # The flip made the header claim a newer format: refused, never rewritten.
                refused += 1
                continue
        seqs = [m.seq for m in messages]
        assert seqs == sorted(set(seqs)), seed
        assert all(original[m.seq] == m.content for m in messages), seed
        repaired = [w for w in caught if issubclass(w.category, SessionRepaired)]
        if path.read_bytes() != pristine or len(messages) < len(original):
            assert repaired, seed  # every repair is reported
        if len(messages) < len(original) and sidecar.exists():
            assert sidecar.read_text().strip()
        # Repaired once for good: the next read is clean, and appending goes on in order.
        with warnings.catch_warnings(record=True) as again:
            warnings.simplefilter("always")
            assert [m.seq for m in sessions.get_messages(session_id)] == seqs
        assert not again, (seed, [str(w.message) for w in again])
        added = sessions.add_message(session_id, "user", "after the damage")
        assert added.seq == max(seqs, default=0) + 1, seed
        if seed % CLI_EVERY == 0:
            path.write_bytes(damage(pristine, random.Random(seed)))
            for command in (("sessions", "show", session_id), ("sessions", "list")):
                assert no_traceback(cli("athenactl", *command, home=home)).returncode == 0
    assert refused < len(SEEDS) // 5


def test_a_damaged_sessions_index_is_rebuilt_from_the_files(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    sessions = SessionManager(home.state_dir)
    for n in range(3):
        session_id = sessions.create_session(name=f"s{n}", git_branch="main")
        for k in range(n + 1):
            sessions.add_message(session_id, "assistant", f"reply {k}")
    expected = [(i.id, i.name, i.message_count) for i in sessions.list_sessions()]
    index = sessions.dir / "index.json"
    pristine = index.read_bytes()
    for seed in SEEDS:
        index.write_bytes(damage(pristine, random.Random(seed)))
        fresh = SessionManager(home.state_dir)  # a new process's view: no cache in memory
        listed = [(i.id, i.name, i.message_count) for i in fresh.list_sessions()]
        assert listed == expected, seed
        if seed % CLI_EVERY == 0:
            index.write_bytes(damage(pristine, random.Random(seed)))
            shown = no_traceback(cli("athenactl", "sessions", "list", "--json", home=home))
            assert [(i["id"], i["message_count"]) for i in json.loads(shown.stdout)] == [
                (i, count) for i, _name, count in expected
            ]


# ---- athena.toml ------------------------------------------------------------------------

TOML = """\
[daemon]
workers = 2
lease = 30
drain_timeout = 10
log_max_bytes = "10MB"

[agents]
saver = "storage_agents:saver"

[queues.api]
rate = "5/s"
priority = 3

[retention]
completed = "7d"
"""


def test_a_damaged_athena_toml_loads_or_is_refused_in_one_sentence(tmp_path: Path) -> None:
    home = prepare_home(tmp_path / "home", TOML)
    load_config(home)  # the pristine file is valid
    refused: list[int] = []
    for seed in SEEDS:
        home.config_path.write_bytes(damage(TOML.encode(), random.Random(seed)))
        try:
            load_config(home)
        except ConfigError as exc:
            assert "\n" not in exc.message.strip(), exc.message
            refused.append(seed)
        if seed % CLI_EVERY == 0:
            no_traceback(cli("athenactl", "submit", "echo", home=home))
            no_traceback(cli("athenactl", "ls", home=home))
    assert refused  # the damage is found, not just survived
    # The daemon refuses a broken file in one sentence, before it detaches.
    home.config_path.write_bytes(damage(TOML.encode(), random.Random(refused[0])))
    line = one_sentence(cli("athenad", "start", "--workers", "1", home=home, timeout=60))
    assert "athena.toml" in line, line
    assert read_pid(home) is None


# ---- the pid file -----------------------------------------------------------------------


def test_a_damaged_pid_file_still_names_the_running_daemon_and_never_another_process(
    tmp_path: Path,
) -> None:
    home = prepare_home(tmp_path / "home")
    with detached_daemon(home) as pid:
        pristine = home.pid_file.read_bytes()
        for seed in SEEDS:
            home.pid_file.write_bytes(damage(pristine, random.Random(seed)))
            assert read_pid(home) == pid, seed
            if seed % CLI_EVERY == 0:
                status = no_traceback(cli("athenad", "status", "--json", home=home))
                assert json.loads(status.stdout)["pid"] == pid
                line = one_sentence(cli("athenad", "start", "--workers", "1", home=home))
                assert f"already running in {home.root} (pid {pid})" in line, line
        stopped = no_traceback(cli("athenad", "stop", "--timeout", "5", home=home, timeout=60))
        assert f"stopped (pid {pid})" in stopped.stdout
    # A damaged file nobody holds names no daemon, and a new one starts over it.
    home.pid_file.write_bytes(b"\x00\x1731\xff")
    assert read_pid(home) is None
    assert "not running" in no_traceback(cli("athenad", "status", home=home)).stdout
    with detached_daemon(home) as pid:
        assert read_pid(home) == pid
        assert home.pid_file.read_text().split() == [str(pid)]


def test_no_command_crashes_on_a_home_whose_every_file_is_damaged(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as api:
        job = api.submit_job("echo", delay="1h")
        api.save_task_checkpoint(job, 1, ["m"], state={"i": 1})
        session_id = api.create_conversation_session(name="all damaged")
        api.add_message_to_session(session_id, "user", "hello")
    sessions = SessionManager(home.state_dir)
    sessions.list_sessions()
    rng = random.Random(15)
    home.config_path.write_text(TOML)
    for path in (
        FileCheckpointStore(home.checkpoints_dir).path_for(job, 1),
        sessions.path_for(session_id),
        sessions.dir / "index.json",
        home.config_path,
    ):
        path.write_bytes(damage(path.read_bytes(), rng))
    home.pid_file.write_bytes(b"12x\n")
    for command in (
        ("athenactl", "show", job),
        ("athenactl", "checkpoints", job),
        ("athenactl", "sessions", "show", session_id),
        ("athenactl", "sessions", "list"),
        ("athenactl", "status"),
        ("athenactl", "submit", "echo"),
        ("athenad", "status"),
    ):
        no_traceback(cli(*command, home=home))
    try:
        load_config(home)  # the damaged athena.toml loads, or is refused in one sentence
    except ConfigError as exc:
        assert "\n" not in exc.message.strip()
