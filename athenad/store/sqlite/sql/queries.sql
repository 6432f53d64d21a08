-- Every SQL statement Athena runs, by name. Named parameters (:name) throughout.
-- Timestamps (:now, :lease_expires_at, :run_after) are computed by the caller as UTC text.

-- name: insert_job
-- A new job; status is 'pending', 'scheduled' (a later start), 'blocked' (unfinished
-- parents) or 'cancelled'.
INSERT INTO jobs (
    id, type, agent_type, payload, status, priority, parent_job_id, pending_parents,
    created_at, run_after, max_attempts, backoff_s, timeout_s, session_id,
    cancelled_by, error, completed_at, queue, unique_key, concurrency_key, approval_timeout_s,
    budget_usd
) VALUES (
    -- No priority given: the queue's default, else 0.
    :id, :type, :agent_type, :payload, :status,
    coalesce(:priority, (SELECT priority FROM queues WHERE name = :queue), 0),
    :parent_job_id, :pending_parents,
    :now, :run_after, :max_attempts, :backoff_s, :timeout_s, :session_id,
    :cancelled_by, :error, :completed_at, :queue, :unique_key, :concurrency_key,
    :approval_timeout_s, :budget_usd
);

-- name: live_job_with_key
-- The unfinished job holding a unique key (the same terms as jobs_unique_key's).
SELECT id FROM jobs INDEXED BY jobs_unique_key
WHERE unique_key = :key
  AND status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

-- name: unique_key_holder
-- Another live job holding the unique key of job :id, if any (a retry must wait).
SELECT other.id, other.unique_key FROM jobs AS job
JOIN jobs AS other ON other.unique_key = job.unique_key AND other.id != job.id
WHERE job.id = :id
  AND other.status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting');

-- name: promote_scheduled
-- Scheduled jobs whose time has come become ready.
UPDATE jobs SET status = 'pending'
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_scheduled
    WHERE status = 'scheduled' AND run_after <= :now
);

-- name: promote_waits
-- Waits whose deadline passed go back to a worker (the wait then returns None).
UPDATE jobs SET status = 'pending', wait_event_key = NULL
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_waiting
    WHERE status = 'waiting' AND run_after <= :now
);

-- name: next_wait_deadline
SELECT min(run_after) FROM jobs INDEXED BY jobs_waiting WHERE status = 'waiting';

-- name: forget_failed_steps
-- A user's retry runs the failed steps again (completed ones still replay).
DELETE FROM job_steps WHERE job_id = :id AND status = 'failed';

-- name: next_scheduled
SELECT min(run_after) FROM jobs INDEXED BY jobs_scheduled WHERE status = 'scheduled';

-- name: insert_edge
INSERT INTO job_parents (job_id, parent_id) VALUES (:job_id, :parent_id);

-- name: parent_state
-- What a new dependent needs to know about one parent.
SELECT id, status, cancelled_by FROM jobs WHERE id = :id;

-- name: claim_job
-- Take the highest-priority ready job, oldest first among equals, from a queue that is
-- open: not paused, not held after a provider's rate limit, under its concurrency and
-- its rate; and whose concurrency key (if any) has fewer than :key_limit running.
-- The checks are per candidate (usually the first): a lookup of its queue's row, and
-- a count of running jobs only for a queue with limits or a job with a key.
UPDATE jobs
SET status = 'running',
    attempts = attempts + 1,
    fence = fence + 1,
    worker_id = :worker_id,
    worker_pid = :worker_pid,
    started_at = coalesce(started_at, :now),
    run_started_at = :now,
    lease_expires_at = :lease_expires_at,
    cancel_requested_at = NULL,
    wait_reason = NULL
