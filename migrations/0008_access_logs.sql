-- The proxy's access log, per project: 4xx/5xx and non-GET requests, plus a configurable sample of the rest.
CREATE TABLE access_logs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    deployment_id  TEXT,
    at             TEXT NOT NULL,
    host           TEXT NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    status         INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    client_ip      TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    https          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_logs_project ON access_logs(project_id, seq);
