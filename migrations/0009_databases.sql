-- Managed databases: one container and one named volume each, credentials sealed like secret variables.
CREATE TABLE databases (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    version         TEXT NOT NULL,
    image           TEXT NOT NULL,
    username        TEXT NOT NULL,
    -- Sealed with the keyring (associated data `database:<id>:password` / `database:<id>:admin`).
    password        TEXT NOT NULL,
    admin_password  TEXT NOT NULL,
    database_name   TEXT NOT NULL,
    public          INTEGER NOT NULL DEFAULT 0,
    host_port       INTEGER,
    -- What the user asked for: 'running' or 'stopped'.
    desired         TEXT NOT NULL DEFAULT 'running',
    container       TEXT NOT NULL,
    volume          TEXT NOT NULL,
    backup_cron     TEXT,
    backup_retain   INTEGER,
    next_backup_at  TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE database_backups (
    id            TEXT PRIMARY KEY,
    database_id   TEXT NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    trigger       TEXT NOT NULL,
    status        TEXT NOT NULL,
    -- Relative to the data dir: backups/<database id>/<file>.
    file          TEXT,
    size_bytes    INTEGER,
    sha256        TEXT,
    error         TEXT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX database_backups_database ON database_backups(database_id, started_at);
