"""Security (issue 15): what a normal run leaves under .athena/ is private (files 0600,
folders 0700); no id, session name or import can reach outside the home; the web token
is compared in constant time; a secret in the daemon's environment shows up in no file
of the home and no command's output."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from athenad.errors import InvalidInput
from athenad.paths import Home, read_pid
from athenad.storage.checkpoints import FileCheckpointStore
from athenad.storage.sessions import SessionManager
from athenad.storage.sessions.transfer import import_session
from tests.conftest import cli, wait_until

pytestmark = pytest.mark.timeout(120)

CANARY = f"sk-canary-{secrets.token_hex(12)}"


def run_cli(home: Home, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = cli("athenactl", *args, home=home, env=env, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def daemon_run(tmp_path_factory: pytest.TempPathFactory):
    """A detached daemon, started as a user starts it with a secret in its environment,
    that ran a checkpointing job, a job with a session, failing jobs and an unknown
    agent; stopped at the end. Yields the home and every command's output."""
    home = Home.resolve(tmp_path_factory.mktemp("security") / "home")
    env = {"OPENAI_API_KEY": CANARY, "ATHENA_WEB_TOKEN": CANARY + "-web"}
    outputs: list[tuple[str, str]] = []  # (the job a command was about, its output)
    start = cli("athenad", "start", "--workers", "2", home=home, env=env, timeout=60)
    try:
        assert start.returncode == 0, start.stderr
        session = run_cli(home, "sessions", "new", "--name", "security").stdout.strip()

        def submit(*args: str) -> str:
            result = run_cli(home, "submit", *args)
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        jobs = {
            "sleeper": submit("sleep", "--payload", '{"seconds": 1.5}'),
            "talker": submit("echo", "--session", session, "--payload", '{"hi": 1}'),
            # Fails naming the environment variable (its name, not its value).
            "failing": submit(
                "shell",
                "--payload",
                json.dumps({"cmd": "echo OPENAI_API_KEY is refused >&2; exit 3"}),
            ),
            "not_an_object": submit("shell", "--payload", "[1, 2]"),
            # The command prints the secret itself: what an agent puts in its own error.
            "leaky": submit(
                "shell", "--payload", json.dumps({"cmd": "echo $OPENAI_API_KEY >&2; exit 4"})
            ),
        }
        # From Python no registry is known: an unknown agent fails fast when claimed.
        from athenad import TaskOrchestrator

        with TaskOrchestrator(db_path=home.db_path, session_dir=home.state_dir) as orch:
            jobs["unknown"] = orch.submit_job("no-such-agent", {"x": 1}, max_attempts=3)
        waited = subprocess.run(
            [sys.executable, "-m", "athenad.cli.ctl", "wait", *jobs.values(), "--timeout", "60",
             "--home", str(home.root)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        outputs += [("wait", waited.stdout), ("wait", waited.stderr)]
        for name, job_id in jobs.items():
            for command in (("show", job_id), ("show", job_id, "--json"), ("logs", job_id)):
                result = run_cli(home, *command)
                outputs += [(name, result.stdout), (name, result.stderr)]
        for command in (
            ("jobs", "--json"),
            ("failed",),
            ("sessions", "show", session),
            ("sessions", "list", "--json"),
            ("status", "--json"),
            ("checkpoints", jobs["sleeper"]),
        ):
            result = run_cli(home, *command)
            outputs += [("", result.stdout), ("", result.stderr)]
    finally:
        pid = read_pid(home)
        stop = cli("athenad", "stop", "--timeout", "10", home=home, timeout=60)
        outputs += [("", text) for text in (start.stdout, start.stderr, stop.stdout, stop.stderr)]
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                wait_until(lambda: read_pid(home) is None, timeout=20, what="athenad to stop")
                os.killpg(pid, signal.SIGKILL)
    yield home, jobs, outputs


def test_everything_under_dot_athena_is_private_after_a_run(daemon_run) -> None:
    home, jobs, _ = daemon_run
    checked, loose = 0, []
    for path in [home.state_dir, *home.state_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            wanted = 0o700
        elif stat.S_ISREG(mode):
            wanted = 0o600
        else:
            continue  # sockets live in the 0700 run/ folder
        checked += 1
        if stat.S_IMODE(mode) != wanted:
            loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(home.root)}")
    assert not loose, "\n".join(loose)
    # The run wrote what it should have: logs, a checkpoint, a session, the pid file.
    names = {p.name for p in home.state_dir.rglob("*")}
    assert {"athenad.log", "athenad.pid", "agents.log"} <= names
    assert any(home.checkpoints_dir.iterdir()) and any(home.sessions_dir.glob("*.jsonl"))
    assert checked >= 10


def test_jobs_ended_as_they_should(daemon_run) -> None:
    home, jobs, outputs = daemon_run
    shown = {
        name: json.loads(run_cli(home, "show", job_id, "--json").stdout)
        for name, job_id in jobs.items()
    }
    assert shown["sleeper"]["status"] == "completed"
    assert shown["talker"]["status"] == "completed"
    assert shown["failing"]["status"] == "failed"
    assert "OPENAI_API_KEY is refused" in shown["failing"]["error"]
    assert shown["not_an_object"]["status"] == "failed"
    unknown = shown["unknown"]
    assert unknown["status"] == "failed" and unknown["attempts"] == 1  # fails fast, no retry
    assert "no agent named 'no-such-agent' is registered" in unknown["error"]


def test_a_secret_in_the_environment_is_in_no_file_and_no_output(daemon_run) -> None:
    """Athena never writes its environment anywhere, and a job that prints a secret
    into its error has it replaced before the error is stored or logged."""
    home, _jobs, outputs = daemon_run
    strays = [(about, text[:300]) for about, text in outputs if CANARY in text]
    assert not strays, strays
    for path in sorted(home.root.rglob("*")):
        assert not path.is_file() or CANARY.encode() not in path.read_bytes(), path
    assert not any(CANARY in text for text in os.environ.values())  # only the daemon had it


def test_a_secret_an_agent_prints_into_its_error_is_redacted(daemon_run) -> None:
    home, jobs, _ = daemon_run
    shown = json.loads(run_cli(home, "show", jobs["leaky"], "--json").stdout)
    assert CANARY not in json.dumps(shown)
    assert "[redacted]" in shown["error"] and shown["status"] == "failed"


# ---- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_id", ["../x", "../../etc/passwd", "/etc/passwd", "a/b", "x\x00y", "", "é/..", ".."]
)
def test_a_checkpoint_id_never_names_a_file_outside_its_folder(tmp_path, job_id) -> None:
    store = FileCheckpointStore(tmp_path / "checkpoints")
    try:
        info = store.save(job_id, 1, state={"a": 1})
    except InvalidInput:
        assert not (tmp_path / "checkpoints").exists() or not any(tmp_path.rglob("*.json"))
        return
    assert Path(info.path).resolve().parent == (tmp_path / "checkpoints").resolve()
    assert [p.parent for p in tmp_path.rglob("*.json")] == [tmp_path / "checkpoints"]


@pytest.mark.parametrize(
    "wanted_id",
    ["../../../evil", "/tmp/evil", "session-../../x", "session-ok/../../x", "..", "\x00"],
)
def test_an_imported_session_stays_in_the_sessions_folder(tmp_path, wanted_id) -> None:
    from athenad.storage.sessions.transfer import export_session

    home = Home.resolve(tmp_path / "home").ensure()
    manager = SessionManager(home.sessions_dir)
    original = manager.create_session(name="../../evil", tags=["../x"])
    manager.add_message(original, "user", "hi")
    exported = export_session(manager, original, "json")
    document = json.loads(exported)
    document["session"]["id"] = wanted_id
    session_id = import_session(manager, json.dumps(document), source="evil.json")
    assert session_id not in (wanted_id, original)
    outside = [p for p in tmp_path.rglob("*") if home.root not in p.parents and p != home.root]
    assert outside == []
    assert (home.sessions_dir / f"{session_id}.jsonl").is_file()


def test_session_names_and_ids_with_dot_dot_stay_in_the_home(tmp_path) -> None:
    home = Home.resolve(tmp_path / "home").ensure()
    made = run_cli(home, "sessions", "new", "--name", "../../../escape", "--tag", "../t")
    assert made.returncode == 0
    for bad in ("../../../escape", "/etc/passwd", "session-x/../../y"):
        result = run_cli(home, "sessions", "add", bad, "--role", "user", "hi")
        assert result.returncode != 0 and result.stderr.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_relative_home_is_resolved_once_and_used_whole(tmp_path) -> None:
    (tmp_path / "cwd").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "athenad.cli.ctl", "submit", "echo", "--home", "../h"],
        cwd=tmp_path / "cwd",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "h" / "athena.db").is_file()
    assert sorted(p.name for p in (tmp_path / "cwd").iterdir()) == []
    assert stat.S_IMODE((tmp_path / "h" / ".athena").stat().st_mode) == 0o700


