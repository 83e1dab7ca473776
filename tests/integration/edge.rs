//! The whole edge at once, on real parts: a deployed app, a custom domain verified against real DNS (Pebble's
//! challtestsrv), a certificate issued by real Pebble over HTTP-01 through Berth's own listener, served by SNI on
//! Berth's HTTPS listener, the HTTP → HTTPS redirect, an unknown name refused at the handshake, and a redeploy under
//! continuous HTTPS requests without a single failure.

use crate::deploy::{Cleanup, base_image, commit, sh, wait_for, write_app};
use crate::support::TestEnv;
use crate::tls::pebble::{Pebble, client_config, eventually, handshake};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const DOMAINS: &str = "/api/workspaces/acme/projects/web/domains";

#[tokio::test]
async fn a_custom_domain_gets_a_certificate_and_redeploys_over_https_lose_nothing() {
    base_image();
    let mut pebble = Pebble::start(3600, 0).await;
    let (http, https) = (pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let (http_port, https_port) = (pebble.http_port, pebble.https_port);
    let (directory, ca_root, dns) = (pebble.directory.clone(), pebble.ca_root.clone(), pebble.dns.clone());
    let env = TestEnv::start_with_listeners(
        move |c| {
            c.allow_local_repos = true;
            // The default: this test's deploys must succeed, also on a loaded machine.
            c.health_timeout_secs = 30;
            c.drain_secs = 1;
            c.tls = berth::config::TlsMode::Acme;
            c.acme_directory = directory;
            c.acme_ca_root = Some(ca_root);
            c.public_ips = vec!["127.0.0.1".parse().unwrap()];
            c.dns_resolver = Some(dns.parse().unwrap());
            c.hsts_max_age = 600;
        },
        http,
        https,
    )
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.data()["id"].as_str().unwrap().to_owned();
    let _cleanup = Cleanup(ws_id);

    // A deployed app.
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    write_app(repo.path(), "v1", 8080);
    commit(repo.path(), "v1");
    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "web", "port": 8080, "build": {"builder": "dockerfile"}}),
    )
    .await
    .expect(201);
    let git = json!({"repo_url": format!("file://{}", repo.path().display())});
    env.put("/api/workspaces/acme/projects/web/git", &owner, git).await.expect(201);
    let deploy = || async {
        let r = env.post("/api/workspaces/acme/projects/web/deployments", &owner, json!({})).await.expect(202);
        let id = r.data()["id"].as_str().unwrap().to_owned();
        wait_for(&env, &owner, &id, &["running", "failed"], Duration::from_secs(120)).await
    };
    let first = deploy().await;
    assert_eq!(first["status"], json!("running"), "the first deployment: {first}");

    // The domain: verified by DNS (every name resolves to 127.0.0.1 here), then a certificate from Pebble.
    let r = env.post(DOMAINS, &owner, json!({"domain": "shop.example.test"})).await.expect(201);
    assert_eq!(r.data()["status"], json!("verified"), "{}", r.body);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let d = eventually(Duration::from_secs(60), "the certificate to be active", || {
        let (env, owner, id) = (&env, &owner, id.clone());
        async move {
            let d = env.get(&format!("{DOMAINS}/{id}"), owner).await.expect(200).data().clone();
            (d["status"] == json!("active")).then_some(d)
        }
    })
    .await;
    assert_eq!(d["tls"]["status"], json!("active"), "{d}");
    assert!(d["tls"]["issuer"].as_str().is_some_and(|i| i.contains("Pebble")), "{d}");
    assert!(d["tls"]["not_after"].is_string() && d["tls"]["last_error"].is_null(), "{d}");

    // Served by SNI, verifying against Pebble's root.
    let root = pebble.issuing_root().await;
    let config = client_config(&root);
    handshake(&config, https_port, "shop.example.test").await.expect("the certificate verifies");
    assert!(handshake(&config, https_port, "unknown.example.test").await.is_err(), "no certificate for other names");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve("shop.example.test", ([127, 0, 0, 1], https_port).into())
        .build()
        .unwrap();
    let url = format!("https://shop.example.test:{https_port}/");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(r.text().await.unwrap(), "v1");

    // Plain HTTP now redirects (308) to HTTPS, keeping the path (routes follow the certificate's issue event).
    let r = eventually(Duration::from_secs(10), "the HTTPS redirect", || async {
        let r = env
            .http
            .get(format!("http://127.0.0.1:{http_port}/a/b?c=1"))
            .header("Host", "shop.example.test")
            .send()
            .await
            .unwrap();
        (r.status() == 308).then_some(r)
    })
    .await;
    assert_eq!(r.headers()["location"], format!("https://shop.example.test:{https_port}/a/b?c=1").as_str());

    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=600", "HSTS once the certificate is active");

    // A redeploy of a new version while a client keeps requesting over HTTPS: no request fails.
    write_app(repo.path(), "v2", 8080);
    commit(repo.path(), "v2");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, client, url) = (stop.clone(), ok.clone(), failed.clone(), client.clone(), url.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let redeploy = deploy().await;
    assert_eq!(redeploy["status"], json!("running"), "the redeploy under load: {redeploy}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "v2");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 50, "the client kept requesting: {ok}");
    assert_eq!(failed, 0, "{failed} of {} HTTPS requests failed across the swap", ok + failed);
}
