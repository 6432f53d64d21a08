"""Actions need --allow-actions and the token: a bearer header for the API, the login
cookie and the form's CSRF token for the pages."""

from __future__ import annotations

import re

from tests.web.conftest import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _status(client, job_id: str) -> str:
    return client.get(f"/api/jobs/{job_id}").json()["status"]


def test_read_only_server_refuses_every_action(client, jobs):
    for url in (f"/api/jobs/{jobs['lone']}/cancel", "/api/queues/default/pause"):
        answer = client.post(url, headers=BEARER)
        assert answer.status_code == 403
        assert "actions are off" in answer.json()["error"]
    page = client.post(f"/jobs/{jobs['lone']}/cancel", data={"csrf": "x"})
    assert page.status_code == 403
    assert _status(client, jobs["lone"]) == "pending"
    login = client.post("/login", data={"token": TOKEN})
    assert login.status_code == 403 and "actions are off" in login.text


def test_api_actions_need_the_bearer_token(acting, jobs):
    url = f"/api/jobs/{jobs['lone']}/cancel"
    assert acting.post(url).status_code == 403
    assert acting.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert acting.get(url).status_code == 405  # POST only
    assert _status(acting, jobs["lone"]) == "pending"
    done = acting.post(url, headers=BEARER)
    assert done.status_code == 200 and done.json() == {"id": jobs["lone"], "status": "cancelled"}
    assert _status(acting, jobs["lone"]) == "cancelled"


def test_api_retry_send_pause_resume(acting, jobs):
    retried = acting.post(f"/api/jobs/{jobs['child']}/retry", headers=BEARER).json()
    assert retried["id"] == jobs["child"] and _status(acting, jobs["child"]) == retried["status"]
    sent = acting.post(
        f"/api/jobs/{jobs['lone']}/send", headers=BEARER, json={"key": "go", "payload": {"n": 1}}
    ).json()
    assert sent["id"] == jobs["lone"] and sent["key"] == "go" and sent["outcome"]
    paused = acting.post("/api/queues/batch/pause", headers=BEARER).json()
    assert paused == {"queue": "batch", "state": "paused"}
    queues = {row["name"]: row for row in acting.get("/api/queues").json()}
    assert queues["batch"]["paused"] is True
    overview = acting.get("/").text  # a paused queue is listed, with nothing waiting in it
    assert re.search(r'queue=batch">batch</a></td><td>paused</td>', overview)
    assert acting.post("/api/queues/batch/resume", headers=BEARER).json()["state"] == "open"
    unknown = acting.post(f"/api/jobs/{jobs['lone']}/explode", headers=BEARER)
    assert unknown.status_code == 400 and "unknown action" in unknown.json()["error"]
    missing = acting.post("/api/jobs/nope/cancel", headers=BEARER)
    assert missing.status_code == 404


def test_approve_of_a_job_not_awaiting_is_refused_with_a_sentence(acting, jobs):
    answer = acting.post(f"/api/jobs/{jobs['lone']}/approve", headers=BEARER, json={})
    assert answer.status_code in (400, 409)
    assert answer.json()["error"]


def _login(client) -> str:
    """Log in through the form; returns the CSRF token the job page's forms carry."""
    page = client.post("/login", data={"token": TOKEN, "next": "/jobs"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/jobs"
    assert "athena_session" in page.headers["set-cookie"]
    assert "httponly" in page.headers["set-cookie"].lower()
    return ""


def test_pages_act_after_login_with_the_csrf_token(acting, jobs):
    url = f"/jobs/{jobs['lone']}"
    before = acting.get(url).text
    assert "Log in" in before and re.search(r"<button disabled[^>]*>Cancel</button>", before)
    assert acting.post("/login", data={"token": "wrong"}).status_code == 403
    _login(acting)
    page = acting.get(url).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    assert re.search(r"<button >Cancel</button>|<button>Cancel</button>", page)
    refused = acting.post(f"{url}/cancel", data={"csrf": "0" * 64})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert _status(acting, jobs["lone"]) == "pending"
    done = acting.post(f"{url}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(url + "?done=")
    assert _status(acting, jobs["lone"]) == "cancelled"
    assert "cancel: cancelled" in acting.get(done.headers["location"]).text


def test_a_session_cookie_from_another_token_is_not_a_session(acting, jobs, home):
    from tests.web.conftest import make_client

    _login(acting)
    cookie = acting.cookies.get("athena_session")
    other = make_client(home, actions=True)
    other.app.state.web = type(other.app.state.web)(
        **{**other.app.state.web.__dict__, "token": "another-token"}
    )
    other.cookies.set("athena_session", cookie)
    assert "Log in to act" in other.get("/").text


def test_bulk_retry_and_cancel(acting, jobs):
    url = "/api/jobs/bulk"
    body = {"action": "cancel", "ids": [jobs["lone"], jobs["root"], "nope"]}
    assert acting.post(url, json=body).status_code == 403
    results = acting.post(url, json=body, headers=BEARER).json()["results"]
    assert results[0] == {"id": jobs["lone"], "status": "cancelled"}
    assert "error" in results[2] and "does not exist" in results[2]["error"]
    bad = acting.post(url, json={"action": "explode", "ids": [jobs["lone"]]}, headers=BEARER)
    assert bad.status_code == 400
    _login(acting)
    page = acting.get("/jobs").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    assert f'name="ids" value="{jobs["child"]}"' in page
    form = {"csrf": csrf, "action": "retry", "ids": [jobs["child"], jobs["lone"]], "back": "/jobs"}
    done = acting.post("/jobs/bulk", data=form, follow_redirects=False)
    assert done.status_code == 303 and "retry%3A+2+job%28s%29" in done.headers["location"]
    assert _status(acting, jobs["child"]) != "failed"
    assert acting.post("/jobs/bulk", data={**form, "csrf": "bad"}).status_code == 403


def test_submit_a_workflow_through_the_api(acting, jobs):
    tasks = {
        "tasks": [
            {"type": "echo", "payload": {"n": 1}, "queue": "api"},
            {"type": "echo", "payload": {"n": 2}, "after": [0], "queue": "api"},
        ]
    }
    assert acting.post("/api/jobs", json=tasks).status_code == 403
    made = acting.post("/api/jobs", json=tasks, headers=BEARER)
    assert made.status_code == 201
    first, second = made.json()
    assert first["duplicate"] is False and second["duplicate"] is False
    shown = acting.get(f"/api/jobs/{second['id']}").json()
    assert shown["parents"] == [first["id"]] and shown["status"] == "blocked"
    one = acting.post(
        "/api/jobs", json={"type": "sleep", "payload": {"seconds": 1}}, headers=BEARER
    )
    assert one.status_code == 201 and len(one.json()) == 1
    for body, words in (
        ({"type": "no-such-agent"}, "unknown job type 'no-such-agent'"),
        ({"type": "echo", "colour": "red"}, "unknown task field(s) colour"),
        ({"tasks": []}, "tasks must be a list of 1 to"),
    ):
        answer = acting.post("/api/jobs", json=body, headers=BEARER)
        assert answer.status_code == 400 and words in answer.json()["error"], body
    garbled = acting.post("/api/jobs", content=b"{", headers=BEARER)
    assert garbled.status_code == 400


def test_login_goes_back_only_to_a_page_of_this_server(acting, jobs):
    for target, expected in (
        ("/jobs?status=failed", "/jobs?status=failed"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
    ):
        done = acting.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
        assert done.headers["location"] == expected, target
