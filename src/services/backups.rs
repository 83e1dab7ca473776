//! Database backups: on demand and on a schedule, made with the engine's own tool inside the database's
//! container, gzip-compressed into `<data_dir>/backups/<database id>/` (written to a temporary file, synced, then
//! renamed, with size and SHA-256 recorded); downloads; restores into the same database (typed confirmation,
//! after an automatic safety backup) or into a new one; and retention of scheduled backups. With an S3 target
//! configured, each succeeded backup is also queued for upload (see `backup_remote.rs`).

use super::access::Actor;
use super::backup_files::{file_sha256, read_decompressed, sync_dir, write_compressed};
use super::backup_remote::{RemoteDelete, location};
use super::database_views::DatabaseView;
use super::databases::host_name;
use super::notifications::Link;
use super::{ServiceError, Services};
use crate::domain::database::{BackupStatus, BackupTrigger, RemoteStatus, Schedule};
use crate::domain::notification::{Event, backup_streak};
use crate::domain::{Role, Timestamp, new_id, now};
use crate::store::{self, databases::BackupRow, databases::DatabaseRow};
use bytes::Bytes;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// How long a backup or restore waits for a database that is still starting.
const READY_BEFORE_BACKUP: Duration = Duration::from_secs(30);
/// How often the scheduler looks for due backups.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);

/// A backup as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupView {
    pub id: String,
    pub database_id: String,
    pub trigger: BackupTrigger,
    pub status: BackupStatus,
    /// The download's file name (`<database>-<time>-<id>.<dump|sql|rdb|archive>.gz`).
    pub file_name: Option<String>,
    /// Size of the compressed file.
    pub size_bytes: Option<u64>,
    /// SHA-256 of the compressed file, hex.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Whether the file is on this machine's disk. When it is not, download and restore fetch it back from
    /// `remote` (checking its SHA-256) first.
    pub local_copy: bool,
    /// The copy in the S3-compatible target (`s3_*` config); `null` when none was configured as the backup
    /// finished (and for failed backups).
    pub remote: Option<RemoteCopyView>,
}

/// A backup's copy in an S3-compatible bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemoteCopyView {
    /// `uploading` (queued or in progress), `uploaded`, or `failed` (see `error`; the local file is kept, and
    /// the upload is tried again at `next_attempt_at`).
    pub status: RemoteStatus,
    /// `s3://<bucket>/<key>`; the key is `<s3_prefix>/<database id>/<file_name>`.
    pub location: String,
    /// The S3 service it was sent to.
    pub endpoint: String,
    /// Why the upload failed.
    pub error: Option<String>,
    pub uploaded_at: Option<Timestamp>,
    /// Upload attempts made so far.
    pub attempts: u32,
    /// When a failed upload is tried again; `null` when it is not (uploaded, uploading, or no attempts left).
    pub next_attempt_at: Option<Timestamp>,
}

impl From<BackupRow> for BackupView {
    fn from(b: BackupRow) -> Self {
        BackupView {
            local_copy: b.file.is_some(),
            remote: b.remote.map(|r| RemoteCopyView {
                status: r.status,
                location: location(&r),
                endpoint: r.endpoint,
                error: r.error,
                uploaded_at: r.uploaded_at,
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at,
            }),
            file_name: b
                .file
                .as_deref()
                .and_then(|f| Path::new(f).file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            id: b.id,
            database_id: b.database_id,
            trigger: b.trigger,
            status: b.status,
            size_bytes: b.size_bytes,
            sha256: b.sha256,
            error: b.error,
            started_at: b.started_at,
            finished_at: b.finished_at,
        }
    }
}

/// Where `POST …/backups/:b/restore` puts the backup.
#[derive(Debug, Clone, Default)]
pub struct RestoreInput {
    /// The database's name, to overwrite it (required unless `into` is given).
    pub confirm: Option<String>,
    /// The name of a new database (same type and version) to restore into, leaving the original untouched.
    pub into: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RestoreView {
    /// The database the backup was restored into.
    pub database: DatabaseView,
    pub backup_id: String,
    /// The backup taken of the overwritten database just before the restore (restores into the same database).
    pub safety_backup: Option<BackupView>,
}

/// A file to download.
#[derive(Debug)]
pub struct BackupFile {
    pub file_name: String,
    pub size: u64,
    pub file: tokio::fs::File,
}

fn backup_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("backup '{id}' not found"))
}

