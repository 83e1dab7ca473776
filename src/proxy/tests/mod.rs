//! Tests of the proxy over real sockets on 127.0.0.1: real upstreams (axum or raw hyper), real clients.

mod failures;
mod headers;
mod http2;
mod idle;
mod plain;
mod routing;
mod streaming;
mod websocket;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Backend, Proxy, ProxyConfig, RouteTable};

/// A running proxy on an ephemeral port.
pub(super) struct TestProxy {
    pub proxy: Arc<Proxy>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Starts a proxy with `config` and `routes` (host, upstreams), draining for up to 10 s on shutdown.
pub(super) async fn start_proxy(config: ProxyConfig, routes: &[(&str, Vec<SocketAddr>)]) -> TestProxy {
    let proxy = Proxy::new(config);
    proxy.publish(table(routes));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(proxy.clone().serve(listener, shutdown.clone(), Duration::from_secs(10)));
    TestProxy { proxy, addr, shutdown, task }
}

/// A route table from (host, upstreams) pairs, one new backend each.
pub(super) fn table(routes: &[(&str, Vec<SocketAddr>)]) -> RouteTable {
    let mut table = RouteTable::new();
    for (host, upstreams) in routes {
        table.insert(host, Arc::new(Backend::new(upstreams.clone())));
    }
    table
}

/// A client that never goes through an environment proxy.
pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GET `path` through the proxy at `proxy` with `Host: host`.
pub(super) async fn get_via(client: &reqwest::Client, proxy: SocketAddr, host: &str, path: &str) -> reqwest::Response {
    client.get(format!("http://{proxy}{path}")).header("host", host).send().await.unwrap()
}

/// What an echo upstream answers: its name and the request headers it received (repeated ones joined by ", ").
#[derive(Debug, serde::Deserialize)]
pub(super) struct Echo {
    pub name: String,
    pub headers: std::collections::HashMap<String, String>,
}

/// Hooks for the upstream's `/slow` route: it notifies `started`, then waits for `release`.
#[derive(Default)]
pub(super) struct Slow {
    pub started: Notify,
    pub release: Notify,
}

#[derive(Clone)]
struct UpstreamState {
    name: &'static str,
    slow: Arc<Slow>,
}

/// Starts an axum upstream called `name`:
/// - any path: JSON [`Echo`] (with request header `x-echo-hop`, it also sends hop-by-hop response headers);
/// - `POST /upload`: counts the streamed body and answers the count;
/// - `GET /download?bytes=N`: streams N bytes in 64 KiB chunks;
/// - `GET /slow`: see [`Slow`].
pub(super) async fn upstream(name: &'static str) -> (SocketAddr, Arc<Slow>) {
    let slow = Arc::new(Slow::default());
    let state = UpstreamState { name, slow: slow.clone() };
    let app = Router::new()
        .route("/upload", post(upload))
        .route("/download", get(download))
        .route("/slow", get(slow_answer))
        .fallback(echo)
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, slow)
}

async fn echo(State(state): State<UpstreamState>, headers: HeaderMap) -> Response {
    let mut seen = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
        seen.insert(name.to_string(), values.join(", ").into());
    }
    let body = serde_json::json!({ "name": state.name, "headers": seen });
    let mut response = axum::Json(body).into_response();
    if headers.contains_key("x-echo-hop") {
        let h = response.headers_mut();
        h.insert("connection", HeaderValue::from_static("x-upstream-private"));
        h.insert("x-upstream-private", HeaderValue::from_static("secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
    }
    response
}

async fn upload(body: Body) -> String {
    let mut stream = body.into_data_stream();
    let mut count = 0u64;
    while let Some(chunk) = stream.next().await {
        count += chunk.unwrap().len() as u64;
    }
    count.to_string()
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    bytes: u64,
}

async fn download(Query(query): Query<DownloadQuery>) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let chunks = query.bytes.div_ceil(CHUNK);
    let stream = futures::stream::iter(0..chunks).map(move |i| {
        let len = CHUNK.min(query.bytes - i * CHUNK) as usize;
        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; len]))
    });
    Body::from_stream(stream)
}

async fn slow_answer(State(state): State<UpstreamState>) -> (StatusCode, &'static str) {
    let released = state.slow.release.notified();
    state.slow.started.notify_one();
    released.await;
    (StatusCode::OK, "slow done")
}

/// An address with nothing listening: bound, then closed.
pub(super) async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An upstream that accepts connections and never answers (it keeps them open until the test ends).
pub(super) async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Sends `request` verbatim on a new connection and reads until the server closes it; returns (status, head, body).
pub(super) async fn raw_exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Polls `condition` every 10 ms until it holds, failing the test after 10 s.
pub(super) async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A counter shared between test tasks.
pub(super) fn counter() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

/// Reads a shared counter.
pub(super) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}
