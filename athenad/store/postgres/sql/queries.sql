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
-- A new job; status is 'pending', 'scheduled' (a later start), 'blocked' (unfinished
-- parents) or 'cancelled'. With a unique key a live job already holds, nothing is
-- inserted and no row comes back (a racing submitter's insert is waited for).
INSERT INTO jobs (
    id, type, agent_type, payload, status, priority, parent_job_id, pending_parents,
    created_at, run_after, max_attempts, backoff_s, timeout_s, session_id,
    cancelled_by, error, completed_at, queue, unique_key, concurrency_key, approval_timeout_s,
    budget_usd
) VALUES (
    -- No priority given: the queue's default, else 0.
    %(id)s, %(type)s, %(agent_type)s, %(payload)s, %(status)s,
    coalesce(%(priority)s::bigint, (SELECT priority FROM queues WHERE name = %(queue)s), 0),
    %(parent_job_id)s, %(pending_parents)s,
    now(), coalesce(%(run_at)s, now()), %(max_attempts)s, %(backoff_s)s,
    %(timeout_s)s, %(session_id)s,
    %(cancelled_by)s, %(error)s, CASE WHEN %(status)s = 'cancelled' THEN now() END,
    %(queue)s, %(unique_key)s, %(concurrency_key)s, %(approval_timeout_s)s, %(budget_usd)s
)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
DO NOTHING
RETURNING id;

-- name: live_job_with_key
SELECT id FROM jobs
WHERE unique_key = %(key)s
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

-- name: unique_key_holder
-- Another live job holding the unique key of job :id, if any (a retry must wait).
SELECT other.id, other.unique_key FROM jobs AS job
JOIN jobs AS other ON other.unique_key = job.unique_key AND other.id != job.id
WHERE job.id = %(id)s
  AND other.status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

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

-- name: promote_scheduled
-- Scheduled jobs whose time has come become ready (rows another worker is promoting
-- are left to it).
UPDATE jobs SET status = 'pending'
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'scheduled' AND run_after <= now()
    FOR UPDATE SKIP LOCKED
);

-- name: promote_waits
-- Waits whose deadline passed go back to a worker (the wait then returns None).
UPDATE jobs SET status = 'pending', wait_event_key = NULL
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'waiting' AND run_after <= now()
    FOR UPDATE SKIP LOCKED
);

-- name: next_wait_deadline
SELECT min(run_after) FROM jobs WHERE status = 'waiting';

-- name: forget_failed_steps
-- A user's retry runs the failed steps again (completed ones still replay).
DELETE FROM job_steps WHERE job_id = %(id)s AND status = 'failed';

-- name: next_scheduled
SELECT min(run_after) FROM jobs WHERE status = 'scheduled';