WHERE id = (
    -- INDEXED BY: otherwise the planner may pick (status, created_at) and sort.
    SELECT id FROM jobs INDEXED BY jobs_claim
    WHERE status = 'pending' AND run_after <= :now
      AND NOT EXISTS (
          SELECT 1 FROM queues
          WHERE queues.name = jobs.queue
            AND (paused
                 OR held_until > :now
                 OR concurrency <= (
                     SELECT count(*) FROM jobs AS busy
                     WHERE busy.status = 'running' AND busy.queue = queues.name)
                 OR rate_limit <= (
                     SELECT count(*) FROM queue_starts
                     WHERE queue_starts.queue = queues.name
                       AND started_at > strftime('%Y-%m-%d %H:%M:%f', :now,
                                                 '-' || rate_period_s || ' seconds')))
      )
      AND (concurrency_key IS NULL OR :key_limit > (
          SELECT count(*) FROM jobs AS busy
          WHERE busy.status = 'running' AND busy.concurrency_key = jobs.concurrency_key
      ))
    ORDER BY priority DESC, id
    LIMIT 1
)
RETURNING id, type, agent_type, payload, attempts, max_attempts, fence, timeout_s,
          checkpoint_iteration, session_id, priority, interruptions, queue,
          concurrency_key, approval_decision, approval_note, approval_question;

-- name: anything_to_claim
-- Read without the write lock by a worker about to claim: is any job ready, or due to
-- become ready (a start time, a wait's deadline, an approval's deadline)? When not, an
-- idle worker's look for work takes no write lock from submitters and other workers.
SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_claim
               WHERE status = 'pending' AND run_after <= :now)
    OR EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_scheduled
               WHERE status = 'scheduled' AND run_after <= :now)
    OR EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_waiting
               WHERE status = 'waiting' AND run_after <= :now)
    OR EXISTS (SELECT 1 FROM jobs
               WHERE status = 'awaiting_approval' AND approval_deadline <= :now);

-- name: claim_candidates
-- A worker draining short jobs takes several at once: the first :limit ready jobs in
-- claim order, each marked free when neither its queue's limits nor a concurrency key
-- need checking. The worker takes the free ones up to (not past) the first that is not
-- (claim_job takes those one at a time, under their checks).
SELECT id,
       concurrency_key IS NULL AND NOT EXISTS (
           SELECT 1 FROM queues
           WHERE queues.name = jobs.queue
             AND (paused OR held_until > :now
                  OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)) AS free
FROM jobs INDEXED BY jobs_claim
WHERE status = 'pending' AND run_after <= :now
ORDER BY priority DESC, id
LIMIT :limit;

-- name: claim_ids
-- Claim the jobs claim_candidates chose (:ids, a JSON array), those still pending.
UPDATE jobs
SET status = 'running',
    attempts = attempts + 1,
    fence = fence + 1,
    worker_id = :worker_id,
    worker_pid = :worker_pid,
    started_at = coalesce(started_at, :now),
    run_started_at = :now,
    lease_expires_at = :lease_expires_at,
    cancel_requested_at = NULL,
    wait_reason = NULL
-- '+status': find the rows by id, not through the status index.
WHERE id IN (SELECT value FROM json_each(:ids)) AND +status = 'pending'
RETURNING id, type, agent_type, payload, attempts, max_attempts, fence, timeout_s,
          checkpoint_iteration, session_id, priority, interruptions, queue,
          concurrency_key, approval_decision, approval_note, approval_question;

