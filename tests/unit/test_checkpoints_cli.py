"""``athenactl checkpoints ID``."""

from __future__ import annotations

import os

import msgspec
import pytest
from click.testing import CliRunner

from athenad.cli.checkpoints_cmd import checkpoints_command, format_size
from athenad.paths import Home
from athenad.storage.checkpoints import CheckpointStore
from athenad.store.sqlite.queue import JobQueue


@pytest.fixture
def home(tmp_path):
    return Home(tmp_path).ensure()


@pytest.fixture
def job_id(home):
    with JobQueue(home.db_path) as queue:
        job_id = queue.submit("plan", {"prompt": "p"})
        claimed = queue.claim("w1")
        store = CheckpointStore(home.checkpoints_dir)
        store.save(job_id, 5, {"s": 5}, [{"role": "user", "content": "x" * 2000}])
        store.save(job_id, 10, {"s": 10}, [])
        queue.record_checkpoint(job_id, claimed.fence, 10)
        bad = store.save(job_id, 15, {"s": 15}, [])
        with open(bad.path, "r+b") as fh:
            fh.seek(-3, os.SEEK_END)
            fh.write(b"??")
    return job_id


def invoke(*args):
    return CliRunner().invoke(checkpoints_command, list(args))


def test_json_lists_each_checkpoint(home, job_id):
    result = invoke(job_id, "--json", "--home", str(home.root))
    assert result.exit_code == 0, result.output
    rows = msgspec.json.decode(result.output)
    assert [set(row) for row in rows] == [
        {"iteration", "created_at", "size_bytes", "valid", "path", "error"}
    ] * 3
    assert [(r["iteration"], r["valid"]) for r in rows] == [(5, True), (10, True), (15, False)]
    assert rows[0]["size_bytes"] > 2000 and rows[0]["error"] is None
    assert "checksum" in rows[2]["error"]
    assert rows[1]["path"].endswith(f"job-{job_id}-iter10.json")


def test_table_shows_validity_and_the_recorded_iteration(home, job_id):
    result = invoke(job_id, "--home", str(home.root))
    assert result.exit_code == 0, result.output
    assert "iteration" in result.output and "valid" in result.output
    assert "10 *" in result.output
    assert "no" in result.output and "checksum" in result.output
    assert "resumes from iteration 10" in result.output


def test_home_from_environment(home, job_id, monkeypatch):
    monkeypatch.setenv("ATHENA_HOME", str(home.root))
    result = invoke(job_id, "--json")
    assert result.exit_code == 0 and len(msgspec.json.decode(result.output)) == 3


def test_job_without_checkpoints(home):
    with JobQueue(home.db_path) as queue:
        job_id = queue.submit("plan")
    result = invoke(job_id, "--home", str(home.root))
    assert result.exit_code == 0 and "has no checkpoints" in result.output
    result = invoke(job_id, "--json", "--home", str(home.root))
    assert msgspec.json.decode(result.output) == []


def test_unknown_job_is_a_clear_error(home, job_id):
    result = invoke("nosuchjob", "--home", str(home.root))
    assert result.exit_code == 1
    assert result.stderr == "error: job 'nosuchjob' does not exist.\n"
    assert "Traceback" not in result.output


def test_missing_database_is_a_clear_error_and_creates_nothing(tmp_path):
    result = invoke("anyjob", "--home", str(tmp_path))
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not (tmp_path / "athena.db").exists()


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(2048) == "2.0 KB"
    assert format_size(3 * 1024 * 1024) == "3.0 MB"
