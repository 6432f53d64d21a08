-- Tokens and cost of model work (see athenad/store/usage.py).

-- name: add_usage
INSERT INTO job_usage (job_id, agent_type, model, tokens_in, tokens_out, cost_usd)
SELECT id, agent_type, %(model)s, %(tokens_in)s, %(tokens_out)s, %(cost_usd)s
FROM jobs WHERE id = %(id)s;

-- name: sum_usage
UPDATE jobs
SET model = %(model)s,
    tokens_in = tokens_in + %(tokens_in)s,
    tokens_out = tokens_out + %(tokens_out)s,
    cost_usd = cost_usd + %(cost_usd)s
WHERE id = %(id)s;

-- name: job_spending
SELECT cost_usd, budget_usd FROM jobs WHERE id = %(id)s;

-- name: spent_since
SELECT coalesce(sum(cost_usd), 0) FROM job_usage WHERE at >= %(since)s;

-- name: usage_by_model
SELECT model AS name, count(*) AS calls, sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out, sum(cost_usd) AS cost_usd
FROM job_usage WHERE at >= %(since)s GROUP BY model ORDER BY cost_usd DESC, model;

-- name: usage_by_agent_type
SELECT agent_type AS name, count(*) AS calls, sum(tokens_in)::bigint AS tokens_in,
       sum(tokens_out)::bigint AS tokens_out, sum(cost_usd) AS cost_usd
FROM job_usage WHERE at >= %(since)s GROUP BY agent_type ORDER BY cost_usd DESC, agent_type;
