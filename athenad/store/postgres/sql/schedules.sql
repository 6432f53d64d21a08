-- Schedules (athenad/store/schedules.py): each schedule's last enqueued slot, moved
-- forward by a compare-and-set in the transaction that inserts the slots' jobs.

-- name: schedules_now
-- Slots are due by the database's clock, so daemons on several hosts agree.
SELECT now();

-- name: schedule_state
SELECT last_slot, updated_at FROM schedules WHERE name = %(name)s;

-- name: schedule_states
SELECT name, last_slot, updated_at FROM schedules;

-- name: watch_schedule
-- A schedule's first sight: no slot yet, and its slots count from now().
INSERT INTO schedules (name, last_slot, updated_at) VALUES (%(name)s, NULL, now())
ON CONFLICT (name) DO NOTHING;

-- name: advance_schedule
-- The compare-and-set: only while last_slot still holds what the caller read
-- (%(expected)s, NULL for none), and never backwards. A racing daemon's UPDATE waits
-- for this one's commit, then finds the new value and changes nothing.
UPDATE schedules SET last_slot = %(slot)s, updated_at = now()
WHERE name = %(name)s
  AND last_slot IS NOT DISTINCT FROM %(expected)s::timestamptz
  AND (last_slot IS NULL OR last_slot < %(slot)s)
RETURNING name;

-- name: slot_job
-- The newest job of a slot, by its unique key. A job is created after its slot (both
-- by the database's clock): created_at bounds the jobs_created range.
SELECT id FROM jobs
WHERE created_at >= %(since)s AND unique_key = %(key)s
ORDER BY created_at DESC
LIMIT 1;
