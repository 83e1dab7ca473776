//! Dashboard benchmark (`cargo bench --bench dashboard`): a Berth booted in-process with a workspace of 100
//! projects (variables, members, invitations, API keys and their audit trail), each main page fetched over
//! loopback with a signed-in session. Prints p50/p99 of the server's answer time per page against the 10 ms
//! target, and each page's total transfer (HTML + CSS + JS, uncompressed) against 100 KB.
//!
//! The time is measured at the client, so it includes the HTTP round trip: an upper bound of render time.
//! It prints measurements and targets; it does not fail on a noisy machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berth::app::{self, Listeners};
use berth::config::Config;
use berth::services::{NewKey, ProjectInput, Secrecy, VarTarget};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECTS: usize = 100;
const TARGET_P99: Duration = Duration::from_millis(10);
const TARGET_BYTES: usize = 100 * 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BERTH_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(dir.path().to_path_buf());
    config.api_requests_per_minute = 0;
    let listeners = Listeners {
        api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        https: None,
    };
    let handle = app::start(Arc::new(config), listeners).await.unwrap();
    let base = format!("http://{}", handle.api_addr);
    let s = handle.services.clone();

    s.create_user("bench@berth.test", "password123", Some("acme")).await.unwrap();
    let owner = s.cli_actor("bench@berth.test").await.unwrap();
    for i in 0..PROJECTS {
        let input = ProjectInput { name: Some(format!("project {i:03}")), port: Some(8080), ..Default::default() };
        s.create_project(&owner, "acme", input).await.unwrap();
    }
    let target = VarTarget { project: Some("project-050".into()), environment: None };
    for i in 0..30 {
        let secrecy = Secrecy { is_secret: i % 3 == 0, build_secret: false };
        s.create_variable(&owner, "acme", target.clone(), &format!("KEY_{i}"), "some value", secrecy).await.unwrap();
    }
    for i in 0..10 {
        s.create_invitation(&owner, "acme", &format!("person{i}@berth.test"), berth::domain::Role::Member)
            .await
            .unwrap();
        s.create_api_key(&owner, "acme", NewKey { name: format!("key {i}"), expires_in_days: Some(30), role: None })
            .await
            .unwrap();
    }
    let login = s.login("bench@berth.test", "password123", None).await.unwrap();
    let cookie = format!("berth_session={}", login.session_token);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

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
    handle.shutdown().await.unwrap();
}
