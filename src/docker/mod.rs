//! The Docker Engine, through bollard. The only module that imports bollard.
//!
//! Berth starts even when the engine is down: the connection is made (and the API version negotiated, so
//! older engines such as 20.10 / API 1.41 work) on first use, and retried on the next use after a failure.

mod build;
mod container;
mod context;
mod exec;
mod ignore;
mod labels;
mod logs;
mod resources;
mod stats;
#[cfg(test)]
mod tests;

pub use build::ImageBuild;
pub use container::{ContainerSpec, ContainerState, LogLine, LogStream};
pub use exec::ExecOutcome;
pub use ignore::IgnoreRules;
pub use labels::{
    LABEL_DATABASE, LABEL_DEPLOYMENT, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, LABEL_RUN, LABEL_WORKSPACE,
    Labels, managed_labels,
};
pub use stats::ResourceUse;

use bollard::{API_DEFAULT_VERSION, Docker};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;

/// Failures talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine could not be reached (or did not answer in time); the next call reconnects.
    #[error("Docker engine at {host} is unreachable: {message}")]
    Unreachable { host: String, message: String },
    /// The engine answered with an error not covered by a more specific variant.
    #[error("Docker engine error: {0}")]
    Api(#[from] bollard::errors::Error),
    /// The image build ran and failed; `message` is the builder's own error (e.g. a failing `RUN`).
    #[error("image build failed: {message}")]
    BuildFailed { message: String },
    /// The caller's cancellation token fired; the request was dropped, which makes the engine stop the work.
    #[error("cancelled")]
    Cancelled,
    /// The operation did not finish within its time limit; the request was dropped.
    #[error("{what} did not finish within the limit of {} s", limit.as_secs_f64())]
    TimedOut { what: String, limit: Duration },
    /// The named object does not exist (only from operations where absence is an error).
    #[error("{what} not found")]
    NotFound { what: String },
    /// An object with that name exists already; Berth never deletes it implicitly.
    #[error("conflict: {message}")]
    Conflict { message: String },
    /// The request was rejected before reaching the engine (e.g. a Dockerfile path outside the context).
    #[error("invalid request: {message}")]
    Invalid { message: String },
    /// The build context could not be read or packed.
    #[error("build context at {path}: {source}")]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// True when `e` is the engine answering with HTTP `status`.
fn is_status(e: &bollard::errors::Error, status: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// What `GET /health` and `GET /host` report about the engine.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// A lazily connected engine client.
pub struct DockerClient {
    host: String,
    conn: Mutex<Option<Docker>>,
    /// Serialises "inspect, then create" for networks: API 1.41 happily creates two networks with one name.
    network_lock: Mutex<()>,
}

/// Seconds a single engine request may take before it is abandoned.
const REQUEST_TIMEOUT_SECS: u64 = 120;

impl DockerClient {
    /// A client for `host` (`unix:///…`, `tcp://…`, `http://…`). Does not connect yet.
    pub fn new(host: &str) -> DockerClient {
        DockerClient { host: host.to_owned(), conn: Mutex::new(None), network_lock: Mutex::new(()) }
    }

    /// The configured engine address.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn client(&self) -> Result<Docker, DockerError> {
        let mut guard = self.conn.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let unreachable =
            |e: bollard::errors::Error| DockerError::Unreachable { host: self.host.clone(), message: e.to_string() };
        let docker = if self.host.starts_with("unix://") {
            Docker::connect_with_unix(&self.host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        *guard = Some(docker.clone());
        Ok(docker)
    }

    /// Asks the engine for its version, within `timeout`. A failure forgets the connection so the next call retries.
    pub async fn info(&self, timeout: Duration) -> Result<EngineInfo, DockerError> {
        let attempt = async {
            let docker = self.client().await?;
            let v = docker.version().await?;
            Ok::<_, DockerError>(EngineInfo {
                version: v.version.unwrap_or_default(),
                api_version: v.api_version.unwrap_or_default(),
            })
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::Unreachable {
                host: self.host.clone(),
                message: format!("no answer within {} ms", timeout.as_millis()),
            }),
        };
        if result.is_err() {
            *self.conn.lock().await = None;
        }
        result
    }

    /// The engine host's cores and memory in bytes (`docker info`), within `timeout`.
    pub async fn capacity(&self, timeout: Duration) -> Result<(u32, u64), DockerError> {
        let attempt = async {
            let docker = self.client().await?;
            let info = docker.info().await?;
            let cpus = info.ncpu.and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
            let mem = info.mem_total.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            Ok::<_, DockerError>((cpus, mem))
        };
        tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
            Err(DockerError::Unreachable {
                host: self.host.clone(),
                message: format!("no answer within {} ms", timeout.as_millis()),
            })
        })
    }
}
