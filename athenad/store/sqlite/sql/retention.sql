-- Retention (athenad/store/retention.py): pruning finished jobs by age.
-- :completed_before, :failed_before and :cancelled_before are UTC text cutoffs; NULL
-- leaves that status alone. A job is old when it completed before its status's cutoff;
-- created_at (never later than completed_at) bounds the jobs_status_created range.

-- name: old_leaf_jobs
-- Up to :batch old jobs that no job depends on any more. Read outside the write
-- transaction; prune_jobs checks each again under the lock.
SELECT old.id FROM (
    SELECT id FROM jobs
    WHERE status = 'completed' AND created_at < :completed_before AND completed_at < :completed_before
    UNION ALL
    SELECT id FROM jobs
    WHERE status = 'failed' AND created_at < :failed_before AND completed_at < :failed_before
    UNION ALL
    SELECT id FROM jobs
    WHERE status = 'cancelled' AND created_at < :cancelled_before AND completed_at < :cancelled_before
) AS old
WHERE NOT EXISTS (SELECT 1 FROM job_parents WHERE parent_id = old.id)
  -- Edges name every parent; a row written by plain SQL may set only parent_job_id.
  AND NOT EXISTS (SELECT 1 FROM jobs AS child WHERE child.parent_job_id = old.id)
LIMIT :batch;

-- name: prune_jobs
-- Delete the jobs of :ids (a JSON array) that are still old and still without
-- dependents. A parent goes only after its dependents: jobs.parent_job_id has no ON
-- DELETE action, and a dependent that stays keeps its edges. job_parents and job_logs
-- rows go by cascade; the trigger job_counters_keep_deleted counts each row first.
DELETE FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND completed_at < CASE status
        WHEN 'completed' THEN :completed_before
        WHEN 'failed' THEN :failed_before
        WHEN 'cancelled' THEN :cancelled_before
      END
  AND NOT EXISTS (SELECT 1 FROM job_parents WHERE parent_id = jobs.id)
  AND NOT EXISTS (SELECT 1 FROM jobs AS child WHERE child.parent_job_id = jobs.id)
RETURNING id, status;

-- name: prunable_jobs
-- What a prune would delete (a dry run): old jobs, less those kept by a dependent that
-- is not old, and in turn their old ancestors.
WITH RECURSIVE
old (id, status) AS MATERIALIZED (
    SELECT id, status FROM jobs
    WHERE status = 'completed' AND created_at < :completed_before AND completed_at < :completed_before
    UNION ALL
    SELECT id, status FROM jobs
    WHERE status = 'failed' AND created_at < :failed_before AND completed_at < :failed_before
    UNION ALL
    SELECT id, status FROM jobs
    WHERE status = 'cancelled' AND created_at < :cancelled_before AND completed_at < :cancelled_before
),
kept (id) AS (
    SELECT edge.parent_id FROM old JOIN job_parents AS edge ON edge.parent_id = old.id
    WHERE edge.job_id NOT IN (SELECT id FROM old)
    UNION
    SELECT edge.parent_id FROM kept JOIN job_parents AS edge ON edge.job_id = kept.id
    WHERE edge.parent_id IN (SELECT id FROM old)
)
SELECT id, status FROM old WHERE id NOT IN (SELECT id FROM kept);

-- name: old_job_count
-- Old jobs, pruned or not: after a prune, those its dependents keep.
SELECT
    (SELECT count(*) FROM jobs
     WHERE status = 'completed' AND created_at < :completed_before AND completed_at < :completed_before)
  + (SELECT count(*) FROM jobs
     WHERE status = 'failed' AND created_at < :failed_before AND completed_at < :failed_before)
  + (SELECT count(*) FROM jobs
     WHERE status = 'cancelled' AND created_at < :cancelled_before AND completed_at < :cancelled_before);

-- name: sessions_in_use
-- Sessions that unfinished jobs name: never pruned, whatever their age.
SELECT DISTINCT session_id FROM jobs
WHERE status IN ('scheduled', 'blocked', 'pending', 'running', 'awaiting_approval', 'waiting')
  AND session_id IS NOT NULL;
