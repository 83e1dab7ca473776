//! Use cases and policy: permissions, quotas, transactions. The only layer that combines the store, Docker
//! and the edge. Every mutating use case writes an audit row in the same transaction as its change.

mod access;
mod access_logs;
mod accounts;
mod api_keys;
mod audit;
mod backup_files;
mod backup_remote;
mod backups;
mod certificates;
mod database_views;
mod databases;
mod deployer;
mod deployments;
mod domains;
mod error;
mod git;
mod health;
mod invitations;
mod members;
mod notifications;
mod projects;
mod ratelimit;
mod routing;
mod runtime_logs;
pub mod secrets;
mod status;
mod variables;
mod webhooks;
mod workspaces;

pub use access::{Access, Actor, Via};
pub use access_logs::AccessLogEntry;
pub use access_logs::parse_status_filter;
pub use accounts::{LoginResult, SetupResult};
pub use api_keys::{CreatedApiKey, NewKey};
pub use backups::{BackupFile, BackupView, RemoteCopyView, RestoreInput, RestoreView};
pub use database_views::{Attached, DatabaseView, DeletedDatabase, LastBackup, ScheduleView};
pub use databases::DatabaseInput;
pub use deployments::{DeployInput, DeploymentDetail};
pub use domains::{DomainTls, DomainView, VERIFICATION_PREFIX, Verification};
pub use error::ServiceError;
pub use git::{DeployKeyView, DetectResult, GitConnection, GitInput, GitTestResult, WebhookView};
pub use health::{DockerHealth, Health};
pub use invitations::{AcceptResult, CreatedInvitation};
pub use projects::{BuildPatch, DeletedWithVolumes, ProjectInput, RuntimePatch};
pub use ratelimit::RateLimiter;
pub use runtime_logs::{LogAnalysis, LogRetention, LogUsage, ProjectLogUsage};
pub use secrets::Secrets;
pub use status::ProjectStatus;
pub use variables::{BulkItem, BulkResult, ResolvedVariable, Secrecy, SecrecyChange, VarTarget};
pub use webhooks::HookOutcome;
pub use workspaces::WorkspacePatch;

use crate::config::Config;
use crate::docker::DockerClient;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Everything the use cases need, built once by the app and shared.
pub struct Services {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) docker: Arc<DockerClient>,
    /// Seals and opens secret values.
    pub(crate) secrets: Secrets,
    api_limiter: RateLimiter,
    login_limiter: RateLimiter,
    /// Digest of the one-time setup token, while no user exists.
    setup_token: Mutex<Option<Vec<u8>>>,
    /// When each key's `last_used_at` was last written, so a busy key costs one write a minute, not one a request.
    key_touches: Mutex<HashMap<String, Instant>>,
    /// Recently resolved API keys by digest, valid while the store's write generation is unchanged.
    key_cache: Mutex<HashMap<Vec<u8>, accounts::CachedKey>>,
    /// Recent `GET /workspaces` answers by (user, key's workspace, page, limit), valid while the store's write
    /// generation is unchanged.
    #[allow(clippy::type_complexity)]
    workspace_lists: Mutex<
        HashMap<
            (String, Option<String>, u32, u32),
            (u64, Instant, crate::domain::Paged<(crate::domain::Workspace, crate::domain::Role)>),
        >,
    >,
    /// The reverse proxy whose route table deployments publish.
    pub(crate) edge: Arc<crate::proxy::Proxy>,
    /// Wakes the deploy worker when a deployment is queued.
    pub(crate) deploy_wake: tokio::sync::Notify,
    /// The deployments being worked on, by id: their cancellation and their project (one job per project).
    jobs: Mutex<HashMap<String, deployer::RunningJob>>,
    /// Where the API listener is bound (the proxy sends `console_domain` there).
    pub(crate) api_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The certificate manager, once the HTTPS listener runs.
    pub(crate) tls: std::sync::OnceLock<Arc<crate::tls::CertManager>>,
    /// The port Berth's HTTP listener is bound to (0 until the app binds it).
    pub(crate) http_port: std::sync::atomic::AtomicU16,
    /// Permits for builds (`concurrent_builds`).
    build_slots: tokio::sync::Semaphore,
    /// Secret values of the deployments being worked on, so their logs can be scrubbed.
    secret_values: Mutex<HashMap<String, Vec<String>>>,
    /// Where the runtime-log follower announces new lines to open log streams.
    log_hub: runtime_logs::Hub,
    /// One lock per managed database (backup, restore, stop and delete never overlap).
    db_locks: databases::Locks,
    /// One lock per backup, held while its file is checked (and replaced from S3) before a restore or download.
    backup_locks: databases::Locks,
    /// Where failed backups and certificates are announced (the audit log and the operator's webhooks).
    notifier: notifications::Notifier,
    /// The S3-compatible bucket backups are also uploaded to (`s3_*` config).
    pub(crate) backup_target: Option<Arc<crate::s3::BackupTarget>>,
    /// Wakes the backup uploader when a backup was queued for upload.
    backup_uploads: tokio::sync::Notify,
    /// The deployments routed before they are marked running, held for the length of each route-table rebuild so
    /// that rebuilds publish in the order they read the database (a rebuild that read before a change can never
    /// publish after one that read after it).
    route_rebuilds: tokio::sync::Mutex<routing::Pending>,
    /// Held while the domains are read and handed to the proxy (verification tokens) or to the certificate
    /// manager (the names wanted), for the same reason: a reader that read before a change publishes first.
    domain_syncs: tokio::sync::Mutex<()>,
}

/// A shared handle to the services.
pub type SharedServices = Arc<Services>;

impl Services {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        docker: Arc<DockerClient>,
        secrets: Secrets,
        edge: Arc<crate::proxy::Proxy>,
    ) -> Services {
        Services {
            api_limiter: RateLimiter::new(config.api_requests_per_minute),
            login_limiter: RateLimiter::new(config.login_attempts_per_minute),
            http_port: std::sync::atomic::AtomicU16::new(0),
            tls: std::sync::OnceLock::new(),
            api_addr: std::sync::OnceLock::new(),
            build_slots: tokio::sync::Semaphore::new(config.concurrent_builds.max(1) as usize),
            config,
            store,
            docker,
            secrets,
            setup_token: Mutex::new(None),
            key_touches: Mutex::new(HashMap::new()),
            key_cache: Mutex::new(HashMap::new()),
            workspace_lists: Mutex::new(HashMap::new()),
            edge,
            deploy_wake: tokio::sync::Notify::new(),
            jobs: Mutex::new(HashMap::new()),
            secret_values: Mutex::new(HashMap::new()),
            route_rebuilds: tokio::sync::Mutex::new(routing::Pending::new()),
            domain_syncs: tokio::sync::Mutex::new(()),
            log_hub: runtime_logs::Hub::new(),
            db_locks: databases::Locks::default(),
            backup_locks: databases::Locks::default(),
            notifier: notifications::Notifier::new(),
            backup_target: None,
            backup_uploads: tokio::sync::Notify::new(),
        }
    }

    /// Uploads finished backups to `target` too (built from `config.s3` by the app).
    pub fn with_backup_target(mut self, target: Option<Arc<crate::s3::BackupTarget>>) -> Services {
        self.backup_target = target;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}
