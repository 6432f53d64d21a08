-- Durable steps and events (see athenad/store/steps.py). Times are UTC text.

-- name: holds_job
SELECT 1 FROM jobs WHERE id = :id AND fence = :fence AND status = 'running';

-- name: load_steps
SELECT s.seq, name, status, attempt, tries, coalesce(s.result, r.body), error, error_type,
       wake_at, started_at, duration_ms, size, sha256
FROM job_steps AS s
LEFT JOIN job_step_results AS r ON r.job_id = s.job_id AND r.seq = s.seq
WHERE s.job_id = :id ORDER BY s.seq;

-- name: count_steps
SELECT count(*) FROM job_steps WHERE job_id = :id;

-- name: record_step
INSERT OR REPLACE INTO job_steps (
    job_id, seq, name, status, attempt, tries, result, error, error_type, wake_at,
    started_at, duration_ms, size, sha256
) VALUES (
    :id, :seq, :name, :status, :attempt, :tries, :inline_result, :error, :error_type,
    :wake_at, :started_at, :duration_ms, :size, :sha256
);

-- name: record_large_result
INSERT OR REPLACE INTO job_step_results (job_id, seq, body) VALUES (:id, :seq, :body);

-- name: forget_large_result
DELETE FROM job_step_results WHERE job_id = :id AND seq = :seq;

-- name: forget_steps_from
DELETE FROM job_steps WHERE job_id = :id AND seq >= :seq;

-- name: forget_results_from
DELETE FROM job_step_results WHERE job_id = :id AND seq >= :seq;

-- name: park_until
-- A durable sleep: 'scheduled' until :wake_at, no worker held, the attempt not spent.
UPDATE jobs
SET status = 'scheduled',
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    run_after = :wake_at,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: oldest_event
SELECT seq, payload FROM job_events
WHERE job_id = :id AND key = :key AND taken_by IS NULL
ORDER BY seq LIMIT 1;

-- name: take_event
UPDATE job_events SET taken_by = :step WHERE job_id = :id AND seq = :seq;

-- name: park_for_event
-- Waiting for an event: 'waiting' until one comes or :deadline passes (run_after).
UPDATE jobs
SET status = CASE WHEN :ready THEN 'pending' ELSE 'waiting' END,
    attempts = attempts - 1,
    prior_run_ms = prior_run_ms + CAST(round((julianday(:now) - julianday(run_started_at)) * 86400000) AS INTEGER),
    run_after = CASE WHEN :ready THEN :now ELSE :deadline END,
    wait_event_key = CASE WHEN :ready THEN NULL ELSE :key END,
    worker_id = NULL,
    worker_pid = NULL,
    lease_expires_at = NULL
WHERE id = :id AND fence = :fence AND status = 'running';

-- name: job_for_event
SELECT status, wait_event_key FROM jobs WHERE id = :id;

-- name: add_event
INSERT INTO job_events (job_id, seq, key, payload, sent_at)
VALUES (:id, (SELECT coalesce(max(seq), 0) + 1 FROM job_events WHERE job_id = :id),
        :key, :payload, :now);

-- name: wake_for_event
UPDATE jobs
SET status = 'pending', run_after = :now, wait_event_key = NULL
WHERE id = :id AND status = 'waiting' AND wait_event_key = :key;
