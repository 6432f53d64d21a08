-- Checkpoints and sessions in tables, for homes whose queue is on PostgreSQL.

-- Checkpoints of jobs, so a job resumed on any host finds its own. The body is the
-- msgspec JSON of {"state", "messages"}; sha256 (hex) guards it: a row that does not
-- verify is skipped for the previous one. Workers keep the newest 3 while a job runs
-- and the last one after it completes.
CREATE TABLE checkpoints (
    job_id     text COLLATE "C" NOT NULL,
    iteration  bigint NOT NULL CHECK (iteration >= 0),
    body       bytea NOT NULL,
    sha256     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, iteration)
);

-- Conversation sessions: the header of each, with what listing them needs kept up to
-- date by every append (last_seq hands out the next seq under the row's lock).
CREATE TABLE sessions (
    id            text COLLATE "C" PRIMARY KEY,
    format        integer NOT NULL DEFAULT 1,
    name          text,
    tags          text[] NOT NULL DEFAULT '{}',
    git_branch    text,
    cwd           text,
    imported_from text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seq      bigint NOT NULL DEFAULT 0,
    message_count bigint NOT NULL DEFAULT 0,
    size_bytes    bigint NOT NULL DEFAULT 0
);

CREATE INDEX sessions_recent ON sessions (updated_at DESC, id DESC);
CREATE INDEX sessions_branch_recent ON sessions (git_branch, updated_at DESC, id DESC);

-- The messages of sessions, numbered 1, 2, ... per session in one order across hosts.
-- metadata is json (not jsonb) so it comes back byte for byte, as its checksum wants.
CREATE TABLE session_events (
    session_id text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    role       text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content    text NOT NULL,
    metadata   json,
    checksum   text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, seq)
);
