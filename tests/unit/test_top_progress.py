"""``athenactl top`` shows the progress each running job last reported, on both backends."""

from __future__ import annotations

import pytest
from rich.console import Console

from athenad.cli.analytics_cmd import _queue_now, _workers_table
from athenad.storage.job_logs import open_job_logs
from athenad.util.timefmt import utc_now_text

WORKER_PID = 4242


@pytest.fixture(params=["sqlite", "postgres"])
def backend_queue(request, home, monkeypatch):
    if request.param == "sqlite":
        from athenad.store.sqlite.queue import JobQueue

        queue = JobQueue(home.db_path, run_dir=home.run_dir)
    else:
        from athenad.store.postgres.queue import PostgresJobQueue

        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        monkeypatch.setenv("ATHENA_DATABASE_URL", url)
        monkeypatch.setenv("ATHENA_DATABASE_SCHEMA", schema)
        queue = PostgresJobQueue(url, schema=schema)
    yield queue
    queue.close()


def worker_row() -> dict:
    return {"pid": WORKER_PID, "rss_bytes": 30e6, "cpu_percent": 5.0, "jobs_done": 3}


def test_top_shows_the_progress_of_running_jobs(home, backend_queue):
    queue = backend_queue
    job_id = queue.submit("crawl")
    claimed = queue.claim("host:1:0", WORKER_PID, lease_s=60)
    assert claimed is not None and claimed.id == job_id
    logs = open_job_logs(queue)
    assert logs is not None
    logs.set_progress(job_id, 0.42, "page 3 of 7, slowly\nbecause the site is slow today")
    workers = [worker_row()]
    _queue_now(home, workers, utc_now_text())
    assert workers[0]["job"] == job_id
    assert workers[0]["job_progress"].fraction == pytest.approx(0.42)
    console = Console(record=True, width=200)
    console.print(_workers_table(workers, utc_now_text()))
    text = console.export_text()
    assert "progress" in text
    assert "42% page 3 of 7, slowly because the…" in text


def test_an_idle_worker_or_a_quiet_job_shows_none(home, backend_queue):
    queue = backend_queue
    queue.submit("quiet")
    assert queue.claim("host:1:0", WORKER_PID, lease_s=60) is not None
    workers = [worker_row(), {**worker_row(), "pid": WORKER_PID + 1}]
    _queue_now(home, workers, utc_now_text())
    assert [w["job_progress"] for w in workers] == [None, None]
