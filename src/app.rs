//! The composition root: builds every part from a [`Config`] and already-bound listeners, and returns a handle
//! with the bound addresses and `shutdown()`. The only module that knows all the others.

use crate::config::Config;
use crate::docker::DockerClient;
use crate::services::{Services, SharedServices};
use crate::store::Store;
use crate::tasks::{self, Tasks};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Listeners bound by the caller (so tests can bind `127.0.0.1:0` and learn the port).
pub struct Listeners {
    pub api: TcpListener,
    /// The proxy's plain-HTTP listener for app traffic; `None` runs without it (tests of the API alone).
    pub http: Option<TcpListener>,
    /// The proxy's TLS listener; `None` (or `tls = "off"`) runs without HTTPS and without a certificate manager.
    pub https: Option<TcpListener>,
}

impl Listeners {
    /// Binds the listeners the config names.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let api = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("while binding the API listener to {}", config.listen))?;
        let http = TcpListener::bind(config.http_listen).await.with_context(|| {
            format!(
                "while binding the proxy's HTTP listener to {} (set http_listen / --http-listen)",
                config.http_listen
            )
        })?;
        let https = match config.tls {
            crate::config::TlsMode::Off => None,
            _ => Some(TcpListener::bind(config.https_listen).await.with_context(|| {
                format!(
                    "while binding the proxy's HTTPS listener to {} (set https_listen / --https-listen, or tls = \"off\")",
                    config.https_listen
                )
            })?),
        };
        Ok(Listeners { api, http: Some(http), https })
    }
}

/// A running Berth.
pub struct AppHandle {
    /// Where the API and dashboard answer.
    pub api_addr: SocketAddr,
    /// Where the proxy answers app traffic, when it runs.
    pub http_addr: Option<SocketAddr>,
    /// Where the proxy answers HTTPS, when it runs.
    pub https_addr: Option<SocketAddr>,
    /// The certificate manager, when HTTPS runs: domains call `set_wanted` and read `status` through it.
    pub tls: Option<Arc<crate::tls::CertManager>>,
    /// The use cases, for in-process tests and tools.
    pub services: SharedServices,
    /// The one-time setup token, when no user existed at start.
    pub setup_token: Option<String>,
    cancel: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Tasks,
}

/// Opens the store, connects the parts and starts serving.
pub async fn start(config: Arc<Config>, listeners: Listeners) -> anyhow::Result<AppHandle> {
    let db_path = config.database_path();
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
        .await?
        .with_context(|| format!("while opening the database in {}", config.data_dir.display()))?;
    let docker = Arc::new(DockerClient::new(&config.docker_host));
    let secrets = crate::services::Secrets::load(&config.secret_key_file)
        .with_context(|| format!("while loading the secret key {}", config.secret_key_file.display()))?;
    let edge = crate::proxy::Proxy::new(crate::proxy::ProxyConfig {
        connect_timeout: Duration::from_secs(u64::from(config.proxy_connect_timeout_secs)),
        response_timeout: Duration::from_secs(u64::from(config.proxy_response_timeout_secs)),
        idle_timeout: Duration::from_secs(u64::from(config.proxy_idle_timeout_secs)),
        workers: match config.proxy_workers {
            0 => crate::proxy::ProxyConfig::default().workers,
            n => n as usize,
        },
        ..crate::proxy::ProxyConfig::default()
    });
    let backup_target = match &config.s3 {
        Some(s3) => Some(Arc::new(
            crate::s3::BackupTarget::new(s3).context("while setting up the S3 backup target (s3_* keys)")?,
        )),
        None => None,
    };
    let services: SharedServices =
        Arc::new(Services::new(config.clone(), store, docker, secrets, edge.clone()).with_backup_target(backup_target));
    services.recover_deployments().await.context("while recovering deployments interrupted by a restart")?;
    services.recover_backups().await.context("while recovering database backups interrupted by a restart")?;
    services.reconcile_databases().await;

    let setup_token = services.prepare_setup().await.context("while preparing first-run setup")?;
    if let Some(token) = &setup_token {
        tracing::warn!(
            setup_token = %token,
            "no user exists yet: POST {}/api/setup with this token, an email, a password and a workspace name (it works once)",
            config.public_url
        );
    }

    let cancel = CancellationToken::new();
    let mut tasks = Tasks::new(&cancel);
    let s = services.clone();
    tasks.spawn("session-gc", move |token| tasks::session_gc(s, token));
    let s = services.clone();
    tasks.spawn("deploy-worker", move |token| s.deploy_worker(token));
    let s = services.clone();
    tasks.spawn("database-backups", move |token| s.backup_scheduler(token));
    if services.backup_target.is_some() {
        let s = services.clone();
        tasks.spawn("backup-uploads", move |token| s.backup_uploader(token));
    }
    let s = services.clone();
    tasks.spawn("notifications", move |token| s.deliver_notifications(token));
    let s = services.clone();
    tasks.spawn("runtime-logs", move |token| s.follow_runtime_logs(token));
    let (access_tx, access_rx) = tokio::sync::mpsc::channel(10_000);
    edge.set_access_log(access_tx, u64::from(config.access_log_sample));
    let s = services.clone();
    tasks.spawn("access-logs", move |token| s.write_access_logs(access_rx, token));
    let (https_addr, tls) = match listeners.https {
        Some(https) => match start_https(&config, https, &edge, &mut tasks).await? {
            Some((addr, manager)) => (Some(addr), Some(manager)),
            None => (None, None),
        },
        None => (None, None),
    };
    if let Some(manager) = &tls {
        let _ = services.tls.set(manager.clone());
        let s = services.clone();
        tasks.spawn("certificate-events", move |token| s.follow_certificates(token));
    }
    let http_addr = match listeners.http {
        Some(http) => {
            let addr = http.local_addr()?;
            let edge = edge.clone();
            services.http_port.store(addr.port(), std::sync::atomic::Ordering::Relaxed);
            tasks.spawn("proxy-http", move |token| async move {
                if let Err(e) = edge.serve(http, token, DRAIN_DEADLINE).await {
                    tracing::error!(error = %e, "the proxy's HTTP listener stopped");
                }
            });
            Some(addr)
        }
        None => None,
    };

    let _ = services.api_addr.set(listeners.api.local_addr()?);
    // After the listeners and the certificate manager: domains (and the console domain) are routed and their
    // certificates asked for before start returns, so the first request already finds them.
    services.domains_changed().await;
    let s = services.clone();
    tasks.spawn("domain-verifier", move |token| s.domain_verifier(token));
    let api_addr = listeners.api.local_addr()?;
    let app = crate::web::router(services.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listeners.api, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
    });
    crate::memory::release_freed_memory();
    tracing::info!(%api_addr, version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "berth is serving");
    Ok(AppHandle { api_addr, http_addr, https_addr, tls, services, setup_token, cancel, server, tasks })
}

