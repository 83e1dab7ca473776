//! The `databases` and `database_backups` tables. Passwords arrive here already sealed.

use super::{StoreError, ts, ts_opt};
use crate::domain::Timestamp;
use crate::domain::database::{BackupStatus, BackupTrigger, DatabaseKind, RemoteStatus};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A stored database.
#[derive(Debug, Clone)]
pub struct DatabaseRow {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub kind: DatabaseKind,
    pub version: String,
    pub image: String,
    pub username: String,
    /// Sealed.
    pub password: String,
    /// Sealed (MySQL's root password; the same secret as `password` for other engines).
    pub admin_password: String,
    pub database_name: String,
    pub public: bool,
    pub host_port: Option<u16>,
    /// The user wants it running (`false` after `stop`).
    pub running: bool,
    pub container: String,
    pub volume: String,
    pub backup_cron: Option<String>,
    pub backup_retain: Option<u32>,
    pub next_backup_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<DatabaseRow> {
    let kind: String = row.get("kind")?;
    let desired: String = row.get("desired")?;
    Ok(DatabaseRow {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        kind: DatabaseKind::parse("kind", &kind)
            .map_err(|e| rusqlite::Error::InvalidColumnType(0, e.to_string(), rusqlite::types::Type::Text))?,
        version: row.get("version")?,
        image: row.get("image")?,
        username: row.get("username")?,
        password: row.get("password")?,
        admin_password: row.get("admin_password")?,
        database_name: row.get("database_name")?,
        public: row.get("public")?,
        host_port: row.get("host_port")?,
        running: desired == "running",
        container: row.get("container")?,
        volume: row.get("volume")?,
        backup_cron: row.get("backup_cron")?,
        backup_retain: row.get("backup_retain")?,
        next_backup_at: ts_opt(row, "next_backup_at")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Inserts a database; a name taken in the workspace is [`StoreError::Unique`].
pub fn insert(conn: &Connection, d: &DatabaseRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO databases (id, workspace_id, name, kind, version, image, username, password, admin_password,
             database_name, public, host_port, desired, container, volume, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            d.id,
            d.workspace_id,
            d.name,
            d.kind.as_str(),
            d.version,
            d.image,
            d.username,
            d.password,
            d.admin_password,
            d.database_name,
            d.public,
            d.host_port,
            if d.running { "running" } else { "stopped" },
            d.container,
            d.volume,
            d.created_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<DatabaseRow>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM databases WHERE id = ?1")?.query_row([id], from_row).optional()?)
}

/// A workspace's databases, by name.
pub fn for_workspace(conn: &Connection, workspace_id: &str) -> Result<Vec<DatabaseRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM databases WHERE workspace_id = ?1 ORDER BY name")?
        .query_map([workspace_id], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Databases whose scheduled backup is due at `at`.
pub fn due_backups(conn: &Connection, at: Timestamp) -> Result<Vec<DatabaseRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT * FROM databases WHERE backup_cron IS NOT NULL AND next_backup_at IS NOT NULL
             AND next_backup_at <= ?1 ORDER BY next_backup_at",
        )?
        .query_map([at.to_rfc3339()], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Every database of the instance (key rotation re-seals their passwords).
pub fn all(conn: &Connection) -> Result<Vec<DatabaseRow>, StoreError> {
    Ok(conn.prepare("SELECT * FROM databases")?.query_map([], from_row)?.collect::<Result<_, _>>()?)
}

/// Replaces the sealed passwords (key rotation).
pub fn reseal(conn: &Connection, id: &str, password: &str, admin_password: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE databases SET password = ?2, admin_password = ?3 WHERE id = ?1",
        params![id, password, admin_password],
    )?;
    Ok(())
}

pub fn set_running(conn: &Connection, id: &str, running: bool) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE databases SET desired = ?2 WHERE id = ?1",
        params![id, if running { "running" } else { "stopped" }],
    )?;
    Ok(())
}

/// Sets (or with `None` clears) the backup schedule and its next run.
pub fn set_schedule(
    conn: &Connection,
    id: &str,
    schedule: Option<(&str, u32)>,
    next: Option<Timestamp>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE databases SET backup_cron = ?2, backup_retain = ?3, next_backup_at = ?4 WHERE id = ?1",
        params![id, schedule.map(|s| s.0), schedule.map(|s| s.1), next.map(Timestamp::to_rfc3339)],
    )?;
    Ok(())
}

/// Moves the next scheduled run, unless the schedule changed meanwhile (then its own next run stands).
pub fn set_next_backup(conn: &Connection, id: &str, cron: &str, next: Option<Timestamp>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE databases SET next_backup_at = ?3 WHERE id = ?1 AND backup_cron = ?2",
        params![id, cron, next.map(Timestamp::to_rfc3339)],
    )?;
    Ok(())
}

/// Deletes the row and (by cascade) its backup rows.
pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM databases WHERE id = ?1", [id])?;
    Ok(())
}

