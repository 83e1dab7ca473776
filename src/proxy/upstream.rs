//! Connections to replicas: HTTP/1.1 over TCP, kept alive and reused, with no more machinery than a reverse proxy
//! needs.
//!
//! The idle connections are kept per thread: a request is served on one proxy worker thread
//! ([`super::workers`]), and the upstream connection's task runs where it was made, so a connection from this
//! thread's pool never needs another thread to make progress.
//!
//! hyper-util's general-purpose client (resolver, connector stack, keyed pool with its own tasks) cost about a third
//! of the proxy's instructions per request in the edge benchmark. Replicas are IP:port pairs already, so this pool
//! only keeps, per address, a stack of idle `SendRequest` handles: a request pops one (the most recently used, whose
//! connection is the least likely to have been closed by the replica), or connects. The handle goes back to the
//! pool when the response body has been read to the end ([`PooledBody`]); a response dropped half way closes its
//! connection, as HTTP/1.1 offers no way to reuse it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foldhash::fast::RandomState;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;

/// At most this many idle connections are kept per replica and thread; more are closed when their response ends.
const MAX_IDLE_PER_REPLICA: usize = 256;
/// Every this many returns to a thread's pool, its closed and stale connections are dropped.
const SWEEP_EVERY: u32 = 1024;

/// Idle connections by replica (addresses are ours, not the client's: a fast hash).
type IdleMap = HashMap<SocketAddr, Vec<Idle>, RandomState>;

thread_local! {
    /// This thread's idle connections by replica, and the returns since the last sweep.
    static IDLE: RefCell<(IdleMap, u32)> = RefCell::new((IdleMap::default(), 0));
}

/// Why an exchange with a replica failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, or slower than the connect timeout). Nothing of the
    /// request was sent, so it may be retried on another replica.
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The connection failed after the request was handed to it: the replica may have acted on it.
    #[error("the exchange with {addr} failed: {source}")]
    Exchange {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// How connections to replicas are made and kept: the timeouts of one proxy. The idle connections themselves are
/// in a per-thread pool.
#[derive(Debug)]
pub(crate) struct Upstreams {
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Upstreams {
    /// Connections made with `connect_timeout`, reused while idle for less than `idle_timeout`.
    pub(crate) fn new(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Upstreams> {
        Arc::new(Upstreams { connect_timeout, idle_timeout })
    }

    fn usable(&self, entry: &Idle) -> bool {
        usable(entry, self.idle_timeout)
    }

    /// A live idle connection to `addr` from this thread's pool, dropping the closed and the stale ones on the way.
    fn checkout(&self, addr: SocketAddr) -> Option<http1::SendRequest<UpstreamBody>> {
        IDLE.with_borrow_mut(|(idle, _)| {
            let stack = idle.get_mut(&addr)?;
            while let Some(entry) = stack.pop() {
                if self.usable(&entry) {
                    return Some(entry.sender);
                }
            }
            None
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<http1::SendRequest<UpstreamBody>, SendError> {
        let connect_error = |source| SendError::Connect { addr, source };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_error(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect { addr, source: io::Error::other(e) })?;
        tokio::spawn(async move {
            // Upgrades (WebSocket) take the connection over when the exchange ends; errors surface on the request.
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(upstream = %addr, error = %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends `req` (in origin form, with its `Host` set) to `addr` on a pooled connection or a new one, and returns
    /// the response with its body wrapped so the connection returns to the pool once the body is read. A pooled
    /// connection that turns out to be closed is discarded and the request tried on the next one: hyper hands an
    /// unsent request back, so nothing is sent twice.
    pub(crate) async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let mut sender = match self.checkout(addr) {
                Some(sender) => sender,
                // Boxed: the connect path's state is large and rarely taken, and every request's future would
                // otherwise carry (and move) it.
                None => Box::pin(self.connect(addr)).await?,
            };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let upgrade = response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS;
                    // The idle timeout, not the shared `Upstreams`: no reference count bumped across threads.
                    let pool = (!upgrade).then_some((self.idle_timeout, addr));
                    return Ok(response.map(|body| PooledBody::new(body, sender, pool)));
                }
                Err(mut error) => match error.take_message() {
                    // Not sent: the connection closed under us. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Exchange { addr, source: error.into_error() }),
                },
            }
        }
    }
}

fn usable(entry: &Idle, idle_timeout: Duration) -> bool {
    !entry.sender.is_closed() && entry.since.elapsed() < idle_timeout
}

/// Puts a connection whose exchange finished back in this thread's pool (the thread it was made on: a response
/// body is read on the thread its request came in on), dropping stale ones every [`SWEEP_EVERY`] returns.
fn put(idle_timeout: Duration, addr: SocketAddr, sender: http1::SendRequest<UpstreamBody>) {
    if sender.is_closed() {
        return;
    }
    IDLE.with_borrow_mut(|(idle, returns)| {
        *returns += 1;
        if *returns >= SWEEP_EVERY {
            *returns = 0;
            idle.retain(|_, stack| {
                stack.retain(|entry| usable(entry, idle_timeout));
                !stack.is_empty()
            });
        }
        let stack = idle.entry(addr).or_default();
        if stack.len() < MAX_IDLE_PER_REPLICA {
            stack.push(Idle { sender, since: Instant::now() });
        }
    });
}

/// A replica's response body that gives its connection back to the pool once read to the end. On an upgrade (101)
/// it keeps the connection's handle alive without pooling it: the connection belongs to the tunnel from then on.
pub struct PooledBody {
    inner: Incoming,
    sender: Option<http1::SendRequest<UpstreamBody>>,
    pool: Option<(Duration, SocketAddr)>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl PooledBody {
    fn new(
        inner: Incoming,
        sender: http1::SendRequest<UpstreamBody>,
        pool: Option<(Duration, SocketAddr)>,
    ) -> PooledBody {
        let mut body = PooledBody { inner, sender: Some(sender), pool };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    /// The exchange is over: the connection can carry the next request.
    fn release(&mut self) {
        if let (Some((idle_timeout, addr)), Some(sender)) = (self.pool.take(), self.sender.take()) {
            put(idle_timeout, addr, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.pool = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
