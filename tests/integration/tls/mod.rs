//! TLS and certificates against a real Pebble: HTTP-01 through the whole app, TLS-ALPN-01, DNS-01 through the
//! hook provider (wildcard + apex), renewal under traffic, failure backoff, restarts; the Cloudflare provider
//! against a local stand-in of its API; the internal CA.

pub(crate) mod pebble;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::app::{self, Listeners};
use berth::config::{Config, TlsMode};
use berth::proxy::{ForwardedProto, Proxy, ProxyConfig};
use berth::tls::acme::AcmeSettings;
use berth::tls::{
    CertEvent, CertManager, CertResolver, CertStatus, Challenge, CloudflareProvider, DnsProvider, HookProvider,
    Http01Tokens, IssuerSettings, Status, TlsSettings, WantedCert,
};
use pebble::{Pebble, client_config, eventually, handshake};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The proxy serving plain HTTP and TLS like the app does, stopped on drop.
struct Edge {
    proxy: Arc<Proxy>,
    resolver: Arc<CertResolver>,
    cancel: CancellationToken,
    serving: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Edge {
    /// Stops and waits until the listeners are closed, so their ports can be bound again.
    async fn stop(mut self) {
        self.cancel.cancel();
        for task in self.serving.drain(..) {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn start_edge(http: TcpListener, https: TcpListener) -> Edge {
    let proxy = Proxy::new(ProxyConfig::default());
    let resolver = Arc::new(CertResolver::new());
    let mut config = berth::tls::server_config(resolver.clone()).unwrap();
    config.alpn_protocols.retain(|p| p.as_slice() != b"h2");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let cancel = CancellationToken::new();
    let plain = tokio::spawn(proxy.clone().serve(http, cancel.child_token(), Duration::from_secs(1)));
    let handshake = move |stream| {
        let acceptor = acceptor.clone();
        async move { berth::tls::accept(&acceptor, stream).await }
    };
    let tls = tokio::spawn(proxy.clone().serve_with(
        https,
        cancel.child_token(),
        Duration::from_secs(1),
        ForwardedProto::Https,
        handshake,
    ));
    Edge { proxy, resolver, cancel, serving: vec![plain, tls] }
}

fn acme_settings(pebble: &Pebble, tls_dir: PathBuf, dns: Option<Arc<dyn DnsProvider>>) -> TlsSettings {
    let acme = AcmeSettings {
        directory: pebble.directory.clone(),
        ca_root: Some(pebble.ca_root.clone()),
        email: Some("ops@example.test".into()),
    };
    let mut settings = TlsSettings::new(tls_dir, IssuerSettings::Acme(acme), dns);
    settings.check_interval = Duration::from_secs(1);
    settings.retry_base = Duration::from_secs(1);
    settings
}

/// Builds a manager on `edge` (answering HTTP-01 from `tokens`) and runs it until the edge stops.
async fn run_manager(settings: TlsSettings, edge: &Edge, tokens: Http01Tokens) -> Arc<CertManager> {
    let manager = CertManager::new(settings, edge.resolver.clone(), tokens).await.unwrap();
    tokio::spawn(manager.clone().run(edge.cancel.child_token()));
    manager
}

fn wanted(names: &[&str], challenge: Challenge) -> Vec<WantedCert> {
    vec![WantedCert { names: names.iter().map(|n| (*n).to_owned()).collect(), challenge }]
}

/// Waits until `name` is active; fails at once, with the CA's reason, if it fails instead.
async fn wait_active(manager: &CertManager, name: &str) -> CertStatus {
    eventually(Duration::from_secs(60), &format!("{name} to become active"), || async {
        let status = manager.status(name)?;
        assert_ne!(status.status, Status::Failing, "{name} failed: {:?}", status.last_error);
        (status.status == Status::Active).then_some(status)
    })
    .await
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn http01_serves_by_sni_and_a_restart_reuses_certificate_and_account() {
    let mut pebble = Pebble::start(3600, 0).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    let tls_dir = data.path().join("tls");
    let manager =
        run_manager(acme_settings(&pebble, tls_dir.clone(), None), &edge, edge.proxy.http01_tokens().clone()).await;
    manager.set_wanted(wanted(&["app.example.test", "www.app.example.test"], Challenge::Http01)).unwrap();
    let status = wait_active(&manager, "www.app.example.test").await;
    assert!(status.issuer.as_deref().unwrap_or("").contains("Pebble"), "{status:?}");
    assert!(status.last_error.is_none() && status.next_attempt.unwrap() < status.not_after.unwrap());
    assert!(edge.proxy.http01_tokens().is_empty(), "tokens are withdrawn after the order");

    let client = client_config(&pebble.issuing_root().await);
    let seen = handshake(&client, pebble.https_port, "app.example.test").await.unwrap();
    assert_eq!(handshake(&client, pebble.https_port, "www.app.example.test").await.unwrap().serial, seen.serial);
    let unknown = handshake(&client, pebble.https_port, "other.example.test").await;
    assert!(unknown.is_err(), "an unknown name must get no certificate: {unknown:?}");
    assert!(manager.status("other.example.test").is_none());

    let account_path = tls_dir.join("acme-account.json");
    assert_eq!(mode(&account_path), 0o600);
    assert_eq!(mode(&tls_dir.join("certs/app.example.test")), 0o700);
    for file in ["cert.pem", "key.pem", "meta.json"] {
        assert_eq!(mode(&tls_dir.join("certs/app.example.test").join(file)), 0o600, "{file}");
    }
    let account = std::fs::read(&account_path).unwrap();
    edge.stop().await;

    // A restart serves the stored certificate before anything is wanted, and reuses the account.
    let http = TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
    let https = TcpListener::bind(("127.0.0.1", pebble.https_port)).await.unwrap();
    let edge = start_edge(http, https);
    let manager =
        run_manager(acme_settings(&pebble, tls_dir.clone(), None), &edge, edge.proxy.http01_tokens().clone()).await;
    assert_eq!(handshake(&client, pebble.https_port, "app.example.test").await.unwrap().serial, seen.serial);
    let mut wanted_now = wanted(&["app.example.test", "www.app.example.test"], Challenge::Http01);
    wanted_now.extend(wanted(&["two.example.test"], Challenge::Http01));
    manager.set_wanted(wanted_now).unwrap();
    assert_eq!(manager.status("app.example.test").unwrap().status, Status::Active, "no re-issue after a restart");
    wait_active(&manager, "two.example.test").await;
    assert_eq!(handshake(&client, pebble.https_port, "app.example.test").await.unwrap().serial, seen.serial);
    handshake(&client, pebble.https_port, "two.example.test").await.unwrap();
    assert_eq!(std::fs::read(&account_path).unwrap(), account, "the account is reused, not registered again");

    // Names no longer wanted stop being served at once.
    manager.set_wanted(wanted(&["two.example.test"], Challenge::Http01)).unwrap();
    assert!(handshake(&client, pebble.https_port, "app.example.test").await.is_err());
    assert!(manager.status("app.example.test").is_none());
}

#[tokio::test]
async fn the_app_runs_the_tls_listener_with_a_certificate_manager_unless_tls_is_off() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(data.path().to_path_buf());
    config.tls = TlsMode::Internal;
    let listeners = Listeners {
        api: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        https: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
    };
    let handle = app::start(Arc::new(config.clone()), listeners).await.unwrap();
    let manager = handle.tls.clone().expect("a certificate manager runs with an HTTPS listener");
    let port = handle.https_addr.unwrap().port();
    let client = client_config(&manager.internal_root_pem().unwrap());
    assert!(handshake(&client, port, "nothing-wanted.lan").await.is_err(), "no certificate is issued on demand");
    assert!(data.path().join("tls/internal-ca/ca.key").exists());
    handle.shutdown().await.unwrap();

    config.tls = TlsMode::Off;
    config.http_listen = "127.0.0.1:0".parse().unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    assert!(listeners.https.is_none(), "tls = off binds no HTTPS listener");
    let handle = app::start(Arc::new(config), listeners).await.unwrap();
    assert!(handle.tls.is_none() && handle.https_addr.is_none());
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_alpn01_is_answered_by_the_tls_listener() {
    let mut pebble = Pebble::start(3600, 0).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    // HTTP-01 answers go nowhere: only the TLS listener can prove control.
    let manager = run_manager(acme_settings(&pebble, data.path().join("tls"), None), &edge, Http01Tokens::new()).await;
    manager.set_wanted(wanted(&["alpn.example.test"], Challenge::TlsAlpn01)).unwrap();
    wait_active(&manager, "alpn.example.test").await;
    let client = client_config(&pebble.issuing_root().await);
    handshake(&client, pebble.https_port, "alpn.example.test").await.unwrap();
    assert!(edge.proxy.http01_tokens().is_empty());
}

#[tokio::test]
async fn dns01_through_the_hook_covers_a_wildcard_and_its_apex() {
    let mut pebble = Pebble::start(3600, 0).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("hook.log");
    let script = data.path().join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\necho \"$1 $2\" >> {log}\ncase \"$1\" in\n\
             present) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" {url}/set-txt ;;\n\
             cleanup) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2\\\"}}\" {url}/clear-txt ;;\nesac\n",
            log = log.display(),
            url = pebble.challtest,
        ),
    )
    .unwrap();
    let hook: Arc<dyn DnsProvider> =
        Arc::new(HookProvider::new(format!("sh {}", script.display()), Duration::from_secs(10)));
    let settings = acme_settings(&pebble, data.path().join("tls"), Some(hook));
    let manager = run_manager(settings, &edge, Http01Tokens::new()).await;
    manager.set_wanted(wanted(&["*.wild.example.test", "wild.example.test"], Challenge::Dns01)).unwrap();
    wait_active(&manager, "*.wild.example.test").await;
    let client = client_config(&pebble.issuing_root().await);
    let apex = handshake(&client, pebble.https_port, "wild.example.test").await.unwrap();
    let sub = handshake(&client, pebble.https_port, "anything.wild.example.test").await.unwrap();
    assert_eq!(apex.serial, sub.serial);
    assert!(handshake(&client, pebble.https_port, "a.b.wild.example.test").await.is_err());
    let calls = std::fs::read_to_string(&log).unwrap();
    let count = |line: &str| calls.lines().filter(|l| *l == line).count();
    assert_eq!(count("present _acme-challenge.wild.example.test."), 2, "{calls}");
    assert_eq!(count("cleanup _acme-challenge.wild.example.test."), 2, "{calls}");
    assert!(data.path().join("tls/certs/_.wild.example.test/cert.pem").exists());
}

#[tokio::test]
async fn a_renewed_certificate_replaces_the_old_one_while_clients_keep_connecting() {
    // 60-second certificates renew 40 s in; Pebble reuses the valid authorizations, which must be skipped.
    let mut pebble = Pebble::start(60, 100).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    let settings = acme_settings(&pebble, data.path().join("tls"), None);
    let manager = run_manager(settings, &edge, edge.proxy.http01_tokens().clone()).await;
    let mut events = manager.subscribe();
    manager.set_wanted(wanted(&["renew.example.test"], Challenge::Http01)).unwrap();
    let first = wait_active(&manager, "renew.example.test").await;
    let client = client_config(&pebble.issuing_root().await);
    let before = handshake(&client, pebble.https_port, "renew.example.test").await.unwrap();
    let mut connections = 0;
    let after = eventually(Duration::from_secs(90), "the renewed certificate to be served", || {
        connections += 1;
        let client = client.clone();
        let before = before.serial.clone();
        async move {
            let seen = handshake(&client, pebble.https_port, "renew.example.test").await;
            let seen = seen.unwrap_or_else(|e| panic!("a client failed to connect during renewal: {e}"));
            (seen.serial != before).then_some(seen)
        }
    })
    .await;
    assert!(after.not_after > before.not_after, "{after:?} vs {before:?}");
    assert!(connections > 10, "clients kept connecting throughout ({connections})");
    let status = manager.status("renew.example.test").unwrap();
    assert_eq!(status.status, Status::Active);
    assert!(status.not_after > first.not_after);
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(event);
    }
    assert!(matches!(kinds.first(), Some(CertEvent::Issued { .. })), "{kinds:?}");
    assert!(kinds.iter().any(|e| matches!(e, CertEvent::Renewed { .. })), "{kinds:?}");
}

#[tokio::test]
async fn a_failing_challenge_reports_the_reason_and_backs_off() {
    let mut pebble = Pebble::start(3600, 0).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    // The manager's tokens are not the proxy's: validation requests get a 404.
    let manager = run_manager(acme_settings(&pebble, data.path().join("tls"), None), &edge, Http01Tokens::new()).await;
    let mut events = manager.subscribe();
    manager.set_wanted(wanted(&["broken.example.test"], Challenge::Http01)).unwrap();
    let mut delays = Vec::new();
    while delays.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv()).await.unwrap().unwrap();
        let CertEvent::Failed { error, next_attempt, .. } = event else { panic!("unexpected {event:?}") };
        assert!(error.contains("broken.example.test") && error.contains("http-01"), "{error}");
        delays.push((next_attempt - chrono::Utc::now()).num_milliseconds());
        let status = manager.status("broken.example.test").unwrap();
        assert_eq!(status.status, Status::Failing);
        assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
        assert_eq!(status.next_attempt, Some(next_attempt));
    }
    assert!(delays[1] > delays[0] + 500 && delays[2] > delays[1] + 1000, "the wait grows: {delays:?} ms");

    // Asking again skips the rest of the wait.
    let planned = manager.status("broken.example.test").unwrap().next_attempt.unwrap();
    assert!(manager.retry_now("broken.example.test"));
    let event = tokio::time::timeout(Duration::from_secs(60), events.recv()).await.unwrap().unwrap();
    assert!(matches!(event, CertEvent::Failed { .. }), "{event:?}");
    assert!(chrono::Utc::now() < planned, "retried before the planned {planned}");
    assert!(!manager.retry_now("not-wanted.example.test"));
    let client = client_config(&pebble.issuing_root().await);
    assert!(handshake(&client, pebble.https_port, "broken.example.test").await.is_err());
}

