//! The notification hook on real parts: a backup that really fails (its database container stopped behind Berth's
//! back) and a certificate that Pebble really refuses are POSTed, signed, to webhook receivers running in the test;
//! a receiver that fails the first attempt gets the retry; a lasting failure is announced once until a success.

use crate::databases::{setup_with, wait_backup};
use crate::support::{Cred, TestEnv};
use crate::tls::pebble::{Pebble, eventually};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use berth::config::WebhookUrl;
use bytes::Bytes;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Standard Webhooks secret (`whsec_` + base64 of the key).
pub(crate) const SECRET: &str = "whsec_dGVzdC1rZXktZm9yLWJlcnRoLW5vdGlmaWNhdGlvbnM=";

/// One request a receiver got, and what it answered.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    headers: HeaderMap,
    pub(crate) body: Bytes,
    answered: u16,
}

impl Hit {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

#[derive(Default)]
struct Inbox {
    hits: Vec<Hit>,
    fail_first: usize,
}

/// A webhook receiver on a loopback port that answers 503 to its first `fail_first` requests, then 200.
pub(crate) struct Receiver {
    pub(crate) url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Receiver {
        async fn hook(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let mut inbox = inbox.lock().unwrap();
            let status = if inbox.hits.len() < inbox.fail_first { 503 } else { 200 };
            inbox.hits.push(Hit { headers, body, answered: status });
            StatusCode::from_u16(status).unwrap()
        }
        let inbox = Arc::new(Mutex::new(Inbox { hits: Vec::new(), fail_first }));
        let app =
            axum::Router::new().route("/hooks/secret-path-token", axum::routing::post(hook)).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/secret-path-token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inbox }
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.inbox.lock().unwrap().hits.clone()
    }

    /// Waits until `n` requests were answered 200; returns those.
    pub(crate) async fn delivered(&self, n: usize, limit: Duration) -> Vec<Hit> {
        eventually(limit, &format!("{n} notifications at {}", self.url), || async {
            let ok: Vec<Hit> = self.hits().into_iter().filter(|h| h.answered == 200).collect();
            assert!(
                ok.len() <= n,
                "more notifications than expected: {:?}",
                ok.iter().map(Hit::json).collect::<Vec<_>>()
            );
            (ok.len() == n).then_some(ok)
        })
        .await
    }
}

/// Checks the Standard Webhooks signature the way a receiver would, with its own HMAC.
pub(crate) fn assert_signed(hit: &Hit) {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let (id, ts) = (hit.header("webhook-id"), hit.header("webhook-timestamp"));
    assert!(!id.is_empty(), "{:?}", hit.headers);
    let sent: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent).abs() < 300, "a fresh timestamp: {ts}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&hit.body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    assert_eq!(hit.header("webhook-signature"), expected);
    assert_eq!(hit.header("content-type"), "application/json");
    assert!(hit.header("user-agent").starts_with("Berth/"), "{:?}", hit.headers);
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) async fn audit_actions(env: &TestEnv, owner: &Cred, action: &str) -> Vec<Value> {
    let r = env.get("/api/workspaces/acme/audit?limit=50", owner).await.expect(200);
    r.data()["entries"].as_array().unwrap().clone().into_iter().filter(|e| e["action"] == json!(action)).collect()
}

async fn failed_backup(env: &TestEnv, owner: &Cred, db: &str) -> (String, Value) {
    let r = env.post(&format!("/api/workspaces/acme/databases/{db}/backups"), owner, json!({})).await.expect(202);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let b = wait_backup(env, owner, db, &id).await;
    (id, b)
}

