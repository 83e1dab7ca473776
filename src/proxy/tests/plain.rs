//! The fast path for plain HTTP/1.1 requests ([`crate::proxy::plain`]) against hyper's server, which serves every
//! other request: the same request must reach the replica, and the client get the same bytes back, whichever
//! path took it. A `Connection` option naming a field (`x-hop`) is what sends a request to hyper here: the fast
//! path takes no request whose `Connection` names anything but `close` or `keep-alive`.

use super::*;

/// Sends `request` on a new connection and reads until the proxy closes it (the request says `close`); returns
/// the raw answer with the `date` line's value blanked (it may differ by a second between two answers).
async fn answer(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    text.split("\r\n")
        .map(|line| if line.starts_with("date: ") { "date: (now)" } else { line })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A replica that answers each request head by its path with fixed bytes, once per connection, then closes; the
/// request heads it got go to `heads`.
async fn scripted_upstream(heads: Arc<std::sync::Mutex<Vec<String>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let head = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    }
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                heads.lock().unwrap().push(head);
                let answer: &[u8] = match path.as_str() {
                    "/length" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: 1\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\nhello",
                    "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires\r\n\r\n3\r\nabc\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nExpires: never\r\n\r\n",
                    "/until-close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of this until the end",
                    "/no-content" => b"HTTP/1.1 204 No Content\r\nX-Thing: 2\r\n\r\n",
                    "/not-modified" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n",
                    "/empty" => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                    "/early-hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                    "/odd-status" => b"HTTP/1.1 599 Whatever\r\nContent-Length: 1\r\n\r\nx",
                    _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_fast_path_answers_byte_for_byte_what_hyper_answers() {
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let replica = scripted_upstream(heads).await;
    let dead = dead_addr().await;
    let proxy =
        start_proxy(ProxyConfig::default(), &[("app.example.com", vec![replica]), ("dead.example.com", vec![dead])])
            .await;
    let cases = [
        ("GET", "app.example.com", "/length"),
        ("GET", "app.example.com", "/chunked"),
        ("GET", "app.example.com", "/until-close"),
        ("GET", "app.example.com", "/no-content"),
        ("GET", "app.example.com", "/not-modified"),
        ("GET", "app.example.com", "/empty"),
        ("GET", "app.example.com", "/early-hints"),
        ("GET", "app.example.com", "/odd-status"),
        ("HEAD", "app.example.com", "/length"),
        ("HEAD", "app.example.com", "/chunked"),
        ("DELETE", "app.example.com", "/other"),
        ("GET", "dead.example.com", "/"),
        ("HEAD", "dead.example.com", "/"),
    ];
    for (method, host, path) in cases {
        let fast = answer(
            proxy.addr,
            &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: same-id\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let hyper = answer(
            proxy.addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: same-id\r\nConnection: close, x-hop\r\n\
                 X-Hop: 1\r\n\r\n"
            ),
        )
        .await;
        assert!(fast.starts_with("HTTP/1.1 "), "{method} {host}{path}: {fast}");
        assert_eq!(fast, hyper, "{method} {host}{path}: the fast path's answer, then hyper's");
    }
}

#[tokio::test]
async fn the_replica_gets_the_same_request_from_both_paths() {
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let replica = scripted_upstream(heads.clone()).await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![replica])]).await;
    for method in ["GET", "POST", "OPTIONS"] {
        let fields = "Host: App.Example.com:80\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2 \r\n\
                      X-Forwarded-Proto: gopher\r\nX-Request-Id: id-1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
                      Proxy-Authorization: Basic eA==\r\nAccept: */*\r\nCookie: a=1\r\nUser-Agent: test/1\r\n";
        answer(proxy.addr, &format!("{method} /p?q=1 HTTP/1.1\r\n{fields}Connection: close\r\n\r\n")).await;
        answer(
            proxy.addr,
            &format!("{method} /p?q=1 HTTP/1.1\r\n{fields}X-Hop: 1\r\nConnection: close, X-Hop\r\n\r\n"),
        )
        .await;
        let seen = std::mem::take(&mut *heads.lock().unwrap());
        let sorted = |head: &str| {
            let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(seen.len(), 2, "{method}: {seen:?}");
        assert!(seen[0].contains("x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"), "{}", seen[0]);
        assert!(seen[0].contains("x-forwarded-proto: http\r\n"), "{}", seen[0]);
        assert!(!seen[0].to_ascii_lowercase().contains("keep-alive"), "{}", seen[0]);
        assert_eq!(sorted(&seen[0]), sorted(&seen[1]), "{method}: the fast path's request, then hyper's");
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_hyper_takes_over_mid_connection() {
    let (replica, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![replica])]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // Two plain GETs, an upload (hyper's) and one more GET after it, in one write; the last asks to close.
    let upload = "x".repeat(3000);
    let requests = format!(
        "GET /one HTTP/1.1\r\nHost: app.example.com\r\nX-Request-Id: r1\r\n\r\n\
         GET /two HTTP/1.1\r\nHost: app.example.com\r\nX-Request-Id: r2\r\n\r\n\
         POST /upload HTTP/1.1\r\nHost: app.example.com\r\nX-Request-Id: r3\r\nContent-Length: 3000\r\n\r\n{upload}\
         GET /four HTTP/1.1\r\nHost: app.example.com\r\nX-Request-Id: r4\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let ids: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("x-request-id: ")).collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"], "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
    assert!(text.contains("\r\n\r\n3000"), "the upload's answer counts its bytes: {text}");
    assert!(text.ends_with('}'), "the last answer is the echo of /four: {text}");
}

#[tokio::test]
async fn an_idle_plain_connection_closes_and_a_client_closing_first_is_fine() {
    let (replica, _) = upstream("a").await;
    let config = ProxyConfig { idle_timeout: Duration::from_millis(300), ..ProxyConfig::default() };
    let proxy = start_proxy(config, &[("app.example.com", vec![replica])]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "closed for being idle, not at once");
    // A client that goes away between requests ends its connection without an error the next client would see.
    let mut gone = TcpStream::connect(proxy.addr).await.unwrap();
    gone.write_all(b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n").await.unwrap();
    drop(gone);
    let response = get_via(&client(), proxy.addr, "app.example.com", "/").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn what_the_fast_path_does_not_parse_is_still_answered_by_hyper() {
    let (replica, _) = upstream("a").await;
    let proxy = start_proxy(ProxyConfig::default(), &[("app.example.com", vec![replica])]).await;
    // Not HTTP: hyper's 400, as before the fast path.
    let (status, _, _) = raw_exchange(proxy.addr, "GET /a b c\r\nHost: app.example.com\r\n\r\n").await;
    assert_eq!(status, 400);
    let (status, _, _) =
        raw_exchange(proxy.addr, "GET / HTTP/1.1\r\nHost: app.example.com\r\nBad Name: x\r\n\r\n").await;
    assert_eq!(status, 400);
    // A head longer than the fast path waits for, and more fields than it parses: served all the same.
    let long = format!(
        "GET / HTTP/1.1\r\nHost: app.example.com\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    let (status, _, body) = raw_exchange(proxy.addr, &long).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-long"), "the long field reached the replica: {body}");
    let many: String = (0..80).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: app.example.com\r\n{many}Connection: close\r\n\r\n");
    let (status, _, body) = raw_exchange(proxy.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-field-79"), "{body}");
}
