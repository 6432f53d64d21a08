-- 0005: counters of job events per agent type, kept by triggers so every write path
-- counts in its own transaction, and deleting rows never makes a counter go down.
-- A job counts as submitted once, and as completed/failed/cancelled each time it
-- enters that status (a retried job that fails again counts twice).
CREATE TABLE job_counters (
    agent_type      TEXT NOT NULL,
    event           TEXT NOT NULL
        CHECK (event IN ('submitted', 'completed', 'failed', 'cancelled')),
    count           INTEGER NOT NULL DEFAULT 0,
    duration_ms_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_type, event)
) WITHOUT ROWID;

CREATE TRIGGER job_counters_submitted AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counters (agent_type, event, count) VALUES (NEW.agent_type, 'submitted', 1)
    ON CONFLICT (agent_type, event) DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER job_counters_born_finished AFTER INSERT ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
    VALUES (NEW.agent_type, NEW.status, 1, coalesce(NEW.duration_ms, 0))
    ON CONFLICT (agent_type, event) DO UPDATE
    SET count = count + 1, duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum;
END;

CREATE TRIGGER job_counters_finished AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
    VALUES (NEW.agent_type, NEW.status, 1, coalesce(NEW.duration_ms, 0))
    ON CONFLICT (agent_type, event) DO UPDATE
    SET count = count + 1, duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum;
END;

-- An upgraded database starts from the rows it holds, not from zero.
INSERT INTO job_counters (agent_type, event, count, duration_ms_sum)
SELECT agent_type, 'submitted', count(*), 0 FROM jobs GROUP BY agent_type
UNION ALL
SELECT agent_type, status, count(*), coalesce(sum(duration_ms), 0) FROM jobs
WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY agent_type, status;
