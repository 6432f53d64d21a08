"""The JSON API: the CLI's keys, filters, pages, errors, and the live streams."""

from __future__ import annotations

import json

from athenad.cli.ctl import SHOW_KEYS
from tests.conftest import cli_json


def test_jobs_have_the_keys_of_ls_json(client, jobs, home):
    body = client.get("/api/jobs").json()
    assert set(body) == {"jobs", "total", "limit", "offset"}
    assert body["total"] == 4 and len(body["jobs"]) == 4
    assert all(list(job) == list(SHOW_KEYS) for job in body["jobs"])
    listed = cli_json("athenactl", "ls", home=home)
    by_id = {job["id"]: job for job in listed}
    for job in body["jobs"]:
        assert job == by_id[job["id"]]


def test_jobs_filters_and_pagination(client, jobs):
    def ids(**params):
        return [job["id"] for job in client.get("/api/jobs", params=params).json()["jobs"]]

    assert ids(status="failed") == [jobs["child"]]
    assert set(ids(queue="batch")) == {jobs["child"], jobs["grandchild"]}
    assert ids(agent="sleep") == [jobs["lone"]]
    assert ids(type="sleep") == [jobs["lone"]]
    assert ids(q=jobs["root"][-6:]) == [jobs["root"]]
    assert ids(q="bad input") == [jobs["child"]]
    assert ids(q="bad_input") == [] and ids(q="%") == []  # wildcards match themselves
    everything = ids()
    assert ids(limit=2) + ids(limit=2, offset=2) == everything
    assert ids(limit=2, page=2) == everything[2:]
    page = client.get("/api/jobs", params={"limit": 1, "offset": 3}).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 1, 3)


def test_bad_filters_are_400_with_one_sentence(client, jobs):
    for params, words in (
        ({"status": "nope"}, "status must be one of"),
        ({"limit": "x"}, "limit must be a whole number"),
        ({"limit": 0}, "limit must be between"),
    ):
        answer = client.get("/api/jobs", params=params)
        assert answer.status_code == 400
        assert words in answer.json()["error"]


def test_one_job_is_show_json(client, jobs, home):
    body = client.get(f"/api/jobs/{jobs['child']}").json()
    assert body == cli_json("athenactl", "show", jobs["child"], home=home)
    missing = client.get("/api/jobs/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "job 'nope' does not exist."}


def test_logs_steps_checkpoints_graph(client, jobs):
    logs = client.get(f"/api/jobs/{jobs['child']}/logs").json()
    assert [line["message"] for line in logs["lines"]] == ["starting", "boom"]
    assert set(logs["lines"][0]) == {"seq", "at", "level", "message", "fields"}
    assert logs["status"] == "failed" and logs["dropped"] == 0
    after = client.get(f"/api/jobs/{jobs['child']}/logs", params={"after": 1}).json()
    assert [line["seq"] for line in after["lines"]] == [2]
    assert client.get(f"/api/jobs/{jobs['child']}/steps").json() == []
    assert client.get(f"/api/jobs/{jobs['child']}/checkpoints").json() == []
    assert client.get("/api/jobs/nope/steps").status_code == 404
    graph = client.get(f"/api/jobs/{jobs['root']}/graph").json()
    assert {node["id"] for node in graph["nodes"]} == {
        jobs["root"],
        jobs["child"],
        jobs["grandchild"],
    }
    assert sorted(graph["edges"]) == sorted(
        [[jobs["root"], jobs["child"]], [jobs["child"], jobs["grandchild"]]]
    )
    assert graph["truncated"] is False


def test_stats_queues_status_failed_trends_match_the_cli(client, jobs, home):
    stats = client.get("/api/stats").json()
    assert set(stats) == set(cli_json("athenactl", "stats", home=home))
    assert stats["by_status"]["failed"] == 1
    queues = client.get("/api/queues").json()
    assert queues == cli_json("athenactl", "queue", "list", home=home)
    status = client.get("/api/status").json()
    assert set(status) == {"running", "pid", "workers", "slots", "queue", "hosts"}
    failed = client.get("/api/failed").json()
    assert [row["id"] for row in failed] == [jobs["child"]]
    assert failed[0].keys() == cli_json("athenactl", "failed", home=home)[0].keys()
    trends = client.get("/api/trends").json()
    assert trends and set(trends[0]) >= {"bucket", "jobs", "failed", "p95_ms"}
    assert client.get("/api/trends", params={"bucket": "week"}).status_code == 400
    assert client.get("/api/stats", params={"since": "soon"}).status_code == 400
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/api/nothing").status_code == 404


def _events(client, url: str) -> list[tuple[str, dict]]:
    events, name = [], None
    with client.stream("GET", url) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_events_stream_the_state(client, jobs):
    events = _events(client, "/api/events?limit=1")
    assert events[0][0] == "state"
    assert events[0][1]["by_status"]["failed"] == 1


def test_events_send_job_changes_and_resume_from_last_event_id(client, jobs, home):
    from athenad.config import load_config
    from athenad.store.backend import open_store

    with client.stream("GET", "/api/events?limit=3") as answer:
        lines = answer.iter_lines()
        first_id = next(line for line in lines if line.startswith("id: "))[4:]
        with open_store(home, load_config(home).daemon) as queue:
            queue.cancel(jobs["lone"])
        seen, name = [], None
        for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((name, json.loads(line[6:])))
    assert (
        "job",
        {"id": jobs["lone"], "status": "cancelled", "type": "sleep", "queue": "default"},
    ) in seen
    states = [data for name, data in seen if name == "state"]
    assert states[0]["by_status"]["cancelled"] == 1 and states[-1]["by_status"]["cancelled"] == 2
    # A client that saw the first event gets what finished since then when it reconnects.
    resumed = client.get("/api/events?limit=2", headers={"Last-Event-ID": first_id}).text
    assert f'"id": "{jobs["lone"]}", "status": "cancelled"' in resumed
    bad = client.get("/api/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]


def test_a_job_stream_sends_status_lines_and_end(client, jobs):
    events = _events(client, f"/api/jobs/{jobs['child']}/stream")
    assert [name for name, _ in events] == ["status", "log", "log", "end"]
    assert events[1][1]["message"] == "starting"
    resumed = client.get(f"/api/jobs/{jobs['child']}/stream", headers={"Last-Event-ID": "1"}).text
    assert "boom" in resumed and "starting" not in resumed


def test_openapi_describes_every_api_route_and_its_parameters(client, jobs):
    from starlette.routing import Route

    from athenad.web.api import routes

    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    served = {
        (route.path, method.lower())
        for route in routes()
        if isinstance(route, Route)
        for method in route.methods - {"HEAD"}
    }
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == served
    listing = spec["paths"]["/api/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "queue", "q", "limit"}
    assert spec["paths"]["/api/jobs/{job_id}/{action}"]["post"]["security"] == [{"token": []}]
    assert all(op["summary"] for ops in spec["paths"].values() for op in ops.values())
    # Every documented GET without path parameters answers 200 here.
    for path, ops in spec["paths"].items():
        if "get" in ops and "{" not in path:
            url = path + ("?limit=1" if path == "/api/events" else "")
            assert client.get(url).status_code == 200, path
