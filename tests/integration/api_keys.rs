//! API keys: shown once, stored hashed, all three ways of presenting them, immediate revocation, expiry,
//! role caps and the per-key rate limit.

use crate::support::{Cred, TestEnv};
use serde_json::json;

#[tokio::test]
async fn a_key_is_shown_exactly_once_and_stored_only_as_a_digest() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let r = env
        .post(
            "/api/workspaces/acme/api-keys",
            &owner,
            json!({"name": "CI deploys", "expires_in_days": 90, "role": "member"}),
        )
        .await
        .expect(201);
    let key = r.data()["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("berth_sk_")
            && key.len() == 49
            && key[9..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{key}"
    );
    assert_eq!(r.data()["key_prefix"], json!(&key[..13]));
    assert_eq!(r.data()["role"], json!("member"));
    assert!(r.data()["expires_at"].as_str().is_some());

    let list = env.get("/api/workspaces/acme/api-keys", &owner).await.expect(200);
    assert_eq!(list.data()["total"], json!(2));
    assert!(!list.body.to_string().contains(&key), "listing never shows a key");
    assert!(list.data()["api_keys"].as_array().unwrap().iter().all(|k| k.get("key").is_none()));
    let audit = env.get("/api/workspaces/acme/audit", &owner).await.expect(200);
    assert!(!audit.body.to_string().contains(&key[13..]), "the audit log holds the prefix only");

    let raw = std::fs::read(env.config.database_path()).unwrap();
    let wal = std::fs::read(env.config.data_dir.join("berth.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the database never holds a key in clear");
    }

    let r =
        env.post("/api/workspaces/acme/api-keys", &owner, json!({"name": "x", "expires_in_days": 0})).await.expect(400);
    assert!(r.error().starts_with("expires_in_days:"));
    env.post("/api/workspaces/acme/api-keys", &owner, json!({"name": "x", "expires_in_days": -1})).await.expect(400);
    env.post("/api/workspaces/acme/api-keys", &owner, json!({"name": ""})).await.expect(400);
}

#[tokio::test]
async fn keys_work_as_header_bearer_and_query_and_revocation_is_immediate() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let r = env.post("/api/workspaces/acme/api-keys", &owner, json!({"name": "short-lived"})).await.expect(201);
    let (key, id) = (r.data()["key"].as_str().unwrap().to_owned(), r.data()["id"].as_str().unwrap().to_owned());

    env.get("/api/workspaces", &Cred::Key(key.clone())).await.expect(200);
    env.get("/api/workspaces", &Cred::Bearer(key.clone())).await.expect(200);
    env.get(&format!("/api/workspaces?api_key={key}"), &Cred::None).await.expect(200);
    let me = env.get("/api/auth/me", &Cred::Bearer(key.clone())).await.expect(200);
    assert_eq!(me.data()["auth"]["method"], json!("api_key"));
    assert_eq!(me.data()["auth"]["workspace"], json!("acme"));

    env.delete(&format!("/api/workspaces/acme/api-keys/{id}"), &owner).await.expect(200);
    let r = env.get("/api/workspaces", &Cred::Key(key.clone())).await.expect(401);
    assert_eq!(r.code(), "api_key_revoked");
    env.delete(&format!("/api/workspaces/acme/api-keys/{id}"), &owner).await.expect(404);
    assert_eq!(env.get("/api/workspaces/acme/api-keys", &owner).await.expect(200).data()["total"], json!(1));
}

#[tokio::test]
async fn expired_keys_get_401_and_use_is_recorded() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let r = env
        .post("/api/workspaces/acme/api-keys", &owner, json!({"name": "old", "expires_in_days": 1}))
        .await
        .expect(201);
    let (key, id) =
        (Cred::Key(r.data()["key"].as_str().unwrap().to_owned()), r.data()["id"].as_str().unwrap().to_owned());
    env.get("/api/workspaces", &key).await.expect(200);

    let db = rusqlite::Connection::open(env.config.database_path()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let used: Option<String> =
            db.query_row("SELECT last_used_at FROM api_keys WHERE id = ?1", [&id], |r| r.get(0)).unwrap();
        if used.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "last_used_at was never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let listed = env.get("/api/workspaces/acme/api-keys", &owner).await.expect(200);
    assert!(
        listed.data()["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == json!(id) && k["last_used_at"].is_string())
    );

    db.execute("UPDATE api_keys SET expires_at = '2020-01-01T00:00:00Z' WHERE id = ?1", [&id]).unwrap();
    let r = env.get("/api/workspaces", &key).await.expect(401);
    assert_eq!(r.code(), "api_key_expired");
}

#[tokio::test]
async fn a_key_never_has_more_power_than_its_creator() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let admin_id = env.add_member(&owner, "acme", "admin@acme.io", "admin").await;
    let admin = env.login("admin@acme.io", "password123").await;
    let r = env.post("/api/workspaces/acme/api-keys", &admin, json!({"name": "a"})).await.expect(201);
    assert_eq!(r.data()["role"], json!("admin"), "defaults to the creator's role");
    let admin_key = Cred::Key(r.data()["key"].as_str().unwrap().to_owned());
    env.post("/api/workspaces/acme/api-keys", &admin_key, json!({"name": "b", "role": "owner"})).await.expect(403);

    // Demoting the creator demotes their keys with them.
    env.patch(&format!("/api/workspaces/acme/members/{admin_id}"), &owner, json!({"role": "member"})).await.expect(200);
    env.get("/api/workspaces/acme/api-keys", &admin_key).await.expect(403);
    let ws = env.get("/api/workspaces/acme", &admin_key).await.expect(200);
    assert_eq!(ws.data()["role"], json!("member"));
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let env = TestEnv::start_with(|c| c.api_requests_per_minute = 5).await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let other = env.key_with_role(&owner, "acme", "member").await;
    for _ in 0..4 {
        env.get("/api/workspaces", &owner).await.expect(200);
    }
    let r = env.get("/api/workspaces", &owner).await.expect(429);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    env.get("/api/workspaces", &other).await.expect(200);
}
