-- 0002: completions by time, so throughput over a window reads only that window.
CREATE INDEX jobs_completed ON jobs (completed_at) WHERE status = 'completed';
