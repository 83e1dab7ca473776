//! The Docker Engine, through bollard. The only module that imports bollard.
//!
//! Berth starts even when the engine is down: the connection is made (and the API version negotiated, so
//! older engines such as 20.10 / API 1.41 work) on first use, and retried on the next use after a failure.

use bollard::{API_DEFAULT_VERSION, Docker};
use std::time::Duration;
use tokio::sync::Mutex;

/// Failures talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("Docker engine at {host} is unreachable: {message}")]
    Unreachable { host: String, message: String },
    #[error("Docker engine error: {0}")]
    Api(#[from] bollard::errors::Error),
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
}

/// Seconds a single engine request may take before it is abandoned.
const REQUEST_TIMEOUT_SECS: u64 = 120;

impl DockerClient {
    /// A client for `host` (`unix:///…`, `tcp://…`, `http://…`). Does not connect yet.
    pub fn new(host: &str) -> DockerClient {
        DockerClient { host: host.to_owned(), conn: Mutex::new(None) }
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
