//! A streaming request body that can be taken back when the upstream connection failed before any of it was sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The request body handed to the upstream client. It streams the client's body frame by frame (never buffering
/// it), but until its first frame is polled the body stays in a shared slot, so after a connect failure — which
/// happens before the client polls the body — [`BodySlot::reclaim`] gets it back intact to retry on the next replica.
#[derive(Debug)]
pub struct UpstreamBody {
    /// `None`: the request has no body ([`UpstreamBody::empty`]).
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    /// The body once streaming started; from then on the slot is empty and a retry is impossible.
    active: Option<Incoming>,
}

/// The other half of an [`UpstreamBody`]: where the body waits until it starts streaming.
#[derive(Debug, Clone)]
pub struct BodySlot(Arc<Mutex<Option<Incoming>>>);

impl UpstreamBody {
    /// Wraps `body`; the slot gives it back if the upstream never read from it.
    pub fn new(body: Incoming) -> (UpstreamBody, BodySlot) {
        let slot = Arc::new(Mutex::new(Some(body)));
        (UpstreamBody { slot: Some(slot.clone()), active: None }, BodySlot(slot))
    }

    /// The body of a request that has none (a GET, usually): nothing to stream or take back, so no shared slot.
    pub fn empty() -> UpstreamBody {
        UpstreamBody { slot: None, active: None }
    }
}

impl BodySlot {
    /// The body, if no frame of it has been sent upstream yet; `None` once streaming started.
    pub fn reclaim(&self) -> Option<Incoming> {
        lock(&self.0).take()
    }
}

/// Locks the slot; a poisoned lock still holds a consistent `Option`, so it is used as is.
fn lock(slot: &Mutex<Option<Incoming>>) -> MutexGuard<'_, Option<Incoming>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.active.is_none()
            && let Some(slot) = &this.slot
        {
            this.active = lock(slot).take();
        }
        match this.active.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.active {
            Some(body) => body.is_end_stream(),
            None => self.slot.as_ref().is_none_or(|slot| lock(slot).as_ref().is_none_or(Body::is_end_stream)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.active {
            Some(body) => body.size_hint(),
            None => self
                .slot
                .as_ref()
                .and_then(|slot| lock(slot).as_ref().map(Body::size_hint))
                .unwrap_or_else(|| SizeHint::with_exact(0)),
        }
    }
}
