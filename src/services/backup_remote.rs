//! Backups' copies in the S3-compatible target (`s3_*` config). A succeeded backup is queued (`remote.status:
//! uploading`, in the same transaction that records the file); one background loop uploads the queue oldest
//! first, so a restart resumes where it stopped. A failed upload waits as `failed` with its next attempt in the
//! database (`domain::upload_retry` says when), is taken back into `uploading` when that comes, and raises
//! `backup.upload_failed`. Uploads never touch the local file. Downloads and restores fetch
//! a missing local file back from its copy, checking size and SHA-256 before it is used. Deleting a backup
//! (by hand or by retention) deletes its copy first.

use super::backup_files::sync_dir;
use super::notifications::Link;
use super::{ServiceError, Services};
use crate::domain::database::RemoteStatus;
use crate::domain::notification::{Event, upload_streak};
use crate::domain::upload_retry::UploadFailure;
use crate::domain::{Timestamp, new_id, now};
use crate::s3::{BackupTarget, S3Error};
use crate::store::{self, databases::BackupRow, databases::RemoteCopy};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the uploader looks at the queue without being woken (a safety net; new backups wake it).
const UPLOADER_TICK: Duration = Duration::from_secs(60);
/// The shortest the uploader sleeps before looking for due retries again.
const RETRY_POLL: Duration = Duration::from_millis(250);

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
                attempts: 0,
                next_attempt_at: None,
            }
        })
    }

    /// Wakes the uploader after a backup was queued.
    pub(super) fn wake_uploader(&self) {
        self.backup_uploads.notify_one();
    }

    /// The background loop that uploads queued backups one at a time, oldest first, then the failed uploads whose
    /// retry is due. Returns at once when no target is configured. It holds no database lock: backups and
    /// restores never wait for it.
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
            match self.store.read(|c| store::databases::upload_retries(c, Some(now()))).await {
                Ok(due) => {
                    for b in due {
                        if !self.claim_retry(&b).await {
                            continue;
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = self.upload_backup(&target, b) => {}
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "while looking for uploads to retry"),
            }
            let wait = match self.store.read(store::databases::next_upload_retry).await {
                Ok(Some(at)) => {
                    (at.0 - chrono::Utc::now()).to_std().unwrap_or_default().clamp(RETRY_POLL, UPLOADER_TICK)
                }
                _ => UPLOADER_TICK,
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.backup_uploads.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Takes a failed upload whose retry is due back into `uploading`; `false` when it was deleted (or its retry
    /// dropped) meanwhile, so it must not be uploaded.
    async fn claim_retry(&self, b: &BackupRow) -> bool {
        let bid = b.id.clone();
        match self.store.write(move |tx| store::databases::claim_upload_retry(tx, &bid)).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(backup = %b.id, error = %e, "while taking up a failed upload again");
                false
            }
        }
    }

    /// Uploads one queued backup and records the outcome. A failure is logged, shown on the backup, retried on
    /// the schedule of `domain::upload_retry` and raises `backup.upload_failed`; the local file stays as it is
    /// either way.
    async fn upload_backup(&self, target: &BackupTarget, b: BackupRow) {
        let Some(mut remote) = b.remote.clone() else { return };
        let Some(file) = b.file.clone() else {
            let error = "the backup has no file to upload".to_owned();
            return self.upload_failed(target, &b, &remote, error, UploadFailure::Hopeless).await;
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
        let size = match target.upload_file(&self.config.data_dir.join(&file), &remote.key).await {
            Ok(size) => size,
            Err(e) => return self.upload_failed(target, &b, &remote, e.to_string(), e.upload_failure()).await,
        };
        let exists = self.record_upload(&b, Ok(now())).await;
        tracing::info!(backup = %b.id, location = %location(&remote), size, attempt = remote.attempts + 1, ms = started.elapsed().as_millis() as u64, "backup uploaded to S3");
        if exists {
            self.notification_resolved(&upload_streak(&b.database_id));
        } else {
            // The backup (or its database, purged) was deleted while it uploaded: so is its copy.
            if let Err(e) = target.delete(&remote.key).await {
                tracing::warn!(backup = %b.id, location = %location(&remote), error = %e, "while deleting the copy of a backup deleted during its upload");
            }
        }
    }

    /// Records a failed attempt with its next one (if any), logs it and raises `backup.upload_failed` (its streak
    /// keeps a failing target from announcing every attempt). Nothing is raised for a backup deleted meanwhile.
    async fn upload_failed(
        &self,
        target: &BackupTarget,
        b: &BackupRow,
        remote: &RemoteCopy,
        error: String,
        why: UploadFailure,
    ) {
        let attempt = remote.attempts.saturating_add(1);
        let next = target.settings().upload_retry.delay(attempt, why).map(|d| now().plus(d));
        if !self.record_upload(b, Err((error.clone(), next))).await {
            return tracing::debug!(backup = %b.id, "a backup deleted during its upload was not uploaded");
        }
        tracing::warn!(
            backup = %b.id,
            location = %location(remote),
            error = %error,
            attempt,
            next_attempt = %next.map(Timestamp::to_rfc3339).unwrap_or_else(|| "none".into()),
            "backup upload to S3 failed; the local file is kept"
        );
        let did = b.database_id.clone();
        let row = match self.store.read(move |c| store::databases::get(c, &did)).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => return tracing::warn!(backup = %b.id, error = %e, "while looking up a failed upload's database"),
        };
        self.notify(
            Some(&row.workspace_id),
            Link::Database(row.id.clone()),
            Event::BackupUploadFailed {
                database_id: row.id,
                database_name: row.name,
                backup_id: b.id.clone(),
                location: location(remote),
                endpoint: remote.endpoint.clone(),
                error,
                attempt,
                next_attempt: next.map(|t| t.0),
            },
        );
    }

    /// Writes an upload attempt's outcome; returns whether the backup still exists.
    async fn record_upload(&self, b: &BackupRow, outcome: Result<Timestamp, (String, Option<Timestamp>)>) -> bool {
        let bid = b.id.clone();
        let written = self
            .store
            .write(move |tx| {
                let outcome = outcome.as_ref().map(|at| *at).map_err(|(e, next)| (e.as_str(), *next));
                store::databases::finish_upload(tx, &bid, outcome)
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

    /// At start. With no target configured any more, queued uploads and waiting retries can never run, so they
    /// are marked failed for good. With one, waiting retries are made due at once: a restart is how fixed
    /// `s3_*` keys take effect, and it should not wait hours to show they work.
    pub(super) async fn recover_uploads(&self) -> Result<(), ServiceError> {
        if self.backup_target.is_some() {
            let due = self.store.write(|tx| store::databases::retry_uploads_at(tx, now())).await?;
            if due > 0 {
                tracing::info!(uploads = due, "failed backup uploads are retried now");
            }
            return Ok(());
        }
        let mut stranded = self.store.read(store::databases::pending_uploads).await?;
        stranded.extend(self.store.read(|c| store::databases::upload_retries(c, None)).await?);
        for b in stranded {
            let bid = b.id.clone();
            self.store
                .write(move |tx| {
                    store::databases::fail_upload(tx, &bid, "not uploaded: no S3 target is configured any more")
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

    /// A succeeded backup's local file does not match its recorded SHA-256: when its copy is uploaded to the
    /// configured S3 target, moves the bad file aside (to [`corrupt_aside`], kept for inspection) and fetches the
    /// copy in its place (checked like [`Self::ensure_local`] checks it). When there is no usable copy, or
    /// fetching it fails, the bad file stays where it was and the answer is `backup_corrupt`, saying why.
    pub(super) async fn replace_corrupt(&self, b: &BackupRow, path: &Path) -> Result<(), ServiceError> {
        let corrupt = |why: String| {
            ServiceError::conflict(
                "backup_corrupt",
                format!("backup {}'s file does not match its recorded SHA-256 and {why}; it was not used", b.id),
            )
        };
        let remote = match &b.remote {
            Some(r) if r.status == RemoteStatus::Uploaded => r,
            Some(r) => return Err(corrupt(format!("its copy {} is {}", location(r), r.status.as_str()))),
            None => return Err(corrupt("it has no copy in an S3 target".into())),
        };
        if !self.backup_target.as_ref().is_some_and(|t| t.holds(&remote.endpoint, &remote.bucket)) {
            return Err(corrupt(format!("its copy {} is not in the configured S3 target", location(remote))));
        }
        let aside = corrupt_aside(path);
        tokio::fs::rename(path, &aside)
            .await
            .map_err(|e| ServiceError::Internal(format!("while moving {} aside: {e}", path.display())))?;
        match self.ensure_local(b, path).await {
            Ok(()) => {
                tracing::warn!(backup = %b.id, corrupt = %aside.display(), location = %location(remote), "a backup's local file did not match its SHA-256; it was moved aside and replaced by its S3 copy");
                Ok(())
            }
            Err(e) => {
                // Put the bad file back, so the backup looks as it did (its file present, and corrupt).
                let _ = tokio::fs::rename(&aside, path).await;
                Err(corrupt(format!("its copy could not be used: {e}")))
            }
        }
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

/// Where a backup file that failed its checksum is kept once its S3 copy replaced it: `<file>.corrupt`.
pub(super) fn corrupt_aside(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    name.into()
}
