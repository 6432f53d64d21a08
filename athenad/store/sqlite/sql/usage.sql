-- Tokens and cost of model work (see athenad/store/usage.py). Times are UTC text.

-- name: add_usage
INSERT INTO job_usage (job_id, agent_type, at, model, tokens_in, tokens_out, cost_usd)
SELECT id, agent_type, :now, :model, :tokens_in, :tokens_out, :cost_usd
FROM jobs WHERE id = :id;

-- name: sum_usage
UPDATE jobs
SET model = :model,
    tokens_in = tokens_in + :tokens_in,
    tokens_out = tokens_out + :tokens_out,
    cost_usd = cost_usd + :cost_usd
WHERE id = :id;

-- name: job_spending
SELECT cost_usd, budget_usd FROM jobs WHERE id = :id;

-- name: spent_since
SELECT coalesce(sum(cost_usd), 0) FROM job_usage WHERE at >= :since;

-- name: usage_by_model
SELECT model AS name, count(*) AS calls, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM job_usage WHERE at >= :since GROUP BY model ORDER BY cost_usd DESC, model;

-- name: usage_by_agent_type
SELECT agent_type AS name, count(*) AS calls, sum(tokens_in) AS tokens_in,
       sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd
FROM job_usage WHERE at >= :since GROUP BY agent_type ORDER BY cost_usd DESC, agent_type;
