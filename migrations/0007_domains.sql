-- Custom domains: one project each, instance-wide. `status` is pending_dns or verified; "active" is derived
-- from the certificate. `token` is what the HTTP verification fetches through Berth's own listener.
CREATE TABLE domains (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    domain          TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL DEFAULT 'pending_dns',
    token           TEXT NOT NULL,
    method          TEXT,
    message         TEXT,
    found           TEXT NOT NULL DEFAULT '[]',
    https_redirect  INTEGER NOT NULL DEFAULT 1,
    checked_at      TEXT,
    verified_at     TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX domains_project ON domains(project_id);