#[tokio::test]
async fn expiring_soon_is_raised_once_when_renewal_keeps_failing_near_expiry() {
    // 30-second certificates: renewal starts 20 s in, "expiring soon" is due 25 s in (a sixth of the lifetime left).
    let mut pebble = Pebble::start(30, 0).await;
    let edge = start_edge(pebble.http.take().unwrap(), pebble.https.take().unwrap());
    let data = tempfile::tempdir().unwrap();
    let settings = acme_settings(&pebble, data.path().join("tls"), None);
    let manager = CertManager::new(settings, edge.resolver.clone(), edge.proxy.http01_tokens().clone()).await.unwrap();
    let running = CancellationToken::new();
    tokio::spawn(manager.clone().run(running.child_token()));
    let _stop = running.drop_guard();
    let mut events = manager.subscribe();
    manager.set_wanted(wanted(&["expiring.example.test"], Challenge::Http01)).unwrap();
    let not_after = wait_active(&manager, "expiring.example.test").await.not_after.unwrap();

    // From now on nothing answers validation: every renewal fails, until the certificate has expired. The port
    // stays taken (each connection is closed unanswered): freed, another test's listener could get it and answer.
    edge.stop().await;
    let refusing = TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((connection, _)) = refusing.accept().await {
            drop(connection);
        }
    });
    let mut seen = Vec::new();
    loop {
        let left = (not_after + chrono::TimeDelta::seconds(2) - chrono::Utc::now()).to_std().unwrap_or_default();
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(event)) => seen.push((chrono::Utc::now(), event)),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => break,
        }
    }
    let warnings: Vec<usize> =
        (0..seen.len()).filter(|i| matches!(seen[*i].1, CertEvent::ExpiringSoon { .. })).collect();
    assert_eq!(warnings.len(), 1, "once, not at every check or failure: {seen:?}");
    let (at, warning) = &seen[warnings[0]];
    assert_eq!(*warning, CertEvent::ExpiringSoon { name: "expiring.example.test".into(), not_after });
    let first_failure = seen.iter().position(|(_, e)| matches!(e, CertEvent::Failed { .. })).unwrap();
    assert!(first_failure < warnings[0], "renewal failed before: {seen:?}");
    let left = (not_after - *at).num_milliseconds();
    assert!((0..=6_500).contains(&left), "raised near expiry ({left} ms left), not at the first failure");
    let failures = seen[..warnings[0]].iter().filter(|(_, e)| matches!(e, CertEvent::Failed { .. })).count();
    eprintln!("tls: expiring soon raised {left} ms before expiry, after {failures} failed renewals");
    assert!(
        seen[first_failure + 1..warnings[0]].iter().any(|(_, e)| matches!(e, CertEvent::Failed { .. })),
        "retries failed in between without a warning: {seen:?}"
    );
}

