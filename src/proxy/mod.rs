//! The edge reverse proxy: routes app traffic by `Host` to container replicas.
//!
//! The proxy knows routes, nothing about projects: `services` builds a [`RouteTable`] and [`Proxy::publish`]es it as
//! an immutable snapshot. Requests stream through in both directions; upstream failures become 502/503/504 pages in
//! [`error::error_response`]. The serve path is generic over the connection ([`Proxy::serve_with`]), so the TLS
//! listener reuses it with a handshake and `X-Forwarded-Proto: https`.
//!
//! Clients speak HTTP/1.1 (with upgrades such as WebSocket) or HTTP/2 — over TLS when ALPN picked `h2`, or in
//! cleartext with prior knowledge — whatever the connection starts with; replicas are always spoken to in HTTP/1.1.

mod access;
mod error;
mod forward;
mod h1;
mod headers;
mod idle;
mod plain;
mod routes;
mod stats;
#[cfg(test)]
mod tests;
mod upstream;
mod wellknown;
mod workers;

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
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use access::AccessEntry;
pub use error::{ProxyError, error_response};
pub use headers::{ForwardedProto, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
pub use idle::ConnBody;
pub use routes::{Backend, RouteTable, normalize_host};
pub use stats::ProxyStats;

use forward::{ConnInfo, Step};
use idle::Activity;
use stats::Counters;

use crate::tls::Http01Tokens;

/// The body of every response the proxy sends: the upstream's streamed body or an error page.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The error of a response body: the replica's connection failing mid-body, mostly.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// How many threads serve client connections, per listener. Default: one per core.
    pub workers: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
            eject_for: Duration::from_secs(10),
            workers: std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
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
    /// `Strict-Transport-Security` max-age for HTTPS-only hosts; 0: not sent.
    hsts_max_age: std::sync::atomic::AtomicU32,
    /// The port HTTPS is served on, for redirects (443 unless the listener is elsewhere).
    https_port: std::sync::atomic::AtomicU16,
    /// Where access-log entries go, once set.
    access: std::sync::OnceLock<access::AccessLog>,
    /// Domain verification tokens answered at `/.well-known/berth-verification/<token>`.
    verification: ArcSwap<wellknown::VerificationTokens>,
    /// Kept-alive connections to the replicas.
    upstreams: Arc<upstream::Upstreams>,
    /// Serves HTTP/1.1 or HTTP/2, by what the client's first bytes are (the HTTP/2 preface or not).
    server: auto::Builder<TokioExecutor>,
    stats: Counters,
    /// HTTP-01 answers, served on every listener before routing.
    http01: Http01Tokens,
}

impl Proxy {
    /// A proxy with an empty route table (every host gets 404 until the first [`Proxy::publish`]). Needs no runtime;
    /// the client's pool spawns its tasks lazily on first use.
    pub fn new(config: ProxyConfig) -> Arc<Proxy> {
        let upstreams = upstream::Upstreams::new(config.connect_timeout, config.idle_timeout);
        let mut server = auto::Builder::new(TokioExecutor::new());
        // No header read timeout: `idle::watch` closes a connection whose next request head has not come in full within
        // the idle timeout, with one timer per connection instead of one per request.
        server.http1().timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
        // HTTP/2 keeps hyper's limits (200 concurrent streams, rapid-reset protection); the timer is for its pings.
        server.http2().timer(TokioTimer::new());
        Arc::new(Proxy {
            config,
            routes: ArcSwap::from_pointee(RouteTable::new()),
            verification: ArcSwap::from_pointee(wellknown::VerificationTokens::new()),
            access: std::sync::OnceLock::new(),
            https_port: std::sync::atomic::AtomicU16::new(443),
            hsts_max_age: std::sync::atomic::AtomicU32::new(0),
            upstreams,
            server,
            stats: Counters::default(),
            http01: Http01Tokens::new(),
        })
    }

