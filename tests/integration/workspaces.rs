//! Workspaces: CRUD, validation, pagination, isolation, roles, concurrency, body limits and the audit log.

use crate::support::{Cred, TestEnv};
use serde_json::json;

#[tokio::test]
async fn workspaces_are_created_listed_renamed_and_deleted() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let session = env.login("ops@acme.io", "password123").await;

    let r = env.post("/api/workspaces", &session, json!({"name": "Side Project!"})).await.expect(201);
    assert_eq!(r.data()["slug"], json!("side-project"));
    assert_eq!(r.data()["role"], json!("owner"));
    assert!(r.data()["namespace"].as_str().unwrap().starts_with("side-project-"));
    assert!(r.data()["created_at"].as_str().unwrap().ends_with('Z'));
    env.post("/api/workspaces", &session, json!({"name": "Third", "slug": "third"})).await.expect(201);

    let all = env.get("/api/workspaces", &session).await.expect(200);
    assert_eq!(all.data()["total"], json!(3));
    assert_eq!((all.data()["page"].clone(), all.data()["limit"].clone()), (json!(1), json!(20)));
    let p2 = env.get("/api/workspaces?page=2&limit=2", &session).await.expect(200);
    assert_eq!(p2.data()["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(p2.data()["workspaces"][0]["slug"], json!("third"));
    for bad in ["page=0", "limit=0", "limit=51", "page=x"] {
        let r = env.get(&format!("/api/workspaces?{bad}"), &session).await.expect(400);
        assert!(r.error().starts_with(bad.split('=').next().unwrap()), "{bad}: {}", r.error());
    }
    // An API key sees only its own workspace.
    let by_key = env.get("/api/workspaces", &owner).await.expect(200);
    assert_eq!(by_key.data()["total"], json!(1));
    assert_eq!(by_key.data()["workspaces"][0]["slug"], json!("acme"));

    let r = env
        .patch("/api/workspaces/third", &session, json!({"name": "Third Renamed", "slug": "renamed"}))
        .await
        .expect(200);
    assert_eq!((r.data()["name"].clone(), r.data()["slug"].clone()), (json!("Third Renamed"), json!("renamed")));
    env.get("/api/workspaces/third", &session).await.expect(404);
    let r = env.patch("/api/workspaces/renamed", &session, json!({"slug": "acme"})).await.expect(409);
    assert_eq!(r.code(), "slug_taken");
    let r = env.post("/api/workspaces", &session, json!({"name": "Acme"})).await.expect(409);
    assert!(r.error().contains("'acme'"), "{}", r.error());

    let r = env.delete("/api/workspaces/renamed", &session).await.expect(200);
    assert_eq!(r.data()["deleted"], json!(true));
    env.get("/api/workspaces/renamed", &session).await.expect(404);
    env.delete("/api/workspaces/renamed", &session).await.expect(404);
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_nothing_changes() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let cases = [
        (json!({"name": "A", "colour": "red"}), "colour"),
        (json!({"name": 42}), "name"),
        (json!({}), "name"),
        (json!({"name": "A", "slug": "Bad Slug"}), "slug"),
        (json!({"name": "A", "slug": "-a"}), "slug"),
        (json!({"name": "!!!"}), "slug"),
        (json!({"name": "   "}), "name"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let r = env.post("/api/workspaces", &owner, body.clone()).await.expect(400);
        assert!(r.error().contains(field), "{body} → {}", r.error());
    }
    let raw = env
        .http
        .post(format!("{}/api/workspaces", env.base))
        .header(
            "X-API-Key",
            match &owner {
                Cred::Key(k) => k.clone(),
                _ => unreachable!(),
            },
        )
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"), "{body}");
    let r = env.patch("/api/workspaces/acme", &owner, json!({"name": ""})).await.expect(400);
    assert!(r.error().starts_with("name:"));
    assert_eq!(env.get("/api/workspaces/acme", &owner).await.expect(200).data()["name"], json!("acme"));
    assert_eq!(env.get("/api/workspaces", &owner).await.expect(200).data()["total"], json!(1));
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let big = "x".repeat((1 << 20) + 1);
    let r = env.post("/api/workspaces", &owner, json!({ "name": big })).await.expect(413);
    assert_eq!(r.code(), "payload_too_large");
    // Streamed without a declared length, it is refused too.
    let Cred::Key(key) = &owner else { unreachable!() };
    let chunks = futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let resp = env
        .http
        .post(format!("{}/api/workspaces", env.base))
        .header("X-API-Key", key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn other_workspaces_are_404_and_roles_are_enforced() {
    let env = TestEnv::start().await;
    let (_, acme) = env.user_with_key("ops@acme.io", "acme").await;
    let (_, globex) = env.user_with_key("ops@globex.io", "globex").await;
    for (method, path) in [
        ("GET", "/api/workspaces/globex"),
        ("PATCH", "/api/workspaces/globex"),
        ("DELETE", "/api/workspaces/globex"),
        ("GET", "/api/workspaces/globex/members"),
        ("GET", "/api/workspaces/globex/audit"),
        ("GET", "/api/workspaces/globex/api-keys"),
        ("POST", "/api/workspaces/globex/invitations"),
    ] {
        let body = match (method, path.ends_with("invitations")) {
            ("PATCH", _) => Some(json!({"name": "x"})),
            ("POST", true) => Some(json!({"email": "x@y.io"})),
            _ => None,
        };
        let r = env.call(method.parse().unwrap(), path, &acme, body).await.expect(404);
        assert_eq!(r.error(), "workspace 'globex' not found", "{method} {path}");
    }
    // A key is scoped to its workspace even when its user belongs to another one too.
    let globex_member = env.add_member(&globex, "globex", "ops2@acme.io", "member").await;
    assert!(!globex_member.is_empty());
    env.get("/api/workspaces/globex", &acme).await.expect(404);

    let member = env.key_with_role(&acme, "acme", "member").await;
    let admin = env.key_with_role(&acme, "acme", "admin").await;
    env.get("/api/workspaces/acme", &member).await.expect(200);
    let r = env.patch("/api/workspaces/acme", &member, json!({"name": "Hijacked"})).await.expect(403);
    assert!(r.error().contains("admin"), "{}", r.error());
    env.delete("/api/workspaces/acme", &member).await.expect(403);
    env.patch("/api/workspaces/acme", &admin, json!({"name": "Renamed by admin"})).await.expect(200);
    let r = env.delete("/api/workspaces/acme", &admin).await.expect(403);
    assert!(r.error().contains("owner"), "{}", r.error());
    env.get("/api/workspaces/acme", &acme).await.expect(200);
}

#[tokio::test]
async fn fifty_concurrent_creations_of_one_slug_give_one_201_and_49_409() {
    let env = TestEnv::start().await;
    env.user_with_key("ops@acme.io", "acme").await;
    let session = env.login("ops@acme.io", "password123").await;
    let calls =
        (0..50).map(|i| env.post("/api/workspaces", &session, json!({"name": format!("Race {i}"), "slug": "race"})));
    let replies = futures::future::join_all(calls).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let conflicts = replies.iter().filter(|r| r.status == 409 && r.code() == "slug_taken").count();
    assert_eq!((created, conflicts), (1, 49), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let list = env.get("/api/workspaces?limit=50", &session).await.expect(200);
    assert_eq!(list.data()["workspaces"].as_array().unwrap().iter().filter(|w| w["slug"] == json!("race")).count(), 1);
}

#[tokio::test]
async fn every_change_is_in_the_audit_log_with_its_actor() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.patch("/api/workspaces/acme", &owner, json!({"name": "Acme Inc"})).await.expect(200);
    let key = env.post("/api/workspaces/acme/api-keys", &owner, json!({"name": "ci"})).await.expect(201);
    let key_id = key.data()["id"].as_str().unwrap().to_owned();
    env.delete(&format!("/api/workspaces/acme/api-keys/{key_id}"), &owner).await.expect(200);
    let inv = env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "x@acme.io"})).await.expect(201);
    env.delete(&format!("/api/workspaces/acme/invitations/{}", inv.data()["id"].as_str().unwrap()), &owner)
        .await
        .expect(200);
    // A refused change writes nothing.
    env.patch("/api/workspaces/acme", &owner, json!({"slug": "NO"})).await.expect(400);

    let audit = env.get("/api/workspaces/acme/audit", &owner).await.expect(200);
    let actions: Vec<&str> =
        audit.data()["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "invitation.delete",
            "invitation.create",
            "api_key.revoke",
            "api_key.create",
            "workspace.update",
            "api_key.create",
            "workspace.create"
        ]
    );
    let latest = &audit.data()["entries"][0];
    assert_eq!(latest["actor_kind"], json!("api_key"));
    assert!(latest["actor"].as_str().unwrap().starts_with("ops@acme.io (key berth_sk_"));
    assert_eq!(latest["ip"], json!("127.0.0.1"));
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.get("/api/workspaces/acme/audit", &member).await.expect(403);
}
