-- A secret marked build_secret is also handed to builds as a build argument (never otherwise).
ALTER TABLE variables ADD COLUMN build_secret INTEGER NOT NULL DEFAULT 0;

-- What a deployment was asked to build: a pinned commit, and whether it recreates the project's volumes.
ALTER TABLE deployments ADD COLUMN requested_commit TEXT;
ALTER TABLE deployments ADD COLUMN reset INTEGER NOT NULL DEFAULT 0;
