//! Routing, round robin, forwarding headers and route-table swaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::proxy::ProxyConfig;

#[tokio::test]
async fn requests_round_robin_across_replicas() {
    let (a, _) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a, b])]).await;
    let client = client();
    let mut names = Vec::new();
    for _ in 0..10 {
        let response = get_via(&client, proxy.addr, "app.example.com", "/").await;
        assert_eq!(response.status(), 200);
        names.push(response.json::<Echo>().await.unwrap().name);
    }
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "replicas alternate: {names:?}");
    }
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 5);
    assert_eq!(proxy.proxy.stats().requests, 10);
}

#[tokio::test]
async fn host_with_port_uppercase_and_trailing_dot_matches() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let response = get_via(&client(), proxy.addr, "APP.Example.COM.:8080", "/").await;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await.unwrap();
    assert_eq!(echo.name, "a");
    // `Host` is kept as the client sent it.
    assert_eq!(echo.headers["host"], "APP.Example.COM.:8080");
    assert_eq!(echo.headers["x-forwarded-host"], "APP.Example.COM.:8080");
}

#[tokio::test]
async fn absolute_form_request_routes_by_its_authority() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let (status, _, body) = raw_exchange(
        proxy.addr,
        "GET http://app.example.com/x HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"a\""), "{body}");
}

#[tokio::test]
async fn unknown_host_is_404_page() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let response = get_via(&client(), proxy.addr, "nope.example.com", "/").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("No app is deployed at nope.example.com"), "{page}");
    assert_eq!(proxy.proxy.stats().not_found, 1);
}

#[tokio::test]
async fn backend_without_upstreams_is_503_page() {
    let proxy = start_proxy(ProxyConfig::default(), &[("empty.example.com", vec![])]).await;
    let response = get_via(&client(), proxy.addr, "empty.example.com", "/").await;
    assert_eq!(response.status(), 503);
    let page = response.text().await.unwrap();
    assert!(page.contains("empty.example.com has no running replicas"), "{page}");
    assert_eq!(proxy.proxy.stats().unavailable, 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways_and_forwarding_headers_set() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let request = "GET /headers HTTP/1.1\r\n\
                   Host: app.example.com\r\n\
                   Connection: close, X-Secret\r\n\
                   X-Secret: do-not-forward\r\n\
                   Keep-Alive: timeout=5\r\n\
                   Proxy-Connection: keep-alive\r\n\
                   Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
                   TE: trailers\r\n\
                   Upgrade: h2c\r\n\
                   X-Forwarded-For: 203.0.113.7\r\n\
                   X-Forwarded-Proto: https\r\n\
                   X-Echo-Hop: 1\r\n\
                   X-Request-Id: abc-123\r\n\
                   X-Kept: yes\r\n\r\n";
    let (status, head, body) = raw_exchange(proxy.addr, request).await;
    assert_eq!(status, 200, "{body}");
    let echo: Echo = serde_json::from_str(&body).unwrap();
    for removed in
        ["x-secret", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade", "transfer-encoding"]
    {
        assert!(!echo.headers.contains_key(removed), "{removed} reached the upstream: {:?}", echo.headers);
    }
    assert_ne!(echo.headers.get("connection").map(String::as_str), Some("close, X-Secret"));
    assert_eq!(echo.headers["x-kept"], "yes");
    assert_eq!(echo.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(echo.headers["x-forwarded-proto"], "http");
    assert_eq!(echo.headers["x-forwarded-host"], "app.example.com");
    assert_eq!(echo.headers["host"], "app.example.com");
    assert_eq!(echo.headers["x-request-id"], "abc-123");
    // Response direction: what the upstream marked as hop-by-hop does not reach the client.
    assert!(head.contains("\r\nx-request-id: abc-123"), "{head}");
    for removed in ["x-upstream-private", "keep-alive", "proxy-authenticate", "connection: x-upstream-private"] {
        assert!(!head.contains(removed), "{removed} reached the client: {head}");
    }
}

#[tokio::test]
async fn request_id_is_generated_when_missing_or_invalid_and_returned() {
    let (a, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let client = client();
    for incoming in [None, Some("not valid because of spaces"), Some("")] {
        let mut request = client.get(format!("http://{}/", proxy.addr)).header("host", "app.example.com");
        if let Some(id) = incoming {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.unwrap();
        let returned = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let uuid = uuid::Uuid::parse_str(&returned).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        let echo: Echo = response.json().await.unwrap();
        assert_eq!(echo.headers["x-request-id"], returned);
    }
}

#[tokio::test]
async fn publish_swaps_routes_under_load_without_failures() {
    let (a, _) = upstream("a").await;
    let (b, _) = upstream("b").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let swapped = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = counter();
    let after_swap_from_b = counter();
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (swapped, stop, done, after_swap_from_b) =
            (swapped.clone(), stop.clone(), done.clone(), after_swap_from_b.clone());
        let addr = proxy.addr;
        loops.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started_after_swap = swapped.load(Ordering::SeqCst);
                let response = client.get(format!("http://{addr}/")).header("host", "app.example.com").send().await;
                match response {
                    Ok(response) if response.status() == 200 => {
                        let name = response.json::<Echo>().await.unwrap().name;
                        if started_after_swap {
                            assert_eq!(name, "b", "a request started after publish() reached the old backend");
                            after_swap_from_b.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    other => failures.push(format!("{other:?}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    wait_until("100 requests before the swap", || async { read(&done) >= 100 }).await;
    proxy.proxy.publish(table(&[("app.example.com", vec![b])]));
    swapped.store(true, Ordering::SeqCst);
    wait_until("100 answers from B after the swap", || async { read(&after_swap_from_b) >= 100 }).await;
    stop.store(true, Ordering::SeqCst);
    for handle in loops {
        let failures = handle.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
    assert_eq!(proxy.proxy.routes().get("app.example.com").unwrap().upstreams(), &[b]);
}
