//! Per-connection activity, so the serve loop can close client connections that sat idle for the idle timeout
//! whatever protocol they speak, and [`watch`], which drives a connection and closes it when it is idle or the
//! proxy stops.
//!
//! This is the only timer a client connection has between requests: hyper's HTTP/1.1 `header_read_timeout` is off,
//! as it allocated, armed and cancelled a timer for every request (a few percent of the proxy's time per request),
//! and an HTTP/2 connection has no such timer at all (neither has a connection still being sniffed for its
//! protocol). A request counts as in flight from the moment it arrives until its response body has been sent or
//! dropped, so a long download or an event stream is never cut for being "idle"; a request head that has not
//! arrived in full (a slow client, or one trickling bytes on purpose) is not in flight, so it does not keep the
//! connection open either.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio_util::sync::CancellationToken;

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

/// How long a connection that was asked to close for idleness may take to do so before it is dropped (at most; the
/// idle timeout when that is shorter). An idle HTTP/1.1 connection closes at once and an HTTP/2 client answers a
/// GOAWAY by closing; what is left after this is a connection stuck half way through a request head.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Drives `connection` to its end, asking it to close (`close`, a graceful shutdown) when `stop` fires or when no
/// request has been in flight on it for `idle`. A connection still open [`CLOSE_GRACE`] (or `idle`, if shorter)
/// after an idle close, with still nothing in flight, is dropped: `None`.
///
/// The timer and the stop signal wake this through a waker of their own ([`Watchers`]), so they are polled only
/// when one of them fired, not each time the connection's socket wakes the task: polling them on every wake (as a
/// `select!` does) was part of every request's cost.
pub(crate) async fn watch<C: Future>(
    mut connection: Pin<&mut C>,
    close: impl Fn(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
    stop: &CancellationToken,
) -> Option<C::Output> {
    let watchers = Arc::new(Watchers { fired: AtomicBool::new(true), task: AtomicWaker::new() });
    let watchers_waker = Waker::from(watchers.clone());
    let mut stopped = pin!(stop.cancelled());
    let mut timer = pin!(tokio::time::sleep(idle));
    // Whether the connection was asked to close, and whether that was for being idle (the timer then runs the grace).
    let mut closing = false;
    let mut idle_closed = false;
    std::future::poll_fn(|cx| {
        watchers.task.register(cx.waker());
        if watchers.fired.swap(false, Ordering::AcqRel) {
            let mut watchers_cx = Context::from_waker(&watchers_waker);
            if !closing && stopped.as_mut().poll(&mut watchers_cx).is_ready() {
                close(connection.as_mut());
                closing = true;
            }
            while timer.as_mut().poll(&mut watchers_cx).is_ready() {
                match (activity.idle_deadline(idle), idle_closed) {
                    // Busy again, or not idle for long enough yet: look again then.
                    (Some(deadline), _) => {
                        idle_closed = false;
                        timer.as_mut().reset(deadline);
                    }
                    (None, false) => {
                        if !closing {
                            close(connection.as_mut());
                            closing = true;
                        }
                        idle_closed = true;
                        timer.as_mut().reset(tokio::time::Instant::now() + idle.min(CLOSE_GRACE));
                    }
                    (None, true) => return Poll::Ready(None),
                }
            }
        }
        connection.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The waker [`watch`] polls its timer and stop signal with: it notes that one of them fired and wakes the task.
struct Watchers {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Watchers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
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
