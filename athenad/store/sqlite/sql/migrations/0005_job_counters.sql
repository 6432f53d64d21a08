-- 0005: job counters that never go down. A counter is what the rows of jobs show
-- (every row was submitted once; a finished row ended once) plus what rows no longer
-- show: a deleted row, or a finished job made to run again by a retry, leaves its
-- events here. Nothing on the claim/complete path writes this table, so counting
-- costs those transactions nothing.
CREATE TABLE job_counters (
    agent_type      TEXT NOT NULL,
    event           TEXT NOT NULL
        CHECK (event IN ('submitted', 'completed', 'failed', 'cancelled')),
    count           INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_type, event)
) WITHOUT ROWID;

CREATE TRIGGER job_counters_keep_deleted BEFORE DELETE ON jobs
BEGIN
    INSERT INTO job_counters (agent_type, event, count) VALUES (OLD.agent_type, 'submitted', 1)
    ON CONFLICT (agent_type, event) DO UPDATE SET count = count + 1;
    INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
    SELECT OLD.agent_type, OLD.status, 1, coalesce(OLD.duration_ms, 0)
    WHERE OLD.status IN ('completed', 'failed', 'cancelled')
    ON CONFLICT (agent_type, event) DO UPDATE
    SET count = count + 1, duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum;
END;
