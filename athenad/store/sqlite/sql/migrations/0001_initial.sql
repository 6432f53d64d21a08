-- 0001: the jobs table, dependency edges and their indexes.

CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    type                 TEXT NOT NULL,
    agent_type           TEXT NOT NULL,
    payload              TEXT NOT NULL DEFAULT 'null',
    status               TEXT NOT NULL
        CHECK (status IN ('blocked', 'pending', 'running', 'completed', 'failed', 'cancelled')),
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
    session_id           TEXT
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
