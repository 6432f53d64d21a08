-- The analytics' reads of model usage (job_usage), loaded with the analytics queries of
-- queries.sql by athenad/analytics/readers.py. Usage rows are dated by when the tokens
-- were spent (at), not by their job's creation, and outlive pruned jobs.
-- :since is UTC text, '' for all time (every 'at' sorts after it).

-- name: analytics_has_usage
-- Whether the database has job_usage: a schema older than it is read as it stands.
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'job_usage';

-- name: analytics_usage_by_agent_type
-- Calls, tokens and USD per agent type in the window, costliest first.
SELECT agent_type AS name,
       count(*) AS calls,
       sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out,
       total(cost_usd) AS cost_usd
FROM job_usage
WHERE at > :since
GROUP BY agent_type
ORDER BY cost_usd DESC, name;

-- name: analytics_usage_by_model
-- Calls, tokens and USD per model in the window, costliest first.
SELECT model AS name,
       count(*) AS calls,
       sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out,
       total(cost_usd) AS cost_usd
FROM job_usage
WHERE at > :since
GROUP BY model
ORDER BY cost_usd DESC, name;

-- name: analytics_usage_trends_by_agent_type
-- Per time bucket (the first :width characters of 'at': 13 = hour, 10 = day) and agent type.
SELECT substr(at, 1, :width) AS bucket,
       agent_type AS name,
       count(*) AS calls,
       sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out,
       total(cost_usd) AS cost_usd
FROM job_usage
WHERE at > :since
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: analytics_usage_trends_by_model
-- Per time bucket (the first :width characters of 'at': 13 = hour, 10 = day) and model.
SELECT substr(at, 1, :width) AS bucket,
       model AS name,
       count(*) AS calls,
       sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out,
       total(cost_usd) AS cost_usd
FROM job_usage
WHERE at > :since
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: analytics_spent_since
-- USD spent by every job from :since on (the daily budget's day starts at UTC midnight).
SELECT total(cost_usd) FROM job_usage WHERE at >= :since;

-- name: analytics_budget_exceeded_jobs
-- Jobs created in the window that failed because a budget was spent; the worker stores
-- BudgetExceeded's message, which always starts so.
SELECT count(*) FROM jobs
WHERE status = 'failed'
  AND created_at > :since
  AND substr(error, 1, 15) = 'budget exceeded';
