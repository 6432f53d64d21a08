"""Every page renders complete from the server (no JavaScript needed), with its content."""

from __future__ import annotations

import re


def test_overview_shows_counts_queues_chart_and_workers(client, jobs):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    for status in ("completed", "failed", "cancelled", "pending"):
        assert status in html
    # Queues with unfinished jobs: batch's are all finished.
    assert 'href="/jobs?queue=default"' in html and 'href="/jobs?queue=batch"' not in html
    assert '<svg class="chart"' in html and "jobs per hour" in html
    assert html.count(": 4 jobs, 1 failed</title>") == 2  # this hour's and minute's bars
    assert "jobs per minute" in html
    assert "no daemon running in this home" in html
    assert "read-only" in html  # actions are off
    assert 'src="/static/live.js"' in html and "cdn" not in html.lower()


def test_jobs_page_filters_and_pages(client, jobs):
    html = client.get("/jobs").text
    assert all(job_id in html for job_id in jobs.values())
    failed = client.get("/jobs", params={"status": "failed"}).text
    assert jobs["child"] in failed and jobs["root"] not in failed
    assert "ValueError: bad input 42" in failed
    found = client.get("/jobs", params={"q": "BAD INPUT"}).text
    assert jobs["child"] in found and jobs["lone"] not in found
    first = client.get("/jobs", params={"limit": 2}).text
    assert "page 1 of 2" in first and "older" in first
    second = client.get("/jobs", params={"limit": 2, "page": 2}).text
    assert "page 2 of 2" in second and "newer" in second


def test_a_bad_filter_is_one_sentence_and_400(client, jobs):
    page = client.get("/jobs", params={"status": "nonsense"})
    assert page.status_code == 400
    assert "status must be one of" in page.text


def test_the_fragment_is_the_live_part_alone(client, jobs):
    part = client.get("/jobs", params={"fragment": 1, "status": "failed"}).text
    assert jobs["child"] in part and "<html" not in part


def test_job_page_shows_everything_about_a_failed_job(client, jobs):
    html = client.get(f"/jobs/{jobs['child']}").text
    assert "ValueError: bad input 42" in html and "Traceback ..." in html
    assert "starting" in html and "boom" in html  # its log lines
    assert f'href="/jobs/{jobs["root"]}"' in html  # parent
    assert f'href="/jobs/{jobs["grandchild"]}"' in html  # child
    assert (
        "&#34;step&#34;: &#34;child&#34;" in html
        or "&quot;step&quot;" in html
        or ('"step": "child"' in html)
    )
    assert f"/api/jobs/{jobs['child']}/stream?after=2" in html  # follows from the last line
    # Actions are shown, disabled: the server is read-only.
    assert re.search(r"<button disabled[^>]*>Cancel</button>", html)


def test_unknown_job_page_is_404(client, jobs):
    page = client.get("/jobs/no-such-job")
    assert page.status_code == 404 and "does not exist" in page.text


def test_workflow_graph_has_every_node_and_edge(client, jobs):
    html = client.get(f"/jobs/{jobs['grandchild']}/graph").text
    nodes = set(re.findall(r'class="node" data-id="([^"]+)" data-status="([^"]+)"', html))
    assert nodes == {
        (jobs["root"], "completed"),
        (jobs["child"], "failed"),
        (jobs["grandchild"], "cancelled"),
    }
    edges = set(re.findall(r'class="edge" data-from="([^"]+)" data-to="([^"]+)"', html))
    assert edges == {(jobs["root"], jobs["child"]), (jobs["child"], jobs["grandchild"])}
    assert f'href="/jobs/{jobs["root"]}"' in html
    assert "3 job(s), 2 dependencies" in html


def test_login_page_and_static_files(client, jobs):
    assert "Log in" in client.get("/login").text
    css = client.get("/static/athena.css")
    assert css.status_code == 200 and "body" in css.text
    assert "EventSource" in client.get("/static/live.js").text
    assert client.get("/no/such/page").status_code == 404


def test_a_loopback_server_answers_only_its_own_names(home, jobs):
    import dataclasses

    from tests.web.conftest import make_client

    client = make_client(home)
    web = client.app.state.web
    client.app.state.web = dataclasses.replace(web, allowed_hosts=frozenset({"127.0.0.1"}))
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    refused = client.get("/api/jobs", headers={"Host": "evil.example:8765"})
    assert refused.status_code == 421 and "its own address" in refused.json()["error"]


def test_host_names_lose_their_port():
    from athenad.web.app import host_name

    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("localhost") == "localhost"
    assert host_name("[::1]:8765") == "::1"


def test_failed_page_groups_by_error(client, jobs):
    html = client.get("/failed").text
    assert "ValueError: bad input 42" in html and f'href="/jobs/{jobs["child"]}"' in html
    assert "1 failed job(s)" in html
    assert client.get("/failed", params={"since": "soon"}).status_code == 400
    groups = client.get("/api/failed/groups").json()
    assert groups["groups"][0]["error"] == "ValueError: bad input 42"
    assert groups["groups"][0]["ids"] == [jobs["child"]]


def test_metrics_are_prometheus_text(client, jobs):
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "athena_daemon_up 0" in answer.text