# ---- the web token ------------------------------------------------------------------------


def test_the_web_token_cookie_and_csrf_are_compared_in_constant_time(tmp_path, monkeypatch):
    pytest.importorskip("starlette")
    from starlette.requests import Request

    from athenad.config import load_config
    from athenad.web import auth
    from athenad.web.settings import WebSettings

    home = Home.resolve(tmp_path).ensure()
    web = WebSettings(home=home, daemon=load_config(home).daemon, allow_actions=True, token="t0k")
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    def request(headers: dict[str, str]) -> Request:
        raw = [
            (k.lower().encode(), v.encode("utf-8", "surrogateescape")) for k, v in headers.items()
        ]
        return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})

    cookie = auth.new_session(web)
    nonce = cookie.partition(".")[0]
    good = request({"Authorization": "Bearer t0k", "Cookie": f"{auth.COOKIE}={cookie}"})
    assert auth.bearer_ok(web, good) and auth.token_ok(web, "t0k")
    assert auth.session_nonce(web, good) == nonce
    assert auth.csrf_ok(web, good, auth.csrf_token(web, nonce))
    assert len(calls) >= 4  # each check went through hmac.compare_digest
    calls.clear()
    # Whatever a client sends is unequal, never an error (a 500).
    for given in ("t0x", "", "é" * 3, "\ud800", "t0k\x00"):
        assert not auth.token_ok(web, given)
        bad = request(
            {"Cookie": f"{auth.COOKIE}={nonce}.{given.encode('utf-8', 'surrogatepass').hex()}é"}
        )
        assert auth.session_nonce(web, bad) is None
        assert not auth.csrf_ok(web, good, given)
    assert len(calls) >= 10
