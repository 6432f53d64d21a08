"""The web dashboard as a child process of the supervisor (``athenad start --http``).

The child runs ``athenactl web`` on the home, so the dashboard is exactly the one a user
starts by hand. If it dies, it is started again after a backoff (at once the first time,
then doubling to 30 s, like a worker slot). ``.athena/run/web.json`` says where it
serves and which pid it is, so ``athenad status`` shows it and does not count it as a
worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from athenad.daemon.respawn import backoff_delay
from athenad.paths import Home
from athenad.util.logs import LibraryLogger

RECORD = "web.json"
STABLE_AFTER_S = 60.0
STOP_WAIT_S = 5.0

log = LibraryLogger("athenad.daemon.web")


def read_web_record(home: Home) -> dict[str, Any] | None:
    """What the supervisor recorded of its web child, if it runs one."""
    try:
        record = json.loads((home.run_dir / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class WebChild:
    """Starts, watches and stops the dashboard process."""

    def __init__(self, home: Home, bind: str, allow_actions: bool) -> None:
        self.home = home
        self.bind = bind
        self.allow_actions = allow_actions
        self.proc: subprocess.Popen[bytes] | None = None
        self.streak = 0
        self.started_at = 0.0
        self.restart_at = 0.0

    @property
    def record_path(self) -> Path:
        return self.home.run_dir / RECORD

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "athenad.cli.ctl", "--home", str(self.home.root)]
        command += ["web", "--bind", self.bind]
        if self.allow_actions:
            command.append("--allow-actions")
        return command

    def start(self) -> None:
        log_path = self.home.state_dir / "web.log"
        with open(log_path, "ab") as out:
            # Its own session: Ctrl-C on a foreground daemon reaches the supervisor,
            # which stops the child itself.
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=out, start_new_session=True
            )
        self.started_at = time.monotonic()
        record = {"pid": self.proc.pid, "bind": self.bind, "url": f"http://{self.bind}/"}
        self.record_path.write_text(json.dumps(record))
        log.info("web_started", pid=self.proc.pid, bind=self.bind)

    def check(self) -> None:
        """Start it again when it died, once its backoff has passed."""
        now = time.monotonic()
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                if now - self.started_at >= STABLE_AFTER_S:
                    self.streak = 0
                return
            self.streak += 1
            delay = backoff_delay(self.streak)
            self.restart_at = now + delay
            log.warning("web_died", pid=self.proc.pid, exit_code=code, respawn_in_s=round(delay, 3))
            self.proc = None
        if now >= self.restart_at:
            self.start()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_WAIT_S)


def start_web_child(home: Home, bind: str, allow_actions: bool) -> WebChild | None:
    """The web child when ``[daemon] http`` (``--http``) names an address, else None."""
    if not bind:
        return None
    child = WebChild(home, bind, allow_actions)
    child.start()
    return child
