-- Push events already acted on, so a redelivered webhook never deploys the same commit twice.
CREATE TABLE webhook_deliveries (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    commit_sha   TEXT NOT NULL,
    provider     TEXT NOT NULL,
    delivery_id  TEXT,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (project_id, commit_sha)
);