/// Builds the certificate manager and the TLS listener: certificates come from the manager's resolver (stored ones
/// at once), HTTP-01 answers from the proxy's token map, and TLS connections go through the same proxy as plain ones
/// with `X-Forwarded-Proto: https`. Returns `None` when the config turns TLS off.
async fn start_https(
    config: &Config,
    https: TcpListener,
    edge: &Arc<crate::proxy::Proxy>,
    tasks: &mut Tasks,
) -> anyhow::Result<Option<(SocketAddr, Arc<crate::tls::CertManager>)>> {
    use crate::tls::{CertManager, CertResolver, TlsSettings};
    let Some(settings) = TlsSettings::from_config(config).context("while setting up TLS")? else {
        return Ok(None);
    };
    let resolver = Arc::new(CertResolver::new());
    let manager = CertManager::new(settings, resolver.clone(), edge.http01_tokens().clone())
        .await
        .with_context(|| format!("while loading certificates from {}", config.data_dir.join("tls").display()))?;
    let m = manager.clone();
    tasks.spawn("tls-certificates", move |token| m.run(token));
    let server_config = crate::tls::server_config(resolver)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let addr = https.local_addr()?;
    edge.set_https_port(addr.port());
    edge.set_hsts_max_age(config.hsts_max_age);
    let edge = edge.clone();
    tasks.spawn("proxy-https", move |token| async move {
        let handshake = move |stream| {
            let acceptor = acceptor.clone();
            async move { crate::tls::accept(&acceptor, stream).await }
        };
        let proto = crate::proxy::ForwardedProto::Https;
        if let Err(e) = edge.serve_with(https, token, DRAIN_DEADLINE, proto, handshake).await {
            tracing::error!(error = %e, "the proxy's HTTPS listener stopped");
        }
    });
    Ok(Some((addr, manager)))
}

impl AppHandle {
    /// Stops accepting connections, lets in-flight requests finish (up to [`DRAIN_DEADLINE`]), stops background
    /// tasks. Returns an error only when something did not stop in time.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let mut server = self.server;
        let drained = tokio::time::timeout(DRAIN_DEADLINE, &mut server).await;
        let stuck = self.tasks.shutdown(Duration::from_secs(2)).await;
        match drained {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e).context("while serving"),
            Ok(Err(e)) => return Err(e).context("while joining the server task"),
            Err(_) => {
                server.abort();
                tracing::warn!("in-flight requests did not finish within {} s; closed them", DRAIN_DEADLINE.as_secs());
            }
        }
        if !stuck.is_empty() {
            tracing::warn!(tasks = ?stuck, "background tasks did not stop in time");
        }
        Ok(())
    }
}
