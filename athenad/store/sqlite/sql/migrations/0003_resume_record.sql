-- 0003: how the current run of a job began: the checkpoint iteration it resumed from
-- (0 = from scratch) and why, when a recorded checkpoint could not be used.
ALTER TABLE jobs ADD COLUMN resumed_from INTEGER;
ALTER TABLE jobs ADD COLUMN checkpoint_note TEXT;