#[tokio::test]
async fn the_internal_ca_issues_certificates_that_verify_against_its_root() {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = https.local_addr().unwrap().port();
    let edge = start_edge(http, https);
    let data = tempfile::tempdir().unwrap();
    let settings = TlsSettings::new(data.path().join("tls"), IssuerSettings::Internal, None);
    let manager = run_manager(settings, &edge, edge.proxy.http01_tokens().clone()).await;
    manager.set_wanted(wanted(&["app.lan", "192.168.1.10"], Challenge::Http01)).unwrap();
    let status = wait_active(&manager, "app.lan").await;
    assert!(status.issuer.as_deref().unwrap_or("").starts_with("Berth internal CA"), "{status:?}");
    let days = (status.not_after.unwrap() - chrono::Utc::now()).num_days();
    assert!((89..=90).contains(&days), "{days}");
    let root = manager.internal_root_pem().unwrap();
    let client = client_config(&root);
    let by_name = handshake(&client, port, "app.lan").await.unwrap();
    let by_ip = handshake(&client, port, "192.168.1.10").await.unwrap();
    assert_eq!(by_name.serial, by_ip.serial, "clients connecting by IP send no SNI and get the IP certificate");
    assert!(handshake(&client, port, "other.lan").await.is_err());
    assert_eq!(mode(&data.path().join("tls/internal-ca/ca.key")), 0o600);

    // The same CA is used after a restart, so devices that trusted its root keep trusting it.
    let again = CertManager::new(
        TlsSettings::new(data.path().join("tls"), IssuerSettings::Internal, None),
        Arc::new(CertResolver::new()),
        Http01Tokens::new(),
    )
    .await
    .unwrap();
    assert_eq!(again.internal_root_pem().unwrap(), root);
}

