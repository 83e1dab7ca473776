//! Backups' copies in the S3-compatible target (`s3_*` config). A succeeded backup is queued (`remote.status:
//! uploading`, in the same transaction that records the file); one background loop uploads the queue oldest
//! first, so a restart resumes where it stopped. Uploads never touch the local file. Downloads and restores fetch
//! a missing local file back from its copy, checking size and SHA-256 before it is used. Deleting a backup
//! (by hand or by retention) deletes its copy first.

use super::backup_files::sync_dir;
use super::{ServiceError, Services};
use crate::domain::database::RemoteStatus;
use crate::domain::{new_id, now};
use crate::s3::{BackupTarget, S3Error};
use crate::store::{self, databases::BackupRow, databases::RemoteCopy};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the uploader looks at the queue without being woken (a safety net; new backups wake it).
const UPLOADER_TICK: Duration = Duration::from_secs(60);

/// `s3://<bucket>/<key>`.
pub(super) fn location(r: &RemoteCopy) -> String {
    format!("s3://{}/{}", r.bucket, r.key)
}

/// What deleting a backup does with its remote copy.
pub(super) enum RemoteDelete {
    /// Deleted, or there was none.
    Done,
    /// The upload is still queued or running: try again once it has finished.
    Uploading,
}

impl Services {
    /// The copy a succeeded backup of `database_id` named `file_name` will have, if a target is configured.
    pub(super) fn planned_copy(&self, database_id: &str, file_name: &str) -> Option<RemoteCopy> {
        self.backup_target.as_ref().map(|t| {
            let s = t.settings();
            RemoteCopy {
                endpoint: s.endpoint.clone(),
                bucket: s.bucket.clone(),
                key: s.object_key(database_id, file_name),
                status: RemoteStatus::Uploading,
                error: None,
                uploaded_at: None,
            }
        })
    }

    /// Wakes the uploader after a backup was queued.
    pub(super) fn wake_uploader(&self) {
        self.backup_uploads.notify_one();
    }

