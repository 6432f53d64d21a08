-- The schema of athena.db as it stands after every migration.
-- Migrations under migrations/ must build exactly this; a test compares them.
-- Timestamps are UTC text in SQLite's own format with milliseconds,
-- e.g. '2026-11-26 10:00:00.123', so datetime('now', '-1 day') comparisons work.

CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    type                 TEXT NOT NULL,
    agent_type           TEXT NOT NULL,
    payload              TEXT NOT NULL DEFAULT 'null',
    status               TEXT NOT NULL
        CHECK (status IN ('blocked', 'pending', 'running', 'completed', 'failed', 'cancelled', 'scheduled', 'awaiting_approval', 'waiting')),
    priority             INTEGER NOT NULL DEFAULT 0,
    parent_job_id        TEXT REFERENCES jobs (id),
    pending_parents      INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    started_at           TEXT,
    completed_at         TEXT,
    duration_ms          INTEGER,
    attempts             INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL DEFAULT 1,
    backoff_s            REAL NOT NULL DEFAULT 1.0,
    interruptions        INTEGER NOT NULL DEFAULT 0,
    run_after            TEXT NOT NULL,
    timeout_s            REAL,
    result               TEXT,
    error                TEXT,
    traceback            TEXT,
    cancelled_by         TEXT,
    cancel_requested_at  TEXT,
    worker_id            TEXT,
    worker_pid           INTEGER,
    lease_expires_at     TEXT,
    fence                INTEGER NOT NULL DEFAULT 0,
    checkpoint_iteration INTEGER,
    session_id           TEXT,
    resumed_from         INTEGER,
    checkpoint_note      TEXT,
    run_started_at       TEXT,
    prior_run_ms         INTEGER NOT NULL DEFAULT 0,
    queue                TEXT NOT NULL DEFAULT 'default',
    unique_key           TEXT,
    concurrency_key      TEXT,
    wait_reason          TEXT,
    approval_question    TEXT,
    approval_data        TEXT,
    approval_decision    TEXT,
    approval_note        TEXT,
    approval_deadline    TEXT,
    approval_timeout_s   REAL,
    progress             REAL,
    progress_message     TEXT,
    progress_at          TEXT,
    log_seq              INTEGER NOT NULL DEFAULT 0,
    log_bytes            INTEGER NOT NULL DEFAULT 0,
    log_dropped          INTEGER NOT NULL DEFAULT 0,
    wait_event_key       TEXT,
    model                TEXT,
    tokens_in            INTEGER NOT NULL DEFAULT 0,
    tokens_out           INTEGER NOT NULL DEFAULT 0,
    cost_usd             REAL NOT NULL DEFAULT 0,
    budget_usd           REAL
);

-- The claim: ready jobs by priority, then age (ids sort by creation).
CREATE INDEX jobs_claim ON jobs (priority DESC, id) WHERE status = 'pending';
CREATE INDEX jobs_status_created ON jobs (status, created_at);
CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_agent_type ON jobs (agent_type, created_at);
CREATE INDEX jobs_created ON jobs (created_at);

-- Every dependency edge; jobs.parent_job_id keeps the first parent for plain SQL.
CREATE TABLE job_parents (
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;

CREATE INDEX job_parents_parent ON job_parents (parent_id, job_id);

-- Completions by time, for throughput over a window (analytics).
CREATE INDEX jobs_completed ON jobs (completed_at) WHERE status = 'completed';

-- Job counters that never go down: what the rows of jobs show (each row was submitted
-- once; a finished row ended once) plus what rows no longer show, kept here: a deleted
-- row, or a finished job a retry made run again. The claim/complete path never writes it.
CREATE TABLE job_counters (
    agent_type      TEXT NOT NULL,
    event           TEXT NOT NULL
        CHECK (event IN ('submitted', 'completed', 'failed', 'cancelled')),
    count           INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_type, event)
) WITHOUT ROWID;

CREATE TRIGGER job_counters_keep_deleted BEFORE DELETE ON jobs
BEGIN
    INSERT INTO job_counters (agent_type, event, count) VALUES (OLD.agent_type, 'submitted', 1)
    ON CONFLICT (agent_type, event) DO UPDATE SET count = count + 1;
    INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
    SELECT OLD.agent_type, OLD.status, 1, coalesce(OLD.duration_ms, 0)
    WHERE OLD.status IN ('completed', 'failed', 'cancelled')
    ON CONFLICT (agent_type, event) DO UPDATE
    SET count = count + 1, duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum;
END;

-- The daemons using this database, each renewing last_seen every few seconds while it
-- runs and deleting its row when it stops cleanly.
CREATE TABLE daemons (
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    workers    INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (host, pid)
) WITHOUT ROWID;

CREATE INDEX jobs_scheduled ON jobs (run_after) WHERE status = 'scheduled';
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

CREATE TABLE queues (
    name          TEXT PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    concurrency   INTEGER,
    rate_limit    INTEGER,
    rate_period_s REAL,
    priority      INTEGER,
    held_until    TEXT,
    hold_reason   TEXT,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE queue_starts (
    queue      TEXT NOT NULL,
    started_at TEXT NOT NULL
);

CREATE INDEX queue_starts_queue ON queue_starts (queue, started_at);

-- A start in a rate-limited queue is remembered for its window (at most an hour);
-- other claims pass the WHEN clause's one lookup and nothing more.
CREATE TRIGGER queue_starts_record AFTER UPDATE OF status ON jobs
WHEN NEW.status = 'running' AND OLD.status = 'pending'
  AND EXISTS (SELECT 1 FROM queues WHERE name = NEW.queue AND rate_limit IS NOT NULL)
BEGIN
    INSERT INTO queue_starts (queue, started_at) VALUES (NEW.queue, NEW.run_started_at);
    DELETE FROM queue_starts
    WHERE queue = NEW.queue AND started_at < strftime('%Y-%m-%d %H:%M:%f', NEW.run_started_at, '-3600 seconds');
END;

CREATE TABLE schedules (
    name       TEXT PRIMARY KEY,
    last_slot  TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      TEXT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    fields  TEXT,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE INDEX jobs_waiting ON jobs (run_after) WHERE status = 'waiting';

CREATE TABLE job_steps (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('completed', 'failed', 'sleeping', 'waiting')),
    attempt     INTEGER NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 1,
    result      TEXT,
    error       TEXT,
    error_type  TEXT,
    wake_at     TEXT,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER,
    size        INTEGER NOT NULL DEFAULT 0,
    sha256      TEXT,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- Results larger than an inline row should hold (see athenad/store/steps.py).
CREATE TABLE job_step_results (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE job_events (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    key         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    taken_by    INTEGER,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

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
