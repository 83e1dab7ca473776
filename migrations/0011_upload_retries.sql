-- Failed uploads to the S3 target are tried again (domain::upload_retry). remote_attempts counts the attempts made
-- since the upload was queued; remote_next_attempt_at is when a failed one is tried again (NULL: not retried, or
-- no more attempts). A retry waits with remote_status 'failed', so the backup can be deleted or pruned meanwhile.
ALTER TABLE database_backups ADD COLUMN remote_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE database_backups ADD COLUMN remote_next_attempt_at TEXT;
CREATE INDEX database_backups_upload_retries ON database_backups(remote_next_attempt_at)
    WHERE remote_next_attempt_at IS NOT NULL;
