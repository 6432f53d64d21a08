-- 0004: a job's duration counts the time it ran, over every run: started_at stays the
-- first start, run_started_at is the current run's, prior_run_ms sums earlier runs.
ALTER TABLE jobs ADD COLUMN run_started_at TEXT;
ALTER TABLE jobs ADD COLUMN prior_run_ms INTEGER NOT NULL DEFAULT 0;
