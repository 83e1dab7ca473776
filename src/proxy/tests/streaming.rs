//! Streaming bodies, protocol upgrades and graceful drain.

use std::convert::Infallible;

use http_body_util::Empty;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;

const BIG: u64 = 64 * 1024 * 1024;

#[tokio::test]
async fn large_upload_streams_through() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    // 1024 chunks of 64 KiB, produced lazily, with no Content-Length: the proxy must stream a chunked body.
    let chunks = futures::stream::iter(0..1024).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; 64 * 1024])));
    let response = client()
        .post(format!("http://{}/upload", proxy.addr))
        .header("host", "app.example.com")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), BIG.to_string());
}

#[tokio::test]
async fn large_download_streams_through() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let response = get_via(&client(), proxy.addr, "app.example.com", &format!("/download?bytes={BIG}")).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let (mut total, mut chunks) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len() as u64;
        chunks += 1;
    }
    assert_eq!(total, BIG);
    assert!(chunks > 1, "the body arrived in pieces, not as one buffer");
}

/// An upstream that answers any request carrying `Upgrade: echo` with 101, then echoes raw bytes.
async fn upgrade_echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|mut req: hyper::Request<hyper::body::Incoming>| async move {
                let mut response = hyper::Response::new(Empty::<Bytes>::new());
                if req.headers().get("upgrade").map(|v| v.as_bytes()) != Some(b"echo") {
                    *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
                    return Ok::<_, Infallible>(response);
                }
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let upgraded = TokioIo::new(on_upgrade.await.unwrap());
                    let (mut read, mut write) = tokio::io::split(upgraded);
                    tokio::io::copy(&mut read, &mut write).await.unwrap();
                });
                *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                response.headers_mut().insert("upgrade", HeaderValue::from_static("echo"));
                response.headers_mut().insert("connection", HeaderValue::from_static("upgrade"));
                Ok(response)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades());
        }
    });
    addr
}

#[tokio::test]
async fn upgrade_is_spliced_both_ways() {
    let upstream = upgrade_echo_upstream().await;
    let proxy = start_proxy(ProxyConfig::default(), &[("ws.example.com", vec![upstream])]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /socket HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    // Read the 101 head byte by byte so no tunnelled byte is consumed with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: echo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nx-request-id: "), "{head}");
    for message in [&b"hello"[..], b"through the tunnel", &[0u8, 255, 1, 254]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed)).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    assert_eq!(proxy.proxy.stats().upgrades, 1);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_connections() {
    let (a, slow) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let addr = proxy.addr;
    let started = slow.started.notified();
    let in_flight = tokio::spawn(async move {
        let response = get_via(&client(), addr, "app.example.com", "/slow").await;
        (response.status(), response.text().await.unwrap())
    });
    tokio::time::timeout(Duration::from_secs(10), started).await.unwrap();
    proxy.shutdown.cancel();
    wait_until("new connections to be refused", || async { TcpStream::connect(addr).await.is_err() }).await;
    assert!(!proxy.task.is_finished(), "serve waits for the request in flight");
    slow.release.notify_one();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slow done");
    tokio::time::timeout(Duration::from_secs(10), proxy.task).await.unwrap().unwrap().unwrap();
}