/// How many databases a workspace has.
pub fn count_for_workspace(conn: &Connection, workspace_id: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM databases WHERE workspace_id = ?1", [workspace_id], |r| r.get(0))?)
}

/// A stored backup.
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: String,
    pub database_id: String,
    pub trigger: BackupTrigger,
    pub status: BackupStatus,
    /// Relative to the data dir.
    pub file: Option<String>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The copy in the S3-compatible target; `None` when none was configured as the backup finished.
    pub remote: Option<RemoteCopy>,
}

/// A backup's copy in an S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCopy {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub status: RemoteStatus,
    pub error: Option<String>,
    pub uploaded_at: Option<Timestamp>,
    /// Upload attempts made since it was queued.
    pub attempts: u32,
    /// When a failed upload is tried again; `None`: it is not (uploaded, uploading, or no more attempts).
    pub next_attempt_at: Option<Timestamp>,
}

fn remote_from_row(row: &Row<'_>) -> rusqlite::Result<Option<RemoteCopy>> {
    let status: Option<String> = row.get("remote_status")?;
    let Some(status) = status else { return Ok(None) };
    Ok(Some(RemoteCopy {
        endpoint: row.get::<_, Option<String>>("remote_endpoint")?.unwrap_or_default(),
        bucket: row.get::<_, Option<String>>("remote_bucket")?.unwrap_or_default(),
        key: row.get::<_, Option<String>>("remote_key")?.unwrap_or_default(),
        status: RemoteStatus::parse(&status).unwrap_or(RemoteStatus::Failed),
        error: row.get("remote_error")?,
        uploaded_at: ts_opt(row, "remote_uploaded_at")?,
        attempts: row.get::<_, i64>("remote_attempts").map(|n| u32::try_from(n).unwrap_or(u32::MAX))?,
        next_attempt_at: ts_opt(row, "remote_next_attempt_at")?,
    }))
}

fn backup_from_row(row: &Row<'_>) -> rusqlite::Result<BackupRow> {
    let trigger: String = row.get("trigger")?;
    let status: String = row.get("status")?;
    Ok(BackupRow {
        id: row.get("id")?,
        database_id: row.get("database_id")?,
        trigger: BackupTrigger::parse(&trigger).unwrap_or(BackupTrigger::Manual),
        status: BackupStatus::parse(&status).unwrap_or(BackupStatus::Failed),
        file: row.get("file")?,
        size_bytes: row.get::<_, Option<i64>>("size_bytes")?.and_then(|n| u64::try_from(n).ok()),
        sha256: row.get("sha256")?,
        error: row.get("error")?,
        started_at: ts(row, "started_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        remote: remote_from_row(row)?,
    })
}

pub fn insert_backup(conn: &Connection, b: &BackupRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO database_backups (id, database_id, trigger, status, file, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![b.id, b.database_id, b.trigger.as_str(), b.status.as_str(), b.file, b.started_at.to_rfc3339()],
    )?;
    Ok(())
}

/// Records a finished backup: succeeded with its file, size and checksum, or failed with the reason.
pub fn finish_backup(
    conn: &Connection,
    id: &str,
    outcome: Result<(&str, u64, &str), &str>,
    at: Timestamp,
) -> Result<(), StoreError> {
    match outcome {
        Ok((file, size, sha256)) => conn.execute(
            "UPDATE database_backups SET status = 'succeeded', file = ?2, size_bytes = ?3, sha256 = ?4,
                 finished_at = ?5 WHERE id = ?1",
            params![id, file, i64::try_from(size).unwrap_or(i64::MAX), sha256, at.to_rfc3339()],
        )?,
        Err(error) => conn.execute(
            "UPDATE database_backups SET status = 'failed', file = NULL, error = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, error, at.to_rfc3339()],
        )?,
    };
    Ok(())
}

/// Queues a succeeded backup's upload to (endpoint, bucket, key): `uploading`, no error, no attempt made yet.
pub fn queue_upload(conn: &Connection, id: &str, endpoint: &str, bucket: &str, key: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE database_backups SET remote_endpoint = ?2, remote_bucket = ?3, remote_key = ?4,
             remote_status = 'uploading', remote_error = NULL, remote_uploaded_at = NULL, remote_attempts = 0,
             remote_next_attempt_at = NULL WHERE id = ?1",
        params![id, endpoint, bucket, key],
    )?;
    Ok(())
}

