-- The schema of Athena's PostgreSQL tables as it stands after every migration.
-- Migrations under migrations/ must build exactly this; a test compares them.
-- Column names and statuses are those of the SQLite backend. Ids use the "C"
-- collation so they sort by creation exactly as they do in SQLite.

CREATE TABLE jobs (
    id                   text COLLATE "C" PRIMARY KEY,
    type                 text NOT NULL,
    agent_type           text NOT NULL,
    payload              text NOT NULL DEFAULT 'null',
    status               text NOT NULL
        CHECK (status IN ('blocked', 'pending', 'running', 'completed', 'failed', 'cancelled',
                          'scheduled', 'awaiting_approval', 'waiting')),
    priority             bigint NOT NULL DEFAULT 0,
    parent_job_id        text COLLATE "C" REFERENCES jobs (id),
    pending_parents      integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    completed_at         timestamptz,
    duration_ms          bigint,
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         bigint NOT NULL DEFAULT 1,
    backoff_s            double precision NOT NULL DEFAULT 1.0,
    interruptions        integer NOT NULL DEFAULT 0,
    run_after            timestamptz NOT NULL DEFAULT now(),
    timeout_s            double precision,
    result               text,
    error                text,
    traceback            text,
    cancelled_by         text COLLATE "C",
    cancel_requested_at  timestamptz,
    worker_id            text,
    worker_pid           integer,
    lease_expires_at     timestamptz,
    fence                bigint NOT NULL DEFAULT 0,
    checkpoint_iteration bigint,
    session_id           text,
    resumed_from         bigint,
    checkpoint_note      text,
    run_started_at       timestamptz,
    prior_run_ms         bigint NOT NULL DEFAULT 0,
    queue                text NOT NULL DEFAULT 'default',
    unique_key           text,
    concurrency_key      text,
    wait_reason          text,
    approval_question    text,
    approval_data        text,
    approval_decision    text,
    approval_note        text,
    approval_deadline    timestamptz,
    approval_timeout_s   double precision,
    progress             double precision,
    progress_message     text,
    progress_at          timestamptz,
    log_seq              bigint NOT NULL DEFAULT 0,
    log_bytes            bigint NOT NULL DEFAULT 0,
    log_dropped          bigint NOT NULL DEFAULT 0,
    wait_event_key       text,
    model                text,
    tokens_in            bigint NOT NULL DEFAULT 0,
    tokens_out           bigint NOT NULL DEFAULT 0,
    cost_usd             double precision NOT NULL DEFAULT 0,
    budget_usd           double precision
);

-- The claim: ready jobs by priority, then age (ids sort by creation). Partial, so its
-- size follows the ready jobs, not the finished ones piling up.
CREATE INDEX jobs_claim ON jobs (priority DESC, id) WHERE status = 'pending';
CREATE INDEX jobs_status_created ON jobs (status, created_at);
CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_agent_type ON jobs (agent_type, created_at);
CREATE INDEX jobs_created ON jobs (created_at);
-- The supervisor's sweep reads only running jobs.
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';

-- Every dependency edge; jobs.parent_job_id keeps the first parent for plain SQL.
CREATE TABLE job_parents (
    job_id    text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, parent_id)
);

CREATE INDEX job_parents_parent ON job_parents (parent_id, job_id);

-- Completions by time, for throughput over a window (analytics).
CREATE INDEX jobs_completed ON jobs (completed_at) WHERE status = 'completed';

-- Job counters that never go down: what the rows of jobs show plus what rows no longer
-- show, kept here: a deleted row, or a finished job a retry made run again.
CREATE TABLE job_counters (
    agent_type      text NOT NULL,
    event           text NOT NULL
        CHECK (event IN ('submitted', 'completed', 'failed', 'cancelled')),
    count           bigint NOT NULL DEFAULT 0,
    duration_ms_sum bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_type, event)
);

CREATE FUNCTION job_counters_keep_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counters AS c (agent_type, event, count)
    VALUES (OLD.agent_type, 'submitted', 1)
    ON CONFLICT (agent_type, event) DO UPDATE SET count = c.count + 1;
    IF OLD.status IN ('completed', 'failed', 'cancelled') THEN
        INSERT INTO job_counters AS c (agent_type, event, count, duration_ms_sum)
        VALUES (OLD.agent_type, OLD.status, 1, coalesce(OLD.duration_ms, 0))
        ON CONFLICT (agent_type, event) DO UPDATE
        SET count = c.count + 1, duration_ms_sum = c.duration_ms_sum + excluded.duration_ms_sum;
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER job_counters_keep_deleted BEFORE DELETE ON jobs
FOR EACH ROW EXECUTE FUNCTION job_counters_keep_deleted();

-- The daemons using this database, on every host, each renewing last_seen every few
-- seconds while it runs and deleting its row when it stops cleanly.
CREATE TABLE daemons (
    host       text NOT NULL,
    pid        integer NOT NULL,
    workers    integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, pid)
);

-- Checkpoints of jobs, so a job resumed on any host finds its own. The body is the
-- msgspec JSON of {"state", "messages"}; sha256 (hex) guards it: a row that does not
-- verify is skipped for the previous one. Workers keep the newest 3 while a job runs
-- and the last one after it completes.
CREATE TABLE checkpoints (
    job_id     text COLLATE "C" NOT NULL,
    iteration  bigint NOT NULL CHECK (iteration >= 0),
    body       bytea NOT NULL,
    sha256     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, iteration)
);

-- Conversation sessions: the header of each, with what listing them needs kept up to
-- date by every append (last_seq hands out the next seq under the row's lock).
CREATE TABLE sessions (
    id            text COLLATE "C" PRIMARY KEY,
    format        integer NOT NULL DEFAULT 1,
    name          text,
    tags          text[] NOT NULL DEFAULT '{}',
    git_branch    text,
    cwd           text,
    imported_from text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seq      bigint NOT NULL DEFAULT 0,
    message_count bigint NOT NULL DEFAULT 0,
    size_bytes    bigint NOT NULL DEFAULT 0
);

CREATE INDEX sessions_recent ON sessions (updated_at DESC, id DESC);
CREATE INDEX sessions_branch_recent ON sessions (git_branch, updated_at DESC, id DESC);

-- The messages of sessions, numbered 1, 2, ... per session in one order across hosts.
-- metadata is json (not jsonb) so it comes back byte for byte, as its checksum wants.
CREATE TABLE session_events (
    session_id text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    role       text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content    text NOT NULL,
    metadata   json,
    checksum   text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE INDEX jobs_scheduled ON jobs (run_after) WHERE status = 'scheduled';
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

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

CREATE INDEX jobs_waiting ON jobs (run_after) WHERE status = 'waiting';

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
