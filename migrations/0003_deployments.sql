-- Deployments as jobs with a state machine (domain::deployment), their timed events and build log, and
-- releases: every successful deployment's image and resolved configuration (sealed: it holds secret values).

CREATE TABLE deployments (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    trigger        TEXT NOT NULL,
    triggered_by   TEXT,
    branch         TEXT,
    commit_sha     TEXT,
    image          TEXT,
    release_id     TEXT,
    retry_of       TEXT,
    no_cache       INTEGER NOT NULL DEFAULT 0,
    note           TEXT,
    error          TEXT,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT,
    UNIQUE (project_id, number)
);
CREATE INDEX deployments_status ON deployments (status);
CREATE INDEX deployments_project ON deployments (project_id, number DESC);

CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    message       TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

CREATE TABLE deployment_logs (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    stream        TEXT NOT NULL,
    line          TEXT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
) WITHOUT ROWID;

CREATE TABLE releases (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    deployment_id  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    image          TEXT NOT NULL,
    config         TEXT NOT NULL,   -- sealed JSON: env, port, replicas, cpu, ram, volumes, start command, health path
    created_at     TEXT NOT NULL,
    UNIQUE (project_id, environment_id, number)
);
