"""A workflow watched in the browser while a real daemon runs it: submitted through the
API, its graph turns green without a reload; a failed job shows its traceback and is
retried with the token; without the token the retry is refused.

Each page is also photographed: into the test's scratch folder, or, with
``ATHENA_SCREENSHOTS=docs/screenshots``, into the folder the README shows (tracebacks are
masked there: they name the files of the machine that ran the test)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.test_browser import TOKEN, browser, serving  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

AGENTS = """
def flaky(ctx):
    raise ValueError("the flaky step failed on purpose")
"""


@pytest.fixture
def live_site(home, daemon_factory) -> Iterator[str]:
    """A running daemon and ``athenactl web --allow-actions`` on the same home."""
    (home.root / "webagents.py").write_text(AGENTS)
    (home.root / "athena.toml").write_text('[agents]\nflaky = "webagents:flaky"\n')
    daemon_factory(workers=2)
    with serving(home) as base:
        yield base


def post(url: str, body: object, token: str | None) -> tuple[int, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("ATHENA_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> None:
        mask = [page.locator("details pre"), page.locator("details")]
        path = str(folder / f"{name}.png")
        page.screenshot(path=path, full_page=True, mask=mask, mask_color="#d9dde4")
        assert (folder / f"{name}.png").stat().st_size > 0

    return shot


def test_a_workflow_turns_green_and_a_failure_is_retried(browser, live_site, shots):  # noqa: F811
    tasks = [
        {"type": "sleep", "payload": {"seconds": 1}},
        {"type": "sleep", "payload": {"seconds": 1.5}},
        {"type": "echo", "payload": {"msg": "both done"}, "after": [0, 1]},
    ]
    status, outcomes = post(live_site + "/api/jobs", {"tasks": tasks}, TOKEN)
    assert status == 201
    ids = [outcome["id"] for outcome in outcomes]  # type: ignore[union-attr]

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_site}/jobs/{ids[0]}/graph")
    nodes = page.locator("svg.dag a.node")
    assert nodes.count() == 3
    # Without a reload, every node ends up completed (green).
    page.wait_for_function(
        "() => [...document.querySelectorAll('svg.dag a.node')]"
        ".filter(n => n.dataset.status === 'completed').length === 3",
        timeout=30_000,
    )
    shots(page, "workflow")
    page.goto(live_site + "/")
    shots(page, "overview")
    page.goto(live_site + "/jobs")
    shots(page, "jobs")

    status, outcomes = post(live_site + "/api/jobs", {"type": "flaky"}, TOKEN)
    failed_id = outcomes["id"] if isinstance(outcomes, dict) else outcomes[0]["id"]  # type: ignore[index]
    page.goto(f"{live_site}/jobs/{failed_id}")
    # The page may have loaded before the job failed: its live part brings the error in.
    page.get_by_text("Traceback").first.wait_for(timeout=30_000)
    assert page.locator("pre.error", has_text="the flaky step failed on purpose").is_visible()
    shots(page, "failed-job")

    refused, _ = post(f"{live_site}/api/jobs/{failed_id}/retry", {}, None)
    assert refused == 403
    retried, answer = post(f"{live_site}/api/jobs/{failed_id}/retry", {}, TOKEN)
    assert retried == 200, answer
    page.close()
