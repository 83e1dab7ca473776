//! Access logs: one entry per request worth keeping, handed to whoever stores them through a bounded channel.
//!
//! The proxy never waits for the log: when the channel is full the entry is dropped and counted. By default only
//! requests that tell something are kept — 4xx/5xx answers and anything but GET/HEAD — and a configurable share of
//! the rest (`sample_every`: 0 keeps none, 1 keeps all, n keeps one in n).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use hyper::Method;
use tokio::sync::mpsc;

/// One request as the access log records it.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub at: SystemTime,
    /// The route's tag (Berth puts the deployment id there); `None` for hosts without a route.
    pub tag: Option<Arc<str>>,
    pub host: String,
    pub method: String,
    /// The path without the query string (queries often carry tokens).
    pub path: String,
    pub status: u16,
    /// Time until the response headers were ready.
    pub duration_ms: u32,
    pub client: IpAddr,
    pub request_id: String,
    pub https: bool,
}

/// Where entries go and which are kept.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: mpsc::Sender<AccessEntry>,
    sample_every: u64,
    seen: AtomicU64,
    dropped: AtomicU64,
}

impl AccessLog {
    pub(crate) fn new(tx: mpsc::Sender<AccessEntry>, sample_every: u64) -> AccessLog {
        AccessLog { tx, sample_every, seen: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }

    /// Whether a request with this method and answer is kept.
    pub(crate) fn wants(&self, method: &Method, status: u16) -> bool {
        if status >= 400 || (method != Method::GET && method != Method::HEAD) {
            return true;
        }
        match self.sample_every {
            0 => false,
            n => self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(n),
        }
    }

    /// Hands an entry over without waiting; a full channel drops it.
    pub(crate) fn record(&self, entry: AccessEntry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped because the writer could not keep up.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_writes_are_kept_and_successful_reads_sampled() {
        let (tx, _rx) = mpsc::channel(10);
        let log = AccessLog::new(tx, 0);
        assert!(log.wants(&Method::GET, 404));
        assert!(log.wants(&Method::GET, 502));
        assert!(log.wants(&Method::POST, 200));
        assert!(!log.wants(&Method::GET, 200));
        assert!(!log.wants(&Method::HEAD, 304));
        let (tx, _rx) = mpsc::channel(10);
        let log = AccessLog::new(tx, 4);
        let kept = (0..100).filter(|_| log.wants(&Method::GET, 200)).count();
        assert_eq!(kept, 25);
    }

    #[test]
    fn a_full_channel_drops_instead_of_waiting() {
        let (tx, _rx) = mpsc::channel(1);
        let log = AccessLog::new(tx, 1);
        let entry = AccessEntry {
            at: SystemTime::now(),
            tag: None,
            host: "a".into(),
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            duration_ms: 1,
            client: IpAddr::from([127, 0, 0, 1]),
            request_id: "r".into(),
            https: false,
        };
        log.record(entry.clone());
        log.record(entry);
        assert_eq!(log.dropped(), 1);
    }
}
