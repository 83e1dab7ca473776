//! Forwarding one request: route by host, pick a replica, retry connect failures, splice upgrades.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::error::{ProxyError, error_response};
use super::h1::RequestHead;
use super::headers::{self, ForwardedProto, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use super::routes::{Backend, normalize_host, normalized};
use super::upstream::{ResponseBody, SendError, Tunnel};
use super::{Proxy, ProxyBody};

/// What the serve loop knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as an `X-Forwarded-For` entry, made once for all the connection's requests.
    pub client_address: HeaderValue,
    pub proto: ForwardedProto,
    /// Cancelled when the listener finished draining: upgraded tunnels close then.
    pub tunnels: CancellationToken,
}

/// The request's host as a route key (URI authority first, else `Host`), or empty.
fn request_host(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(normalize_host)
        .unwrap_or_default()
}

/// Where [`Proxy::route`] left a request.
pub(crate) enum Step {
    /// Answered as it is: an ACME HTTP-01 challenge.
    Answered(Response<ProxyBody>),
    /// Answered by the proxy itself (an error, a redirect, a verification token); still to be [finished].
    ///
    /// [finished]: Proxy::finish
    Local(Finishing, Result<Response<ProxyBody>, ProxyError>),
    /// To be sent to a replica with [`Proxy::exchange`], then finished.
    Forward(Finishing, Exchange),
}

/// What finishing a response needs of its request: the `X-Request-Id`, whether HSTS applies, and the access-log
/// entry's fields.
pub(crate) struct Finishing {
    request_id: HeaderValue,
    hsts: u32,
    hsts_host: Option<String>,
    logged: Option<(hyper::Method, String, String, std::time::Instant)>,
}

/// What the exchange with a replica needs, taken out of the routed request. The request itself is gone by then:
/// the future that awaits the replica (which hyper allocates for every request) would otherwise hold it.
pub(crate) struct Exchange {
    backend: Arc<Backend>,
    /// The request's host as it was sent (error messages normalise it again).
    host: HeaderValue,
    head: RequestHead,
    /// `None` for a request without a body, and once the body was taken by an attempt.
    body: Option<Incoming>,
    client_upgrade: Option<OnUpgrade>,
}

impl Exchange {
    /// Whether the request is a `HEAD` (its response has no body).
    pub(crate) fn is_head(&self) -> bool {
        self.head.head_method
    }
}

/// What [`Proxy::prepare`] made of a request it could route.
enum Prepared {
    /// To be sent to one of the host's replicas.
    Forward(Exchange),
    /// Answered by the proxy itself: a redirect to HTTPS, or a domain verification token.
    Answer(Response<ProxyBody>),
}

/// The route key of a request's host, for error messages and logs.
fn route_key(host: &HeaderValue) -> String {
    normalize_host(host.to_str().unwrap_or_default())
}

impl Proxy {
    /// Routes one client request without waiting on anything: answers what the proxy answers itself, or takes out
    /// of the request what the exchange with a replica needs. [`Proxy::exchange`] and [`Proxy::finish`] complete it.
    pub(crate) fn route(&self, req: Request<Incoming>, conn: &ConnInfo) -> Step {
        self.stats.request();
        if let Some(answer) = self.answer_http01(&req) {
            return Step::Answered(answer);
        }
        let request_id = headers::request_id(req.headers());
        let finishing = self.finishing(conn, request_id, req.method(), || request_host(&req), req.uri().path());
        match self.prepare(req, conn, &finishing.request_id) {
            Ok(Prepared::Forward(exchange)) => Step::Forward(finishing, exchange),
            Ok(Prepared::Answer(response)) => Step::Local(finishing, Ok(response)),
            Err(error) => Step::Local(finishing, Err(error)),
        }
    }

