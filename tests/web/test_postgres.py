"""The dashboard on PostgreSQL: the same pages and answers as on SQLite."""

from __future__ import annotations

import re

from athenad.config import load_config
from athenad.store.backend import open_store
from tests.web.conftest import TOKEN, fill, make_client


def test_pages_api_and_an_action_on_postgresql(home, postgres_url, postgres_schema, monkeypatch):
    monkeypatch.setenv("ATHENA_DATABASE_URL", postgres_url)
    monkeypatch.setenv("ATHENA_DATABASE_SCHEMA", postgres_schema)
    with open_store(home, load_config(home).daemon) as queue:
        jobs = fill(queue)
    with make_client(home, actions=True) as client:
        for url in ("/", "/jobs", f"/jobs/{jobs['child']}", f"/jobs/{jobs['child']}/graph"):
            assert client.get(url).status_code == 200, url
        listing = client.get("/api/jobs", params={"q": "BAD input"}).json()
        assert [job["id"] for job in listing["jobs"]] == [jobs["child"]]
        assert listing["jobs"][0]["created_at"][:2] == "20"  # UTC text, as on SQLite
        assert client.get("/api/jobs", params={"q": "bad_input"}).json()["total"] == 0
        batch = client.get("/api/jobs", params={"queue": "batch", "limit": 1}).json()
        assert batch["total"] == 2 and len(batch["jobs"]) == 1
        html = client.get(f"/jobs/{jobs['root']}/graph").text
        assert len(re.findall(r'class="edge"', html)) == 2
        assert client.get(f"/api/jobs/{jobs['child']}/logs").json()["lines"][1]["message"] == "boom"
        assert client.get("/api/stats").json()["by_status"]["failed"] == 1
        cancelled = client.post(
            f"/api/jobs/{jobs['lone']}/cancel", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert cancelled.json() == {"id": jobs["lone"], "status": "cancelled"}
        resumed = client.get(
            "/api/events?limit=5", headers={"Last-Event-ID": "2020-01-01 00:00:00.000"}
        )
        assert resumed.status_code == 200 and resumed.text.count("event: job") == 4
    assert not home.db_path.exists()
    # The one store the server shared between requests is closed when it stops.
    from athenad.web import data

    assert not data._shared
