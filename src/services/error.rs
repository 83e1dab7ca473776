//! The one error type use cases return, and every conversion into it.

use crate::crypto::{HashError, RandomError};
use crate::docker::DockerError;
use crate::domain::Invalid;
use crate::store::StoreError;

/// What went wrong in a use case, in terms a caller can act on. The web layer maps each variant to one status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: a field is wrong; the message says what to fix.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 401: missing, invalid, expired or revoked credentials.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: authenticated, but the role lacks the permission.
    #[error("{0}")]
    Forbidden(String),
    /// 404: does not exist, or is in a workspace the caller is not a member of.
    #[error("{0}")]
    NotFound(String),
    /// 409: already exists, or the current state forbids the action.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: existed once but can no longer be used (expired or used invitation).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 413: the request body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429: too many requests; retry after this many seconds.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    RateLimited { retry_after: u64, message: String },
    /// 400 with its own code: a request that is well-formed but that a remote (a git server) refused; the
    /// message says what the remote said and what to change.
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// 502: a remote Berth talks to on the caller's behalf (a git host) is unreachable or too slow.
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    /// 503: a dependency (the Docker engine) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an environment failure; the message is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: field.into(), message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict { code, message: message.into() }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unauthorized { code, message: message.into() }
    }
}

impl From<Invalid> for ServiceError {
    fn from(e: Invalid) -> Self {
        ServiceError::Invalid { field: e.field.into(), message: e.message }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique(what) => ServiceError::conflict("conflict", format!("already exists ({what})")),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ServiceError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<DockerError> for ServiceError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::Unreachable { .. } => ServiceError::Unavailable(e.to_string()),
            DockerError::Conflict { .. } => ServiceError::conflict("docker_conflict", e.to_string()),
            DockerError::NotFound { .. } => ServiceError::NotFound(e.to_string()),
            DockerError::Invalid { .. } | DockerError::BuildFailed { .. } => {
                ServiceError::invalid("build", e.to_string())
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<RandomError> for ServiceError {
    fn from(e: RandomError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<HashError> for ServiceError {
    fn from(e: HashError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
