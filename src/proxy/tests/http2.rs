//! HTTP/2 from clients: over TLS with ALPN `h2` and in cleartext with prior knowledge, bodies streaming both ways
//! (with bounded memory), and HTTP/1.1 still served on the same TLS listener.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::proxy::ForwardedProto;
use crate::tls::{CertResolver, InternalCa};

/// A proxy serving TLS on an ephemeral port with a certificate for its routes' hosts from a throwaway CA, offering
/// ALPN `h2` and `http/1.1` as the app's HTTPS listener does.
pub(super) struct TlsProxy {
    pub proxy: TestProxy,
    /// The CA root in PEM, for clients to trust.
    pub root_pem: String,
    _dir: tempfile::TempDir,
}

pub(super) async fn start_tls_proxy(routes: &[(&str, Vec<SocketAddr>)]) -> TlsProxy {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path()).unwrap();
    let names: Vec<String> = routes.iter().map(|(host, _)| (*host).to_owned()).collect();
    let (chain, key) = ca.issue(&names).unwrap();
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let certified = Arc::new(CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).unwrap());
    let resolver = Arc::new(CertResolver::new());
    resolver.publish(names.iter().map(|name| (name.clone(), certified.clone())).collect());
    let config = crate::tls::server_config(resolver).unwrap();
    assert!(config.alpn_protocols.iter().any(|p| p == b"h2"), "the listener offers h2");
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let proxy = Proxy::new(ProxyConfig::default());
    proxy.publish(table(routes));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handshake = move |stream| {
        let acceptor = acceptor.clone();
        async move { crate::tls::accept(&acceptor, stream).await }
    };
    let task = tokio::spawn(proxy.clone().serve_with(
        listener,
        shutdown.clone(),
        Duration::from_secs(10),
        ForwardedProto::Https,
        handshake,
    ));
    TlsProxy { proxy: TestProxy { proxy, addr, shutdown, task }, root_pem: ca.root_pem().to_owned(), _dir: dir }
}

impl TlsProxy {
    /// A client trusting the proxy's CA that resolves `host` to the proxy; it offers ALPN `h2` and `http/1.1`.
    pub fn client(&self, host: &str) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(self.root_pem.as_bytes()).unwrap())
            .resolve(host, self.proxy.addr)
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.proxy.addr.port())
    }
}

/// The headers an HTTP/2 response must never carry (RFC 9113 §8.2.2), and what the upstream marked private.
const CONNECTION_SPECIFIC: [&str; 6] =
    ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-authenticate", "x-upstream-private"];

/// 64 KiB of the same byte, shared: generating a large body costs no allocation per chunk.
static CHUNK: [u8; 64 * 1024] = [b'u'; 64 * 1024];

/// A body of `chunks` × 64 KiB produced lazily, without Content-Length.
fn streamed_body(chunks: u64) -> reqwest::Body {
    let stream = futures::stream::iter(0..chunks).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&CHUNK)));
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn h2_over_tls_forwards_with_https_proto_and_no_connection_headers() {
    let (a, _) = upstream("a").await;
    let tls = start_tls_proxy(&[("app.example.com", vec![a])]).await;
    let client = tls.client("app.example.com").build().unwrap();
    let response = client
        .get(tls.url("app.example.com", "/headers"))
        .header("x-echo-hop", "1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "ALPN picked h2");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    for name in CONNECTION_SPECIFIC {
        assert!(!response.headers().contains_key(name), "{name} reached the h2 client: {:?}", response.headers());
    }
    let echo: Echo = response.json().await.unwrap();
    assert_eq!(echo.name, "a");
    assert_eq!(echo.headers["x-forwarded-proto"], "https");
    assert_eq!(echo.headers["x-forwarded-for"], "127.0.0.1");
    // The upstream gets HTTP/1.1 with a `Host` made from `:authority`, and one `Cookie` field (RFC 9113 §8.2.3).
    let authority = format!("app.example.com:{}", tls.proxy.addr.port());
    assert_eq!(echo.headers["host"], authority);
    assert_eq!(echo.headers["x-forwarded-host"], authority);
    assert_eq!(echo.headers["cookie"], "a=1; b=2");
}