#[tokio::test]
async fn the_hook_provider_reports_failures_with_stderr_and_times_out() {
    let failing = HookProvider::new("echo 'no such zone' >&2; exit 3; true", Duration::from_secs(5));
    let error = failing.present("_acme-challenge.a.test.", "v").await.unwrap_err();
    assert!(error.contains("no such zone") && error.contains('3'), "{error}");
    let slow = HookProvider::new("sleep 5;", Duration::from_millis(200));
    let error = slow.cleanup("_acme-challenge.a.test.", "v").await.unwrap_err();
    assert!(error.contains("did not finish"), "{error}");
}

#[tokio::test]
async fn the_cloudflare_provider_makes_the_documented_calls() {
    use axum::extract::{Path as UrlPath, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{delete, get, post};
    use serde_json::{Value, json};

    type Calls = Arc<Mutex<Vec<String>>>;
    fn authorized(headers: &HeaderMap) -> Result<(), (StatusCode, axum::Json<Value>)> {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer test-token") => Ok(()),
            _ => Err((
                StatusCode::FORBIDDEN,
                axum::Json(json!({"success": false, "errors": [{"code": 9109, "message": "Invalid access token"}]})),
            )),
        }
    }
    async fn zones(
        State(calls): State<Calls>,
        headers: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Result<axum::Json<Value>, (StatusCode, axum::Json<Value>)> {
        authorized(&headers)?;
        let name = q.get("name").cloned().unwrap_or_default();
        calls.lock().unwrap().push(format!("GET zones {name}"));
        let result = if name == "example.com" { json!([{"id": "zone1", "name": "example.com"}]) } else { json!([]) };
        Ok(axum::Json(json!({"success": true, "errors": [], "result": result})))
    }
    async fn create(
        State(calls): State<Calls>,
        UrlPath(zone): UrlPath<String>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Result<axum::Json<Value>, (StatusCode, axum::Json<Value>)> {
        authorized(&headers)?;
        calls.lock().unwrap().push(format!("POST {zone} {} {} {}", body["type"], body["name"], body["content"]));
        Ok(axum::Json(json!({"success": true, "errors": [], "result": {"id": "rec1"}})))
    }
    async fn remove(
        State(calls): State<Calls>,
        UrlPath((zone, id)): UrlPath<(String, String)>,
        headers: HeaderMap,
    ) -> Result<axum::Json<Value>, (StatusCode, axum::Json<Value>)> {
        authorized(&headers)?;
        calls.lock().unwrap().push(format!("DELETE {zone} {id}"));
        Ok(axum::Json(json!({"success": true, "errors": [], "result": {"id": id}})))
    }

    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route("/client/v4/zones", get(zones))
        .route("/client/v4/zones/{zone}/dns_records", post(create))
        .route("/client/v4/zones/{zone}/dns_records/{id}", delete(remove))
        .with_state(calls.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let provider = CloudflareProvider::new(&base, "test-token", Duration::ZERO).unwrap();
    provider.present("_acme-challenge.a.b.example.com.", "value1").await.unwrap();
    provider.cleanup("_acme-challenge.a.b.example.com.", "value1").await.unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            "GET zones a.b.example.com",
            "GET zones b.example.com",
            "GET zones example.com",
            "POST zone1 \"TXT\" \"_acme-challenge.a.b.example.com\" \"value1\"",
            "DELETE zone1 rec1",
        ]
    );

    let wrong = CloudflareProvider::new(&base, "wrong", Duration::ZERO).unwrap();
    let error = wrong.present("_acme-challenge.x.example.com.", "v").await.unwrap_err();
    assert!(error.contains("403") && error.contains("Invalid access token"), "{error}");
}
