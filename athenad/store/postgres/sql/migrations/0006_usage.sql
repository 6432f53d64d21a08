-- What model work cost: one job_usage row per use of a model (kept when the job is
-- pruned), the sums and last model on the job, and an optional budget per job.
ALTER TABLE jobs
    ADD COLUMN model      text,
    ADD COLUMN tokens_in  bigint NOT NULL DEFAULT 0,
    ADD COLUMN tokens_out bigint NOT NULL DEFAULT 0,
    ADD COLUMN cost_usd   double precision NOT NULL DEFAULT 0,
    ADD COLUMN budget_usd double precision;

CREATE TABLE job_usage (
    job_id     text COLLATE "C" NOT NULL,
    agent_type text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    model      text NOT NULL,
    tokens_in  bigint NOT NULL,
    tokens_out bigint NOT NULL,
    cost_usd   double precision NOT NULL
);

CREATE INDEX job_usage_at ON job_usage (at);
CREATE INDEX job_usage_job ON job_usage (job_id);
