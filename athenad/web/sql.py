"""The dashboard's own read queries (filters and pages the store does not offer).

Written once with ``:name`` parameters; PostgreSQL gets them as ``%(name)s`` with a
``::text`` cast where a NULL test needs a type. Rows come back with UTC text times,
as the analytics readers return them.
"""

from __future__ import annotations

import re
from typing import Any

from athenad.analytics.readers import Reader, SqliteReader

JOB_FILTER = """
WHERE (:status IS NULL OR status = :status)
  AND (:type IS NULL OR type = :type)
  AND (:agent IS NULL OR agent_type = :agent)
  AND (:queue IS NULL OR queue = :queue)
  AND (:pattern IS NULL OR lower(id) LIKE :pattern ESCAPE '\\'
       OR lower(coalesce(error, '')) LIKE :pattern ESCAPE '\\')
"""

QUERIES = {
    "jobs_page": f"SELECT * FROM jobs {JOB_FILTER} "
    "ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset",
    "jobs_total": f"SELECT count(*) AS n FROM jobs {JOB_FILTER}",
    # Unfinished jobs only: the status index finds them, where counting every job by
    # queue would read the whole table on each refresh.
    "queue_status_counts": "SELECT queue, status, count(*) AS n FROM jobs "
    "WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', "
    "'waiting') GROUP BY queue, status",
    "paused_queues": "SELECT name FROM queues WHERE paused",
    "unfinished_states": "SELECT id, status, type, queue FROM jobs "
    "WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', "
    "'waiting') LIMIT 10000",
    "agent_types": "SELECT DISTINCT agent_type FROM jobs ORDER BY agent_type LIMIT 200",
    "queue_names": "SELECT DISTINCT queue FROM jobs ORDER BY queue LIMIT 200",
    "status_counts": "SELECT status, count(*) AS n FROM jobs GROUP BY status",
}
# Queries that differ by dialect. A list of ids is JSON text on SQLite and an array on
# PostgreSQL; an hour is a prefix of SQLite's UTC text and to_char() of a timestamptz.
SQLITE_ID_QUERIES = {
    # Two parts so each finds its rows by an index (jobs_completed, jobs_status_created).
    "finished_since": "SELECT id, status, type, queue, completed_at FROM jobs "
    "WHERE status = 'completed' AND completed_at >= :since UNION ALL "
    "SELECT id, status, type, queue, completed_at FROM jobs "
    "WHERE status IN ('failed', 'cancelled') AND completed_at >= :since "
    "ORDER BY completed_at LIMIT 10000",
    "hourly": "SELECT substr(created_at, 1, 13) AS bucket, count(*) AS jobs, "
    "sum(status = 'failed') AS failed FROM jobs WHERE created_at >= :since GROUP BY bucket",
    "minutely": "SELECT substr(created_at, 1, 16) AS bucket, count(*) AS jobs, "
    "sum(status = 'failed') AS failed FROM jobs WHERE created_at >= :since GROUP BY bucket",
    "parents_of": "SELECT job_id, parent_id FROM job_parents "
    "WHERE job_id IN (SELECT value FROM json_each(:ids))",
    "children_of": "SELECT job_id, parent_id FROM job_parents "
    "WHERE parent_id IN (SELECT value FROM json_each(:ids))",
    "brief_jobs": "SELECT id, type, status, queue, created_at FROM jobs "
    "WHERE id IN (SELECT value FROM json_each(:ids))",
}
POSTGRES_ID_QUERIES = {
    "finished_since": "SELECT id, status, type, queue, completed_at FROM jobs "
    "WHERE status IN ('completed', 'failed', 'cancelled') "
    "AND completed_at >= %(since)s::timestamp AT TIME ZONE 'UTC' "
    "ORDER BY completed_at LIMIT 10000",
    "hourly": "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS bucket, "
    "count(*) AS jobs, count(*) FILTER (WHERE status = 'failed') AS failed FROM jobs "
    "WHERE created_at >= %(since)s::timestamp AT TIME ZONE 'UTC' GROUP BY bucket",
    "minutely": "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS bucket, "
    "count(*) AS jobs, count(*) FILTER (WHERE status = 'failed') AS failed FROM jobs "
    "WHERE created_at >= %(since)s::timestamp AT TIME ZONE 'UTC' GROUP BY bucket",
    "parents_of": "SELECT job_id, parent_id FROM job_parents WHERE job_id = ANY(%(ids)s)",
    "children_of": "SELECT job_id, parent_id FROM job_parents WHERE parent_id = ANY(%(ids)s)",
    "brief_jobs": "SELECT id, type, status, queue, created_at FROM jobs WHERE id = ANY(%(ids)s)",
}
_PARAM = re.compile(r"(?<!:):(\w+)")  # not the :: of a cast


def _postgres(sql: str) -> str:
    # `:x IS NULL` needs a type on PostgreSQL; every filter parameter here is text.
    sql = re.sub(r":(\w+) IS NULL", r"%(\1)s::text IS NULL", sql)
    return _PARAM.sub(r"%(\1)s", sql)


POSTGRES_QUERIES = {name: _postgres(sql) for name, sql in QUERIES.items()}


def rows(reader: Reader, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every row of one of this module's queries, on the reader's connection."""
    params = dict(params or {})
    if isinstance(reader, SqliteReader):
        import json

        sql = QUERIES.get(name) or SQLITE_ID_QUERIES[name]
        if "ids" in params:
            params["ids"] = json.dumps(list(params["ids"]))
        cursor = reader.conn.execute(sql, params)
        names: list[str] | None = None
        found = []
        for row in cursor:
            names = names or [d[0] for d in cursor.getdescription()]
            found.append(dict(zip(names, row, strict=True)))
        return found
    return _postgres_rows(reader, POSTGRES_QUERIES.get(name) or POSTGRES_ID_QUERIES[name], params)


def _postgres_rows(reader: Reader, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    from athenad.analytics.postgres_reader import _as_text

    if "ids" in params:
        params["ids"] = list(params["ids"])
    conn = reader.conn  # type: ignore[attr-defined]
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params)
        return [{key: _as_text(value) for key, value in row.items()} for row in cursor]