#[tokio::test]
async fn a_failed_backup_is_posted_signed_to_every_webhook_retried_and_announced_once_per_streak() {
    let (steady, flaky) = (Receiver::start(0).await, Receiver::start(1).await);
    let urls = vec![WebhookUrl(steady.url.clone()), WebhookUrl(flaky.url.clone())];
    let (env, owner, _cleanup) = setup_with(move |c| {
        c.notify_webhooks = urls;
        c.notify_webhook_secret = berth::config::Secret(SECRET.into());
        c.public_url = "https://berth.example.com".into();
    })
    .await;
    let r =
        env.post("/api/workspaces/acme/databases", &owner, json!({"name": "cache", "type": "redis"})).await.expect(201);
    let db = r.data()["id"].as_str().unwrap().to_owned();
    let container = docker(&["ps", "-q", "--filter", &format!("label=berth.database={db}")]);
    assert!(!container.is_empty(), "the database's container runs");

    // The container dies behind Berth's back: the backup really fails.
    docker(&["stop", "-t", "1", &container]);
    let (first, b) = failed_backup(&env, &owner, &db).await;
    assert_eq!(b["status"], json!("failed"), "{b}");
    let error = b["error"].as_str().unwrap().to_owned();

    let hit = steady.delivered(1, Duration::from_secs(20)).await.remove(0);
    assert_signed(&hit);
    let p = hit.json();
    assert_eq!(p["event"], json!("backup.failed"), "{p}");
    assert_eq!(p["workspace"]["slug"], json!("acme"), "{p}");
    assert_eq!(p["subject"], json!("database cache"));
    assert_eq!(p["url"], json!(format!("https://berth.example.com/w/acme/databases/{db}")));
    assert_eq!(
        p["details"],
        json!({"database_id": db, "database_name": "cache", "backup_id": first, "trigger": "manual", "error": error})
    );
    assert!(p["message"].as_str().unwrap().contains(&error), "{p}");
    assert!(chrono::DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).is_ok(), "{p}");
    assert_eq!(hit.header("webhook-id"), p["id"].as_str().unwrap());

    // The receiver that answered 503 first got the same notification again, 2 s later, signed anew.
    let retried = flaky.delivered(1, Duration::from_secs(20)).await.remove(0);
    let attempts = flaky.hits();
    assert_eq!(attempts.iter().map(|h| h.answered).collect::<Vec<_>>(), [503, 200]);
    assert_eq!(attempts[0].header("webhook-id"), attempts[1].header("webhook-id"), "one id across retries");
    assert_eq!(retried.body, hit.body);
    assert_signed(&retried);
    let waited = retried.header("webhook-timestamp").parse::<i64>().unwrap()
        - attempts[0].header("webhook-timestamp").parse::<i64>().unwrap();
    assert!((1..=4).contains(&waited), "retried after about 2 s, not {waited} s");

    // It is in the workspace's audit log, by Berth.
    let audit = audit_actions(&env, &owner, "backup.failed").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!((audit[0]["actor"].clone(), audit[0]["target"].clone()), (json!("Berth"), json!("database cache")));
    assert_eq!(audit[0]["details"]["backup_id"], json!(first));

    // Failing again within the hour is the same streak: not announced. A success ends the streak, so the next
    // failure is announced (and, the queue being in order, nothing from the second failure came before it).
    let (second, b) = failed_backup(&env, &owner, &db).await;
    assert_eq!(b["status"], json!("failed"), "{b}");
    docker(&["start", &container]);
    let (_, b) = failed_backup(&env, &owner, &db).await;
    assert_eq!(b["status"], json!("succeeded"), "{b}");
    docker(&["stop", "-t", "1", &container]);
    let (third, b) = failed_backup(&env, &owner, &db).await;
    assert_eq!(b["status"], json!("failed"), "{b}");
    let hits = steady.delivered(2, Duration::from_secs(20)).await;
    let ids: Vec<Value> = hits.iter().map(|h| h.json()["details"]["backup_id"].clone()).collect();
    assert_eq!(ids, [json!(first), json!(third)], "not {second}");
}

#[tokio::test]
async fn a_certificate_pebble_refuses_is_posted_with_its_domain_error_and_next_attempt() {
    let receiver = Receiver::start(0).await;
    let mut pebble = Pebble::start(3600, 0).await;
    // Pebble validates HTTP-01 on a port nothing listens on any more: every challenge fails.
    drop(pebble.http.take());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = pebble.https.take().unwrap();
    let (directory, ca_root, dns) = (pebble.directory.clone(), pebble.ca_root.clone(), pebble.dns.clone());
    let url = WebhookUrl(receiver.url.clone());
    let env = TestEnv::start_with_listeners(
        move |c| {
            c.tls = berth::config::TlsMode::Acme;
            c.acme_directory = directory;
            c.acme_ca_root = Some(ca_root);
            c.public_ips = vec!["127.0.0.1".parse().unwrap()];
            c.dns_resolver = Some(dns.parse().unwrap());
            c.notify_webhooks = vec![url];
            c.notify_webhook_secret = berth::config::Secret(SECRET.into());
        },
        http,
        https,
    )
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let project = json!({"name": "web", "port": 8080, "build": {"builder": "dockerfile"}});
    env.post("/api/workspaces/acme/projects", &owner, project).await.expect(201);
    let r = env
        .post("/api/workspaces/acme/projects/web/domains", &owner, json!({"domain": "shop.example.test"}))
        .await
        .expect(201);
    assert_eq!(r.data()["status"], json!("verified"), "{}", r.body);

    let hit = receiver.delivered(1, Duration::from_secs(60)).await.remove(0);
    assert_signed(&hit);
    let p = hit.json();
    assert_eq!(p["event"], json!("certificate.failed"), "{p}");
    assert_eq!(p["workspace"]["slug"], json!("acme"));
    assert_eq!(p["subject"], json!("certificate shop.example.test"));
    assert!(p["url"].as_str().unwrap().ends_with("/w/acme/p/web/domains"), "{p}");
    let d = &p["details"];
    assert_eq!(d["domains"], json!(["shop.example.test"]), "{p}");
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("shop.example.test") && error.contains("http-01"), "{error}");
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now(), "the retry is planned: {p}");
    assert_eq!(d["valid_until"], json!(null), "no certificate is served meanwhile");
    assert!(p["message"].as_str().unwrap().contains("HTTPS does not work"), "{p}");

    // The domain shows the same failure, and the audit log has the notification.
    let r = env.get("/api/workspaces/acme/projects/web/domains", &owner).await.expect(200);
    assert!(r.body.to_string().contains("failing"), "{}", r.body);
    let audit = audit_actions(&env, &owner, "certificate.failed").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["details"]["domains"], json!(["shop.example.test"]));
}
