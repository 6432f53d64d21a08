-- 0007: flow control. Jobs belong to a named queue, may carry a unique key (one live
-- job per key) and a concurrency key, may wait as 'scheduled' (until run_after) or
-- 'awaiting_approval' (until a person decides), and keep their progress and a count
-- of log lines dropped past the cap. Queues keep their pause state and limits; rate
-- limited queues remember their recent starts; schedules remember the last slot they
-- enqueued; each job's log lines have their own table.
ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE jobs ADD COLUMN wait_reason TEXT;
ALTER TABLE jobs ADD COLUMN approval_question TEXT;
ALTER TABLE jobs ADD COLUMN approval_data TEXT;
ALTER TABLE jobs ADD COLUMN approval_decision TEXT;
ALTER TABLE jobs ADD COLUMN approval_note TEXT;
ALTER TABLE jobs ADD COLUMN approval_deadline TEXT;
ALTER TABLE jobs ADD COLUMN approval_timeout_s REAL;
ALTER TABLE jobs ADD COLUMN progress REAL;
ALTER TABLE jobs ADD COLUMN progress_message TEXT;
ALTER TABLE jobs ADD COLUMN progress_at TEXT;
ALTER TABLE jobs ADD COLUMN log_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN log_dropped INTEGER NOT NULL DEFAULT 0;

-- SQLite cannot alter a CHECK constraint; widening one is the documented case for
-- rewriting the table's CREATE text (every stored row still satisfies it). The
-- migration runner bumps schema_version after a migration that does this.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (status IN (''blocked'', ''pending'', ''running'', ''completed'', ''failed'', ''cancelled''))',
    'CHECK (status IN (''blocked'', ''pending'', ''running'', ''completed'', ''failed'', ''cancelled'', ''scheduled'', ''awaiting_approval''))')
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;  -- OFF, and re-read the schema: later ALTERs see the new text

CREATE INDEX jobs_scheduled ON jobs (run_after) WHERE status = 'scheduled';
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval');

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
