//! Idle client connections over HTTP/1.1: kept while a request is in flight, closed once idle, and dropped when a
//! request head never completes (the HTTP/2 case is in `http2.rs`).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Slow, TestProxy, start_proxy, upstream};
use crate::proxy::ProxyConfig;

const IDLE: Duration = Duration::from_millis(300);

/// A proxy with an idle timeout of [`IDLE`] in front of one upstream for `app.example.com`.
async fn idle_proxy() -> (TestProxy, std::sync::Arc<Slow>) {
    let (a, slow) = upstream("a").await;
    let config = ProxyConfig { idle_timeout: IDLE, ..ProxyConfig::default() };
    (start_proxy(config, &[("app.example.com", vec![a])]).await, slow)
}

/// Reads until the proxy closes the connection (or resets it); what came before.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_closes_but_not_while_a_request_is_in_flight() {
    let (proxy, slow) = idle_proxy().await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let started = slow.started.notified();
    stream.write_all(b"GET /slow HTTP/1.1\r\nHost: app.example.com\r\n\r\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), started).await.unwrap();
    // Three idle timeouts with the request in flight: nothing arrives, and the connection is not closed.
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(IDLE * 3, stream.read(&mut buf)).await;
    assert!(early.is_err(), "the proxy answered or closed while the request was in flight: {early:?}");
    slow.release.notify_one();
    let released = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut stream)).await.unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("slow done"), "the whole response came before the close: {text}");
    // Then idle: closed after the idle timeout (not at once, and not much later).
    let closed_after = released.elapsed();
    assert!(closed_after >= IDLE - Duration::from_millis(50), "closed {closed_after:?} after the response");
    assert!(closed_after < Duration::from_secs(5), "closed only {closed_after:?} after the response");
}

#[tokio::test]
async fn a_request_head_that_never_completes_does_not_hold_the_connection() {
    let (proxy, _) = idle_proxy().await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let opened = Instant::now();
    // A byte every 50 ms: the head keeps growing, but it never ends.
    let trickle = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: app.example.com\r\nX-Slow: ".iter().chain([b'a'; 1000].iter()) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await;
    let closed_after = opened.elapsed();
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the proxy kept the connection or answered: {read:?}");
    // The idle timeout, then at most as long again to close.
    assert!(closed_after >= IDLE, "closed after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(3), "closed after {closed_after:?}");
    trickle.abort();
}