    /// [`Proxy::route`] for a request the fast path ([`super::plain`]) parsed itself, when it is an HTTP/1.1
    /// request without a body that goes to a replica as it is: `None` for anything else (a body, an upgrade or
    /// `Expect`, a `Connection` option naming a field, an absolute-form target, a host not routed or without
    /// replicas, a redirect to HTTPS, `/.well-known/`, a malformed head), which hyper then serves from the start.
    /// Otherwise the request's `Finishing` and `Exchange` are the ones [`Proxy::route`] makes, and whether the
    /// client asked to close the connection.
    pub(crate) fn route_plain(
        &self,
        req: &httparse::Request<'_, '_>,
        conn: &ConnInfo,
    ) -> Option<(Finishing, Exchange, bool)> {
        let target = req.path?;
        if !target.starts_with('/') || target.starts_with("/.well-known/") {
            return None;
        }
        let method = hyper::Method::from_bytes(req.method?.as_bytes()).ok()?;
        if method == hyper::Method::CONNECT {
            return None;
        }
        let (mut host, mut request_id, mut close) = (None, None, false);
        for field in req.headers.iter() {
            let name = field.name.as_bytes();
            let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
            if is("host") {
                if host.replace(field.value).is_some() {
                    return None;
                }
            } else if is("content-length") || is("transfer-encoding") || is("upgrade") || is("expect") {
                return None;
            } else if is("connection") {
                for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !(token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive")) {
                        return None;
                    }
                }
            } else if is("x-request-id") && request_id.is_none() {
                request_id = Some(field.value);
            }
        }
        let host_value = HeaderValue::from_bytes(host?).ok()?;
        let host = normalized(host_value.to_str().ok()?);
        if host.is_empty() {
            return None;
        }
        let path = PathAndQuery::try_from(target).ok()?;
        let backend = {
            let table = self.routes.load();
            if conn.proto == ForwardedProto::Http && table.is_https_only(&host) {
                return None;
            }
            table.get_normalized(&host).cloned()?
        };
        if backend.upstreams().is_empty() {
            return None;
        }
        self.stats.request();
        let request_id = headers::request_id_from(request_id);
        let finishing = self.finishing(conn, request_id, &method, || host.to_string(), path.path());
        drop(host);
        let forwarded_for = headers::forwarded_for_values(
            req.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("x-forwarded-for")).map(|f| f.value),
            &conn.client_address,
        );
        let proto = HeaderValue::from_static(conn.proto.as_str());
        let set = forwarding_fields(&host_value, &forwarded_for, &proto, &finishing.request_id);
        let head = RequestHead::encode_plain(&method, &path, req.headers, &set);
        let exchange = Exchange { backend, host: host_value, head, body: None, client_upgrade: None };
        Some((finishing, exchange, close))
    }

    /// What finishing a request will need: its id, whether HSTS applies (the host is wanted then), and the access
    /// log's fields when there is an access log (the host is made at most once, only when one of them needs it).
    fn finishing(
        &self,
        conn: &ConnInfo,
        request_id: HeaderValue,
        method: &hyper::Method,
        host: impl Fn() -> String,
        path: &str,
    ) -> Finishing {
        let hsts = self.hsts_max_age.load(std::sync::atomic::Ordering::Relaxed);
        let hsts_host = (hsts > 0 && conn.proto == ForwardedProto::Https).then(&host);
        let logged = self.access.get().map(|_| {
            let host = hsts_host.clone().unwrap_or_else(&host);
            (method.clone(), host, path.chars().take(1024).collect::<String>(), std::time::Instant::now())
        });
        Finishing { request_id, hsts, hsts_host, logged }
    }

    /// Turns the outcome of a request into its response (an error page from [`error_response`] for an error),
    /// records it in the access log, and adds HSTS and the request's `X-Request-Id`.
    pub(crate) fn finish(
        &self,
        finishing: Finishing,
        outcome: Result<Response<ProxyBody>, ProxyError>,
        conn: &ConnInfo,
    ) -> Response<ProxyBody> {
        let Finishing { request_id, hsts, hsts_host, logged } = finishing;
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => {
                self.stats.error(&error);
                match error.status() {
                    status if status.is_server_error() => {
                        tracing::warn!(request_id = ?request_id, error = %error, source = ?std::error::Error::source(&error), "proxy error")
                    }
                    _ => tracing::debug!(request_id = ?request_id, error = %error, "proxy refused request"),
                }
                error_response(&error, &request_id)
            }
        };
        if let Some((method, host, path, started)) = logged
            && let Some(log) = self.access.get()
            && log.wants(&method, response.status().as_u16())
        {
            log.record(super::AccessEntry {
                at: std::time::SystemTime::now(),
                tag: self.routes.load().get(&host).and_then(|b| b.tag().cloned()),
                host,
                method: method.to_string(),
                path,
                status: response.status().as_u16(),
                duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
                client: conn.peer.ip(),
                request_id: request_id.to_str().unwrap_or_default().to_owned(),
                https: conn.proto == ForwardedProto::Https,
            });
        }
        if let Some(host) = hsts_host
            && self.routes.load().is_https_only(&host)
            && let Ok(value) = HeaderValue::from_str(&format!("max-age={hsts}"))
        {
            response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
        response.headers_mut().insert(X_REQUEST_ID, request_id);
        response
    }

    /// `308 Permanent Redirect` to the same URL over HTTPS (the method and body are kept by the client).
    fn redirect_to_https(&self, host: &str, uri: &hyper::Uri) -> Response<ProxyBody> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = match self.https_port() {
            443 => format!("https://{host}{path}"),
            port => format!("https://{host}:{port}{path}"),
        };
        let body = http_body_util::Full::new(bytes::Bytes::from(format!("Moved to {location}\n")))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut response = Response::new(body);
        *response.status_mut() = hyper::StatusCode::PERMANENT_REDIRECT;
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    }

    /// Routes a request by its host: the exchange with one of its replicas, or the proxy's own answer (a redirect
    /// to HTTPS, a domain verification token).
    fn prepare(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        request_id: &HeaderValue,
    ) -> Result<Prepared, ProxyError> {
        if req.method() == hyper::Method::CONNECT {
            return Err(ProxyError::BadRequest { reason: "uses CONNECT, which this server does not support" });
        }
        // For an absolute-form target the authority wins over `Host` (RFC 9112 §3.2.2).
        let host_value = match req.uri().authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
            None => req.headers().get(header::HOST).cloned(),
        }
        .ok_or(ProxyError::BadRequest { reason: "does not name a host" })?;
        let host = normalized(
            host_value.to_str().map_err(|_| ProxyError::BadRequest { reason: "has a host that is not ASCII" })?,
        );
        if host.is_empty() {
            return Err(ProxyError::BadRequest { reason: "does not name a host" });
        }
        if let Some(token) = super::wellknown::verification_answer(&self.verification.load(), &host, req.uri().path()) {
            let body =
                http_body_util::Full::new(bytes::Bytes::from(token)).map_err(|never| match never {}).boxed_unsync();
            let mut response = Response::new(body);
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(Prepared::Answer(response));
        }
        // One load of the snapshot: the request is routed entirely by either the old or the new table. The guard is
        // dropped once the request is routed: arc-swap has a few cheap guard slots per thread, and a guard held by
        // each request in flight would push every other load onto its slower path.
        let backend = {
            let table = self.routes.load();
            if conn.proto == ForwardedProto::Http
                && table.is_https_only(&host)
                && !req.uri().path().starts_with("/.well-known/acme-challenge/")
            {
                return Ok(Prepared::Answer(self.redirect_to_https(&host, req.uri())));
            }
            table.get_normalized(&host).cloned().ok_or_else(|| ProxyError::UnknownHost { host: host.to_string() })?
        };
        if backend.upstreams().is_empty() {
            return Err(ProxyError::NoReplicas { host: host.into_owned() });
        }
        // `host` borrows the value that goes into the exchange.
        drop(host);

        // HTTP/2 has no `Upgrade` mechanism (RFC 9113 §8.6); only an HTTP/1.1 client can switch protocols.
        let upgrade = req.version() < Version::HTTP_2 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut outgoing = parts.headers;
        headers::strip_hop_by_hop(&mut outgoing, upgrade);
        if parts.version >= Version::HTTP_2 {
            headers::join_cookies(&mut outgoing);
        }
        // `X-Forwarded-For` extends what earlier proxies sent; `X-Forwarded-Proto` and `-Host` replace what the
        // client sent, as only this proxy knows how the client reached it.
        let forwarded_for = headers::forwarded_for(&outgoing, &conn.client_address);
        let proto = HeaderValue::from_static(conn.proto.as_str());
        let set = forwarding_fields(&host_value, &forwarded_for, &proto, request_id);
        // Upstreams always get HTTP/1.1 in origin form (RFC 9112 §3.2.1): keep-alive and upgrades depend on it, and
        // the replica is reached directly, `Host` says which site.
        let has_body = !body.is_end_stream();
        let head = RequestHead::encode(&parts.method, &path_and_query(&parts.uri), &outgoing, &set, has_body);
        Ok(Prepared::Forward(Exchange {
            backend,
            host: host_value,
            head,
            body: has_body.then_some(body),
            client_upgrade,
        }))
    }

    /// Sends a routed request to its replicas (see [`Proxy::send_with_retry`]) and relays the answer; a `101
    /// Switching Protocols` starts splicing the upgraded connection.
    pub(crate) async fn exchange(
        &self,
        exchange: &mut Exchange,
        conn: &ConnInfo,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let mut response = self.send_with_retry(exchange).await?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A 101 for a request that did not ask to upgrade breaks the protocol (RFC 9110 §15.2.2).
            let (Some(client_upgrade), Some(tunnel)) =
                (exchange.client_upgrade.take(), response.body_mut().take_tunnel())
            else {
                return Err(ProxyError::BadGateway {
                    host: route_key(&exchange.host),
                    source: "upstream switched protocols unasked".into(),
                });
            };
            self.stats.upgrade();
            tokio::spawn(splice(client_upgrade, tunnel, conn.tunnels.clone()));
            // Other responses lost their hop-by-hop fields as their head was read (which is also what HTTP/2
            // requires of a response relayed from HTTP/1.1, RFC 9113 §8.2.2); a 101 keeps them until here, so that
            // its `Upgrade` survives.
            headers::strip_hop_by_hop(response.headers_mut(), true);
        }
        Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
    }

    /// Sends the request to the backend's replicas in round-robin order until one answers. A replica that cannot
    /// be connected to is ejected and the next one tried, which is safe because nothing was sent to it (the body is
    /// taken only once a connection is open); any other failure ends the request (the upstream may have acted on
    /// it).
    async fn send_with_retry(&self, exchange: &mut Exchange) -> Result<Response<ResponseBody>, ProxyError> {
        let Exchange { backend, host, head, body, .. } = exchange;
        let bodiless = body.is_none();
        // Boxed, as the error path is rare and the future of every request would hold it.
        let mut last_error: Option<Box<SendError>> = None;
        for addr in backend.attempt_order() {
            if !bodiless && body.is_none() {
                break;
            }
            match tokio::time::timeout(self.config.response_timeout, self.upstreams.send(&addr, head, body)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error @ SendError::Connect { .. })) => {
                    let host = route_key(host);
                    tracing::warn!(upstream = %addr, host, error = %error, "upstream connect failed; ejecting it");
                    self.stats.connect_failure();
                    backend.eject(addr, self.config.eject_for);
                    last_error = Some(Box::new(error));
                }
                Ok(Err(error)) => return Err(ProxyError::BadGateway { host: route_key(host), source: error.into() }),
                Err(_elapsed) => return Err(ProxyError::Timeout { host: route_key(host) }),
            }
        }
        let source = match last_error {
            Some(error) => error.into(),
            None => "the request body was already sent".into(),
        };
        Err(ProxyError::BadGateway { host: route_key(host), source })
    }
}

