//! Health, first-run setup, sign-in, sessions with CSRF, and persistence across restarts.

use crate::support::{Cred, TestEnv};
use serde_json::json;

#[tokio::test]
async fn health_reports_the_database_and_the_real_docker_engine() {
    let env = TestEnv::start().await;
    let r = env.get("/api/health", &Cred::None).await.expect(200);
    assert_eq!(r.data()["database"]["reachable"], json!(true));
    assert_eq!(
        r.data()["docker"]["reachable"],
        json!(true),
        "these tests need a running Docker engine at {} (start dockerd): {}",
        env.config.docker_host,
        r.body
    );
    assert!(r.data()["docker"]["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(r.data()["status"], json!("ok"));
    assert_eq!(r.data()["version"], json!(env!("CARGO_PKG_VERSION")));

    let down = TestEnv::start_with(|c| c.docker_host = "unix:///nonexistent/docker.sock".into()).await;
    let r = down.get("/api/health", &Cred::None).await.expect(200);
    assert_eq!(r.data()["status"], json!("degraded"));
    assert_eq!(r.data()["docker"]["reachable"], json!(false));
    assert!(r.data()["docker"]["error"].as_str().unwrap().contains("nonexistent"));
}

#[tokio::test]
async fn setup_creates_the_first_owner_once() {
    let env = TestEnv::start().await;
    let token = env.setup_token().expect("a fresh instance prints a setup token");
    let body = |t: &str, email: &str, pw: &str| json!({"token": t, "email": email, "password": pw, "workspace_name": "Acme Ops"});

    let r = env
        .post("/api/setup", &Cred::None, body("0".repeat(64).as_str(), "a@acme.io", "password123"))
        .await
        .expect(401);
    assert_eq!(r.code(), "invalid_setup_token");
    let r = env.post("/api/setup", &Cred::None, body(&token, "not-an-email", "password123")).await.expect(400);
    assert!(r.error().starts_with("email:"), "{}", r.error());
    let r = env.post("/api/setup", &Cred::None, body(&token, "a@acme.io", "short")).await.expect(400);
    assert!(r.error().starts_with("password:"), "{}", r.error());
    let r = env.post("/api/setup", &Cred::None, json!({"token": token, "email": "a@acme.io"})).await.expect(400);
    assert!(r.error().contains("password"), "{}", r.error());

    let r = env.post("/api/setup", &Cred::None, body(&token, "a@acme.io", "password123")).await.expect(201);
    assert_eq!(r.data()["workspace"]["slug"], json!("acme-ops"));
    assert_eq!(r.data()["user"]["is_instance_admin"], json!(true));
    let cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(r.body.to_string().find("password").is_none(), "no password or hash is ever returned: {}", r.body);

    // The token is spent.
    env.post("/api/setup", &Cred::None, body(&token, "b@acme.io", "password123")).await.expect(401);
    let env = env.restart().await;
    assert!(env.setup_token().is_none(), "no setup token once a user exists");
    env.login("a@acme.io", "password123").await;
}

#[tokio::test]
async fn sessions_sign_in_need_csrf_for_changes_and_end_at_logout() {
    let env = TestEnv::start().await;
    env.user_with_key("ops@acme.io", "acme").await;

    let r = env
        .post("/api/auth/login", &Cred::None, json!({"email": "ops@acme.io", "password": "wrong-password"}))
        .await
        .expect(401);
    assert_eq!(r.code(), "invalid_credentials");
    let r = env
        .post("/api/auth/login", &Cred::None, json!({"email": "nobody@acme.io", "password": "wrong-password"}))
        .await
        .expect(401);
    assert_eq!(r.error(), "email or password is wrong", "unknown emails look like wrong passwords");

    let session = env.login("OPS@acme.io", "password123").await;
    let me = env.get("/api/auth/me", &session).await.expect(200);
    assert_eq!(me.data()["user"]["email"], json!("ops@acme.io"));
    assert_eq!(me.data()["memberships"][0]["workspace"]["slug"], json!("acme"));
    assert_eq!(me.data()["memberships"][0]["role"], json!("owner"));
    assert_eq!(me.data()["auth"]["method"], json!("session"));

    let Cred::Session { cookie, .. } = &session else { unreachable!() };
    let no_csrf = Cred::Session { cookie: cookie.clone(), csrf: None };
    let wrong_csrf = Cred::Session { cookie: cookie.clone(), csrf: Some("0".repeat(64)) };
    env.post("/api/workspaces", &no_csrf, json!({"name": "Evil"})).await.expect(403);
    env.post("/api/workspaces", &wrong_csrf, json!({"name": "Evil"})).await.expect(403);
    env.get("/api/workspaces", &no_csrf).await.expect(200);
    env.post("/api/workspaces", &session, json!({"name": "Second"})).await.expect(201);

    env.post("/api/auth/logout", &session, json!({})).await.expect(200);
    let r = env.get("/api/auth/me", &session).await.expect(401);
    assert_eq!(r.code(), "session_expired");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_email() {
    let env = TestEnv::start_with(|c| c.login_attempts_per_minute = 3).await;
    env.user_with_key("ops@acme.io", "acme").await;
    for _ in 0..3 {
        env.post("/api/auth/login", &Cred::None, json!({"email": "ops@acme.io", "password": "nope-nope"}))
            .await
            .expect(401);
    }
    let r = env
        .post("/api/auth/login", &Cred::None, json!({"email": "ops@acme.io", "password": "password123"}))
        .await
        .expect(429);
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Another account is not affected.
    env.user_with_key("dev@acme.io", "acme-dev").await;
    env.login("dev@acme.io", "password123").await;
}

#[tokio::test]
async fn protected_routes_refuse_missing_and_bad_credentials() {
    let env = TestEnv::start().await;
    for path in ["/api/workspaces", "/api/auth/me", "/api/workspaces/acme/members", "/api/workspaces/acme/audit"] {
        let r = env.get(path, &Cred::None).await.expect(401);
        assert_eq!(r.code(), "missing_credentials", "{path}");
    }
    let r = env.get("/api/workspaces", &Cred::Key("berth_sk_nothex".into())).await.expect(401);
    assert_eq!(r.code(), "invalid_api_key");
    let r = env.get("/api/workspaces", &Cred::Key(format!("berth_sk_{}", "a".repeat(40)))).await.expect(401);
    assert_eq!(r.code(), "invalid_api_key");
    env.get("/api/workspaces", &Cred::Session { cookie: "f".repeat(64), csrf: None }).await.expect(401);
    let r = env.get("/api/nope", &Cred::None).await.expect(404);
    assert_eq!(r.code(), "route_not_found");
}

#[tokio::test]
async fn restarting_on_the_same_data_dir_keeps_everything() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "new@acme.io"})).await.expect(201);
    let member_id = env.add_member(&owner, "acme", "dev@acme.io", "admin").await;
    env.patch("/api/workspaces/acme", &owner, json!({"name": "Acme Renamed"})).await.expect(200);
    let before_audit = env.get("/api/workspaces/acme/audit?limit=50", &owner).await.expect(200).data()["total"].clone();

    let env = env.restart().await;
    let ws = env.get("/api/workspaces/acme", &owner).await.expect(200);
    assert_eq!(ws.data()["name"], json!("Acme Renamed"));
    let members = env.get("/api/workspaces/acme/members", &owner).await.expect(200);
    assert!(
        members.data()["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == json!(member_id) && m["role"] == json!("admin"))
    );
    let inv = env.get("/api/workspaces/acme/invitations", &owner).await.expect(200);
    assert_eq!(inv.data()["total"], json!(2));
    let audit = env.get("/api/workspaces/acme/audit?limit=50", &owner).await.expect(200);
    assert_eq!(audit.data()["total"], before_audit);
    env.login("dev@acme.io", "password123").await;
}