/// Records how an upload attempt ended: `uploaded` at a time, or `failed` with the reason and when it is tried
/// again (`None`: never). Either way one more attempt was made. Returns whether the backup still exists (it, or
/// its database, may have been deleted during the upload).
pub fn finish_upload(
    conn: &Connection,
    id: &str,
    outcome: Result<Timestamp, (&str, Option<Timestamp>)>,
) -> Result<bool, StoreError> {
    let n = match outcome {
        Ok(at) => conn.execute(
            "UPDATE database_backups SET remote_status = 'uploaded', remote_error = NULL, remote_uploaded_at = ?2,
                 remote_attempts = remote_attempts + 1, remote_next_attempt_at = NULL WHERE id = ?1",
            params![id, at.to_rfc3339()],
        )?,
        Err((error, next)) => conn.execute(
            "UPDATE database_backups SET remote_status = 'failed', remote_error = ?2,
                 remote_attempts = remote_attempts + 1, remote_next_attempt_at = ?3 WHERE id = ?1",
            params![id, error, next.map(Timestamp::to_rfc3339)],
        )?,
    };
    Ok(n > 0)
}

/// Marks a failed upload that is not retried after all (no S3 target is configured any more). Returns whether
/// there was one.
pub fn fail_upload(conn: &Connection, id: &str, error: &str) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE database_backups SET remote_status = 'failed', remote_error = ?2, remote_next_attempt_at = NULL
         WHERE id = ?1 AND remote_status IN ('uploading', 'failed')",
        params![id, error],
    )?;
    Ok(n > 0)
}

/// Backups whose upload is queued or was interrupted, oldest first.
pub fn pending_uploads(conn: &Connection) -> Result<Vec<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM database_backups WHERE remote_status = 'uploading' ORDER BY finished_at, id")?
        .query_map([], backup_from_row)?
        .collect::<Result<_, _>>()?)
}

/// Failed uploads waiting for another attempt (`at` or earlier: due ones; `None`: all), the most overdue first.
pub fn upload_retries(conn: &Connection, at: Option<Timestamp>) -> Result<Vec<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT * FROM database_backups WHERE remote_status = 'failed' AND remote_next_attempt_at IS NOT NULL
             AND (?1 IS NULL OR remote_next_attempt_at <= ?1) ORDER BY remote_next_attempt_at, id",
        )?
        .query_map([at.map(Timestamp::to_rfc3339)], backup_from_row)?
        .collect::<Result<_, _>>()?)
}

/// When the next failed upload is due to be tried again.
pub fn next_upload_retry(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let next: Option<String> = conn.query_row(
        "SELECT MIN(remote_next_attempt_at) FROM database_backups
         WHERE remote_status = 'failed' AND remote_next_attempt_at IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(next.and_then(|t| Timestamp::parse(&t)))
}

/// Takes a failed upload waiting for its retry back into `uploading`, so it cannot be deleted while it runs.
/// Returns `false` when it is no longer waiting (deleted, or its retry was cancelled) and must not be uploaded.
pub fn claim_upload_retry(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE database_backups SET remote_status = 'uploading', remote_next_attempt_at = NULL
         WHERE id = ?1 AND remote_status = 'failed' AND remote_next_attempt_at IS NOT NULL",
        [id],
    )?;
    Ok(n > 0)
}

