-- Every SQL statement the PostgreSQL backend runs, by name. Parameters are psycopg's
-- %(name)s. Times come from the database's clock (now(): the transaction's start), so
-- every host agrees on leases and backoffs; a caller's text timestamp is UTC.

-- ===== migrations =====

-- name: migration_lock
-- One migrator per schema at a time, across hosts; released at commit.
SELECT pg_advisory_xact_lock(hashtext('athena.migrate.' || %(schema)s));

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM schema_migrations ORDER BY version;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s);

-- ===== submitting =====

-- name: insert_job
-- A new job; status is 'pending', 'blocked' (unfinished parents) or 'cancelled'.
INSERT INTO jobs (
    id, type, agent_type, payload, status, priority, parent_job_id, pending_parents,
    created_at, run_after, max_attempts, backoff_s, timeout_s, session_id,
    cancelled_by, error, completed_at
) VALUES (
    %(id)s, %(type)s, %(agent_type)s, %(payload)s, %(status)s, %(priority)s,
    %(parent_job_id)s, %(pending_parents)s,
    now(), now() + make_interval(secs => %(delay_s)s), %(max_attempts)s, %(backoff_s)s,
    %(timeout_s)s, %(session_id)s,
    %(cancelled_by)s, %(error)s, CASE WHEN %(status)s = 'cancelled' THEN now() END
);

-- name: insert_edge
INSERT INTO job_parents (job_id, parent_id) VALUES (%(job_id)s, %(parent_id)s);

-- name: parent_state
-- What a new dependent needs to know about one parent. FOR SHARE: a completion or
-- failure of the parent waits for this submit to commit, so it sees the new child.
SELECT id, status, cancelled_by FROM jobs WHERE id = %(id)s FOR SHARE;

-- name: notify_ready
-- Jobs became ready: wake idle workers (sent at commit, once per transaction).
SELECT pg_notify('athena_jobs', %(schema)s);

-- ===== the worker's side =====

