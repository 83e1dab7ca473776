//! The proxy's HTTP/1.1 client against replicas that speak the protocol in its less common shapes: raw sockets
//! that write exactly the bytes a test gives them.

use super::*;

/// A replica that answers every request head it reads (bodies are not read) with `answer(head)`, on each
/// connection until `close_after` requests, then closes without saying so. Counts connections in the returned
/// counter.
async fn raw_upstream(answer: fn(&str) -> Vec<u8>, close_after: usize) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = counter();
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for _ in 0..close_after {
                    let head = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                            buf.drain(..end + 4);
                            break head;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    if stream.write_all(&answer(&head)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_replica_closing_kept_alive_connections_unannounced_loses_no_request() {
    // Each connection carries one response without `Connection: close`, then the replica hangs up: every pooled
    // connection the proxy keeps is dead by the next request.
    let (a, connections) = raw_upstream(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(), 1).await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let client = client();
    for i in 0..50 {
        let response = get_via(&client, proxy.addr, "app.example.com", &format!("/{i}")).await;
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert!(read(&connections) >= 50);
}

#[tokio::test]
async fn a_request_meeting_a_replica_hanging_up_at_that_moment_is_resent_only_when_idempotent() {
    // The keep-alive race: the replica answers once, then closes the connection the instant the next request
    // arrives, without answering it. GET (idempotent, no body) is resent on a new connection; POST is not.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = listener.local_addr().unwrap();
    let handled = counter();
    let seen = handled.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                if stream.read(&mut chunk).await.unwrap_or(0) == 0 {
                    return;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                let _ = stream.read(&mut chunk).await;
            });
        }
    });
    let proxy =
        start_proxy(ProxyConfig { workers: 1, ..ProxyConfig::default() }, &[("app.example.com", vec![a])]).await;
    let client = client();
    for i in 0..10 {
        let response = get_via(&client, proxy.addr, "app.example.com", &format!("/{i}")).await;
        assert_eq!(response.status(), 200, "GET {i}");
    }
    assert_eq!(read(&handled), 10);
    let post = client.post(format!("http://{}/", proxy.addr)).header("host", "app.example.com").send().await.unwrap();
    assert_eq!(post.status(), 502, "a POST the replica may have seen is not sent twice");
}

#[tokio::test]
async fn kept_alive_connections_are_reused_and_head_responses_have_no_body() {
    let (a, connections) = raw_upstream(
        |head| {
            if head.starts_with("HEAD ") {
                // The length of the GET's body; none follows.
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: 1\r\n\r\nhello".to_vec()
            }
        },
        usize::MAX,
    )
    .await;
    let proxy =
        start_proxy(ProxyConfig { workers: 1, ..ProxyConfig::default() }, &[("app.example.com", vec![a])]).await;
    let client = client();
    for i in 0..20 {
        let head =
            client.head(format!("http://{}/{i}", proxy.addr)).header("host", "app.example.com").send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], "1000");
        let get = get_via(&client, proxy.addr, "app.example.com", "/").await;
        assert_eq!(get.headers()["x-thing"], "1");
        assert_eq!(get.text().await.unwrap(), "hello");
    }
    assert_eq!(read(&connections), 1, "one kept-alive connection carried all 40 exchanges");
}

#[tokio::test]
async fn interim_responses_are_skipped_and_a_body_until_close_arrives_whole() {
    let (a, _) = raw_upstream(
        |head| {
            if head.starts_with("GET /hints") {
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                    .to_vec()
            } else {
                // No length, no chunking: the body ends when the connection does.
                let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
                answer.extend(std::iter::repeat_n(b'x', 100_000));
                answer
            }
        },
        1,
    )
    .await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let hints = get_via(&client(), proxy.addr, "app.example.com", "/hints").await;
    assert_eq!(hints.status(), 200);
    assert_eq!(hints.text().await.unwrap(), "final");
    let until_close = get_via(&client(), proxy.addr, "app.example.com", "/all").await;
    assert_eq!(until_close.status(), 200);
    assert_eq!(until_close.bytes().await.unwrap().len(), 100_000);
}

#[tokio::test]
async fn a_chunked_response_with_trailers_and_odd_chunk_sizes_is_relayed_intact() {
    let (a, _) = raw_upstream(
        |_| {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n1\r\nd\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 1\r\n\r\n"
                .to_vec()
        },
        usize::MAX,
    )
    .await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let client = client();
    for _ in 0..3 {
        let response = get_via(&client, proxy.addr, "app.example.com", "/").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("transfer-encoding").is_none_or(|v| v == "chunked"));
        assert_eq!(response.text().await.unwrap(), "abcd0123456789abcdef");
    }
}

#[tokio::test]
async fn a_replica_answering_an_upload_before_reading_it_is_heard() {
    // The replica refuses a 64 MiB upload from its head alone and hangs up without reading the body.
    let (a, _) = raw_upstream(
        |_| b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n".to_vec(),
        1,
    )
    .await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![a])]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 67108864\r\n\r\n")
        .await
        .unwrap();
    // Some of the body, then wait for the answer (a client that keeps sending may see its writes refused).
    stream.write_all(&vec![b'u'; 256 * 1024]).await.unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            raw.extend_from_slice(&chunk[..n]);
            if n == 0 || raw.windows(8).any(|w| w == b"too big\n") {
                break String::from_utf8_lossy(&raw).into_owned();
            }
        }
    })
    .await
    .expect("the proxy relayed the early answer instead of waiting for the whole upload");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.ends_with("too big\n"), "{answer}");
}

#[tokio::test]
async fn a_replica_speaking_something_else_is_a_502() {
    let (a, _) = raw_upstream(|_| b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(), 1).await;
    let (b, _) = raw_upstream(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nok".to_vec(), 1).await;
    let proxy = start_proxy(ProxyConfig::default(), &[("a.example.com", vec![a]), ("b.example.com", vec![b])]).await;
    for host in ["a.example.com", "b.example.com"] {
        let response = get_via(&client(), proxy.addr, host, "/").await;
        assert_eq!(response.status(), 502, "{host}");
    }
}
