-- Durable steps and events (see athenad/store/steps.py).

-- name: holds_job
SELECT 1 FROM jobs WHERE id = %(id)s AND fence = %(fence)s AND status = 'running' FOR SHARE;

-- name: load_steps
SELECT s.seq, name, status, attempt, tries, coalesce(s.result, r.body), error, error_type,
       wake_at, started_at, duration_ms, size, sha256
FROM job_steps AS s
LEFT JOIN job_step_results AS r ON r.job_id = s.job_id AND r.seq = s.seq
WHERE s.job_id = %(id)s ORDER BY s.seq;

-- name: count_steps
SELECT count(*) FROM job_steps WHERE job_id = %(id)s;

-- name: record_step
INSERT INTO job_steps (
    job_id, seq, name, status, attempt, tries, result, error, error_type, wake_at,
    started_at, duration_ms, size, sha256
) VALUES (
    %(id)s, %(seq)s, %(name)s, %(status)s, %(attempt)s, %(tries)s, %(inline_result)s,
    %(error)s, %(error_type)s, %(wake_at)s, %(started_at)s, %(duration_ms)s, %(size)s,
    %(sha256)s
)
ON CONFLICT (job_id, seq) DO UPDATE
SET name = excluded.name, status = excluded.status, attempt = excluded.attempt,
    tries = excluded.tries, result = excluded.result, error = excluded.error,
    error_type = excluded.error_type, wake_at = excluded.wake_at,
    started_at = excluded.started_at, duration_ms = excluded.duration_ms,
    size = excluded.size, sha256 = excluded.sha256;

-- name: record_large_result
INSERT INTO job_step_results (job_id, seq, body) VALUES (%(id)s, %(seq)s, %(body)s)
ON CONFLICT (job_id, seq) DO UPDATE SET body = excluded.body;

-- name: forget_large_result
DELETE FROM job_step_results WHERE job_id = %(id)s AND seq = %(seq)s;

-- name: forget_steps_from
DELETE FROM job_steps WHERE job_id = %(id)s AND seq >= %(seq)s;

-- name: forget_results_from
DELETE FROM job_step_results WHERE job_id = %(id)s AND seq >= %(seq)s;

-- name: park_until
UPDATE jobs
SET status = 'scheduled',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    run_after = %(wake_at)s,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: oldest_event
SELECT seq, payload FROM job_events
WHERE job_id = %(id)s AND key = %(key)s AND taken_by IS NULL
ORDER BY seq LIMIT 1
FOR UPDATE;

-- name: take_event
UPDATE job_events SET taken_by = %(step)s WHERE job_id = %(id)s AND seq = %(seq)s;

-- name: lock_job
-- Events and waits of one job are serialised on its row.
SELECT status, wait_event_key FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: job_exists
SELECT 1 FROM jobs WHERE id = %(id)s;

-- name: park_for_event
UPDATE jobs
SET status = CASE WHEN %(ready)s THEN 'pending' ELSE 'waiting' END,
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + round(extract(epoch FROM now() - run_started_at) * 1000)::bigint,
    run_after = CASE WHEN %(ready)s THEN now() ELSE %(deadline)s END,
    wait_event_key = CASE WHEN %(ready)s THEN NULL ELSE %(key)s END,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND status = 'running';

-- name: add_event
INSERT INTO job_events (job_id, seq, key, payload)
VALUES (%(id)s, (SELECT coalesce(max(seq), 0) + 1 FROM job_events WHERE job_id = %(id)s),
        %(key)s, %(payload)s);

-- name: wake_for_event
UPDATE jobs
SET status = 'pending', run_after = now(), wait_event_key = NULL
WHERE id = %(id)s AND status = 'waiting' AND wait_event_key = %(key)s;
