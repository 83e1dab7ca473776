-- Projects and what describes them before they run: environments, variables (secrets sealed), git connections.

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    port          INTEGER NOT NULL,
    replicas      INTEGER NOT NULL,
    cpu           TEXT NOT NULL,
    ram           TEXT NOT NULL,
    image         TEXT,
    template_name TEXT,
    build         TEXT NOT NULL,   -- JSON BuildConfig
    runtime       TEXT NOT NULL,   -- JSON RuntimeConfig
    volumes       TEXT NOT NULL,   -- JSON [Volume]
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (workspace_id, slug)
);

CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    branch      TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- One row per key and scope: workspace-wide (project_id NULL), project-wide (environment_id NULL), or one
-- environment's override. Secret values are sealed (crypto::keyring) with associated data 'var:<id>'.
CREATE TABLE variables (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    project_id     TEXT REFERENCES projects(id) ON DELETE CASCADE,
    environment_id TEXT REFERENCES environments(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    is_secret      INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX variables_scope_key
    ON variables (workspace_id, COALESCE(project_id, ''), COALESCE(environment_id, ''), key);

-- Sealed columns: access_token ('git-token:<project id>'), deploy_key_private ('deploy-key:<project id>'),
-- webhook_secret ('webhook:<project id>').
CREATE TABLE git_connections (
    project_id             TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    repo_url               TEXT NOT NULL,
    branch                 TEXT,
    auto_deploy            INTEGER NOT NULL DEFAULT 0,
    access_token           TEXT,
    deploy_key_public      TEXT NOT NULL,
    deploy_key_private     TEXT NOT NULL,
    deploy_key_fingerprint TEXT NOT NULL,
    webhook_id             TEXT NOT NULL UNIQUE,
    webhook_secret         TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
