-- Durable steps: recorded steps, sleeps and waits per job; events sent to jobs; the
-- 'waiting' status (run_after is its deadline) with the key a job waits for.
ALTER TABLE jobs ADD COLUMN wait_event_key text;

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'blocked', 'pending', 'running', 'completed', 'failed', 'cancelled',
    'scheduled', 'awaiting_approval', 'waiting'));

CREATE INDEX jobs_waiting ON jobs (run_after) WHERE status = 'waiting';

DROP INDEX jobs_unique_key;
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

CREATE TABLE job_steps (
    job_id      text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    name        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('completed', 'failed', 'sleeping', 'waiting')),
    attempt     bigint NOT NULL,
    tries       bigint NOT NULL DEFAULT 1,
    result      text,
    error       text,
    error_type  text,
    wake_at     timestamptz,
    started_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms bigint,
    size        bigint NOT NULL DEFAULT 0,
    sha256      text,
    PRIMARY KEY (job_id, seq)
);

-- Results larger than an inline row should hold (see athenad/store/steps.py).
CREATE TABLE job_step_results (
    job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    body   text NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_events (
    job_id   text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      bigint NOT NULL,
    key      text NOT NULL,
    payload  text NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    taken_by bigint,
    PRIMARY KEY (job_id, seq)
);