/// Makes every failed upload waiting for a retry due at `at` (a restart may come with fixed `s3_*` keys).
/// Returns how many there are.
pub fn retry_uploads_at(conn: &Connection, at: Timestamp) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE database_backups SET remote_next_attempt_at = ?1
         WHERE remote_status = 'failed' AND remote_next_attempt_at IS NOT NULL",
        [at.to_rfc3339()],
    )?)
}

pub fn get_backup(conn: &Connection, id: &str) -> Result<Option<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM database_backups WHERE id = ?1")?
        .query_row([id], backup_from_row)
        .optional()?)
}

/// A database's backups, newest first.
pub fn backups_for(conn: &Connection, database_id: &str) -> Result<Vec<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM database_backups WHERE database_id = ?1 ORDER BY started_at DESC, id DESC")?
        .query_map([database_id], backup_from_row)?
        .collect::<Result<_, _>>()?)
}

/// A database's newest backup.
pub fn latest_backup(conn: &Connection, database_id: &str) -> Result<Option<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT * FROM database_backups WHERE database_id = ?1 ORDER BY started_at DESC, id DESC LIMIT 1",
        )?
        .query_row([database_id], backup_from_row)
        .optional()?)
}

/// Backups still `running` (after a restart: interrupted ones).
pub fn running_backups(conn: &Connection) -> Result<Vec<BackupRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM database_backups WHERE status = 'running'")?
        .query_map([], backup_from_row)?
        .collect::<Result<_, _>>()?)
}