#[tokio::test]
async fn h2_over_tls_streams_16_mib_both_ways() {
    const SIZE: u64 = 16 * 1024 * 1024;
    let (a, _) = upstream("a").await;
    let tls = start_tls_proxy(&[("app.example.com", vec![a])]).await;
    let client = tls.client("app.example.com").build().unwrap();

    let response =
        client.post(tls.url("app.example.com", "/upload")).body(streamed_body(SIZE / 65536)).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), SIZE.to_string());

    let response = client.get(tls.url("app.example.com", &format!("/download?bytes={SIZE}"))).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    // The upstream sent it chunked; HTTP/2 has its own framing and forbids `Transfer-Encoding`.
    for name in CONNECTION_SPECIFIC {
        assert!(!response.headers().contains_key(name), "{name} reached the h2 client: {:?}", response.headers());
    }
    let mut stream = response.bytes_stream();
    let (mut total, mut chunks) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len() as u64;
        chunks += 1;
    }
    assert_eq!(total, SIZE);
    assert!(chunks > 1, "the body arrived in pieces, not as one buffer");
    assert_eq!(tls.proxy.proxy.stats().requests, 2);
}

#[tokio::test]
async fn http1_is_still_served_on_the_tls_listener() {
    let (a, _) = upstream("a").await;
    let tls = start_tls_proxy(&[("app.example.com", vec![a])]).await;
    let client = tls.client("app.example.com").http1_only().build().unwrap();
    let response = client.get(tls.url("app.example.com", "/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Echo>().await.unwrap().headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_on_the_plain_listener() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .resolve("app.example.com", proxy.addr)
        .build()
        .unwrap();
    let response = client.get(format!("http://app.example.com:{}/", proxy.addr.port())).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await.unwrap();
    assert_eq!(echo.name, "a");
    assert_eq!(echo.headers["x-forwarded-proto"], "http");
}

/// This process's resident set (`field` `VmRSS` or its peak `VmHWM`) in KiB.
fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn one_gib_h2_upload_streams_with_bounded_memory() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let (a, _) = upstream("a").await;
    let tls = start_tls_proxy(&[("app.example.com", vec![a])]).await;
    let client = tls.client("app.example.com").build().unwrap();
    // Warm up (TLS, pools, first allocations), then measure the peak from here: writing 5 to clear_refs resets
    // VmHWM to the current RSS (Linux ≥ 4.0); where that is refused, the old peak stays a conservative baseline.
    let warm = client.post(tls.url("app.example.com", "/upload")).body(streamed_body(16)).send().await.unwrap();
    assert_eq!(warm.text().await.unwrap(), (16 * 65536).to_string());
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = memory_kib("VmRSS");

    let response =
        client.post(tls.url("app.example.com", "/upload")).body(streamed_body(SIZE / 65536)).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), SIZE.to_string());

    let growth_mib = memory_kib("VmHWM").saturating_sub(before) / 1024;
    // Client, proxy and upstream all live in this process (as do the tests running beside this one): streaming
    // keeps each hop to its flow-control window and buffers, a few MiB; buffering would cost the whole GiB.
    assert!(growth_mib < 128, "peak RSS grew by {growth_mib} MiB while 1024 MiB streamed through");
}

#[tokio::test]
async fn idle_h2_connections_close_but_not_while_a_request_is_in_flight() {
    let (a, slow) = upstream("a").await;
    let config = ProxyConfig { idle_timeout: Duration::from_millis(300), ..ProxyConfig::default() };
    let proxy = start_proxy(config, &[("app.example.com", vec![a])]).await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request =
        hyper::Request::get("http://app.example.com/slow").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let started = slow.started.notified();
    let response = tokio::spawn(sender.send_request(request));
    tokio::time::timeout(Duration::from_secs(10), started).await.unwrap();
    // Longer than the idle timeout, with the request in flight: the connection stays.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!connection.is_finished(), "a connection with a request in flight was closed as idle");
    slow.release.notify_one();
    let response = response.await.unwrap().unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"slow done");
    // Then idle: the proxy closes it (GOAWAY) after the idle timeout.
    tokio::time::timeout(Duration::from_secs(10), connection).await.unwrap().unwrap().unwrap();
}
