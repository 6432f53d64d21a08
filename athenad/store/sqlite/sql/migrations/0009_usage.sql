-- 0009: what model work cost. Each use of a model a job reports is a row of job_usage
-- (kept when the job is pruned, so totals and daily budgets stay true); the job's row
-- carries its sums and the model it used last, and an optional budget.
ALTER TABLE jobs ADD COLUMN model TEXT;
ALTER TABLE jobs ADD COLUMN tokens_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN tokens_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN budget_usd REAL;

CREATE TABLE job_usage (
    job_id     TEXT NOT NULL,
    agent_type TEXT NOT NULL,
    at         TEXT NOT NULL,
    model      TEXT NOT NULL,
    tokens_in  INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd   REAL NOT NULL
);

CREATE INDEX job_usage_at ON job_usage (at);
CREATE INDEX job_usage_job ON job_usage (job_id);