/// The fields the proxy sets on every request it forwards, replacing any the client sent: `Host` as the client
/// sent it, `X-Forwarded-For` (extended), `-Proto` and `-Host`, and the request's id.
fn forwarding_fields<'a>(
    host: &'a HeaderValue,
    forwarded_for: &'a HeaderValue,
    proto: &'a HeaderValue,
    request_id: &'a HeaderValue,
) -> [(header::HeaderName, &'a HeaderValue); 5] {
    [
        (header::HOST, host),
        (X_FORWARDED_FOR, forwarded_for),
        (X_FORWARDED_PROTO, proto),
        (X_FORWARDED_HOST, host),
        (X_REQUEST_ID, request_id),
    ]
}

/// The request target in origin form (RFC 9112 §3.2.1): path and query, `/` when empty.
fn path_and_query(uri: &Uri) -> PathAndQuery {
    match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
        Some(pq) => {
            PathAndQuery::try_from(format!("/{}", pq.as_str())).unwrap_or_else(|_| PathAndQuery::from_static("/"))
        }
        None => PathAndQuery::from_static("/"),
    }
}

/// Splices the client's upgraded connection and the replica's tunnel both ways until either side closes or `stop`
/// fires. What the replica sent right after its 101 goes to the client first.
async fn splice(client: OnUpgrade, upstream: Tunnel, stop: CancellationToken) {
    let client = match client.await {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(error = %error, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let Tunnel { stream: mut upstream, early } = upstream;
    if !early.is_empty()
        && let Err(error) = tokio::io::AsyncWriteExt::write_all(&mut client, &early).await
    {
        tracing::debug!(error = %error, "upgraded connection ended with an error");
        return;
    }
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(error = %error, "upgraded connection ended with an error");
            }
        }
        () = stop.cancelled() => {}
    }
}
