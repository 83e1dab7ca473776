//! Dashboard benchmark (`cargo bench --bench dashboard`): the release binary (`berth serve`) with a workspace of
//! 100 projects (variables, members, invitations, API keys and their audit trail, all made through the API), each
//! main page fetched over loopback with a signed-in session. Prints p50/p99 of the server's answer time per page
//! against the 10 ms target, and each page's total transfer (HTML + CSS + JS, uncompressed) against 100 KB.
//!
//! The time is measured at the client, so it includes the HTTP round trip: an upper bound of render time.
//! It prints measurements and targets; it does not fail on a noisy machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod ports;
use admin::{BIN, seed_user_and_key};
use ports::free_ports;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROJECTS: usize = 100;
const TARGET_P99: Duration = Duration::from_millis(10);
const TARGET_BYTES: usize = 100 * 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `berth serve`, stopped (SIGTERM) on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BERTH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let key = seed_user_and_key(data, "bench@berth.test", "password123", "acme");

    let listen = format!("127.0.0.1:{}", free_ports::<1>()[0]);
    let _server = Server(
        Command::new(BIN)
            .args(["serve", "--data-dir", data, "--listen", &listen, "--http-listen", "127.0.0.1:0"])
            .env("BERTH_API_REQUESTS_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let started = Instant::now();
    while !http.get(format!("{base}/api/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "berth serve did not become healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let api = format!("{base}/api/workspaces/acme");
    let post = |path: String, body: serde_json::Value| {
        let request = http.post(format!("{api}{path}")).header("X-API-Key", &key).json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED, "{}", r.text().await.unwrap());
        }
    };
    for i in 0..PROJECTS {
        post("/projects".into(), json!({"name": format!("project {i:03}"), "port": 8080})).await;
    }
    for i in 0..30 {
        let var = json!({"key": format!("KEY_{i}"), "value": "some value", "is_secret": i % 3 == 0});
        post("/projects/project-050/env".into(), var).await;
    }
    for i in 0..10 {
        post("/invitations".into(), json!({"email": format!("person{i}@berth.test"), "role": "member"})).await;
        post("/api-keys".into(), json!({"name": format!("key {i}"), "expires_in_days": 30})).await;
    }
    let login = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "bench@berth.test", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success(), "login: {}", login.status());
    let set_cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let pages = [
        ("projects", "/w/acme"),
        ("new project", "/w/acme/new"),
        ("overview", "/w/acme/p/project-050"),
        ("deployments", "/w/acme/p/project-050/deployments"),
        ("runtime logs", "/w/acme/p/project-050/logs"),
        ("env vars", "/w/acme/p/project-050/env"),
        ("domains", "/w/acme/p/project-050/domains"),
        ("settings", "/w/acme/p/project-050/settings"),
        ("members", "/w/acme/settings"),
        ("api keys", "/w/acme/api-keys"),
        ("audit log", "/w/acme/audit"),
        ("databases", "/w/acme/databases"),
        ("login", "/login"),
    ];
    let first =
        http.get(format!("{base}/w/acme")).header("Cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let asset_bytes = {
        let mut total = 0;
        for kind in [".css\"", ".js\""] {
            let end = first.find(kind).unwrap() + kind.len() - 1;
            let start = first[..end].rfind("/static/").unwrap();
            let url = &first[start..end];
            total += http.get(format!("{base}{url}")).send().await.unwrap().bytes().await.unwrap().len();
        }
        total
    };

    println!("dashboard: {PROJECTS} projects, {rounds} requests per page, CSS+JS {asset_bytes} bytes");
    println!("{:<14} {:>9} {:>9} {:>8} {:>10} {:>8}", "page", "p50", "p99", "10 ms", "transfer", "100 KB");
    let mut worst = Duration::ZERO;
    for (name, path) in &pages {
        let url = format!("{base}{path}");
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            // The sign-in page is for people not signed in (a session is sent on).
            let req = http.get(&url);
            let req = if *path == "/login" { req } else { req.header("Cookie", &cookie) };
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await.unwrap().len();
            times.push(start.elapsed());
        }
        times.sort();
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        worst = worst.max(p99);
        let transfer = bytes + asset_bytes;
        println!(
            "{name:<14} {:>7.2}ms {:>7.2}ms {:>8} {:>8} B {:>8}",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            if p99 <= TARGET_P99 { "ok" } else { "OVER" },
            transfer,
            if transfer <= TARGET_BYTES { "ok" } else { "OVER" },
        );
    }
    println!("dashboard: worst p99 {:.2} ms (target 10 ms)", worst.as_secs_f64() * 1000.0);
}
