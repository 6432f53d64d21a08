-- The analytics' read queries on PostgreSQL, by name, returning what SQLite's
-- analytics queries return (timestamps are turned into UTC text by the reader).
-- :since is UTC text ('' = all time); percentiles are nearest-rank (percentile_disc).

-- name: analytics_schema_exists
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- name: analytics_schema_version
SELECT max(version) FROM schema_migrations;

-- name: analytics_by_agent_type
-- Per agent type: job counts by outcome and, over completed jobs, duration figures.
SELECT * FROM (
SELECT agent_type,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       (avg(duration_ms) FILTER (WHERE status = 'completed'))::float8 AS avg_ms,
       min(duration_ms) FILTER (WHERE status = 'completed') AS min_ms,
       max(duration_ms) FILTER (WHERE status = 'completed') AS max_ms,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed' AND duration_ms IS NOT NULL) AS p50_ms,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed' AND duration_ms IS NOT NULL) AS p95_ms
FROM jobs
WHERE created_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY agent_type
) AS figures
ORDER BY avg_ms IS NULL, avg_ms DESC, agent_type;

-- name: analytics_status_counts
-- Jobs created in the window, for every status (0 when none).
SELECT statuses.status,
       (SELECT count(*) FROM jobs
        WHERE jobs.status = statuses.status
          AND created_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC',
                                    '-infinity')) AS jobs
FROM (VALUES ('scheduled'), ('blocked'), ('pending'), ('running'), ('awaiting_approval'), ('waiting'),
             ('completed'), ('failed'), ('cancelled')) AS statuses (status);

-- name: queue_counts
SELECT status, count(*) AS jobs FROM jobs
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
GROUP BY status;

-- name: oldest_pending
SELECT min(created_at) FROM jobs WHERE status = 'pending';

-- name: running_jobs
SELECT id, fence, worker_id, worker_pid, run_started_at, lease_expires_at, timeout_s,
       cancel_requested_at, interruptions
FROM jobs WHERE status = 'running';

-- name: analytics_completed_since
SELECT count(*) FROM jobs
WHERE status = 'completed'
  AND completed_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity');

-- name: analytics_first_created
SELECT min(created_at) FROM jobs;

-- name: analytics_failed_jobs
-- The failed-job viewer, newest first; %(also)s is 'cancelled' to list cancelled jobs too.
SELECT jobs.id, jobs.type, jobs.agent_type, jobs.status, jobs.attempts, jobs.max_attempts,
       jobs.created_at, jobs.started_at, jobs.completed_at, jobs.duration_ms, jobs.error,
       jobs.cancelled_by, cause.status AS cause_status, cause.error AS cause_error
FROM jobs
LEFT JOIN jobs AS cause ON cause.id = jobs.cancelled_by
WHERE jobs.status IN ('failed', %(also)s)
  AND jobs.created_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC',
                                 '-infinity')
  AND (%(type)s::text IS NULL OR jobs.type = %(type)s::text)
  AND (%(agent_type)s::text IS NULL OR jobs.agent_type = %(agent_type)s::text)
ORDER BY jobs.created_at DESC, jobs.id DESC
LIMIT %(limit)s;

-- name: analytics_trends
-- Per time bucket (the first %(width)s characters of the UTC creation time: 13 = hour,
-- 10 = day): jobs, failures and the p95 duration of completed jobs.
SELECT left(to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), %(width)s)
           AS bucket,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms)
           FILTER (WHERE status = 'completed' AND duration_ms IS NOT NULL) AS p95_ms
FROM jobs
WHERE created_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY 1
ORDER BY 1;

-- name: analytics_job_counters
-- Job events per agent type, which only ever grow: what the rows of jobs show now plus
-- what rows no longer show (job_counters: deleted rows, finished runs a retry undid).
WITH live AS MATERIALIZED (
    SELECT agent_type, status, count(*) AS n, coalesce(sum(duration_ms), 0) AS ms
    FROM jobs
    GROUP BY agent_type, status
)
SELECT agent_type, event, sum(count)::bigint AS count,
       sum(duration_ms_sum)::bigint AS duration_ms_sum