pub fn delete_backup(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM database_backups WHERE id = ?1", [id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(id: &str, name: &str) -> DatabaseRow {
        DatabaseRow {
            id: id.into(),
            workspace_id: "w1".into(),
            name: name.into(),
            kind: DatabaseKind::Postgresql,
            version: "16".into(),
            image: "postgres:16".into(),
            username: "berth".into(),
            password: "sealed".into(),
            admin_password: "sealed-admin".into(),
            database_name: name.replace('-', "_"),
            public: false,
            host_port: None,
            running: true,
            container: format!("berth-w-1-db-{name}"),
            volume: format!("berth-db-{id}"),
            backup_cron: None,
            backup_retain: None,
            next_backup_at: None,
            created_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
        }
    }

    fn backup(id: &str, db: &str, at: &str) -> BackupRow {
        BackupRow {
            id: id.into(),
            database_id: db.into(),
            trigger: BackupTrigger::Schedule,
            status: BackupStatus::Running,
            file: None,
            size_bytes: None,
            sha256: None,
            error: None,
            started_at: Timestamp::parse(at).unwrap(),
            finished_at: None,
            remote: None,
        }
    }

    #[tokio::test]
    async fn databases_and_backups_round_trip_and_schedules_come_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO workspaces (id, name, slug, namespace, created_at)
                     VALUES ('w1', 'W', 'w', 'w-1', '2026-01-01T00:00:00Z')",
                    [],
                )?;
                insert(tx, &row("d1", "shop"))?;
                assert!(matches!(insert(tx, &row("d2", "shop")), Err(StoreError::Unique(_))), "names are unique");
                insert(tx, &row("d3", "cache"))?;
                let t = |s: &str| Timestamp::parse(s).unwrap();
                set_schedule(tx, "d1", Some(("0 3 * * *", 7)), Some(t("2026-01-02T03:00:00Z")))?;
                assert!(due_backups(tx, t("2026-01-02T02:59:59Z"))?.is_empty());
                let due = due_backups(tx, t("2026-01-02T03:00:00Z"))?;
                assert_eq!(due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1"]);
                assert_eq!((due[0].backup_cron.as_deref(), due[0].backup_retain), (Some("0 3 * * *"), Some(7)));
                set_running(tx, "d3", false)?;
                assert!(!get(tx, "d3")?.unwrap().running);

                insert_backup(tx, &backup("b1", "d1", "2026-01-02T03:00:00Z"))?;
                insert_backup(tx, &backup("b2", "d1", "2026-01-03T03:00:00Z"))?;
                assert_eq!(running_backups(tx)?.len(), 2);
                finish_backup(tx, "b1", Ok(("backups/d1/a.dump.gz", 42, "abc")), t("2026-01-02T03:00:05Z"))?;
                finish_backup(tx, "b2", Err("pg_dump failed"), t("2026-01-03T03:00:05Z"))?;
                let b1 = get_backup(tx, "b1")?.unwrap();
                assert_eq!(
                    (b1.status, b1.size_bytes, b1.file.as_deref()),
                    (BackupStatus::Succeeded, Some(42), Some("backups/d1/a.dump.gz"))
                );
                let latest = latest_backup(tx, "d1")?.unwrap();
                assert_eq!(
                    (latest.id.as_str(), latest.status, latest.error.as_deref()),
                    ("b2", BackupStatus::Failed, Some("pg_dump failed"))
                );
                assert_eq!(backups_for(tx, "d1")?.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b2", "b1"]);
                assert!(running_backups(tx)?.is_empty());
                assert_eq!(b1.remote, None);
                queue_upload(tx, "b1", "http://127.0.0.1:9000", "bk", "berth/d1/a.dump.gz")?;
                assert_eq!(pending_uploads(tx)?.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b1"]);
                assert!(finish_upload(tx, "b1", Err(("403 SignatureDoesNotMatch", None)))?);
                let r = get_backup(tx, "b1")?.unwrap().remote.unwrap();
                assert_eq!(
                    (r.status, r.error.as_deref(), r.key.as_str(), r.bucket.as_str(), r.attempts),
                    (RemoteStatus::Failed, Some("403 SignatureDoesNotMatch"), "berth/d1/a.dump.gz", "bk", 1)
                );
                assert!(upload_retries(tx, None)?.is_empty(), "not retried");
                queue_upload(tx, "b1", "http://127.0.0.1:9000", "bk", "berth/d1/a.dump.gz")?;
                assert_eq!(get_backup(tx, "b1")?.unwrap().remote.unwrap().attempts, 0, "queued anew");

                // A failure with a retry waits as `failed` until it is due, then is claimed back into `uploading`.
                let retry = t("2026-01-02T03:01:05Z");
                assert!(finish_upload(tx, "b1", Err(("connection refused", Some(retry))))?);
                assert!(pending_uploads(tx)?.is_empty());
                assert_eq!(next_upload_retry(tx)?, Some(retry));
                assert!(upload_retries(tx, Some(t("2026-01-02T03:01:04Z")))?.is_empty());
                let due = upload_retries(tx, Some(retry))?;
                assert_eq!(due.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b1"]);
                let r = due[0].remote.clone().unwrap();
                assert_eq!((r.status, r.attempts, r.next_attempt_at), (RemoteStatus::Failed, 1, Some(retry)));
                assert_eq!(retry_uploads_at(tx, t("2026-01-02T03:00:30Z"))?, 1, "a restart makes it due at once");
                assert_eq!(next_upload_retry(tx)?, Some(t("2026-01-02T03:00:30Z")));
                assert!(claim_upload_retry(tx, "b1")?);
                assert!(!claim_upload_retry(tx, "b1")?, "claimed once");
                assert!(!claim_upload_retry(tx, "gone")?, "a deleted backup is not uploaded");
                assert_eq!(pending_uploads(tx)?.len(), 1);
                assert_eq!(next_upload_retry(tx)?, None);
                assert!(finish_upload(tx, "b1", Ok(t("2026-01-02T03:00:09Z")))?);
                let r = get_backup(tx, "b1")?.unwrap().remote.unwrap();
                assert_eq!(
                    (r.status, r.error, r.uploaded_at, r.attempts, r.next_attempt_at),
                    (RemoteStatus::Uploaded, None, Some(t("2026-01-02T03:00:09Z")), 2, None)
                );
                assert!(pending_uploads(tx)?.is_empty());
                assert!(!fail_upload(tx, "b1", "no target")?, "an uploaded copy stays uploaded");
                assert!(!finish_upload(tx, "gone", Ok(t("2026-01-02T03:00:09Z")))?, "a deleted backup is reported");
                reseal(tx, "d1", "new", "new-admin")?;
                assert_eq!(get(tx, "d1")?.unwrap().password, "new");
                assert_eq!(count_for_workspace(tx, "w1")?, 2);
                delete(tx, "d1")?;
                assert!(get_backup(tx, "b1")?.is_none(), "backup rows go with their database");
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
}