-- name: hand_back
-- A job a worker claimed but never started goes back as if the claim had not happened
-- (the fence stays raised, so the claim's holder can write nothing more). A job whose
-- cancellation was asked for meanwhile is left to the rescue path, which cancels it.
UPDATE jobs
SET status = 'pending',
    attempts = max(attempts - 1, 0),
    -- The claim set started_at only if the job had never started before.
    started_at = CASE WHEN started_at = run_started_at THEN NULL ELSE started_at END,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running' AND cancel_requested_at IS NULL;

-- name: park_for_approval
-- The agent asked a person: the job waits without a worker and without spending the
-- attempt, until approve/reject (or its deadline) sends it back to a worker.
UPDATE jobs
SET status = 'awaiting_approval',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    approval_question = :question,
    approval_data = :data,
    approval_decision = NULL,
    approval_note = NULL,
    approval_deadline = CASE WHEN :timeout_s IS NOT NULL
        THEN strftime('%Y-%m-%d %H:%M:%f', :now, '+' || :timeout_s || ' seconds')
        WHEN approval_timeout_s IS NOT NULL
        THEN strftime('%Y-%m-%d %H:%M:%f', :now, '+' || approval_timeout_s || ' seconds') END,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: decide_approval
UPDATE jobs
SET status = 'pending',
    approval_decision = :decision,
    approval_note = :note,
    approval_deadline = NULL,
    run_after = :now
WHERE id = :id AND status = 'awaiting_approval';

-- name: expire_approvals
-- No decision in time: the job goes back to its agent as rejected.
UPDATE jobs
SET status = 'pending',
    approval_decision = 'rejected',
    approval_note = 'no decision within the approval timeout',
    approval_deadline = NULL,
    run_after = :now
WHERE status = 'awaiting_approval' AND approval_deadline <= :now;

-- name: next_approval_deadline
SELECT min(approval_deadline) FROM jobs WHERE status = 'awaiting_approval';

-- name: rate_limited
-- The provider said "not now": back to pending until :run_after without spending the
-- attempt, saying why.
UPDATE jobs
SET status = 'pending',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    run_after = :run_after,
    wait_reason = :reason,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running'
RETURNING queue;

-- name: hold_queue
-- No claims from :queue before :until (a later hold wins).
INSERT INTO queues (name, held_until, hold_reason, updated_at)
VALUES (:queue, :until, :reason, :now)
ON CONFLICT (name) DO UPDATE
SET held_until = max(coalesce(held_until, ''), excluded.held_until),
    hold_reason = excluded.hold_reason,
    updated_at = excluded.updated_at;

-- name: pause_queue
INSERT INTO queues (name, paused, updated_at) VALUES (:queue, :paused, :now)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- name: set_queue_limits
-- :set_* say which settings change; NULL values clear a limit.
INSERT INTO queues (name, concurrency, rate_limit, rate_period_s, priority, updated_at)
VALUES (:queue, :concurrency, :rate_limit, :rate_period_s, :priority, :now)
ON CONFLICT (name) DO UPDATE
SET concurrency = CASE WHEN :set_concurrency THEN excluded.concurrency ELSE concurrency END,
    rate_limit = CASE WHEN :set_rate THEN excluded.rate_limit ELSE rate_limit END,
    rate_period_s = CASE WHEN :set_rate THEN excluded.rate_period_s ELSE rate_period_s END,
    priority = CASE WHEN :set_priority THEN excluded.priority ELSE priority END,
    updated_at = excluded.updated_at;

-- name: queue_settings
SELECT name, paused, concurrency, rate_limit, rate_period_s, priority, held_until, hold_reason
FROM queues ORDER BY name;

-- name: queue_status_counts
-- Unfinished jobs by queue and status (each status is a range of jobs_status_created).
SELECT queue, status, count(*) FROM jobs
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
GROUP BY queue, status;

-- name: queue_recent_starts
SELECT count(*) FROM queue_starts
WHERE queue = :queue AND started_at > :since;

-- name: complete_job
UPDATE jobs
SET status = 'completed',
    result = :result,
    error = NULL,
    traceback = NULL,
    completed_at = :now,
    -- Time spent running, over every run (interruptions and retries included).
    duration_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: release_dependents
-- One parent finished: count it down in each blocked child; those at zero become ready.
UPDATE jobs
SET pending_parents = pending_parents - 1,
    -- A child with a start time still ahead waits for it as 'scheduled'.
    status = CASE WHEN pending_parents > 1 THEN status
                  WHEN run_after > :now THEN 'scheduled' ELSE 'pending' END,
    run_after = CASE WHEN pending_parents <= 1 THEN max(run_after, :now) ELSE run_after END
-- '+status': find the children by id; an index on status would visit every blocked job.
WHERE id IN (SELECT job_id FROM job_parents WHERE parent_id = :id)
  AND +status = 'blocked'
RETURNING id, status;

-- name: complete_jobs
-- Several completions at once (:done, a JSON array of [id, fence, result as JSON text]);
-- returns the ids completed, so a caller sees which fences no longer held.
UPDATE jobs
SET status = 'completed',
    result = done.value ->> '$[2]',
    error = NULL,
    traceback = NULL,
    completed_at = :now,
    duration_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    lease_expires_at = NULL
FROM json_each(:done) AS done
WHERE jobs.id = done.value ->> '$[0]'
  AND jobs.fence = done.value ->> '$[1]'
  AND +jobs.status = 'running'
RETURNING jobs.id;

-- name: release_dependents_of_all
-- Several parents finished (:ids, a JSON array): each blocked child counts down once per
-- finished parent; those at zero become ready.
UPDATE jobs
SET pending_parents = pending_parents - freed.parents,
    status = CASE WHEN pending_parents > freed.parents THEN status
                  WHEN run_after > :now THEN 'scheduled' ELSE 'pending' END,
    run_after = CASE WHEN pending_parents <= freed.parents THEN max(run_after, :now)
                     ELSE run_after END
FROM (
    SELECT job_id, count(*) AS parents FROM job_parents
    WHERE parent_id IN (SELECT value FROM json_each(:ids))
    GROUP BY job_id
) AS freed
WHERE jobs.id = freed.job_id AND +jobs.status = 'blocked'
RETURNING jobs.id, jobs.status;

-- name: running_job
-- The row a worker's report is checked against.
SELECT attempts, max_attempts, backoff_s, fence, status, interruptions, cancel_requested_at
FROM jobs WHERE id = :id;

-- name: retry_later
-- A failed attempt with attempts left: back to pending after a backoff.
UPDATE jobs
SET status = 'pending',
    prior_run_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    error = :error,
    traceback = :traceback,
    run_after = :run_after,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: finish_job
-- End a running job as 'failed' or 'cancelled'.
UPDATE jobs
SET status = :status,
    error = :error,
    traceback = :traceback,
    completed_at = :now,
    -- Time spent running, over every run (interruptions and retries included).
    duration_ms = prior_run_ms + max(0, CAST(round(
        (julianday(coalesce(:ran_until, :now)) - julianday(run_started_at)) * 86400000) AS INTEGER)),
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: cancel_descendants
-- Every unfinished descendant of :id is cancelled, naming :root as the cause.
WITH RECURSIVE descendants (id) AS (
    SELECT job_id FROM job_parents WHERE parent_id = :id
    UNION
    SELECT job_parents.job_id FROM job_parents JOIN descendants ON job_parents.parent_id = descendants.id
)
UPDATE jobs
SET status = 'cancelled',
    cancelled_by = :root,
    error = :error,
    completed_at = :now
WHERE id IN (SELECT id FROM descendants)
  AND +status IN ('blocked', 'pending', 'scheduled', 'awaiting_approval', 'waiting')
RETURNING id;

-- name: cancel_waiting_job
UPDATE jobs
SET status = 'cancelled', error = :error, completed_at = :now
WHERE id = :id AND status IN ('blocked', 'pending', 'scheduled', 'awaiting_approval', 'waiting');

-- name: request_cancel
UPDATE jobs SET cancel_requested_at = :now
WHERE id = :id AND status = 'running' AND cancel_requested_at IS NULL;

-- name: job_status
SELECT status, cancelled_by FROM jobs WHERE id = :id;

-- name: unfinished_parent_count
SELECT count(*) FROM job_parents
JOIN jobs AS parent ON parent.id = job_parents.parent_id
WHERE job_parents.job_id = :id AND parent.status != 'completed';

-- name: dead_parent
-- A parent that failed or was cancelled, if any: the job cannot run until it is retried.
SELECT parent.id, parent.status FROM job_parents
JOIN jobs AS parent ON parent.id = job_parents.parent_id
WHERE job_parents.job_id = :id AND parent.status IN ('failed', 'cancelled')
LIMIT 1;

-- name: requeue_job
-- A failed or cancelled job made ready (or blocked) again by a user's retry.
UPDATE jobs
SET status = :status,
    pending_parents = :pending_parents,
    attempts = 0,
    interruptions = 0,
    run_after = :now,
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
WHERE id = :id AND status IN ('failed', 'cancelled');

-- name: keep_finished_outcome
-- A finished job is about to run again (a user's retry): its outcome stays counted.
INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
SELECT agent_type, status, 1, coalesce(duration_ms, 0) FROM jobs
WHERE id = :id AND status IN ('completed', 'failed', 'cancelled')
ON CONFLICT (agent_type, event) DO UPDATE
SET count = count + 1, duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum;

-- name: cancelled_descendants_of
-- Descendants of :id that were cancelled because of :id, nearest first.
WITH RECURSIVE descendants (id, depth) AS (
    SELECT job_id, 1 FROM job_parents WHERE parent_id = :id
    UNION
    SELECT job_parents.job_id, descendants.depth + 1
    FROM job_parents JOIN descendants ON job_parents.parent_id = descendants.id
)
SELECT jobs.id, max(descendants.depth) AS depth
FROM descendants JOIN jobs ON jobs.id = descendants.id
WHERE jobs.status = 'cancelled' AND jobs.cancelled_by = :id
GROUP BY jobs.id
ORDER BY depth;

-- name: rescue_job
-- A running job whose worker is gone goes back to pending; the attempt is not counted.
UPDATE jobs
SET status = 'pending',
    -- :ran_until: the worker's last sign of life when its death was noticed late.
    prior_run_ms = prior_run_ms + max(0, CAST(round(
        (julianday(coalesce(:ran_until, :now)) - julianday(run_started_at)) * 86400000) AS INTEGER)),
    attempts = max(attempts - 1, 0),
    interruptions = interruptions + :counted,
    run_after = :now,
    error = :error,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: count_interruption
UPDATE jobs SET interruptions = interruptions + 1 WHERE id = :id;

-- name: running_jobs
-- Every claimed job with its owner, for the supervisor's sweep.
SELECT id, fence, worker_id, worker_pid, run_started_at, lease_expires_at, timeout_s,
       cancel_requested_at, interruptions
FROM jobs WHERE status = 'running';

-- name: renew_lease
UPDATE jobs SET lease_expires_at = :lease_expires_at
WHERE id = :id AND fence = :fence AND status = 'running'
RETURNING cancel_requested_at;

-- name: job_control
-- What a worker polls while its agent runs: still ours, and was cancel asked for?
SELECT fence, status, cancel_requested_at FROM jobs WHERE id = :id;

-- name: record_checkpoint
UPDATE jobs SET checkpoint_iteration = :iteration
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: record_resume
-- Where this run started: the checkpoint iteration resumed from, or 0 and a note.
UPDATE jobs SET resumed_from = :resumed_from, checkpoint_note = :note
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: record_checkpoint_unheld
-- A checkpoint saved for a job no worker holds (from the orchestrator's own code).
UPDATE jobs SET checkpoint_iteration = :iteration
WHERE id = :id AND status NOT IN ('running', 'completed');

-- name: get_job
SELECT * FROM jobs WHERE id = :id;

-- name: job_parents
SELECT parent_id FROM job_parents WHERE job_id = :id ORDER BY parent_id;

-- name: parents_of_jobs
-- Every (job, parent) edge of several jobs at once (:ids is a JSON array).
SELECT job_id, parent_id FROM job_parents
WHERE job_id IN (SELECT value FROM json_each(:ids))
ORDER BY job_id, parent_id;

-- name: jobs_states
-- Status, result and error of several jobs at once (:ids is a JSON array).
SELECT id, status, result, error, cancelled_by FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: list_jobs
SELECT * FROM jobs
WHERE (:status IS NULL OR status = :status)
  AND (:type IS NULL OR type = :type)
ORDER BY id DESC
LIMIT :limit;

-- name: list_jobs_by_status
SELECT * FROM jobs
WHERE status = :status AND (:type IS NULL OR type = :type)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: queue_counts
SELECT status, count(*) FROM jobs
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
GROUP BY status;

-- name: oldest_pending
SELECT min(created_at) FROM jobs WHERE status = 'pending';

-- name: agent_performance
-- The seed's "Which agents are slow?" over a window.
SELECT agent_type, count(*) AS jobs, avg(duration_ms) AS avg_ms,
       min(duration_ms) AS min_ms, max(duration_ms) AS max_ms
FROM jobs
WHERE status = 'completed' AND (:since IS NULL OR created_at > :since)
GROUP BY agent_type
ORDER BY avg_ms DESC;

-- name: recent_failures
SELECT * FROM jobs
WHERE status = 'failed' AND (:since IS NULL OR created_at > :since)
  AND (:type IS NULL OR type = :type)
ORDER BY created_at DESC
LIMIT :limit;

-- name: counts_by_type_and_status
SELECT type, status, count(*) AS count
FROM jobs
WHERE created_at BETWEEN :start AND :end
GROUP BY type, status
ORDER BY count DESC;

-- name: set_cancel_cause
UPDATE jobs SET cancelled_by = :cause WHERE id = :id;

-- ===== analytics =====
-- Window figures filter on created_at > :since; the caller passes '' for "all time" so
-- the jobs_created / jobs_status_created indexes serve every window. Percentiles are
-- nearest-rank: the value at rank ceil(p * n) of the ordered durations.

-- name: analytics_by_agent_type
-- Per agent type: job counts by outcome and, over completed jobs, duration figures.
-- One pass: each (agent type, has-a-duration) partition is ordered by duration once,
-- giving every row its rank and its partition's size. '+agent_type' keeps the planner
-- on the created_at range instead of walking jobs_agent_type for its order.
SELECT agent_type,
       count(*) AS jobs,
       sum(status = 'completed') AS completed,
       sum(status = 'failed') AS failed,
       sum(status = 'cancelled') AS cancelled,
       avg(d) AS avg_ms,
       min(d) AS min_ms,
       max(d) AS max_ms,
       max(CASE WHEN rn = (50 * n + 99) / 100 THEN d END) AS p50_ms,
       max(CASE WHEN rn = (95 * n + 99) / 100 THEN d END) AS p95_ms
FROM (
    SELECT agent_type, status,
           CASE WHEN status = 'completed' THEN duration_ms END AS d,
           row_number() OVER ranked AS rn,
           count(*) OVER (ranked ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n
    FROM jobs
    WHERE created_at > :since
    WINDOW ranked AS (
        PARTITION BY +agent_type, status = 'completed' AND duration_ms IS NOT NULL
        ORDER BY duration_ms
    )
)
GROUP BY agent_type
ORDER BY avg_ms IS NULL, avg_ms DESC, agent_type;

-- name: analytics_status_counts
-- Jobs created in the window, for every status (0 when none); each count is a range
-- of the covering index jobs_status_created.
WITH statuses (status) AS (
    VALUES ('scheduled'), ('blocked'), ('pending'), ('running'), ('awaiting_approval'), ('waiting'),
           ('completed'), ('failed'), ('cancelled')
)
SELECT status,
       (SELECT count(*) FROM jobs
        WHERE jobs.status = statuses.status AND jobs.created_at > :since) AS jobs
FROM statuses;

-- name: analytics_completed_since
-- Jobs that completed in the window, by completion time. Without ANALYZE statistics the
-- planner prefers jobs_status_created (every completed job), so the index is named.
SELECT count(*) FROM jobs INDEXED BY jobs_completed
WHERE status = 'completed' AND completed_at > :since;

-- name: analytics_first_created
SELECT min(created_at) FROM jobs;

-- name: analytics_failed_jobs
-- The failed-job viewer, newest first; :also is 'cancelled' to list cancelled jobs too.
-- A cancelled job names the ancestor whose failure cancelled it, with that error.
SELECT jobs.id, jobs.type, jobs.agent_type, jobs.status, jobs.attempts, jobs.max_attempts,
       jobs.created_at, jobs.started_at, jobs.completed_at, jobs.duration_ms, jobs.error,
       jobs.cancelled_by, cause.status AS cause_status, cause.error AS cause_error
FROM jobs
LEFT JOIN jobs AS cause ON cause.id = jobs.cancelled_by
WHERE jobs.status IN ('failed', :also)
  AND jobs.created_at > :since
  AND (:type IS NULL OR jobs.type = :type)
  AND (:agent_type IS NULL OR jobs.agent_type = :agent_type)
ORDER BY jobs.created_at DESC, jobs.id DESC
LIMIT :limit;

-- name: analytics_trends
-- Per time bucket (the first :width characters of created_at: 13 = hour, 10 = day):
-- jobs, failures and the p95 duration of completed jobs, in one ordered pass.
SELECT bucket,
       count(*) AS jobs,
       sum(status = 'failed') AS failed,
       max(CASE WHEN rn = (95 * n + 99) / 100 THEN d END) AS p95_ms
FROM (
    SELECT substr(created_at, 1, :width) AS bucket, status,
           CASE WHEN status = 'completed' THEN duration_ms END AS d,
           row_number() OVER ranked AS rn,
           count(*) OVER (ranked ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n
    FROM jobs
    WHERE created_at > :since
    WINDOW ranked AS (
        PARTITION BY substr(created_at, 1, :width),
                     status = 'completed' AND duration_ms IS NOT NULL
        ORDER BY duration_ms
    )
)
GROUP BY bucket
ORDER BY bucket;

-- name: analytics_job_counters
-- Job events per agent type, which only ever grow: what the rows of jobs show now
-- plus what rows no longer show (job_counters: deleted rows, finished runs a retry
-- undid). One scan of jobs; a plain table scan beats walking an index for it.
WITH live AS MATERIALIZED (
    SELECT agent_type, status, count(*) AS n, CAST(total(duration_ms) AS INTEGER) AS ms
    FROM jobs NOT INDEXED
    GROUP BY agent_type, status
)
SELECT agent_type, event, sum(count) AS count, sum(duration_ms_sum) AS duration_ms_sum
FROM (
    SELECT agent_type, 'submitted' AS event, n AS count, 0 AS duration_ms_sum FROM live
    UNION ALL
    SELECT agent_type, status, n, ms FROM live
    WHERE status IN ('completed', 'failed', 'cancelled')
    UNION ALL
    SELECT agent_type, event, count, duration_ms_sum FROM job_counters
)
GROUP BY agent_type, event
ORDER BY agent_type, event;

-- ===== daemons =====

-- name: record_daemon
-- A daemon's heartbeat: its first one also notes when it started.
INSERT INTO daemons (host, pid, workers, started_at, last_seen)
VALUES (:host, :pid, :workers, :now, :now)
ON CONFLICT (host, pid) DO UPDATE SET workers = excluded.workers, last_seen = excluded.last_seen;

-- name: forget_stale_daemons
-- Daemons that died without a clean stop, long enough ago to matter to no one.
DELETE FROM daemons WHERE last_seen < :before;

-- name: forget_daemon
DELETE FROM daemons WHERE host = :host AND pid = :pid;

-- name: daemons
SELECT host, pid, workers, started_at, last_seen FROM daemons
WHERE last_seen >= :since
ORDER BY host, pid;