FROM (
    SELECT agent_type, 'submitted' AS event, n AS count, 0 AS duration_ms_sum FROM live
    UNION ALL
    SELECT agent_type, status, n, ms FROM live
    WHERE status IN ('completed', 'failed', 'cancelled')
    UNION ALL
    SELECT agent_type, event, count, duration_ms_sum FROM job_counters
) AS events
GROUP BY agent_type, event
ORDER BY agent_type, event;

-- ===== the seed's three analytics calls of TaskOrchestrator =====

-- name: agent_performance
-- The seed's "Which agents are slow?" over a window (%(since)s NULL = all time).
SELECT agent_type, count(*) AS jobs, avg(duration_ms)::float8 AS avg_ms,
       min(duration_ms) AS min_ms, max(duration_ms) AS max_ms
FROM jobs
WHERE status = 'completed'
  AND (%(since)s::text IS NULL OR created_at > %(since)s::timestamp AT TIME ZONE 'UTC')
GROUP BY agent_type
ORDER BY 3 DESC;

-- name: recent_failures
SELECT * FROM jobs
WHERE status = 'failed'
  AND (%(since)s::text IS NULL OR created_at > %(since)s::timestamp AT TIME ZONE 'UTC')
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
ORDER BY created_at DESC
LIMIT %(limit)s;

-- name: counts_by_type_and_status
SELECT type, status, count(*) AS count
FROM jobs
WHERE created_at BETWEEN (%(start)s::timestamp AT TIME ZONE 'UTC')
                     AND (%(end)s::timestamp AT TIME ZONE 'UTC')
GROUP BY type, status
ORDER BY count DESC;

-- ===== model usage (job_usage): by when the tokens were spent, kept past pruning =====

-- name: analytics_has_usage
-- Whether the schema has job_usage: a schema older than it is read as it stands.
SELECT to_regclass('job_usage') IS NOT NULL;

-- name: analytics_usage_by_agent_type
-- Calls, tokens and USD per agent type in the window, costliest first.
SELECT agent_type AS name,
       count(*) AS calls,
       sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM job_usage
WHERE at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY agent_type
ORDER BY cost_usd DESC, agent_type COLLATE "C";

-- name: analytics_usage_by_model
-- Calls, tokens and USD per model in the window, costliest first.
SELECT model AS name,
       count(*) AS calls,
       sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM job_usage
WHERE at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY model
ORDER BY cost_usd DESC, model COLLATE "C";

-- name: analytics_usage_trends_by_agent_type
-- Per time bucket (the first %(width)s characters of the UTC time: 13 = hour, 10 = day)
-- and agent type.
SELECT left(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), %(width)s) AS bucket,
       agent_type AS name,
       count(*) AS calls,
       sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM job_usage
WHERE at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY 1, 2
ORDER BY 1, agent_type COLLATE "C";

-- name: analytics_usage_trends_by_model
-- Per time bucket (the first %(width)s characters of the UTC time: 13 = hour, 10 = day)
-- and model.
SELECT left(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), %(width)s) AS bucket,
       model AS name,
       count(*) AS calls,
       sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM job_usage
WHERE at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
GROUP BY 1, 2
ORDER BY 1, model COLLATE "C";

-- name: analytics_spent_since
-- USD spent by every job from %(since)s on (the daily budget's day starts at UTC midnight).
SELECT coalesce(sum(cost_usd), 0)::float8 FROM job_usage
WHERE at >= %(since)s::timestamp AT TIME ZONE 'UTC';

-- name: analytics_budget_exceeded_jobs
-- Jobs created in the window that failed because a budget was spent; the worker stores
-- BudgetExceeded's message, which always starts so.
SELECT count(*) FROM jobs
WHERE status = 'failed'
  AND created_at > coalesce(nullif(%(since)s, '')::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND left(error, 15) = 'budget exceeded';