-- name: claim_job
-- Take the highest-priority ready job, oldest first among equals, from an open queue
-- (not paused or held, under its concurrency and rate) and under its concurrency
-- key's limit; a job another transaction is claiming is skipped, not waited for.
-- Concurrent claims may both see room for one more: a claim from a limited queue or
-- with a key is confirmed under an advisory lock afterwards (confirm_* below).
WITH closed AS (
    SELECT name FROM queues
    WHERE paused
       OR held_until > now()
       OR concurrency <= (
           SELECT count(*) FROM jobs AS busy
           WHERE busy.status = 'running' AND busy.queue = queues.name)
       OR rate_limit <= (
           SELECT count(*) FROM queue_starts
           WHERE queue_starts.queue = queues.name
             AND started_at > now() - make_interval(secs => rate_period_s))
), saturated AS (
    SELECT busy.concurrency_key FROM jobs AS busy
    WHERE busy.status = 'running' AND busy.concurrency_key IS NOT NULL
    GROUP BY busy.concurrency_key
    HAVING count(*) >= %(key_limit)s
), next AS (
    SELECT id FROM jobs
    WHERE status = 'pending' AND run_after <= now()
      AND queue NOT IN (SELECT name FROM closed)
      AND (concurrency_key IS NULL
           OR concurrency_key NOT IN (SELECT concurrency_key FROM saturated))
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
    cancel_requested_at = NULL,
    wait_reason = NULL
FROM next
WHERE jobs.id = next.id
RETURNING jobs.id, type, agent_type, payload, attempts, max_attempts, fence, timeout_s,
          checkpoint_iteration, session_id, jobs.priority, interruptions, queue,
          concurrency_key, approval_decision, approval_note, approval_question,
          EXISTS (SELECT 1 FROM queues AS q WHERE q.name = jobs.queue
                  AND (q.concurrency IS NOT NULL OR q.rate_limit IS NOT NULL)) AS limited;

-- name: claim_batch
-- A worker draining short jobs takes up to %(limit)s at once: the first ready jobs in
-- claim order (skipping those another transaction is claiming), up to (not past) the
-- first whose queue has limits or whose job has a concurrency key; claim_job takes those
-- one at a time, under their checks.
WITH next AS (
    SELECT id, priority,
           concurrency_key IS NULL AND NOT EXISTS (
               SELECT 1 FROM queues AS q
               WHERE q.name = jobs.queue
                 AND (q.paused OR q.held_until > now()
                      OR q.concurrency IS NOT NULL OR q.rate_limit IS NOT NULL)) AS free
    FROM jobs
    WHERE status = 'pending' AND run_after <= now()
    ORDER BY priority DESC, id
    FOR UPDATE SKIP LOCKED
    LIMIT %(limit)s
), taken AS (
    SELECT id FROM next
    WHERE free AND NOT EXISTS (
        SELECT 1 FROM next AS limited
        WHERE NOT limited.free
          AND (limited.priority > next.priority
               OR (limited.priority = next.priority AND limited.id < next.id)))
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
    cancel_requested_at = NULL,
    wait_reason = NULL
FROM taken
WHERE jobs.id = taken.id
RETURNING jobs.id, type, agent_type, payload, attempts, max_attempts, fence, timeout_s,
          checkpoint_iteration, session_id, jobs.priority, interruptions, queue,
          concurrency_key, approval_decision, approval_note, approval_question;

-- name: lock_limit
-- Serialises the confirmation of claims under one queue's or one key's limit.
SELECT pg_advisory_xact_lock(hashtext(%(name)s));

-- name: confirm_queue_claim
-- Still within the queue's limits, counting this transaction's own claim?
SELECT (q.concurrency IS NULL
        OR (SELECT count(*) FROM jobs WHERE status = 'running' AND queue = q.name)
           <= q.concurrency)
   AND (q.rate_limit IS NULL
        OR (SELECT count(*) FROM queue_starts
            WHERE queue = q.name AND started_at > now() - make_interval(secs => q.rate_period_s))
           < q.rate_limit),
       q.rate_limit IS NOT NULL
FROM queues AS q WHERE q.name = %(queue)s;

-- name: confirm_key_claim
SELECT count(*) <= %(key_limit)s FROM jobs
WHERE status = 'running' AND concurrency_key = %(key)s;

-- name: record_start
INSERT INTO queue_starts (queue, started_at) VALUES (%(queue)s, now());

-- name: forget_old_starts
DELETE FROM queue_starts WHERE queue = %(queue)s AND started_at < now() - interval '1 hour';

-- name: unclaim
-- A claim that would break a limit is handed back as if it never happened.
UPDATE jobs
SET status = 'pending', attempts = attempts - 1, worker_id = NULL, worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s;

-- name: hand_back
-- A job a worker claimed but never started goes back as if the claim had not happened
-- (the fence stays raised, so the claim's holder can write nothing more). A job whose
-- cancellation was asked for meanwhile is left to the rescue path, which cancels it.
UPDATE jobs
SET status = 'pending',
    attempts = greatest(attempts - 1, 0),
    -- The claim set started_at only if the job had never started before.
    started_at = CASE WHEN started_at = run_started_at THEN NULL ELSE started_at END,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running'
  AND cancel_requested_at IS NULL;

-- name: park_for_approval
-- The agent asked a person: the job waits without a worker and without spending the
-- attempt, until approve/reject (or its deadline) sends it back to a worker.
UPDATE jobs
SET status = 'awaiting_approval',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    approval_question = %(question)s,
    approval_data = %(data)s,
    approval_decision = NULL,
    approval_note = NULL,
    approval_deadline = now() + make_interval(
        secs => coalesce(%(timeout_s)s::double precision, approval_timeout_s)),
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: decide_approval
UPDATE jobs
SET status = 'pending',
    approval_decision = %(decision)s,
    approval_note = %(note)s,
    approval_deadline = NULL,
    run_after = now()
WHERE id = %(id)s AND status = 'awaiting_approval';

-- name: expire_approvals
-- No decision in time: the job goes back to its agent as rejected.
UPDATE jobs
SET status = 'pending',
    approval_decision = 'rejected',
    approval_note = 'no decision within the approval timeout',
    approval_deadline = NULL,
    run_after = now()
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'awaiting_approval' AND approval_deadline <= now()
    FOR UPDATE SKIP LOCKED
);

-- name: next_approval_deadline
SELECT min(approval_deadline) FROM jobs WHERE status = 'awaiting_approval';

-- name: rate_limited
-- The provider said "not now": back to pending until the retry time without spending
-- the attempt, saying why.
UPDATE jobs
SET status = 'pending',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    run_after = now() + make_interval(secs => %(retry_after_s)s),
    wait_reason = %(reason)s,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running'
RETURNING queue, run_after;

-- name: hold_queue
INSERT INTO queues AS q (name, held_until, hold_reason, updated_at)
VALUES (%(queue)s, %(until)s, %(reason)s, now())
ON CONFLICT (name) DO UPDATE
SET held_until = greatest(q.held_until, excluded.held_until),
    hold_reason = excluded.hold_reason,
    updated_at = now();

-- name: pause_queue
INSERT INTO queues (name, paused) VALUES (%(queue)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now();

-- name: set_queue_limits
INSERT INTO queues AS q (name, concurrency, rate_limit, rate_period_s, priority)
VALUES (%(queue)s, %(concurrency)s, %(rate_limit)s, %(rate_period_s)s, %(priority)s)
ON CONFLICT (name) DO UPDATE
SET concurrency = CASE WHEN %(set_concurrency)s THEN excluded.concurrency ELSE q.concurrency END,
    rate_limit = CASE WHEN %(set_rate)s THEN excluded.rate_limit ELSE q.rate_limit END,
    rate_period_s = CASE WHEN %(set_rate)s THEN excluded.rate_period_s ELSE q.rate_period_s END,
    priority = CASE WHEN %(set_priority)s THEN excluded.priority ELSE q.priority END,
    updated_at = now();

-- name: queue_settings
SELECT name, paused, concurrency, rate_limit, rate_period_s, priority, held_until, hold_reason
FROM queues ORDER BY name;

-- name: queue_status_counts
SELECT queue, status, count(*) FROM jobs
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
GROUP BY queue, status;

-- name: queue_recent_starts
SELECT count(*) FROM queue_starts
WHERE queue = %(queue)s AND started_at > now() - make_interval(secs => %(period_s)s);

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
    -- A child with a start time still ahead waits for it as 'scheduled'.
    status = CASE WHEN pending_parents > 1 THEN status
                  WHEN run_after > now() THEN 'scheduled' ELSE 'pending' END,
    run_after = CASE WHEN pending_parents <= 1 THEN greatest(run_after, now()) ELSE run_after END
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
WHERE id IN (SELECT id FROM descendants)
  AND status IN ('blocked', 'pending', 'scheduled', 'awaiting_approval', 'waiting')
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
WHERE id = %(id)s AND status IN ('blocked', 'pending', 'scheduled', 'awaiting_approval', 'waiting');

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
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
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
