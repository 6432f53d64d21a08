-- 0008: durable steps. Each step an agent runs through ctx.step (and each durable sleep
-- or wait for an event) is recorded per job and sequence number, so a job that runs
-- again replays what was recorded instead of doing it twice. Events sent to a job are
-- kept until a wait takes them. A job waiting for an event is 'waiting' (run_after is
-- its deadline) and names the key it waits for.
ALTER TABLE jobs ADD COLUMN wait_event_key TEXT;

PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, '''scheduled'', ''awaiting_approval''))',
                  '''scheduled'', ''awaiting_approval'', ''waiting''))')
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;  -- OFF, and re-read the schema: later ALTERs see the new text

CREATE INDEX jobs_waiting ON jobs (run_after) WHERE status = 'waiting';

-- A waiting job holds its unique key too.
DROP INDEX jobs_unique_key;
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

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
