"""A home with a small workflow in it, and a TestClient on the dashboard of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from athenad.config import load_config
from athenad.paths import Home
from athenad.storage.job_logs import new_line, open_job_logs
from athenad.store.backend import open_store
from athenad.web.app import build_app
from athenad.web.settings import WebSettings

TOKEN = "s3cret-token"


def fill(queue: Any) -> dict[str, str]:
    """A root that completed, a child that failed with a traceback and log lines, a
    grandchild cancelled by that failure, and an unrelated pending job."""
    root, child = queue.submit_many([{"type": "echo", "payload": {"step": "root"}}])[0], None
    claimed = queue.claim("w1", 1)
    queue.complete(claimed.id, claimed.fence, {"ok": True})
    child = queue.submit("echo", {"step": "child"}, after=[root], queue="batch")
    grandchild = queue.submit("echo", {"step": "grandchild"}, after=[child], queue="batch")
    claimed = queue.claim("w1", 1)
    assert claimed.id == child
    logs = open_job_logs(queue)
    logs.append(child, [new_line("starting", fields={"n": 1}), new_line("boom", "error")])
    queue.fail(
        child,
        claimed.fence,
        "ValueError: bad input 42",
        "Traceback ...\nValueError: bad input 42",
        retryable=False,
    )
    lone = queue.submit("sleep", {"seconds": 1})
    return {"root": root, "child": child, "grandchild": grandchild, "lone": lone}


def make_client(home: Home, *, actions: bool = False) -> TestClient:
    config = load_config(home)
    web = WebSettings(
        home=home,
        daemon=config.daemon,
        allow_actions=actions,
        token=TOKEN if actions else "",
        poll_s=0.05,
    )
    return TestClient(build_app(web))


@pytest.fixture
def jobs(home: Home) -> dict[str, str]:
    with open_store(home, load_config(home).daemon) as queue:
        return fill(queue)


@pytest.fixture
def client(home: Home, jobs: dict[str, str]) -> Iterator[TestClient]:
    with make_client(home) as test_client:
        yield test_client


@pytest.fixture
def acting(home: Home, jobs: dict[str, str]) -> Iterator[TestClient]:
    with make_client(home, actions=True) as test_client:
        yield test_client