-- name: claim_job
-- Take the highest-priority ready job, oldest first among equals; a job another
-- transaction is claiming is skipped, not waited for.
WITH next AS (
    SELECT id FROM jobs
    WHERE status = 'pending' AND run_after <= now()
    ORDER BY priority DESC, id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
UPDATE jobs
SET status = 'running',
    attempts = attempts + 1,
    fence = fence + 1,
    worker_id = %(worker_id)s,
    worker_pid = %(worker_pid)s,
    started_at = coalesce(started_at, now()),
    run_started_at = now(),
    lease_expires_at = now() + make_interval(secs => %(lease_s)s),
    cancel_requested_at = NULL
FROM next
WHERE jobs.id = next.id
RETURNING jobs.id, type, agent_type, payload, attempts, max_attempts, fence, timeout_s,
          checkpoint_iteration, session_id, priority, interruptions;

-- name: complete_job
UPDATE jobs
SET status = 'completed',
    result = %(result)s,
    error = NULL,
    traceback = NULL,
    completed_at = now(),
    -- Time spent running, over every run (interruptions and retries included).
    duration_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: release_dependents
-- One parent finished: count it down in each blocked child; those at zero become ready.
-- Row locks serialise two parents finishing at once, each seeing the other's count.
UPDATE jobs
SET pending_parents = pending_parents - 1,
    status = CASE WHEN pending_parents <= 1 THEN 'pending' ELSE status END,
    run_after = CASE WHEN pending_parents <= 1 THEN now() ELSE run_after END
WHERE id IN (SELECT job_id FROM job_parents WHERE parent_id = %(id)s)
  AND status = 'blocked'
RETURNING id, status;

-- name: running_job
-- The row a worker's report is checked against, locked until the report is written.
SELECT attempts, max_attempts, backoff_s, fence, status, interruptions, cancel_requested_at
FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: retry_later
-- A failed attempt with attempts left: back to pending after a backoff.
UPDATE jobs
SET status = 'pending',
    prior_run_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    error = %(error)s,
    traceback = %(traceback)s,
    run_after = now() + make_interval(secs => %(backoff_s)s),
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: finish_job
-- End a running job as 'failed' or 'cancelled'.
UPDATE jobs
SET status = %(status)s,
    error = %(error)s,
    traceback = %(traceback)s,
    completed_at = now(),
    duration_ms = prior_run_ms + greatest(0, round(extract(epoch FROM
        coalesce(%(ran_until)s::timestamp AT TIME ZONE 'UTC', now()) - run_started_at) * 1000))::bigint,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: cancel_descendants
-- Every unfinished descendant of %(id)s is cancelled, naming %(root)s as the cause.
WITH RECURSIVE descendants (id) AS (
    SELECT job_id FROM job_parents WHERE parent_id = %(id)s
    UNION
    SELECT job_parents.job_id FROM job_parents
    JOIN descendants ON job_parents.parent_id = descendants.id
)
UPDATE jobs
SET status = 'cancelled',
    cancelled_by = %(root)s,
    error = %(error)s,
    completed_at = now()
WHERE id IN (SELECT id FROM descendants) AND status IN ('blocked', 'pending')
RETURNING id;

-- name: renew_lease
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running'
RETURNING cancel_requested_at;

-- name: lock_timeout
-- How long this transaction waits for a row lock before giving up.
SELECT set_config('lock_timeout', %(timeout)s, true);

-- name: job_control
-- What a worker polls while its agent runs: still ours, and was cancel asked for?
SELECT fence, status, cancel_requested_at IS NOT NULL FROM jobs WHERE id = %(id)s;

-- name: record_checkpoint
UPDATE jobs SET checkpoint_iteration = %(iteration)s
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: record_checkpoint_unheld
-- A checkpoint saved for a job no worker holds (from the orchestrator's own code).
UPDATE jobs SET checkpoint_iteration = %(iteration)s
WHERE id = %(id)s AND status NOT IN ('running', 'completed');

-- name: record_resume
-- Where this run started: the checkpoint iteration resumed from, or 0 and a note.
UPDATE jobs SET resumed_from = %(resumed_from)s, checkpoint_note = %(note)s
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- ===== the user's side =====

-- name: job_status
SELECT status, cancelled_by FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: cancel_waiting_job
UPDATE jobs
SET status = 'cancelled', error = %(error)s, completed_at = now()
WHERE id = %(id)s AND status IN ('blocked', 'pending');

-- name: request_cancel
UPDATE jobs SET cancel_requested_at = now()
WHERE id = %(id)s AND status = 'running' AND cancel_requested_at IS NULL;

-- name: unfinished_parent_count
SELECT count(*) FROM job_parents
JOIN jobs AS parent ON parent.id = job_parents.parent_id
WHERE job_parents.job_id = %(id)s AND parent.status != 'completed';

-- name: dead_parent
-- A parent that failed or was cancelled, if any: the job cannot run until it is retried.
SELECT parent.id, parent.status FROM job_parents
JOIN jobs AS parent ON parent.id = job_parents.parent_id
WHERE job_parents.job_id = %(id)s AND parent.status IN ('failed', 'cancelled')
ORDER BY parent.id
LIMIT 1;

-- name: keep_finished_outcome
-- A finished job is about to run again (a user's retry): its outcome stays counted.
INSERT INTO job_counters AS c (agent_type, event, count, duration_ms_sum)
SELECT agent_type, status, 1, coalesce(duration_ms, 0) FROM jobs
WHERE id = %(id)s AND status IN ('completed', 'failed', 'cancelled')
ON CONFLICT (agent_type, event) DO UPDATE
SET count = c.count + 1, duration_ms_sum = c.duration_ms_sum + excluded.duration_ms_sum;

-- name: requeue_job
-- A failed or cancelled job made ready (or blocked) again by a user's retry.
UPDATE jobs
SET status = %(status)s,
    pending_parents = %(pending_parents)s,
    attempts = 0,
    interruptions = 0,
    run_after = now(),
    result = NULL,
    error = NULL,
    traceback = NULL,
    cancelled_by = NULL,
    cancel_requested_at = NULL,
    started_at = NULL,
    run_started_at = NULL,
    prior_run_ms = 0,
    completed_at = NULL,
    duration_ms = NULL,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND status IN ('failed', 'cancelled');

-- name: cancelled_descendants_of
-- Descendants of %(id)s that were cancelled because of it, nearest first.
WITH RECURSIVE descendants (id, depth) AS (
    SELECT job_id, 1 FROM job_parents WHERE parent_id = %(id)s
    UNION
    SELECT job_parents.job_id, descendants.depth + 1
    FROM job_parents JOIN descendants ON job_parents.parent_id = descendants.id
)
SELECT jobs.id, max(descendants.depth) AS depth
FROM descendants JOIN jobs ON jobs.id = descendants.id
WHERE jobs.status = 'cancelled' AND jobs.cancelled_by = %(id)s
GROUP BY jobs.id
ORDER BY depth, jobs.id;

-- name: set_cancel_cause
UPDATE jobs SET cancelled_by = %(cause)s WHERE id = %(id)s;

-- ===== the supervisor's side =====

-- name: rescue_job
-- A running job whose worker is gone goes back to pending; the attempt is not counted.
UPDATE jobs
SET status = 'pending',
    -- ran_until: the worker's last sign of life when its death was noticed late.
    prior_run_ms = prior_run_ms + greatest(0, round(extract(epoch FROM
        coalesce(%(ran_until)s::timestamp AT TIME ZONE 'UTC', now()) - run_started_at) * 1000))::bigint,
    attempts = greatest(attempts - 1, 0),
    interruptions = interruptions + %(counted)s,
    run_after = now(),
    error = %(error)s,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: count_interruption
UPDATE jobs SET interruptions = interruptions + 1 WHERE id = %(id)s;

-- name: running_jobs
-- Every claimed job with its owner, for the supervisor's sweep.
SELECT id, fence, worker_id, worker_pid, run_started_at, lease_expires_at, timeout_s,
       cancel_requested_at, interruptions
FROM jobs WHERE status = 'running';

-- ===== reading =====

-- name: get_job
SELECT * FROM jobs WHERE id = %(id)s;

-- name: job_parents
SELECT parent_id FROM job_parents WHERE job_id = %(id)s ORDER BY parent_id;

-- name: parents_of_jobs
-- Every (job, parent) edge of several jobs at once.
SELECT job_id, parent_id FROM job_parents
WHERE job_id = ANY(%(ids)s::text[])
ORDER BY job_id, parent_id;

-- name: jobs_states
-- Status, result and error of several jobs at once.
SELECT id, status, result, error, cancelled_by FROM jobs
WHERE id = ANY(%(ids)s::text[]);

-- name: list_jobs
SELECT * FROM jobs
WHERE (%(type)s::text IS NULL OR type = %(type)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: list_jobs_by_status
SELECT * FROM jobs
WHERE status = %(status)s AND (%(type)s::text IS NULL OR type = %(type)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: queue_counts
SELECT status, count(*) FROM jobs
WHERE status IN ('blocked', 'pending', 'running')
GROUP BY status;

-- ===== daemons =====

-- name: record_daemon
-- A daemon's heartbeat: its first one also notes when it started.
INSERT INTO daemons (host, pid, workers) VALUES (%(host)s, %(pid)s, %(workers)s)
ON CONFLICT (host, pid) DO UPDATE SET workers = excluded.workers, last_seen = now();

-- name: forget_stale_daemons
-- Daemons that died without a clean stop, long enough ago to matter to no one.
DELETE FROM daemons WHERE last_seen < now() - make_interval(secs => %(after_s)s);

-- name: forget_daemon
DELETE FROM daemons WHERE host = %(host)s AND pid = %(pid)s;

-- name: daemons
SELECT host, pid, workers, started_at, last_seen FROM daemons
WHERE last_seen >= now() - make_interval(secs => %(within_s)s)
ORDER BY host, pid;

-- ===== checkpoints =====

-- name: save_checkpoint
-- Saving an iteration again replaces it, as renaming over a checkpoint file does.
INSERT INTO checkpoints (job_id, iteration, body, sha256)
VALUES (%(job_id)s, %(iteration)s, %(body)s, %(sha256)s)
ON CONFLICT (job_id, iteration) DO UPDATE
SET body = excluded.body, sha256 = excluded.sha256, created_at = excluded.created_at
RETURNING created_at;

-- name: checkpoint
SELECT iteration, body, sha256, created_at FROM checkpoints
WHERE job_id = %(job_id)s AND iteration = %(iteration)s;

-- name: checkpoints_newest_first
-- Candidates to resume from; at_most NULL means no upper bound.
SELECT iteration, body, sha256, created_at FROM checkpoints
WHERE job_id = %(job_id)s AND (%(at_most)s::bigint IS NULL OR iteration <= %(at_most)s::bigint)
ORDER BY iteration DESC;

-- name: checkpoints_oldest_first
SELECT iteration, body, sha256, created_at FROM checkpoints
WHERE job_id = %(job_id)s
ORDER BY iteration;

-- name: checkpoint_iterations
SELECT iteration FROM checkpoints WHERE job_id = %(job_id)s ORDER BY iteration;

-- name: discard_checkpoint
DELETE FROM checkpoints WHERE job_id = %(job_id)s AND iteration = %(iteration)s;

-- name: prune_checkpoints
-- Everything but the newest `keep` iterations of a job.
DELETE FROM checkpoints
WHERE job_id = %(job_id)s AND iteration NOT IN (
    SELECT iteration FROM checkpoints WHERE job_id = %(job_id)s
    ORDER BY iteration DESC LIMIT %(keep)s
)
RETURNING iteration;

-- name: remove_checkpoints
DELETE FROM checkpoints WHERE job_id = %(job_id)s;

-- ===== sessions =====

-- name: insert_session
-- A taken id inserts nothing (and returns no row): the caller picks another.
INSERT INTO sessions AS s (
    id, format, name, tags, git_branch, cwd, imported_from, created_at, updated_at,
    last_seq, message_count, size_bytes
) VALUES (
    %(id)s, %(format)s, %(name)s, %(tags)s, %(git_branch)s, %(cwd)s, %(imported_from)s,
    %(created_at)s, %(updated_at)s, %(last_seq)s, %(last_seq)s, %(size_bytes)s
)
ON CONFLICT (id) DO NOTHING
RETURNING s.id;

-- name: insert_session_event
INSERT INTO session_events (session_id, seq, role, content, metadata, checksum, created_at)
VALUES (
    %(session_id)s, %(seq)s, %(role)s, %(content)s, %(metadata)s::json, %(checksum)s,
    %(created_at)s
);

-- name: next_session_seq
-- The next message number and its time; the row stays locked until the append commits,
-- so appenders on every host take numbers one after another.
UPDATE sessions SET last_seq = last_seq + 1, message_count = message_count + 1
WHERE id = %(id)s
RETURNING last_seq, date_trunc('milliseconds', clock_timestamp());

-- name: append_session_event
WITH added AS (
    INSERT INTO session_events (session_id, seq, role, content, metadata, checksum, created_at)
    VALUES (
        %(session_id)s, %(seq)s, %(role)s, %(content)s, %(metadata)s::json, %(checksum)s,
        %(created_at)s
    )
    RETURNING session_id
)
UPDATE sessions SET size_bytes = size_bytes + %(line_bytes)s, updated_at = %(created_at)s
WHERE id = (SELECT session_id FROM added);

-- name: session_header
SELECT format, id, name, tags, git_branch, cwd, created_at, imported_from
FROM sessions WHERE id = %(id)s;

-- name: session_events
-- metadata as its text, decoded as the session file's would be.
SELECT seq, role, created_at, content, checksum, metadata::text
FROM session_events WHERE session_id = %(id)s ORDER BY seq;

-- name: session_info
SELECT id, name, tags, git_branch, cwd, created_at, updated_at, message_count, size_bytes,
       imported_from
FROM sessions WHERE id = %(id)s;

-- name: list_sessions
-- Most recently active first; a NULL branch means every branch.
SELECT id, name, tags, git_branch, cwd, created_at, updated_at, message_count, size_bytes,
       imported_from
FROM sessions
WHERE %(git_branch)s::text IS NULL OR git_branch = %(git_branch)s::text
ORDER BY updated_at DESC, id DESC;

-- name: most_recent_session
SELECT id FROM sessions
WHERE %(git_branch)s::text IS NULL OR git_branch = %(git_branch)s::text
ORDER BY updated_at DESC, id DESC
LIMIT 1;

-- name: delete_session
DELETE FROM sessions WHERE id = %(id)s RETURNING id;

-- name: session_exists
SELECT 1 FROM sessions WHERE id = %(id)s;

-- name: count_sessions
SELECT count(*) FROM sessions;
