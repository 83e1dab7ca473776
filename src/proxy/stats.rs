//! Cheap counters for what the proxy did, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ProxyError;

/// A point-in-time copy of the proxy's counters since it was created. Each field is read separately, so a snapshot
/// taken under load may be off by the requests in flight; it is for dashboards and tests, not accounting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received, whatever their outcome.
    pub requests: u64,
    /// Requests upgraded to another protocol (WebSocket) and spliced.
    pub upgrades: u64,
    /// Connections to a replica that failed (each one ejected that replica); may exceed `bad_gateway` because a
    /// retry on another replica can still succeed.
    pub connect_failures: u64,
    /// 400 answers: nothing to route by (no host, or `CONNECT`).
    pub bad_requests: u64,
    /// 404 answers: unknown host.
    pub not_found: u64,
    /// 502 answers: no replica could be reached, or the exchange failed.
    pub bad_gateway: u64,
    /// 503 answers: the app has no replicas.
    pub unavailable: u64,
    /// 504 answers: no response headers within the response timeout.
    pub gateway_timeout: u64,
}

/// The live counters behind [`ProxyStats`]: relaxed atomics, one increment per event.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    upgrades: AtomicU64,
    connect_failures: AtomicU64,
    bad_requests: AtomicU64,
    not_found: AtomicU64,
    bad_gateway: AtomicU64,
    unavailable: AtomicU64,
    gateway_timeout: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn upgrade(&self) {
        self.upgrades.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connect_failure(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self, error: &ProxyError) {
        let counter = match error {
            ProxyError::BadRequest { .. } => &self.bad_requests,
            ProxyError::UnknownHost { .. } => &self.not_found,
            ProxyError::NoReplicas { .. } => &self.unavailable,
            ProxyError::BadGateway { .. } => &self.bad_gateway,
            ProxyError::Timeout { .. } => &self.gateway_timeout,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ProxyStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            requests: read(&self.requests),
            upgrades: read(&self.upgrades),
            connect_failures: read(&self.connect_failures),
            bad_requests: read(&self.bad_requests),
            not_found: read(&self.not_found),
            bad_gateway: read(&self.bad_gateway),
            unavailable: read(&self.unavailable),
            gateway_timeout: read(&self.gateway_timeout),
        }
    }
}
