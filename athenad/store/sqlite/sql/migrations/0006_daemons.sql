-- 0006: the daemons using this database, each renewing last_seen every few seconds
-- while it runs and deleting its row when it stops cleanly.
CREATE TABLE daemons (
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    workers    INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    PRIMARY KEY (host, pid)
) WITHOUT ROWID;