impl Services {
    fn backup_dir(&self, database_id: &str) -> PathBuf {
        self.config.backups_dir().join(database_id)
    }

    /// Makes one backup of `row` now; the caller holds the database's lock. Always leaves a row: `succeeded`
    /// with its file, size and checksum, or `failed` with the reason (and a warning in the log).
    async fn run_backup_locked(&self, row: &DatabaseRow, trigger: BackupTrigger, id: String) -> BackupRow {
        let started = now();
        let dir = self.backup_dir(&row.id);
        let name = format!(
            "{}-{}-{}.{}.gz",
            row.name,
            started.0.format("%Y%m%dT%H%M%SZ"),
            id.rsplit('-').next().unwrap_or(&id),
            row.kind.backup_extension()
        );
        let relative = format!("backups/{}/{name}", row.id);
        let outcome = self.make_backup_file(row, &dir, &id, &name).await;
        let finished = now();
        let remote = outcome.as_ref().ok().and_then(|_| self.planned_copy(&row.id, &name));
        let (bid, recorded, file, queued) = (id.clone(), outcome.clone(), relative.clone(), remote.clone());
        let write = self
            .store
            .write(move |tx| {
                let r =
                    recorded.as_ref().map(|(size, sha)| (file.as_str(), *size, sha.as_str())).map_err(String::as_str);
                store::databases::finish_backup(tx, &bid, r, finished)?;
                if let Some(c) = &queued {
                    store::databases::queue_upload(tx, &bid, &c.endpoint, &c.bucket, &c.key)?;
                }
                Ok::<_, ServiceError>(())
            })
            .await;
        match write {
            Ok(()) if remote.is_some() => self.wake_uploader(),
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, backup = %id, "while recording a finished backup"),
        }
        match &outcome {
            Ok((size, _)) => {
                tracing::info!(database = %row.name, backup = %id, size, "database backup made");
                self.notification_resolved(&backup_streak(&row.id));
            }
            Err(e) => {
                tracing::warn!(database = %row.name, backup = %id, error = %e, "database backup failed");
                self.notify(
                    Some(&row.workspace_id),
                    Link::Database(row.id.clone()),
                    Event::BackupFailed {
                        database_id: row.id.clone(),
                        database_name: row.name.clone(),
                        backup_id: id.clone(),
                        trigger: trigger.as_str(),
                        error: e.clone(),
                    },
                );
            }
        }
        let (status, file, size_bytes, sha256, error) = match outcome {
            Ok((size, sha)) => (BackupStatus::Succeeded, Some(relative), Some(size), Some(sha), None),
            Err(e) => (BackupStatus::Failed, None, None, None, Some(e)),
        };
        BackupRow {
            id,
            database_id: row.id.clone(),
            trigger,
            status,
            file,
            size_bytes,
            sha256,
            error,
            started_at: started,
            finished_at: Some(finished),
            remote,
        }
    }

    /// Runs the engine's dump inside the container into `<dir>/.<id>.partial`, then renames it to `name`.
    /// Returns (size, sha256) or the reason it failed (the partial file is removed).
    async fn make_backup_file(
        &self,
        row: &DatabaseRow,
        dir: &Path,
        id: &str,
        name: &str,
    ) -> Result<(u64, String), String> {
        match self.docker.inspect_container(&row.container).await {
            Ok(Some(c)) if c.running => {}
            Ok(_) => return Err(format!("database {} is not running (start it first)", row.name)),
            Err(e) => return Err(format!("while looking at database {}'s container: {e}", row.name)),
        }
        if !self.wait_database_ready(row, READY_BEFORE_BACKUP).await {
            return Err(format!("database {} does not accept connections", row.name));
        }
        let tmp = dir.join(format!(".{id}.partial"));
        let dir2 = dir.to_path_buf();
        let tmp2 = tmp.clone();
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let writer = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir2)?;
            write_compressed(&tmp2, rx)
        });
        let limit = Duration::from_secs(u64::from(self.config.backup_timeout_secs));
        let exec = self.docker.exec_script(&row.container, row.kind.backup_script(), Some(tx), None, limit).await;
        let written = writer.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
        let failure = match (&exec, &written) {
            (Err(e), _) => Some(format!("while running the backup tool: {e}")),
            (Ok(o), _) if o.exit_code != 0 => {
                Some(format!("the backup tool exited with code {}: {}", o.exit_code, o.stderr))
            }
            (_, Err(e)) => Some(format!("while writing the backup file: {e}")),
            (_, Ok((_, _, 0))) => Some("the backup tool wrote nothing".to_owned()),
            _ => None,
        };
        if let Some(reason) = failure {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(reason);
        }
        let (size, sha, _) = written.map_err(|e| e.to_string())?;
        let target = dir.join(name);
        tokio::fs::rename(&tmp, &target).await.map_err(|e| format!("while renaming the backup file: {e}"))?;
        let dir = dir.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || sync_dir(&dir)).await;
        Ok((size, sha))
    }

    /// Inserts a `running` backup row and returns its id.
    async fn start_backup_row(&self, row: &DatabaseRow, trigger: BackupTrigger) -> Result<BackupRow, ServiceError> {
        let b = BackupRow {
            id: new_id(),
            database_id: row.id.clone(),
            trigger,
            status: BackupStatus::Running,
            file: None,
            size_bytes: None,
            sha256: None,
            error: None,
            started_at: now(),
            finished_at: None,
            remote: None,
        };
        let b2 = b.clone();
        self.store.write(move |tx| Ok::<_, ServiceError>(store::databases::insert_backup(tx, &b2)?)).await?;
        Ok(b)
    }

    /// One backup of `row`, taking the database's lock.
    async fn run_backup(&self, row: &DatabaseRow, trigger: BackupTrigger) -> Result<BackupRow, ServiceError> {
        let b = self.start_backup_row(row, trigger).await?;
        let lock = self.db_locks.of(&row.id);
        let _held = lock.lock().await;
        Ok(self.run_backup_locked(row, trigger, b.id).await)
    }

    /// `POST …/databases/:id/backups` (member: a backup never changes the database): starts a backup and answers
    /// at once with it `running`; `GET …/backups` shows how it ended.
    pub async fn create_backup(
        self: &Arc<Self>,
        actor: &Actor,
        ws: &str,
        id: &str,
    ) -> Result<BackupView, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Member, "backing up databases").await?;
        let b = self.start_backup_row(&row, BackupTrigger::Manual).await?;
        let details = serde_json::json!({"id": row.id, "backup": b.id});
        self.audit_database(actor, &access, "database.backup", &row, details).await?;
        let (s, bid) = (self.clone(), b.id.clone());
        tokio::spawn(async move {
            let lock = s.db_locks.of(&row.id);
            let _held = lock.lock().await;
            s.run_backup_locked(&row, BackupTrigger::Manual, bid).await;
        });
        Ok(b.into())
    }

    /// `GET …/databases/:id/backups` (member): newest first.
    pub async fn list_backups(&self, actor: &Actor, ws: &str, id: &str) -> Result<Vec<BackupView>, ServiceError> {
        let (_, row) = self.find_database(actor, ws, id, Role::Member, "reading backups").await?;
        let rows = self.store.read(move |c| store::databases::backups_for(c, &row.id)).await?;
        let mut views = Vec::with_capacity(rows.len());
        for b in rows {
            let on_disk = match &b.file {
                Some(file) => tokio::fs::try_exists(self.config.data_dir.join(file)).await.unwrap_or(false),
                None => false,
            };
            views.push(BackupView { local_copy: on_disk, ..BackupView::from(b) });
        }
        Ok(views)
    }

    /// A backup of `row` (404 for another database's backup, as for one that does not exist).
    async fn backup_of(&self, row: &DatabaseRow, backup: &str) -> Result<BackupRow, ServiceError> {
        let (bid, did) = (backup.to_owned(), row.id.clone());
        self.store
            .read(move |c| store::databases::get_backup(c, &bid))
            .await?
            .filter(|b| b.database_id == did)
            .ok_or_else(|| backup_not_found(backup))
    }

    /// A succeeded backup of a database of the caller's workspace.
    async fn find_backup(&self, row: &DatabaseRow, backup: &str) -> Result<(BackupRow, PathBuf), ServiceError> {
        let b = self.backup_of(row, backup).await?;
        match (&b.status, &b.file) {
            (BackupStatus::Succeeded, Some(file)) => {
                let path = self.config.data_dir.join(file);
                Ok((b, path))
            }
            (status, _) => Err(ServiceError::conflict(
                "backup_not_usable",
                format!("backup {backup} is {}; only succeeded backups can be downloaded or restored", status.as_str()),
            )),
        }
    }

    /// `GET …/backups/:b/download` (admin: a backup holds every row, like a revealed secret; audited).
    pub async fn download_backup(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        backup: &str,
    ) -> Result<BackupFile, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "downloading backups").await?;
        let (b, path) = self.find_backup(&row, backup).await?;
        self.ensure_verified(&b, &path).await?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            ServiceError::conflict("backup_missing", format!("the file of backup {backup} cannot be read: {e}"))
        })?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let details = serde_json::json!({"id": row.id, "backup": b.id});
        self.audit_database(actor, &access, "database.backup.download", &row, details).await?;
        let file_name = BackupView::from(b).file_name.unwrap_or_else(|| "backup.gz".to_owned());
        Ok(BackupFile { file_name, size, file })
    }

    /// Makes sure backup `b`'s file is at `path` and matches its recorded SHA-256, before it is restored or
    /// downloaded: a missing file is fetched from its S3 copy ([`Self::ensure_local`]), a corrupt one replaced by it
    /// ([`Self::replace_corrupt`]); with no usable copy the answer is `backup_missing` or `backup_corrupt`. One
    /// check of a given backup runs at a time: two at once could both find the file corrupt, and the second would
    /// move the good copy the first fetched aside.
    async fn ensure_verified(&self, b: &BackupRow, path: &Path) -> Result<(), ServiceError> {
        let lock = self.backup_locks.of(&b.id);
        let _held = lock.lock().await;
        self.ensure_local(b, path).await?;
        let check = path.to_path_buf();
        let actual = tokio::task::spawn_blocking(move || file_sha256(&check)).await?.map_err(|e| {
            ServiceError::conflict("backup_missing", format!("the file of backup {} cannot be read: {e}", b.id))
        })?;
        if Some(actual.as_str()) != b.sha256.as_deref() {
            self.replace_corrupt(b, path).await?;
        }
        Ok(())
    }

    /// `DELETE …/backups/:b` (admin, audited): removes a finished backup and its file. A running one is 409.
    pub async fn delete_backup(&self, actor: &Actor, ws: &str, id: &str, backup: &str) -> Result<(), ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "deleting backups").await?;
        let b = self.backup_of(&row, backup).await?;
        if b.status == BackupStatus::Running {
            return Err(ServiceError::conflict("backup_running", format!("backup {backup} is still running")));
        }
        if let RemoteDelete::Uploading = self.delete_remote_copy(&b).await? {
            return Err(ServiceError::conflict(
                "backup_uploading",
                format!(
                    "backup {backup} is still being uploaded to S3; delete it once its remote status is uploaded or failed"
                ),
            ));
        }
        if let Some(file) = &b.file {
            self.remove_backup_file(file).await.map_err(ServiceError::Internal)?;
        }
        let entry = actor.audit(
            Some(&access.workspace.id),
            "database.backup.delete",
            row.name.clone(),
            serde_json::json!({"id": row.id, "backup": b.id}),
        );
        self.store
            .write(move |tx| {
                store::databases::delete_backup(tx, &b.id)?;
                store::audit::insert(tx, &entry)?;
                Ok::<_, ServiceError>(())
            })
            .await
    }

    /// `POST …/backups/:b/restore {confirm | into}` (admin). Into the same database: `confirm` must be its name;
    /// a safety backup is taken first (if that fails, nothing is restored). Into a new database: `into` names it;
    /// the original is not touched. The file's checksum is verified before anything is changed.
    pub async fn restore_backup(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        backup: &str,
        input: RestoreInput,
    ) -> Result<RestoreView, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "restoring databases").await?;
        if input.into.is_none() && input.confirm.as_deref() != Some(row.name.as_str()) {
            return Err(ServiceError::invalid(
                "confirm",
                format!(
                    "restoring into database {} replaces its data: send \"confirm\": \"{}\" (its name), or \"into\": \"<new name>\" to restore into a new database",
                    row.name, row.name
                ),
            ));
        }
        let (b, path) = self.find_backup(&row, backup).await?;
        self.ensure_verified(&b, &path).await?;
        let (target, safety) = match &input.into {
            Some(new_name) => {
                let name = crate::domain::database::validate_database_name("into", new_name)?;
                let (new_row, workspace) =
                    self.insert_database(actor, ws, &name, row.kind, &row.version, false).await?;
                self.start_new_database(actor, &workspace, new_row.clone()).await?;
                (new_row, None)
            }
            None => (row.clone(), Some(())),
        };
        let lock = self.db_locks.of(&target.id);
        let _held = lock.lock().await;
        let safety_backup = match safety {
            Some(()) => {
                let sb = self.start_backup_row(&target, BackupTrigger::PreRestore).await?;
                let sb = self.run_backup_locked(&target, BackupTrigger::PreRestore, sb.id).await;
                if sb.status != BackupStatus::Succeeded {
                    return Err(ServiceError::conflict(
                        "safety_backup_failed",
                        format!(
                            "the backup of {} before restoring failed, so nothing was restored: {}",
                            target.name,
                            sb.error.unwrap_or_default()
                        ),
                    ));
                }
                Some(BackupView::from(sb))
            }
            None => None,
        };
        if !self.wait_database_ready(&target, READY_BEFORE_BACKUP).await {
            return Err(ServiceError::conflict(
                "database_not_ready",
                format!("database {} does not accept connections (is it stopped?)", target.name),
            ));
        }
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let reader = tokio::task::spawn_blocking(move || read_decompressed(&path, tx));
        let limit = Duration::from_secs(u64::from(self.config.backup_timeout_secs));
        let outcome =
            self.docker.exec_script(&target.container, target.kind.restore_script(), None, Some(rx), limit).await;
        let read = reader.await?;
        let outcome = outcome?;
        if let Err(e) = read {
            return Err(ServiceError::Internal(format!("while reading backup {backup}: {e}")));
        }
        if outcome.exit_code != 0 {
            let safety = safety_backup
                .as_ref()
                .map(|s| format!("; the data from before is in backup {}", s.id))
                .unwrap_or_default();
            return Err(ServiceError::conflict(
                "restore_failed",
                format!("the restore tool exited with code {}: {}{safety}", outcome.exit_code, outcome.stderr),
            ));
        }
        let safety_id = safety_backup.as_ref().map(|s| s.id.clone());
        let details =
            serde_json::json!({"id": target.id, "backup": b.id, "from": row.name, "safety_backup": safety_id});
        self.audit_database(actor, &access, "database.restore", &target, details).await?;
        tracing::info!(database = %target.name, host = %host_name(&target), backup = %b.id, "database restored");
        let database = self.database_view(target, true, None).await?;
        Ok(RestoreView { database, backup_id: b.id, safety_backup })
    }

    /// `PUT …/databases/:id/backup-schedule {cron, retain}` (admin). `cron: null` (or `""`) removes the schedule.
    pub async fn set_backup_schedule(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        cron: Option<&str>,
        retain: Option<u32>,
    ) -> Result<DatabaseView, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "scheduling backups").await?;
        let schedule = match cron.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(Schedule::parse(c, retain.unwrap_or(7))?),
            None => None,
        };
        let next = schedule.as_ref().and_then(|s| s.next_after(now()));
        let entry = actor.audit(
            Some(&access.workspace.id),
            "database.backup_schedule",
            row.name.clone(),
            serde_json::json!({"id": row.id, "cron": schedule.as_ref().map(|s| s.cron.clone()), "retain": schedule.as_ref().map(|s| s.retain)}),
        );
        let (rid, s2) = (row.id.clone(), schedule.clone());
        self.store
            .write(move |tx| {
                store::databases::set_schedule(tx, &rid, s2.as_ref().map(|s| (s.cron.as_str(), s.retain)), next)?;
                store::audit::insert(tx, &entry)?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        let row = DatabaseRow {
            backup_cron: schedule.as_ref().map(|s| s.cron.clone()),
            backup_retain: schedule.as_ref().map(|s| s.retain),
            next_backup_at: next,
            ..row
        };
        self.database_view(row, true, None).await
    }

    /// Deletes scheduled backups beyond the newest `retain` (succeeded ones with their files and remote copies;
    /// failed ones separately, so recent failures stay visible). Manual and safety backups are never pruned. One
    /// still uploading is left for the next run.
    async fn prune_backups(&self, row: &DatabaseRow, retain: u32) -> Result<usize, ServiceError> {
        let id = row.id.clone();
        let all = self.store.read(move |c| store::databases::backups_for(c, &id)).await?;
        let scheduled = all.into_iter().filter(|b| b.trigger == BackupTrigger::Schedule);
        let (ok, failed): (Vec<_>, Vec<_>) = scheduled.partition(|b| b.status == BackupStatus::Succeeded);
        let failed = failed.into_iter().filter(|b| b.status == BackupStatus::Failed);
        let mut doomed: Vec<BackupRow> = ok.into_iter().skip(retain as usize).collect();
        doomed.extend(failed.skip(retain as usize));
        let mut pruned = 0;
        for b in &doomed {
            match self.delete_remote_copy(b).await {
                Ok(RemoteDelete::Done) => {}
                Ok(RemoteDelete::Uploading) => continue,
                Err(e) => {
                    tracing::warn!(backup = %b.id, error = %e, "while pruning a backup's remote copy; keeping it");
                    continue;
                }
            }
            if let Some(file) = &b.file
                && let Err(error) = self.remove_backup_file(file).await
            {
                tracing::warn!(backup = %b.id, error = %error, "while pruning a backup file; keeping its row");
                continue;
            }
            let bid = b.id.clone();
            self.store.write(move |tx| Ok::<_, ServiceError>(store::databases::delete_backup(tx, &bid)?)).await?;
            pruned += 1;
        }
        Ok(pruned)
    }

    /// Deletes a backup's file (`file`, relative to the data dir) and the bad file a restore moved aside beside it,
    /// if any; one already gone is fine.
    async fn remove_backup_file(&self, file: &str) -> Result<(), String> {
        let path = self.config.data_dir.join(file);
        for path in [super::backup_remote::corrupt_aside(&path), path] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("while deleting {}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// The background loop that runs due scheduled backups (one at a time) and applies retention after each
    /// successful one.
    pub async fn backup_scheduler(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(SCHEDULER_TICK) => {}
            }
            let due = match self.store.read(|c| store::databases::due_backups(c, now())).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "while looking for due backups");
                    continue;
                }
            };
            for row in due {
                let schedule = row.backup_cron.as_deref().map(|c| Schedule::parse(c, row.backup_retain.unwrap_or(1)));
                let Some(Ok(schedule)) = schedule else { continue };
                let (rid, cron, next) = (row.id.clone(), schedule.cron.clone(), schedule.next_after(now()));
                let moved = self.store.write(move |tx| store::databases::set_next_backup(tx, &rid, &cron, next)).await;
                if let Err(e) = moved {
                    tracing::warn!(error = %e, database = %row.name, "while scheduling the next backup");
                    continue;
                }
                let made = tokio::select! {
                    _ = cancel.cancelled() => return,
                    made = self.run_backup(&row, BackupTrigger::Schedule) => made,
                };
                match made {
                    Ok(b) if b.status == BackupStatus::Succeeded => {
                        match self.prune_backups(&row, schedule.retain).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(database = %row.name, pruned = n, "old scheduled backups removed"),
                            Err(e) => tracing::warn!(error = %e, database = %row.name, "while pruning backups"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, database = %row.name, "scheduled backup could not start"),
                }
            }
        }
    }

    /// At start: backups that were running when Berth stopped are marked failed and their partial files removed.
    pub async fn recover_backups(&self) -> Result<(), ServiceError> {
        let running = self.store.read(store::databases::running_backups).await?;
        for b in running {
            let _ = tokio::fs::remove_file(self.backup_dir(&b.database_id).join(format!(".{}.partial", b.id))).await;
            let bid = b.id.clone();
            self.store
                .write(move |tx| {
                    store::databases::finish_backup(
                        tx,
                        &bid,
                        Err("interrupted: Berth stopped during the backup"),
                        now(),
                    )?;
                    Ok::<_, ServiceError>(())
                })
                .await?;
            tracing::warn!(backup = %b.id, "a backup was interrupted by a restart and marked failed");
            let did = b.database_id.clone();
            if let Ok(Some(row)) = self.store.read(move |c| store::databases::get(c, &did)).await {
                self.notify(
                    Some(&row.workspace_id),
                    Link::Database(row.id.clone()),
                    Event::BackupFailed {
                        database_id: row.id,
                        database_name: row.name,
                        backup_id: b.id,
                        trigger: b.trigger.as_str(),
                        error: "interrupted: Berth stopped during the backup".into(),
                    },
                );
            }
        }
        self.recover_uploads().await
    }
}
