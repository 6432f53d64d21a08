-- Schedules (athenad/store/schedules.py): each schedule's last enqueued slot, moved
-- forward by a compare-and-set in the transaction that inserts the slots' jobs.
-- Times are UTC text, like every timestamp in athena.db.

-- name: schedule_state
SELECT last_slot, updated_at FROM schedules WHERE name = :name;

-- name: schedule_states
SELECT name, last_slot, updated_at FROM schedules;

-- name: watch_schedule
-- A schedule's first sight: no slot yet, and its slots count from :now.
INSERT INTO schedules (name, last_slot, updated_at) VALUES (:name, NULL, :now)
ON CONFLICT (name) DO NOTHING;

-- name: advance_schedule
-- The compare-and-set: only while last_slot still holds what the caller read
-- (:expected, NULL for none), and never backwards. No row back: another daemon moved it.
UPDATE schedules SET last_slot = :slot, updated_at = :now
WHERE name = :name
  AND last_slot IS :expected
  AND (last_slot IS NULL OR last_slot < :slot)
RETURNING name;

-- name: slot_job
-- The newest job of a slot, by its unique key. A job is created after its slot:
-- created_at bounds the jobs_created range, so no scan of the whole table.
SELECT id FROM jobs
WHERE created_at >= :since AND unique_key = :key
ORDER BY created_at DESC
LIMIT 1;
