-- The S3-compatible copy of each backup (the s3_* config keys). All NULL: no target was configured when the backup
-- finished. The endpoint and bucket are kept per backup, so a copy stays findable after the target changes.
ALTER TABLE database_backups ADD COLUMN remote_endpoint TEXT;
ALTER TABLE database_backups ADD COLUMN remote_bucket TEXT;
ALTER TABLE database_backups ADD COLUMN remote_key TEXT;
-- 'uploading' (queued or in progress; resumed after a restart), 'uploaded', or 'failed' with remote_error.
ALTER TABLE database_backups ADD COLUMN remote_status TEXT;
ALTER TABLE database_backups ADD COLUMN remote_error TEXT;
ALTER TABLE database_backups ADD COLUMN remote_uploaded_at TEXT;
CREATE INDEX database_backups_uploading ON database_backups(finished_at) WHERE remote_status = 'uploading';
