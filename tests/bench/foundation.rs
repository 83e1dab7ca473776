//! Foundation benchmark (run with `cargo bench --bench foundation`; release build of the real binary):
//! - idle RSS of `berth serve` (target ≤ 25 MiB),
//! - startup to healthy on an existing data dir (target ≤ 100 ms, median of 10),
//! - `GET /api/workspaces` with an API key under 32 connections via wrk (target ≥ 15,000 req/s on 2 cores),
//!   with nginx serving a static file of the same size under the same load as the in-run reference.
//!
//! It prints measurements, targets and ratios; it does not fail on a noisy machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod ports;
use admin::{BIN, seed_user_and_key};
use ports::free_ports;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One raw HTTP/1.1 GET; the status code, or None when nothing answers.
fn http_get(addr: &str, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key.map(|k| format!("X-API-Key: {k}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn serve(data: &str, listen: &str) -> Child {
    Command::new(BIN)
        .args(["serve", "--data-dir", data, "--listen", listen, "--http-listen", "127.0.0.1:0"])
        .env("BERTH_API_REQUESTS_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_healthy(listen: &str, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if http_get(listen, "/api/health", None).is_some_and(|(s, _)| s == 200) {
            return start.elapsed();
        }
        assert!(start.elapsed() < deadline, "berth did not become healthy");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Runs wrk and returns requests per second, or None when wrk is not installed.
fn wrk(url: &str, key: Option<&str>, seconds: u64) -> Option<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency"]);
    if let Some(k) = key {
        cmd.args(["-H", &format!("X-API-Key: {k}")]);
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let non2xx = text.lines().find(|l| l.contains("Non-2xx")).map(str::to_owned);
    if let Some(line) = non2xx {
        println!("  warning: {}", line.trim());
    }
    text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())
}

/// Starts nginx serving `body` on a free port; returns the child and the URL, or None without nginx.
fn nginx_reference(dir: &std::path::Path, body: &str) -> Option<(Child, String)> {
    let [port] = free_ports();
    std::fs::create_dir_all(dir.join("www")).ok()?;
    std::fs::write(dir.join("www/workspaces.json"), body).ok()?;
    let conf = format!(
        "worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{ worker_connections 1024; }}
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
                server {{ listen 127.0.0.1:{port}; root {d}/www; location / {{ default_type application/json; }} }} }}",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).ok()?;
    let child =
        Command::new("nginx").args(["-c", dir.join("nginx.conf").to_str()?]).stderr(Stdio::null()).spawn().ok()?;
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while http_get(&addr, "/workspaces.json", None).is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((child, format!("http://{addr}/workspaces.json")))
}

fn main() {
    let seconds: u64 = std::env::var("BERTH_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_ports::<1>()[0]);

    let key = seed_user_and_key(data, "bench@example.com", "benchmark-pw", "bench");

    println!(
        "berth foundation benchmark ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    // Startup to healthy on an existing data dir.
    let mut startups = Vec::new();
    for _ in 0..10 {
        let child = serve(data, &listen);
        startups.push(wait_healthy(&listen, Duration::from_secs(10)));
        stop(child);
    }
    startups.sort();
    let median = startups[startups.len() / 2];
    println!(
        "startup to healthy (existing data dir): median {:.1} ms, max {:.1} ms  [target ≤ 100 ms: {}]",
        ms(median),
        ms(*startups.last().unwrap()),
        verdict(ms(median) <= 100.0)
    );

    // Idle RSS.
    let child = serve(data, &listen);
    wait_healthy(&listen, Duration::from_secs(10));
    for _ in 0..20 {
        http_get(&listen, "/api/workspaces", Some(&key));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(child.id());
    println!(
        "idle RSS of berth serve: {:.1} MiB  [target ≤ 25 MiB: {}]",
        idle as f64 / 1024.0,
        verdict(idle <= 25 * 1024)
    );

    // Throughput with an API key, against nginx serving the same bytes.
    let (status, body) = http_get(&listen, "/api/workspaces", Some(&key)).unwrap();
    assert_eq!(status, 200, "{body}");
    match wrk(&format!("http://{listen}/api/workspaces"), Some(&key), seconds) {
        None => println!("GET /api/workspaces throughput: wrk not installed (apt-get install wrk)"),
        Some(rps) => {
            let loaded = rss_kib(child.id());
            println!(
                "GET /api/workspaces with an API key, 32 connections: {rps:.0} req/s  [target ≥ 15,000: {}]",
                verdict(rps >= 15_000.0)
            );
            println!("RSS after load: {:.1} MiB", loaded as f64 / 1024.0);
            match nginx_reference(&dir.path().join("nginx"), &body) {
                Some((mut nginx, url)) => {
                    if let Some(reference) = wrk(&url, None, seconds) {
                        println!(
                            "reference: nginx serving the same {} bytes as a static file: {reference:.0} req/s; ratio berth/nginx = {:.2}",
                            body.len(),
                            rps / reference
                        );
                    }
                    let _ = nginx.kill();
                    let _ = nginx.wait();
                }
                None => println!("reference: nginx not available (apt-get install nginx-light)"),
            }
        }
    }
    stop(child);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
