-- Retention (athenad/store/retention.py): pruning finished jobs and idle sessions.
-- %(completed_before)s, %(failed_before)s and %(cancelled_before)s are cutoffs taken
-- from the database's clock; NULL leaves that status alone. A job is old when it
-- completed before its status's cutoff; created_at (never later than completed_at)
-- bounds the jobs_status_created range.

-- name: retention_now
SELECT now();

-- name: prune_jobs
-- One batch: old jobs that no job depends on any more. A parent goes only after its
-- dependents: jobs.parent_job_id has no ON DELETE action, and a dependent that stays
-- keeps its edges. SKIP LOCKED: a job a retry (or another daemon's prune) holds is
-- left for later. job_parents and job_logs rows go by cascade; the trigger
-- job_counters_keep_deleted counts each row first.
DELETE FROM jobs
WHERE id IN (
    SELECT id FROM jobs
    WHERE ((status = 'completed' AND created_at < %(completed_before)s
            AND completed_at < %(completed_before)s)
        OR (status = 'failed' AND created_at < %(failed_before)s
            AND completed_at < %(failed_before)s)
        OR (status = 'cancelled' AND created_at < %(cancelled_before)s
            AND completed_at < %(cancelled_before)s))
      AND NOT EXISTS (SELECT 1 FROM job_parents WHERE job_parents.parent_id = jobs.id)
      -- Edges name every parent; a row written by plain SQL may set only parent_job_id.
      AND NOT EXISTS (SELECT 1 FROM jobs AS child WHERE child.parent_job_id = jobs.id)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, status;

-- name: prune_checkpoints
-- The checkpoints of jobs just pruned (%(ids)s, a text array), in the same transaction.
DELETE FROM checkpoints WHERE job_id = ANY(%(ids)s::text[]);

-- name: prunable_jobs
-- What a prune would delete (a dry run), by status, then 'checkpoints' and 'old' (old
-- jobs, pruned or not): old jobs, less those kept by a dependent that is not old, and
-- in turn their old ancestors.
WITH RECURSIVE
old AS MATERIALIZED (
    SELECT id, status FROM jobs
    WHERE (status = 'completed' AND created_at < %(completed_before)s
           AND completed_at < %(completed_before)s)
       OR (status = 'failed' AND created_at < %(failed_before)s
           AND completed_at < %(failed_before)s)
       OR (status = 'cancelled' AND created_at < %(cancelled_before)s
           AND completed_at < %(cancelled_before)s)
),
kept (id) AS (
    SELECT edge.parent_id FROM old JOIN job_parents AS edge ON edge.parent_id = old.id
    WHERE edge.job_id NOT IN (SELECT id FROM old)
    UNION
    SELECT edge.parent_id FROM kept JOIN job_parents AS edge ON edge.job_id = kept.id
    WHERE edge.parent_id IN (SELECT id FROM old)
),
doomed AS MATERIALIZED (
    SELECT id, status FROM old WHERE id NOT IN (SELECT id FROM kept)
)
SELECT status AS what, count(*) AS n FROM doomed GROUP BY status
UNION ALL
SELECT 'checkpoints', count(*) FROM checkpoints WHERE job_id IN (SELECT id FROM doomed)
UNION ALL
SELECT 'old', count(*) FROM old;

-- name: old_job_count
-- Old jobs left after a prune: those their dependents keep.
SELECT count(*) FROM jobs
WHERE (status = 'completed' AND created_at < %(completed_before)s
       AND completed_at < %(completed_before)s)
   OR (status = 'failed' AND created_at < %(failed_before)s
       AND completed_at < %(failed_before)s)
   OR (status = 'cancelled' AND created_at < %(cancelled_before)s
       AND completed_at < %(cancelled_before)s);

-- name: prune_sessions
-- One batch of sessions not updated since %(sessions_before)s that no unfinished job
-- names; their events go by cascade.
DELETE FROM sessions
WHERE id IN (
    SELECT id FROM sessions
    WHERE updated_at < %(sessions_before)s
      AND id NOT IN (
          SELECT session_id COLLATE "C" FROM jobs
          WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
            AND session_id IS NOT NULL)
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- name: prunable_sessions
SELECT count(*) FROM sessions
WHERE updated_at < %(sessions_before)s
  AND id NOT IN (
      SELECT session_id COLLATE "C" FROM jobs
      WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
        AND session_id IS NOT NULL);
