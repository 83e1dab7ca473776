//! Custom domains against a real DNS server (pebble-challtestsrv's mock DNS, records set over its management
//! API): verification by A record and by the HTTP token through Berth's own listener, the reason while pending,
//! instance-wide uniqueness, permissions, and routing of a verified domain to a deployed app.

use crate::deploy::{Cleanup, base_image, commit, sh, wait_for, write_app};
use crate::support::{Cred, TestEnv};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PUBLIC_IP: &str = "203.0.113.7";

/// pebble-challtestsrv as a DNS server: every name resolves to 127.0.0.1 unless a record is set.
pub(crate) struct MockDns {
    child: Child,
    pub(crate) dns: u16,
    management: u16,
    http: reqwest::Client,
}

impl MockDns {
    pub(crate) async fn start() -> MockDns {
        let [dns, management] = crate::support::free_ports();
        let child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv must be installed (apt-get install pebble)");
        let dns = MockDns { child, dns, management, http: reqwest::Client::new() };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", management)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "challtestsrv did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dns
    }

    /// Makes `host` resolve to `ip` (A record).
    pub(crate) async fn set_a(&self, host: &str, ip: &str) {
        let url = format!("http://127.0.0.1:{}/add-a", self.management);
        let r = self.http.post(url).json(&json!({"host": format!("{host}."), "addresses": [ip]})).send().await;
        assert!(r.unwrap().status().is_success());
    }
}

impl Drop for MockDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn setup() -> (TestEnv, Cred, MockDns) {
    let dns = MockDns::start().await;
    let port = dns.dns;
    let env = TestEnv::start_with(move |c| {
        c.allow_local_repos = true;
        c.health_timeout_secs = 5;
        c.drain_secs = 0;
        c.public_ips = vec![PUBLIC_IP.parse().unwrap()];
        c.dns_resolver = Some(format!("127.0.0.1:{port}").parse().unwrap());
        // Plain HTTP only: a verified domain is active at once (tls.rs covers certificates).
        c.tls = berth::config::TlsMode::Off;
    })
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "web", "port": 8080})).await.expect(201);
    (env, owner, dns)
}

const DOMAINS: &str = "/api/workspaces/acme/projects/web/domains";

