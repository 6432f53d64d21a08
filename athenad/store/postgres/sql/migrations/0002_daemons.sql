-- The daemons using this database, on every host, each renewing last_seen every few
-- seconds while it runs and deleting its row when it stops cleanly.

CREATE TABLE daemons (
    host       text NOT NULL,
    pid        integer NOT NULL,
    workers    integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, pid)
);
