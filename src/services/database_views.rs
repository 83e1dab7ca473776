//! What the API shows of a database: its view (credentials revealed or masked), its status from the engine,
//! and the answers of delete and attach.

use super::databases::host_name;
use super::{ServiceError, Services};
use crate::domain::Timestamp;
use crate::domain::database::{Credentials, DatabaseKind, DatabaseStatus};
use crate::domain::env::MASK;
use crate::store::{self, databases::DatabaseRow};
use serde::Serialize;
use utoipa::ToSchema;

/// A database's backup schedule as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Cron expression, UTC (5 fields, or 6 with seconds first).
    pub cron: String,
    /// How many scheduled backups are kept; older ones are deleted after each successful scheduled backup.
    pub retain: u32,
    pub next_run_at: Option<Timestamp>,
}

/// The latest backup's outcome, so a failing schedule shows on the database itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastBackup {
    pub id: String,
    pub status: crate::domain::database::BackupStatus,
    pub started_at: Timestamp,
    pub error: Option<String>,
}

/// A managed database as the API shows it. Credentials are shown to owners and admins; members see `********`
/// (`masked: true`), as with secret variables.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DatabaseKind,
    pub version: String,
    pub image: String,
    pub status: DatabaseStatus,
    /// The host name apps of the workspace reach it at (on the workspace's Docker network).
    pub host: String,
    /// The engine's port on that host.
    pub port: u16,
    pub username: String,
    pub password: String,
    pub database_name: String,
    /// `<engine>://user:password@host:port/database` in the engine's standard form.
    pub connection_string: String,
    /// True when `password` and `connection_string` are hidden from the caller's role.
    pub masked: bool,
    /// Published on every address of the host at `public_port`.
    pub public: bool,
    pub public_port: Option<u16>,
    /// Set for public databases: what publishing it means.
    pub warning: Option<String>,
    /// The named volume holding its data; removed only by `DELETE …?purge=true`.
    pub volume: String,
    pub backup_schedule: Option<ScheduleView>,
    pub last_backup: Option<LastBackup>,
    pub created_at: Timestamp,
}

/// What `DELETE …/databases/:id` did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeletedDatabase {
    pub id: String,
    pub deleted: bool,
    /// The volume's name, and whether it (with the data) is still there.
    pub volume: String,
    pub volume_kept: bool,
    /// Where this database's backup files are (kept unless purged).
    pub backups_dir: String,
    pub backups_kept: bool,
}

/// What `POST …/databases/:id/attach` did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attached {
    /// The project's slug.
    pub project: String,
    pub env_key: String,
    /// `created`, `updated` or `unchanged`.
    pub change: String,
    /// True when the project has running replicas that get the value only at their next restart or deploy.
    pub restart_required: bool,
}

impl Services {
    /// The container's state as a status, from the engine (a missing container is `failed` unless stopped).
    pub(crate) async fn database_status(&self, row: &DatabaseRow) -> Result<DatabaseStatus, ServiceError> {
        let state = self.docker.inspect_container(&row.container).await?;
        Ok(match state {
            Some(s) if s.status == "restarting" => DatabaseStatus::Restarting,
            Some(s) if s.running => DatabaseStatus::Running,
            _ if !row.running => DatabaseStatus::Stopped,
            _ => DatabaseStatus::Failed,
        })
    }

    pub(crate) async fn database_view(
        &self,
        row: DatabaseRow,
        reveal: bool,
        status: Option<DatabaseStatus>,
    ) -> Result<DatabaseView, ServiceError> {
        let status = match status {
            Some(s) => s,
            None => self.database_status(&row).await?,
        };
        let id = row.id.clone();
        let last = self.store.read(move |c| store::databases::latest_backup(c, &id)).await?;
        let host = host_name(&row);
        let port = row.kind.port();
        let (password, connection_string) = if reveal {
            let creds = self.database_credentials(&row)?;
            let url = row.kind.connection_string(&creds, &host, port);
            (creds.password, url)
        } else {
            let masked = Credentials {
                username: row.username.clone(),
                password: MASK.to_owned(),
                admin_password: MASK.to_owned(),
                database_name: row.database_name.clone(),
            };
            (MASK.to_owned(), row.kind.connection_string(&masked, &host, port))
        };
        let warning = row.public.then(|| {
            format!(
                "published on port {} of every address of this host: anyone who can reach the host can try to log \
                 in; restrict it with a firewall or keep the database private",
                row.host_port.unwrap_or(0)
            )
        });
        Ok(DatabaseView {
            id: row.id,
            name: row.name,
            kind: row.kind,
            version: row.version,
            image: row.image,
            status,
            host,
            port,
            username: row.username,
            password,
            database_name: row.database_name,
            connection_string,
            masked: !reveal,
            public: row.public,
            public_port: row.host_port,
            warning,
            volume: row.volume,
            backup_schedule: row.backup_cron.map(|cron| ScheduleView {
                cron,
                retain: row.backup_retain.unwrap_or(1),
                next_run_at: row.next_backup_at,
            }),
            last_backup: last.map(|b| LastBackup {
                id: b.id,
                status: b.status,
                started_at: b.started_at,
                error: b.error,
            }),
            created_at: row.created_at,
        })
    }
}
