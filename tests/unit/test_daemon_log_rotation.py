"""The daemon's log file: several processes append to it, each rotates it by size, and
a file renamed away (logrotate) is opened anew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from athenad.util import logfile
from athenad.util.logfile import RotatingLog

# A writer process: N numbered lines, each through print() as structlog writes them.
WRITER = """
import sys
from pathlib import Path
from athenad.util.logfile import RotatingLog

path, name, count, max_bytes, backups = sys.argv[1:]
log = RotatingLog(Path(path), int(max_bytes), int(backups))
for n in range(int(count)):
    print(f'{{"writer":"{name}","n":{n},"pad":"{"x" * (n % 40)}"}}', file=log, flush=True)
"""


def write_from_processes(path: Path, writers: int, count: int, max_bytes: int, backups: int):
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(path),
                f"w{k}",
                str(count),
                str(max_bytes),
                str(backups),
            ]
        )
        for k in range(writers)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0


def files_oldest_first(path: Path) -> list[Path]:
    backups = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*backups, path]


def test_several_writers_lose_no_line_and_keep_each_ones_order(tmp_path):
    path = tmp_path / "athenad.log"
    write_from_processes(path, writers=3, count=400, max_bytes=4000, backups=1000)
    files = files_oldest_first(path)
    assert len(files) > 10  # it rotated many times
    seen: dict[str, list[int]] = {}
    for file in files:
        text = file.read_text()
        assert text.endswith("\n")
        for line in text.splitlines():
            assert line.startswith('{"writer":"w') and line.endswith('"}')  # never split
            name = line.split('"')[3]
            seen.setdefault(name, []).append(int(line.split('"n":')[1].split(",")[0]))
        # No file grows past the cap by more than a line from each other writer.
        assert file.stat().st_size <= 4000 + 3 * 100
    assert seen == {f"w{k}": list(range(400)) for k in range(3)}


def test_backups_are_capped(tmp_path):
    path = tmp_path / "athenad.log"
    (tmp_path / "athenad.log.7").write_text("from when log_backups was higher\n")
    write_from_processes(path, writers=2, count=300, max_bytes=3000, backups=2)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "athenad.log.lock")
    assert names == ["athenad.log", "athenad.log.1", "athenad.log.2"]


def test_no_backups_starts_a_fresh_file(tmp_path):
    path = tmp_path / "athenad.log"
    log = RotatingLog(path, 500, 0)
    for n in range(50):
        print(f'{{"n":{n},"pad":"{"x" * 20}"}}', file=log, flush=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["athenad.log", "athenad.log.lock"]
    assert path.stat().st_size <= 500
    assert path.read_text().splitlines()[-1].startswith('{"n":49,')


def test_no_rotation_when_max_bytes_is_zero(tmp_path):
    log = RotatingLog(tmp_path / "athenad.log", 0, 5)
    for _ in range(200):
        print("x" * 50, file=log, flush=True)
    assert [p.name for p in tmp_path.iterdir()] == ["athenad.log"]


def test_reopen_after_an_outside_rename(tmp_path):
    path = tmp_path / "athenad.log"
    log = RotatingLog(path, 0, 5)
    print("before", file=log, flush=True)
    path.rename(tmp_path / "athenad.log-20261126")  # what logrotate does
    print("still the old file", file=log, flush=True)  # until told, or a second passes
    log.reopen()  # SIGUSR1
    print("after", file=log, flush=True)
    assert (tmp_path / "athenad.log-20261126").read_text() == "before\nstill the old file\n"
    assert path.read_text() == "after\n"


def test_a_writer_notices_the_rename_by_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "RECHECK_PATH_S", 0.0)
    path = tmp_path / "athenad.log"
    log = RotatingLog(path, 0, 5)
    print("before", file=log, flush=True)
    path.rename(tmp_path / "athenad.log.1")
    print("after", file=log, flush=True)
    assert path.read_text() == "after\n"


def test_stdio_follows_the_file(tmp_path):
    """The detached supervisor's stdout and stderr (a traceback, say) go where its log goes."""
    script = """
import os, sys
from pathlib import Path
from athenad.util.logfile import RotatingLog
log = RotatingLog(Path(sys.argv[1]), 0, 5, stdio=True)
Path(sys.argv[1]).rename(sys.argv[1] + ".1")
log.reopen()
print("to stdout", flush=True)
os.write(2, b"to stderr\\n")
"""
    path = tmp_path / "athenad.log"
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    assert path.read_text() == "to stdout\nto stderr\n"
    assert (tmp_path / "athenad.log.1").read_text() == ""


@pytest.mark.parametrize("backups", [1, 3])
def test_rotation_keeps_whole_lines_in_order(tmp_path, backups):
    path = tmp_path / "athenad.log"
    log = RotatingLog(path, 1000, backups)
    for n in range(500):
        print(f"line {n:04d}", file=log, flush=True)
    text = "".join(p.read_text() for p in files_oldest_first(path))
    numbers = [int(line.split()[1]) for line in text.splitlines()]
    assert numbers == list(range(numbers[0], 500))
    assert os.path.exists(f"{path}.{backups}") and not os.path.exists(f"{path}.{backups + 1}")
