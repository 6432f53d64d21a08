-- Job log lines and progress on SQLite (athenad/storage/job_logs/sqlite.py).
-- Times are UTC text with milliseconds, as everywhere in athena.db.

-- name: job_log_count_line
-- Number the next line and count its bytes, unless that would take the job's log past
-- its cap (:max_bytes 0: no cap; :capped 0: the line is kept past it). No row back:
-- the job is unknown, or the line is dropped.
UPDATE jobs SET log_seq = log_seq + 1, log_bytes = log_bytes + :size
WHERE id = :job_id
  AND (:capped = 0 OR :max_bytes = 0 OR log_bytes + :size <= :max_bytes)
RETURNING log_seq;

-- name: job_log_drop_line
-- No row back: the job is unknown.
UPDATE jobs SET log_dropped = log_dropped + 1 WHERE id = :job_id RETURNING log_dropped;

-- name: job_log_insert
INSERT INTO job_logs (job_id, seq, at, level, message, fields)
VALUES (:job_id, :seq, :at, :level, :message, :fields);

-- name: job_log_lines
SELECT seq, at, level, message, fields FROM job_logs
WHERE job_id = :job_id AND seq > :after
ORDER BY seq LIMIT :limit;

-- name: job_log_state
SELECT status, log_seq, log_bytes, log_dropped, progress, progress_message, progress_at
FROM jobs WHERE id = :job_id;

-- name: job_set_progress
-- A part left out (NULL) keeps what the job reported before.
UPDATE jobs
SET progress = coalesce(:fraction, progress),
    progress_message = coalesce(:message, progress_message),
    progress_at = :at
WHERE id = :job_id;

-- name: running_progress
-- Progress reported by the current run of each running job (not by an earlier attempt).
SELECT id, progress, progress_message, progress_at FROM jobs
WHERE status = 'running' AND progress_at >= run_started_at;
