-- Job log lines and progress on PostgreSQL (athenad/storage/job_logs/postgres.py).
-- Updating the job's row locks it, so concurrent appenders number lines one by one.

-- name: job_log_count_line
-- Number the next line and count its bytes, unless that would take the job's log past
-- its cap (max_bytes 0: no cap; capped false: the line is kept past it). No row back:
-- the job is unknown, or the line is dropped.
UPDATE jobs SET log_seq = log_seq + 1, log_bytes = log_bytes + %(size)s
WHERE id = %(job_id)s
  AND (NOT %(capped)s OR %(max_bytes)s = 0 OR log_bytes + %(size)s <= %(max_bytes)s)
RETURNING log_seq;

-- name: job_log_drop_line
-- No row back: the job is unknown.
UPDATE jobs SET log_dropped = log_dropped + 1 WHERE id = %(job_id)s RETURNING log_dropped;

-- name: job_log_insert
INSERT INTO job_logs (job_id, seq, at, level, message, fields)
VALUES (%(job_id)s, %(seq)s, %(at)s, %(level)s, %(message)s, %(fields)s);

-- name: job_log_lines
SELECT seq, at, level, message, fields FROM job_logs
WHERE job_id = %(job_id)s AND seq > %(after)s
ORDER BY seq LIMIT %(limit)s;

-- name: job_log_state
SELECT status, log_seq, log_bytes, log_dropped, progress, progress_message, progress_at
FROM jobs WHERE id = %(job_id)s;

-- name: job_set_progress
-- A part left out (NULL) keeps what the job reported before.
UPDATE jobs
SET progress = coalesce(%(fraction)s::double precision, progress),
    progress_message = coalesce(%(message)s::text, progress_message),
    progress_at = now()
WHERE id = %(job_id)s;

-- name: running_progress
-- Progress reported by the current run of each running job (not by an earlier attempt).
SELECT id, progress, progress_message, progress_at FROM jobs
WHERE status = 'running' AND progress_at >= run_started_at;
