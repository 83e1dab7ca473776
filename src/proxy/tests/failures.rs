//! Upstream failures: ejection and retry, and the 502/503/504 mapping.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::HeaderValue;

use super::*;
use crate::proxy::{ProxyError, error_response};

#[tokio::test]
async fn dead_replica_is_ejected_and_requests_retry_on_the_live_one() {
    let dead = dead_addr().await;
    let (live, _) = upstream("live").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![dead, live])]).await;
    let client = client();
    for _ in 0..10 {
        let response = get_via(&client, proxy.addr, "app.example.com", "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Echo>().await.unwrap().name, "live");
    }
    let stats = proxy.proxy.stats();
    // The dead replica was tried once, then skipped while ejected.
    assert_eq!(stats.connect_failures, 1, "{stats:?}");
    assert_eq!(stats.bad_gateway, 0);
    assert!(proxy.proxy.routes().get("app.example.com").unwrap().is_ejected(dead));
}

#[tokio::test]
async fn ejected_replica_is_tried_again_after_eject_for() {
    let dead = dead_addr().await;
    let (live, _) = upstream("live").await;
    let config = ProxyConfig { eject_for: Duration::from_millis(200), ..ProxyConfig::default() };
    let proxy = start_proxy(config, &[("app.example.com", vec![dead, live])]).await;
    let client = client();
    assert_eq!(get_via(&client, proxy.addr, "app.example.com", "/").await.status(), 200);
    let backend = proxy.proxy.routes().get("app.example.com").unwrap().clone();
    wait_until("the ejection to expire", || async { !backend.is_ejected(dead) }).await;
    // Two requests: one of them starts at the dead replica again, fails over, and re-ejects it.
    for _ in 0..2 {
        assert_eq!(get_via(&client, proxy.addr, "app.example.com", "/").await.status(), 200);
    }
    assert_eq!(proxy.proxy.stats().connect_failures, 2);
}

#[tokio::test]
async fn all_replicas_dead_is_502_page() {
    let dead = [dead_addr().await, dead_addr().await];
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", dead.to_vec())]).await;
    let response = get_via(&client(), proxy.addr, "app.example.com", "/").await;
    assert_eq!(response.status(), 502);
    let page = response.text().await.unwrap();
    assert!(page.contains("could not be reached"), "{page}");
    let stats = proxy.proxy.stats();
    assert_eq!((stats.bad_gateway, stats.connect_failures), (1, 2), "{stats:?}");
}

#[tokio::test]
async fn all_dead_with_a_request_body_is_still_retried_then_502() {
    let dead = [dead_addr().await, dead_addr().await];
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", dead.to_vec())]).await;
    let response = client()
        .post(format!("http://{}/upload", proxy.addr))
        .header("host", "app.example.com")
        .body(vec![7u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(proxy.proxy.stats().connect_failures, 2);
}

#[tokio::test]
async fn body_is_reclaimed_after_a_connect_failure() {
    let dead = dead_addr().await;
    let (live, _) = upstream("live").await;
    // The dead replica comes first in the round robin, so the body must survive the failed attempt.
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![dead, live])]).await;
    let response = client()
        .post(format!("http://{}/upload", proxy.addr))
        .header("host", "app.example.com")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "100000");
    assert_eq!(proxy.proxy.stats().connect_failures, 1);
}

#[tokio::test]
async fn upstream_that_never_answers_is_504_page() {
    let silent = silent_upstream().await;
    let config = ProxyConfig { response_timeout: Duration::from_secs(1), ..ProxyConfig::default() };
    let proxy = start_proxy(config, &[("app.example.com", vec![silent])]).await;
    let started = Instant::now();
    let response = get_via(&client(), proxy.addr, "app.example.com", "/").await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let page = response.text().await.unwrap();
    assert!(page.contains("did not answer in time"), "{page}");
    assert_eq!(proxy.proxy.stats().gateway_timeout, 1);
}

#[tokio::test]
async fn a_replica_switching_protocols_unasked_is_502_and_nothing_is_spliced() {
    // A replica that answers every request, upgrade or not, with a 101 and then talks on.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rogue = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let answer =
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: rogue\r\n\r\nrogue bytes";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![rogue])]).await;
    let (status, head, body) =
        raw_exchange(proxy.addr, "GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 502, "{head}");
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!body.contains("rogue bytes"), "the replica's bytes never reach the client: {body}");
    let stats = proxy.proxy.stats();
    assert_eq!((stats.bad_gateway, stats.upgrades), (1, 0), "{stats:?}");
}

#[tokio::test]
async fn connect_request_is_400() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "CONNECT app.example.com:443 HTTP/1.1\r\nHost: app.example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
}

/// The one mapping function, one case per status.
async fn page(error: ProxyError) -> (u16, String, hyper::HeaderMap) {
    let response = error_response(&error, &HeaderValue::from_static("req-1"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), headers)
}

#[tokio::test]
async fn error_response_maps_unknown_host_to_404() {
    let (status, body, headers) = page(ProxyError::UnknownHost { host: "x.example".into() }).await;
    assert_eq!(status, 404);
    assert!(body.contains("No app is deployed at x.example"));
    assert!(body.contains("req-1"));
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn error_response_maps_no_replicas_to_503() {
    let (status, body, _) = page(ProxyError::NoReplicas { host: "x.example".into() }).await;
    assert_eq!(status, 503);
    assert!(body.contains("x.example has no running replicas"));
}

#[tokio::test]
async fn error_response_maps_bad_gateway_to_502_without_leaking_the_cause() {
    let (status, body, _) =
        page(ProxyError::BadGateway { host: "x.example".into(), source: "secret internal detail".into() }).await;
    assert_eq!(status, 502);
    assert!(!body.contains("secret internal detail"));
}

#[tokio::test]
async fn error_response_maps_timeout_to_504() {
    let (status, _, _) = page(ProxyError::Timeout { host: "x.example".into() }).await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn error_response_maps_bad_request_to_400_and_escapes_html() {
    let (status, _, _) = page(ProxyError::BadRequest { reason: "does not name a host" }).await;
    assert_eq!(status, 400);
    let (_, body, _) = page(ProxyError::UnknownHost { host: "<script>".into() }).await;
    assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"));
}
