//! Per-connection activity, so the serve loop can close client connections that sat idle for the idle timeout
//! whatever protocol they speak.
//!
//! HTTP/1.1 has `header_read_timeout` for the wait between requests, but an HTTP/2 connection has no such timer (and
//! neither has a connection still being sniffed for its protocol): without this, a client could hold idle HTTP/2
//! connections open forever. A request counts as in flight from the moment it arrives until its response body has
//! been sent or dropped, so a long download or an event stream is never cut for being "idle".

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::{BoxError, ProxyBody};

/// What one client connection is doing: how many requests are in flight and when the last one started or ended.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request start or end.
    last_ms: AtomicU64,
}

impl Activity {
    /// A connection that just opened: idle since now.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity { epoch: Instant::now(), in_flight: AtomicUsize::new(0), last_ms: AtomicU64::new(0) })
    }

    /// Marks a request as started; it ends when the returned guard is dropped (attach it to the response body).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        // No clock read: while a request is in flight the connection is not idle, whatever the time; the end of
        // the request is what the idle timeout counts from.
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `idle`, or `None` when it already has (and no request is in
    /// flight). While a request is in flight the answer is `idle` from now: the loop checks again then.
    pub(crate) fn idle_deadline(&self, idle: Duration) -> Option<tokio::time::Instant> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // At least a second, so a zero idle timeout cannot make the serve loop spin.
            return Some((now + idle.max(Duration::from_secs(1))).into());
        }
        let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let deadline = last + idle;
        (deadline > now).then(|| deadline.into())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The response body sent to the client: the proxy's body, keeping its request in flight until it is done.
#[derive(Debug)]
pub struct ConnBody {
    inner: ProxyBody,
    _in_flight: InFlight,
}

impl ConnBody {
    pub(crate) fn new(inner: ProxyBody, in_flight: InFlight) -> ConnBody {
        ConnBody { inner, _in_flight: in_flight }
    }
}

impl Body for ConnBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Activity::new();
        assert!(activity.idle_deadline(Duration::from_secs(60)).is_some(), "fresh: idle from now");
        assert!(activity.idle_deadline(Duration::ZERO).is_none(), "idle for zero seconds already");
        let request = activity.begin();
        assert!(activity.idle_deadline(Duration::ZERO).is_some(), "a request in flight keeps it open");
        drop(request);
        assert!(activity.idle_deadline(Duration::ZERO).is_none());
        assert!(activity.idle_deadline(Duration::from_secs(60)).is_some());
    }
}