    /// Replaces the route table atomically: a request sees either the old or the new table, never a mix; requests
    /// already forwarded finish on the upstream they started on.
    pub fn publish(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    /// Sends access-log entries to `tx` from now on: 4xx/5xx and non-GET/HEAD requests always, and one in
    /// `sample_every` of the others (0: none). Only the first call takes effect.
    pub fn set_access_log(&self, tx: tokio::sync::mpsc::Sender<AccessEntry>, sample_every: u64) {
        let _ = self.access.set(access::AccessLog::new(tx, sample_every));
    }

    /// Access-log entries dropped because their writer could not keep up.
    pub fn access_log_dropped(&self) -> u64 {
        self.access.get().map_or(0, access::AccessLog::dropped)
    }

    /// Replaces the domain verification tokens (domain → token) the proxy answers.
    pub fn set_verification_tokens(&self, tokens: std::collections::HashMap<String, String>) {
        self.verification.store(Arc::new(tokens));
    }

    /// Sends `Strict-Transport-Security: max-age=<seconds>` on HTTPS answers for hosts whose plain HTTP redirects
    /// to HTTPS (0 turns it off).
    pub fn set_hsts_max_age(&self, seconds: u32) {
        self.hsts_max_age.store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    /// The port of the HTTPS listener, used in redirects from HTTP.
    pub fn set_https_port(&self, port: u16) {
        self.https_port.store(port, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn https_port(&self) -> u16 {
        self.https_port.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current route table snapshot.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.stats.snapshot()
    }

    /// The HTTP-01 tokens this proxy answers at `/.well-known/acme-challenge/<token>` for any host, before routing;
    /// the certificate manager inserts them (clones share the map).
    pub fn http01_tokens(&self) -> &Http01Tokens {
        &self.http01
    }

    /// The answer to an ACME HTTP-01 validation request (RFC 8555 §8.3), when `req` is one for a token being
    /// validated. Other requests under the challenge path are routed to the app like any other.
    fn answer_http01<B>(&self, req: &Request<B>) -> Option<Response<ProxyBody>> {
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
            return None;
        }
        let key_authorization = self.http01.answer(req.uri().path())?;
        use http_body_util::BodyExt;
        let body = http_body_util::Full::new(Bytes::from(key_authorization)).map_err(|never| match never {});
        let mut response = Response::new(body.boxed_unsync());
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/octet-stream"));
        Some(response)
    }

    /// The configuration the proxy was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Serves plain HTTP/1.1 (with upgrades) and HTTP/2 with prior knowledge (h2c) on `listener` until `shutdown`
    /// fires, then stops accepting and waits up to `drain` for in-flight requests. See [`Proxy::serve_with`].
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        drain: Duration,
    ) -> io::Result<()> {
        self.serve_with(listener, shutdown, drain, ForwardedProto::Http, |stream| async move { Ok(stream) }).await
    }

    /// Serves HTTP/1.1 (with upgrades) and HTTP/2 on `listener`, running `handshake` on each accepted connection
    /// first (the TLS listener passes its acceptor; `proto` says what clients used, for `X-Forwarded-Proto`). The
    /// protocol is chosen per connection by its first bytes: the HTTP/2 connection preface (RFC 9113 §3.4), which a
    /// client sends after negotiating `h2` by ALPN or with prior knowledge, or else HTTP/1.1.
    ///
    /// A connection with no request in flight for the idle timeout is closed gracefully, and dropped if it has not
    /// closed a few seconds later (a request head trickling in); see [`idle::watch`].
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
        H: Fn(TcpStream) -> F + Send + Sync + 'static,
        F: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let workers = workers::Workers::start(self.config.workers)?;
        let handshake = Arc::new(handshake);
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
            // Re-registered with the worker's own reactor, so its readiness events wake no other thread.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(peer = %peer, error = %error, "could not hand the connection to a worker");
                    continue;
                }
            };
            let handshake = handshake.clone();
            let activity = Activity::new();
            let service = ProxyService(Arc::new(ServiceState {
                proxy: self.clone(),
                conn: ConnInfo {
                    peer,
                    client_address: headers::client_address(peer.ip()),
                    proto,
                    tunnels: tunnels.clone(),
                },
                activity: activity.clone(),
            }));
            let idle = self.config.idle_timeout;
            let server = self.server.clone();
            let stop = stop_connections.clone();
            let guard = in_flight.clone();
            workers.next().spawn(async move {
                let _guard = guard;
                let handshaking = match TcpStream::from_std(stream) {
                    Ok(stream) => handshake(stream),
                    Err(error) => {
                        tracing::debug!(peer = %peer, error = %error, "could not register the connection");
                        return;
                    }
                };
                let io = match handshaking.await {
                    Ok(io) => io,
                    Err(error) => {
                        tracing::debug!(peer = %peer, error = %error, "handshake failed");
                        return;
                    }
                };
                // Plain HTTP/1.1 requests first, without hyper; hyper takes over at the first other request.
                let closing = std::sync::atomic::AtomicBool::new(false);
                let close = |_: Pin<&mut _>| closing.store(true, std::sync::atomic::Ordering::Relaxed);
                let served = {
                    let fast = pin!(plain::serve(io, &service.0, &closing));
                    idle::watch(fast, close, &activity, idle, &stop).await
                };
                let (io, read) = match served {
                    Some(Ok(plain::Ended::Handover(io, read))) => (io, read),
                    Some(Ok(plain::Ended::Closed)) => return,
                    Some(Err(error)) => {
                        tracing::debug!(peer = %peer, error = %error, "client connection ended with an error");
                        return;
                    }
                    None => {
                        tracing::debug!(peer = %peer, "client connection dropped: idle, and did not close");
                        return;
                    }
                };
                let io = TokioIo::new(plain::Rewind::new(io, read));
                let connection = pin!(server.serve_connection_with_upgrades(io, service));
                // Finish the requests in flight, if any, then close instead of keeping the connection alive
                // (HTTP/2: GOAWAY, RFC 9113 §6.8).
                let close = |connection: Pin<&mut _>| auto::UpgradeableConnection::graceful_shutdown(connection);
                match idle::watch(connection, close, &activity, idle, &stop).await {
                    Some(Err(error)) => {
                        tracing::debug!(peer = %peer, error = %error, "client connection ended with an error");
                    }
                    Some(Ok(())) => {}
                    None => tracing::debug!(peer = %peer, "client connection dropped: idle, and did not close"),
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
        drop(workers);
        Ok(())
    }
}

/// The hyper service for one client connection: every request on it goes through [`Proxy`]'s forwarding with the
/// connection's peer address and scheme.
///
/// Its state sits behind one per-connection `Arc`, so a request clones only that: the `Proxy` itself is shared by
/// every worker thread, and bumping its reference count per request bounced its cache line between cores.
#[derive(Debug, Clone)]
pub struct ProxyService(Arc<ServiceState>);

#[derive(Debug)]
struct ServiceState {
    proxy: Arc<Proxy>,
    conn: ConnInfo,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ConnBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ConnBody>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let state = self.0.clone();
        // In flight until the response body is done (or the request is dropped half way).
        let in_flight = state.activity.begin();
        // Routed here, without waiting on anything: the future hyper allocates for the request holds only what the
        // exchange with the replica needs, not the request itself.
        let response = match state.proxy.route(req, &state.conn) {
            Step::Answered(response) => response,
            Step::Local(finishing, outcome) => state.proxy.finish(finishing, outcome, &state.conn),
            Step::Forward(finishing, mut exchange) => {
                return Box::pin(async move {
                    let outcome = state.proxy.exchange(&mut exchange, &state.conn).await;
                    let response = state.proxy.finish(finishing, outcome, &state.conn);
                    Ok(response.map(|body| ConnBody::new(body, in_flight)))
                });
            }
        };
        Box::pin(std::future::ready(Ok(response.map(|body| ConnBody::new(body, in_flight)))))
    }
}
