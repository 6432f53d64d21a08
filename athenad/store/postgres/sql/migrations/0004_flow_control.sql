-- Flow control: queues, unique and concurrency keys, the 'scheduled' and
-- 'awaiting_approval' statuses, progress, per-job logs, schedules' last slots.
ALTER TABLE jobs
    ADD COLUMN queue              text NOT NULL DEFAULT 'default',
    ADD COLUMN unique_key         text,
    ADD COLUMN concurrency_key    text,
    ADD COLUMN wait_reason        text,
    ADD COLUMN approval_question  text,
    ADD COLUMN approval_data      text,
    ADD COLUMN approval_decision  text,
    ADD COLUMN approval_note      text,
    ADD COLUMN approval_deadline  timestamptz,
    ADD COLUMN approval_timeout_s double precision,
    ADD COLUMN progress           double precision,
    ADD COLUMN progress_message   text,
    ADD COLUMN progress_at        timestamptz,
    ADD COLUMN log_seq            bigint NOT NULL DEFAULT 0,
    ADD COLUMN log_bytes          bigint NOT NULL DEFAULT 0,
    ADD COLUMN log_dropped        bigint NOT NULL DEFAULT 0;

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN (
    'blocked', 'pending', 'running', 'completed', 'failed', 'cancelled',
    'scheduled', 'awaiting_approval'));

CREATE INDEX jobs_scheduled ON jobs (run_after) WHERE status = 'scheduled';
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval');

-- Pause state and limits of named queues; a queue without a row is open and unlimited.
-- Claims from a limited queue lock its row, so its limits hold across hosts.
CREATE TABLE queues (
    name          text PRIMARY KEY,
    paused        boolean NOT NULL DEFAULT false,
    concurrency   integer,
    rate_limit    integer,
    rate_period_s double precision,
    priority      bigint,
    held_until    timestamptz,
    hold_reason   text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Recent starts of rate-limited queues (kept an hour, the longest period).
CREATE TABLE queue_starts (
    queue      text NOT NULL,
    started_at timestamptz NOT NULL
);

CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);

-- The last slot each schedule enqueued: advancing it is what makes a slot run once.
CREATE TABLE schedules (
    name       text COLLATE "C" PRIMARY KEY,
    last_slot  timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_logs (
    job_id  text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    level   text NOT NULL,
    message text NOT NULL,
    fields  text,
    PRIMARY KEY (job_id, seq)
);