    /// The background loop that uploads queued backups one at a time, oldest first. Returns at once when no
    /// target is configured.
    pub async fn backup_uploader(self: Arc<Self>, cancel: CancellationToken) {
        let Some(target) = self.backup_target.clone() else { return };
        loop {
            match self.store.read(store::databases::pending_uploads).await {
                Ok(pending) => {
                    for b in pending {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = self.upload_backup(&target, b) => {}
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "while looking for backups to upload"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.backup_uploads.notified() => {}
                _ = tokio::time::sleep(UPLOADER_TICK) => {}
            }
        }
    }

    /// Uploads one queued backup and records the outcome; a failure is logged and shown on the backup, and the
    /// local file stays as it is either way.
    async fn upload_backup(&self, target: &BackupTarget, b: BackupRow) {
        let (Some(file), Some(mut remote)) = (b.file.clone(), b.remote.clone()) else {
            self.record_upload(&b, Err("the backup has no file to upload".into())).await;
            return;
        };
        if !target.holds(&remote.endpoint, &remote.bucket) {
            // Queued before the target changed (and Berth restarted): it goes to the target configured now.
            let file_name = Path::new(&file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(copy) = self.planned_copy(&b.database_id, &file_name) else { return };
            let (bid, c) = (b.id.clone(), copy.clone());
            let moved = self
                .store
                .write(move |tx| store::databases::queue_upload(tx, &bid, &c.endpoint, &c.bucket, &c.key))
                .await;
            if let Err(e) = moved {
                tracing::warn!(backup = %b.id, error = %e, "while moving a queued upload to the new S3 target");
                return;
            }
            remote = copy;
        }
        let started = Instant::now();
        let outcome = target.upload_file(&self.config.data_dir.join(&file), &remote.key).await;
        let recorded = outcome.as_ref().map(|_| ()).map_err(S3Error::to_string);
        let exists = self.record_upload(&b, recorded).await;
        match outcome {
            Ok(size) => {
                tracing::info!(backup = %b.id, location = %location(&remote), size, ms = started.elapsed().as_millis() as u64, "backup uploaded to S3");
                if !exists {
                    // The backup (or its database, purged) was deleted while it uploaded: so is its copy.
                    if let Err(e) = target.delete(&remote.key).await {
                        tracing::warn!(backup = %b.id, location = %location(&remote), error = %e, "while deleting the copy of a backup deleted during its upload");
                    }
                }
            }
            Err(e) => tracing::warn!(
                backup = %b.id,
                location = %location(&remote),
                error = %e,
                "backup upload to S3 failed; the local file is kept"
            ),
        }
    }

    /// Writes an upload's outcome; returns whether the backup still exists.
    async fn record_upload(&self, b: &BackupRow, outcome: Result<(), String>) -> bool {
        let bid = b.id.clone();
        let at = now();
        let written = self
            .store
            .write(move |tx| {
                store::databases::finish_upload(tx, &bid, outcome.as_ref().map(|_| at).map_err(String::as_str))
            })
            .await;
        match written {
            Ok(exists) => exists,
            Err(e) => {
                tracing::error!(backup = %b.id, error = %e, "while recording a finished upload");
                true
            }
        }
    }

    /// At start, with no target configured any more: queued uploads can never run, so they are marked failed.
    pub(super) async fn fail_orphaned_uploads(&self) -> Result<(), ServiceError> {
        if self.backup_target.is_some() {
            return Ok(());
        }
        let pending = self.store.read(store::databases::pending_uploads).await?;
        for b in pending {
            let bid = b.id.clone();
            self.store
                .write(move |tx| {
                    store::databases::finish_upload(tx, &bid, Err("not uploaded: no S3 target is configured any more"))
                })
                .await?;
            tracing::warn!(backup = %b.id, "a queued backup upload was dropped: no S3 target is configured any more");
        }
        Ok(())
    }

    /// Makes sure a succeeded backup's file is at `path`: when it is missing, fetches its uploaded copy into a
    /// temporary file, checks size and SHA-256 against the backup's, and renames it into place.
    pub(super) async fn ensure_local(&self, b: &BackupRow, path: &Path) -> Result<(), ServiceError> {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Ok(());
        }
        let missing = |why: String| {
            ServiceError::conflict(
                "backup_missing",
                format!("the file of backup {} is missing from {}; {why}", b.id, path.display()),
            )
        };
        let remote = match &b.remote {
            Some(r) if r.status == RemoteStatus::Uploaded => r,
            Some(r) => return Err(missing(format!("its copy {} is {}", location(r), r.status.as_str()))),
            None => return Err(missing("it has no copy in an S3 target".into())),
        };
        let target =
            self.backup_target.as_ref().filter(|t| t.holds(&remote.endpoint, &remote.bucket)).ok_or_else(|| {
                missing(format!(
                    "its copy {} at {} is not in the configured S3 target (set s3_endpoint and s3_bucket to it)",
                    location(remote),
                    remote.endpoint
                ))
            })?;
        let dir = path.parent().unwrap_or(path);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ServiceError::Internal(format!("while creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".{}.{}.fetch", b.id, new_id()));
        let started = Instant::now();
        let fetched = target.download_file(&remote.key, &tmp).await;
        let checked = match fetched {
            Ok((size, sha)) if Some(sha.as_str()) == b.sha256.as_deref() && Some(size) == b.size_bytes => Ok(size),
            Ok(_) => Err(ServiceError::conflict(
                "backup_corrupt",
                format!(
                    "the copy of backup {} in {} does not match its recorded size and SHA-256; nothing was used",
                    b.id,
                    location(remote)
                ),
            )),
            Err(S3Error::NotFound { .. }) => Err(missing(format!("its copy {} is gone too", location(remote)))),
            Err(e) => Err(ServiceError::Upstream {
                code: "s3_unavailable",
                message: format!("the file of backup {} is missing locally and fetching its copy failed: {e}", b.id),
            }),
        };
        let size = match checked {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| ServiceError::Internal(format!("while renaming {}: {e}", tmp.display())))?;
        let d = dir.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || sync_dir(&d)).await;
        tracing::info!(backup = %b.id, location = %location(remote), size, ms = started.elapsed().as_millis() as u64, "backup file fetched back from S3");
        Ok(())
    }

    /// Deletes a backup's remote copy before the backup itself. An uploaded copy must be deleted (an error
    /// stops the deletion, so nothing is left behind unnoticed); a failed upload's leftovers are deleted if the
    /// target allows; a copy in a target no longer configured is left, with a warning.
    pub(super) async fn delete_remote_copy(&self, b: &BackupRow) -> Result<RemoteDelete, ServiceError> {
        let Some(remote) = &b.remote else { return Ok(RemoteDelete::Done) };
        if remote.status == RemoteStatus::Uploading {
            return Ok(RemoteDelete::Uploading);
        }
        let Some(target) = self.backup_target.as_ref().filter(|t| t.holds(&remote.endpoint, &remote.bucket)) else {
            if remote.status == RemoteStatus::Uploaded {
                tracing::warn!(backup = %b.id, location = %location(remote), endpoint = %remote.endpoint, "the backup's copy is in an S3 target that is no longer configured; it was left there");
            }
            return Ok(RemoteDelete::Done);
        };
        match target.delete(&remote.key).await {
            Ok(()) => Ok(RemoteDelete::Done),
            Err(e) if remote.status == RemoteStatus::Failed => {
                tracing::warn!(backup = %b.id, location = %location(remote), error = %e, "while deleting what a failed upload may have left");
                Ok(RemoteDelete::Done)
            }
            Err(e) => Err(ServiceError::Upstream {
                code: "s3_unavailable",
                message: format!(
                    "while deleting backup {}'s copy {}: {e}; nothing was deleted",
                    b.id,
                    location(remote)
                ),
            }),
        }
    }

    /// `DELETE …/databases/:id` with `purge`: deletes the copies of the database's backups (best effort; a copy
    /// that cannot be deleted is logged). Uploads still running delete their copy when they finish.
    pub(super) async fn purge_remote_copies(&self, database_id: &str) {
        let id = database_id.to_owned();
        let backups = match self.store.read(move |c| store::databases::backups_for(c, &id)).await {
            Ok(b) => b,
            Err(e) => {
                return tracing::warn!(database = %database_id, error = %e, "while listing backups to purge their copies");
            }
        };
        for b in backups {
            if let Err(e) = self.delete_remote_copy(&b).await {
                tracing::warn!(backup = %b.id, error = %e, "while purging a backup's copy");
            }
        }
    }
}