#[tokio::test]
async fn a_domain_is_pending_until_its_dns_points_here_and_says_why() {
    let (env, owner, dns) = setup().await;
    dns.set_a("away.example.test", "198.51.100.9").await;
    let r = env.post(DOMAINS, &owner, json!({"domain": "Away.Example.TEST."})).await.expect(201);
    let d = r.data();
    assert_eq!(d["domain"], json!("away.example.test"), "normalised");
    assert_eq!(d["status"], json!("pending_dns"), "{d}");
    assert_eq!(d["verification"]["found"], json!(["198.51.100.9"]), "{d}");
    assert_eq!(d["verification"]["expected"], json!([PUBLIC_IP]));
    let message = d["verification"]["message"].as_str().unwrap();
    assert!(message.contains("198.51.100.9") && message.contains(PUBLIC_IP), "{message}");
    assert!(d["verification"]["instructions"].as_str().unwrap().contains("A away.example.test 203.0.113.7"), "{d}");
    assert_eq!(d["tls"]["status"], json!("none"));
    let id = d["id"].as_str().unwrap().to_owned();

    // The record is fixed; verify picks it up.
    dns.set_a("away.example.test", PUBLIC_IP).await;
    let r = env.post(&format!("{DOMAINS}/{id}/verify"), &owner, json!({})).await.expect(200);
    assert_eq!(r.data()["status"], json!("active"), "verified, and with tls off served at once: {}", r.body);
    assert_eq!(r.data()["verification"]["method"], json!("dns"));
    assert!(r.data()["verified_at"].is_string());

    let list = env.get(DOMAINS, &owner).await.expect(200);
    assert_eq!(list.data()["domains"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_domain_that_reaches_berth_over_http_is_verified_by_its_token() {
    let (env, owner, _dns) = setup().await;
    // The mock DNS answers 127.0.0.1 (not the public address), where Berth's HTTP listener answers the token:
    // what a server behind NAT or a load balancer looks like.
    let r = env.post(DOMAINS, &owner, json!({"domain": "nat.example.test"})).await.expect(201);
    assert_eq!(r.data()["status"], json!("active"), "{}", r.body);
    assert_eq!(r.data()["verification"]["method"], json!("http"));
    // The token is only answered for its own domain.
    let path = r.data()["verification"]["http_path"].as_str().unwrap().to_owned();
    let token = r.data()["verification"]["token"].as_str().unwrap().to_owned();
    let get = |host: &'static str| {
        let (env, path) = (&env, path.clone());
        async move {
            let r = env.http.get(format!("{}{path}", env.apps)).header("Host", host).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("nat.example.test").await, (200, token.clone()));
    assert_ne!(get("other.example.test").await.0, 200);
}

#[tokio::test]
async fn bad_taken_and_foreign_domains_are_refused() {
    let (env, owner, _dns) = setup().await;
    for (bad, why) in [
        ("https://x.example.test/", "scheme"),
        ("nodot", "needs a dot"),
        ("web.acme.localhost", "under base_domain"),
        ("10.1.2.3", "IP address"),
    ] {
        let r = env.post(DOMAINS, &owner, json!({"domain": bad})).await.expect(400);
        assert!(r.error().contains(why), "{bad}: {}", r.error());
    }
    env.post(DOMAINS, &owner, json!({"domain": "shop.example.test"})).await.expect(201);
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "api", "port": 8080})).await.expect(201);
    let r = env
        .post("/api/workspaces/acme/projects/api/domains", &owner, json!({"domain": "shop.example.test"}))
        .await
        .expect(409);
    assert_eq!(r.code(), "domain_taken");

    // Another workspace cannot take it either, and does not learn which project has it.
    let (_, other) = env.user_with_key("eve@other.io", "other").await;
    env.post("/api/workspaces/other/projects", &other, json!({"name": "web", "port": 8080})).await.expect(201);
    let r = env
        .post("/api/workspaces/other/projects/web/domains", &other, json!({"domain": "shop.example.test"}))
        .await
        .expect(409);
    assert!(!r.error().contains("web") && !r.error().contains("acme"), "{}", r.error());
    // … nor see or touch acme's domains.
    let id = env.get(DOMAINS, &owner).await.data()["domains"][0]["id"].as_str().unwrap().to_owned();
    env.get(&format!("/api/workspaces/other/projects/web/domains/{id}"), &other).await.expect(404);
    env.delete(&format!("/api/workspaces/other/projects/web/domains/{id}"), &other).await.expect(404);

    // Members read and verify; only admins add, change and delete.
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.get(DOMAINS, &member).await.expect(200);
    env.post(&format!("{DOMAINS}/{id}/verify"), &member, json!({})).await.expect(200);
    env.post(DOMAINS, &member, json!({"domain": "more.example.test"})).await.expect(403);
    env.delete(&format!("{DOMAINS}/{id}"), &member).await.expect(403);
    let r = env.patch(&format!("{DOMAINS}/{id}"), &owner, json!({"https_redirect": false})).await.expect(200);
    assert_eq!(r.data()["https_redirect"], json!(false));
    env.delete(&format!("{DOMAINS}/{id}"), &owner).await.expect(200);
    env.get(&format!("{DOMAINS}/{id}"), &owner).await.expect(404);
    // Freed, it can be added elsewhere.
    env.post("/api/workspaces/acme/projects/api/domains", &owner, json!({"domain": "shop.example.test"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn a_verified_domain_routes_to_the_project_and_stops_when_deleted() {
    base_image();
    let (env, owner, dns) = setup().await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.data()["id"].as_str().unwrap().to_owned();
    let _cleanup = Cleanup(ws_id);
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    write_app(repo.path(), "custom domain ok", 8080);
    commit(repo.path(), "v1");
    let git = json!({"repo_url": format!("file://{}", repo.path().display())});
    env.put("/api/workspaces/acme/projects/web/git", &owner, git).await.expect(201);
    env.patch("/api/workspaces/acme/projects/web", &owner, json!({"build": {"builder": "dockerfile"}}))
        .await
        .expect(200);
    let r = env.post("/api/workspaces/acme/projects/web/deployments", &owner, json!({})).await.expect(202);
    let d = wait_for(&env, &owner, r.data()["id"].as_str().unwrap(), &["running", "failed"], Duration::from_secs(120))
        .await;
    assert_eq!(d["status"], json!("running"), "{d}");

    let fetch = |host: &'static str| {
        let env = &env;
        async move {
            let r = env.http.get(format!("{}/", env.apps)).header("Host", host).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(fetch("www.example.test").await.0, 404, "not routed before it is added");
    dns.set_a("www.example.test", "198.51.100.9").await;
    let r = env.post(DOMAINS, &owner, json!({"domain": "www.example.test"})).await.expect(201);
    assert_eq!(r.data()["status"], json!("pending_dns"));
    assert_eq!(fetch("www.example.test").await.0, 404, "a pending domain is not routed");
    dns.set_a("www.example.test", PUBLIC_IP).await;
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let r = env.post(&format!("{DOMAINS}/{id}/verify"), &owner, json!({})).await.expect(200);
    // No TLS in this test's config: a verified domain is served over HTTP at once.
    assert_eq!(r.data()["status"], json!("active"), "{}", r.body);
    assert_eq!(fetch("www.example.test").await, (200, "custom domain ok".to_owned()));
    assert_eq!(fetch("web.acme.localhost").await, (200, "custom domain ok".to_owned()), "the default domain too");

    env.delete(&format!("{DOMAINS}/{id}"), &owner).await.expect(200);
    assert_eq!(fetch("www.example.test").await.0, 404, "deleted means no longer routed");
}

#[tokio::test]
async fn the_console_domain_serves_the_api_through_the_proxy() {
    let env = TestEnv::start_with(|c| {
        c.tls = berth::config::TlsMode::Off;
        c.console_domain = Some("console.example.test".into());
    })
    .await;
    let r =
        env.http.get(format!("{}/api/health", env.apps)).header("Host", "console.example.test").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"]["status"], json!("ok"), "{body}");
    let r = env.http.get(format!("{}/api/health", env.apps)).header("Host", "elsewhere.example.test").send().await;
    assert_eq!(r.unwrap().status(), 404, "only the console domain reaches the API");
}

#[tokio::test]
async fn internal_tls_serves_verified_lan_domains_with_a_downloadable_root() {
    let dns = MockDns::start().await;
    let port = dns.dns;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_port = https.local_addr().unwrap().port();
    let env = TestEnv::start_with_listeners(
        move |c| {
            c.tls = berth::config::TlsMode::Internal;
            c.public_ips = vec!["127.0.0.1".parse().unwrap()];
            c.dns_resolver = Some(format!("127.0.0.1:{port}").parse().unwrap());
        },
        http,
        https,
    )
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "web", "port": 8080})).await.expect(201);
    env.get("/api/tls/internal-ca.pem", &Cred::None).await.expect(401);
    let (status, root) = env.get_text("/api/tls/internal-ca.pem", &owner).await;
    assert_eq!(status, 200);
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"), "{root}");

    let r = env.post(DOMAINS, &owner, json!({"domain": "nas.home.test"})).await.expect(201);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let d = crate::tls::pebble::eventually(Duration::from_secs(20), "the internal certificate", || {
        let (env, owner, id) = (&env, &owner, id.clone());
        async move {
            let d = env.get(&format!("{DOMAINS}/{id}"), owner).await.expect(200).data().clone();
            (d["status"] == json!("active")).then_some(d)
        }
    })
    .await;
    assert!(d["tls"]["issuer"].as_str().is_some_and(|i| i.contains("Berth")), "{d}");
    let config = crate::tls::pebble::client_config(&root);
    crate::tls::pebble::handshake(&config, https_port, "nas.home.test").await.expect("verifies against the root");
    assert!(crate::tls::pebble::handshake(&config, https_port, "other.home.test").await.is_err());
}
