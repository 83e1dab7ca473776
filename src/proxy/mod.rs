//! The edge reverse proxy: routes app traffic by `Host` to container replicas.
//!
//! The proxy knows routes, nothing about projects: `services` builds a [`RouteTable`] and [`Proxy::publish`]es it as
//! an immutable snapshot. Requests stream through in both directions; upstream failures become 502/503/504 pages in
//! [`error::error_response`]. The serve path is generic over the connection ([`Proxy::serve_with`]), so the TLS
//! listener reuses it with a handshake and `X-Forwarded-Proto: https`.

mod body;
mod error;
mod forward;
mod headers;
mod routes;
mod stats;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use error::{ProxyError, error_response};
pub use headers::{ForwardedProto, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
pub use routes::{Backend, RouteTable, normalize_host};
pub use stats::ProxyStats;

use body::UpstreamBody;
use forward::ConnInfo;
use stats::Counters;

/// The body of every response the proxy sends: the upstream's streamed body or an error page.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Timeouts and ejection policy. Values are used as given; [`ProxyConfig::default`] has the production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// How long connecting to a replica may take before it counts as down (and is ejected). Default 5 s.
    pub connect_timeout: Duration,
    /// How long a replica may take to send response headers before the client gets a 504. Default 60 s.
    pub response_timeout: Duration,
    /// How long an idle connection is kept: client keep-alive connections waiting for their next request's headers,
    /// and pooled upstream connections. Default 90 s.
    pub idle_timeout: Duration,
    /// How long a replica that refused a connection is tried last. Default 10 s.
    pub eject_for: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
            eject_for: Duration::from_secs(10),
        }
    }
}

/// The proxy: holds the current route table as an `ArcSwap` snapshot and a pooled HTTP/1.1 client to the replicas.
///
/// One `Proxy` can serve any number of listeners (plain and TLS) at once; they share routes, pool and counters.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    routes: ArcSwap<RouteTable>,
    client: Client<HttpConnector, UpstreamBody>,
    server: http1::Builder,
    stats: Counters,
}

impl Proxy {
    /// A proxy with an empty route table (every host gets 404 until the first [`Proxy::publish`]). Needs no runtime;
    /// the client's pool spawns its tasks lazily on first use.
    pub fn new(config: ProxyConfig) -> Arc<Proxy> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // The proxy sets `Host` itself: the client's `Host`, never the replica's address.
            .set_host(false)
            .build(connector);
        let mut server = http1::Builder::new();
        server.timer(TokioTimer::new()).header_read_timeout(config.idle_timeout).keep_alive(true);
        Arc::new(Proxy {
            config,
            routes: ArcSwap::from_pointee(RouteTable::new()),
            client,
            server,
            stats: Counters::default(),
        })
    }

    /// Replaces the route table atomically: a request sees either the old or the new table, never a mix; requests
    /// already forwarded finish on the upstream they started on.
    pub fn publish(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    /// The current route table snapshot.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.stats.snapshot()
    }

    /// The configuration the proxy was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Serves plain HTTP/1.1 (with upgrades) on `listener` until `shutdown` fires, then stops accepting and waits up
    /// to `drain` for in-flight requests. See [`Proxy::serve_with`].
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        drain: Duration,
    ) -> io::Result<()> {
        self.serve_with(listener, shutdown, drain, ForwardedProto::Http, |stream| async move { Ok(stream) }).await
    }

    /// Serves HTTP/1.1 (with upgrades) on `listener`, running `handshake` on each accepted connection first (the TLS
    /// listener passes its acceptor; `proto` says what clients used, for `X-Forwarded-Proto`).
    ///
    /// Accept errors (such as running out of file descriptors) are logged and retried after a short pause rather than
    /// returned, so a burst of connections cannot take the edge down. When `shutdown` fires the listener is dropped
    /// at once (new connections are refused), idle keep-alive connections close, and requests in flight get up to
    /// `drain` to finish; then upgraded tunnels (WebSockets) are closed and this returns.
    pub async fn serve_with<H, F, S>(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        drain: Duration,
        proto: ForwardedProto,
        handshake: H,
    ) -> io::Result<()>
    where
        H: Fn(TcpStream) -> F,
        F: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Every connection task holds a clone of `in_flight`; draining is waiting for all of them to be dropped.
        let (in_flight, mut drained) = mpsc::channel::<()>(1);
        let stop_connections = CancellationToken::new();
        let tunnels = CancellationToken::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handshaking = handshake(stream);
            let service = ProxyService {
                proxy: self.clone(),
                conn: Arc::new(ConnInfo { peer, proto, tunnels: tunnels.clone() }),
            };
            let server = self.server.clone();
            let stop = stop_connections.clone();
            let guard = in_flight.clone();
            tokio::spawn(async move {
                let _guard = guard;
                let io = match handshaking.await {
                    Ok(io) => io,
                    Err(error) => {
                        tracing::debug!(peer = %peer, error = %error, "handshake failed");
                        return;
                    }
                };
                let mut connection = pin!(server.serve_connection(TokioIo::new(io), service).with_upgrades());
                let result = tokio::select! {
                    result = connection.as_mut() => result,
                    () = stop.cancelled() => {
                        // Finish the request in flight, if any, then close instead of keeping the connection alive.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(peer = %peer, error = %error, "client connection ended with an error");
                }
            });
        }
        drop(listener);
        stop_connections.cancel();
        drop(in_flight);
        if tokio::time::timeout(drain, drained.recv()).await.is_err() {
            tracing::warn!(drain = ?drain, "proxy drain deadline passed with requests still in flight");
        }
        tunnels.cancel();
        Ok(())
    }
}

/// The hyper service for one client connection: every request on it goes through [`Proxy`]'s forwarding with the
/// connection's peer address and scheme.
#[derive(Debug, Clone)]
pub struct ProxyService {
    proxy: Arc<Proxy>,
    conn: Arc<ConnInfo>,
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let proxy = self.proxy.clone();
        let conn = self.conn.clone();
        Box::pin(async move { Ok(proxy.handle(req, &conn).await) })
    }
}
