"""The dashboard in a real browser (Chromium through Playwright): pages render, live
parts update without a reload, and an action goes through the login and its CSRF token.

Chromium is the system's (Debian's ``chromium``), never a browser download. Without it
these tests skip locally with the reason; with CI=true they fail (``.ci/run`` installs
it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from athenad.config import load_config
from athenad.store.backend import open_store
from tests.conftest import free_port

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

TOKEN = "browser-test-token"


def browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = browser_problem()
    if problem is not None:
        message = f"browser tests need Chromium: {problem}."
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@contextlib.contextmanager
def serving(home) -> Iterator[str]:
    """``athenactl web --allow-actions`` on the home, as a user starts it; its base URL."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATHENA_")}
    env["ATHENA_WEB_TOKEN"] = TOKEN
    command = [sys.executable, "-m", "athenad.cli.ctl", "web", "--home", str(home.root)]
    command += ["--bind", f"127.0.0.1:{port}", "--allow-actions"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"athenactl web did not start: {proc.communicate()[1]}")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(home, jobs) -> Iterator[str]:
    with serving(home) as base:
        yield base


def test_the_overview_and_a_job_render(browser, server, jobs):
    page = browser.new_page()
    page.goto(server + "/")
    assert "Overview" in page.title() or page.get_by_text("Overview").first.is_visible()
    assert page.locator("svg").count() >= 1  # the charts
    page.goto(f"{server}/jobs/{jobs['child']}")
    assert page.get_by_text("ValueError: bad input 42").first.is_visible()
    page.goto(f"{server}/jobs/{jobs['root']}/graph")
    assert page.locator("svg a").count() >= 3  # root, child and grandchild as links
    page.close()


def test_the_jobs_list_updates_live(browser, server, home):
    page = browser.new_page()
    page.goto(server + "/jobs")
    with open_store(home, load_config(home).daemon) as queue:
        new_id = queue.submit("echo", {"arrived": "later"})
    # No reload: the page's event stream brings the new job in.
    page.get_by_text(new_id).first.wait_for(timeout=20_000)
    page.close()


def test_an_action_needs_the_login_and_goes_through(browser, server, home, jobs):
    page = browser.new_page()
    page.goto(f"{server}/jobs/{jobs['lone']}")
    cancel = page.get_by_role("button", name="Cancel")
    assert cancel.is_disabled()  # not logged in
    page.goto(f"{server}/login?next=/jobs/{jobs['lone']}")
    page.fill("input[name=token]", TOKEN)
    page.locator(
        "form[action='/login'] button, form[action='/login'] input[type=submit]"
    ).first.click()
    page.wait_for_url(f"**/jobs/{jobs['lone']}")
    page.get_by_role("button", name="Cancel").click()
    with open_store(home, load_config(home).daemon) as queue:
        deadline = time.monotonic() + 20
        while queue.get(jobs["lone"])["status"] != "cancelled":
            assert time.monotonic() < deadline, "the cancel did not reach the job"
            time.sleep(0.1)
    page.close()
