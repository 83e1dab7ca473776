-- Runtime logs: what the apps' containers write to stdout and stderr, followed from the Docker engine, with
-- secret values masked before they are stored. `seq` never goes back (AUTOINCREMENT), so a stream resumed with
-- Last-Event-ID never sees a number twice even after pruning emptied the table. `ts` is the engine's timestamp
-- in RFC 3339 UTC with exactly nine fraction digits, so text order is time order.

CREATE TABLE runtime_logs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    deployment_id  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    container      TEXT NOT NULL,
    stream         TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    ts             TEXT NOT NULL,
    line           TEXT NOT NULL
);
CREATE INDEX runtime_logs_project_seq ON runtime_logs (project_id, environment_id, seq);
CREATE INDEX runtime_logs_project_ts ON runtime_logs (project_id, environment_id, ts);
CREATE INDEX runtime_logs_ts ON runtime_logs (ts);

-- How far each container's log has been taken: the newest engine timestamp stored and how many lines carried
-- exactly that timestamp. Kept apart from the lines so pruning never makes the follower read a log again.
CREATE TABLE runtime_log_cursors (
    container  TEXT PRIMARY KEY,
    ts         TEXT NOT NULL,
    at_ts      INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
