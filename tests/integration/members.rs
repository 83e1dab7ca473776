//! Members and invitations: roles, the last owner, accepting as a new or existing user, used and expired tokens.

use crate::support::{Cred, TestEnv};
use serde_json::json;

#[tokio::test]
async fn invitations_show_their_token_once_and_accept_new_and_existing_users() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;

    let r = env
        .post("/api/workspaces/acme/invitations", &owner, json!({"email": "dev@acme.io", "role": "admin"}))
        .await
        .expect(201);
    let token = r.data()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.data()["accept_url"], json!(format!("{}/invitations/{token}", env.config.public_url)));
    assert_eq!(r.data()["status"], json!("pending"));
    let list = env.get("/api/workspaces/acme/invitations", &owner).await.expect(200);
    assert!(!list.body.to_string().contains(&token), "the token is shown only once");
    let r = env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "DEV@acme.io"})).await.expect(409);
    assert_eq!(r.code(), "already_invited");
    env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "ops@acme.io"})).await.expect(409);
    env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "nope"})).await.expect(400);
    env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "a@b.io", "role": "god"})).await.expect(400);

    // A new account needs a password.
    let r = env.post(&format!("/api/invitations/{token}/accept"), &Cred::None, json!({})).await.expect(400);
    assert!(r.error().starts_with("password:"), "{}", r.error());
    env.post(&format!("/api/invitations/{token}/accept"), &Cred::None, json!({"password": "short"})).await.expect(400);
    let r = env
        .post(
            &format!("/api/invitations/{token}/accept"),
            &Cred::None,
            json!({"password": "password123", "name": "Dev"}),
        )
        .await
        .expect(200);
    assert_eq!((r.data()["created_user"].clone(), r.data()["role"].clone()), (json!(true), json!("admin")));
    let r = env
        .post(&format!("/api/invitations/{token}/accept"), &Cred::None, json!({"password": "password123"}))
        .await
        .expect(410);
    assert_eq!(r.code(), "invitation_used");
    env.post(&format!("/api/invitations/{}/accept", "0".repeat(64)), &Cred::None, json!({})).await.expect(404);
    let dev = env.login("dev@acme.io", "password123").await;
    let me = env.get("/api/auth/me", &dev).await.expect(200);
    assert_eq!(me.data()["memberships"][0]["role"], json!("admin"));

    // An existing user joins another workspace without a password.
    let (_, globex) = env.user_with_key("ops@globex.io", "globex").await;
    let r = env.post("/api/workspaces/globex/invitations", &globex, json!({"email": "dev@acme.io"})).await.expect(201);
    let t2 = r.data()["token"].as_str().unwrap().to_owned();
    let client = env.http.post(format!("{}/api/invitations/{t2}/accept", env.base)).send().await.unwrap();
    assert_eq!(client.status(), 200, "an empty body is fine for an existing user");
    let me = env.get("/api/auth/me", &dev).await.expect(200);
    assert_eq!(me.data()["memberships"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn expired_and_deleted_invitations_cannot_be_accepted() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let r = env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "late@acme.io"})).await.expect(201);
    let (token, id) = (r.data()["token"].as_str().unwrap().to_owned(), r.data()["id"].as_str().unwrap().to_owned());
    let db = rusqlite::Connection::open(env.config.database_path()).unwrap();
    db.execute("UPDATE invitations SET expires_at = '2020-01-01T00:00:00Z' WHERE id = ?1", [&id]).unwrap();
    let r = env
        .post(&format!("/api/invitations/{token}/accept"), &Cred::None, json!({"password": "password123"}))
        .await
        .expect(410);
    assert_eq!(r.code(), "invitation_expired");
    let list = env.get("/api/workspaces/acme/invitations", &owner).await.expect(200);
    assert_eq!(list.data()["invitations"][0]["status"], json!("expired"));
    // An expired invitation no longer blocks a new one.
    let r = env.post("/api/workspaces/acme/invitations", &owner, json!({"email": "late@acme.io"})).await.expect(201);
    let (t2, id2) = (r.data()["token"].as_str().unwrap().to_owned(), r.data()["id"].as_str().unwrap().to_owned());
    env.delete(&format!("/api/workspaces/acme/invitations/{id2}"), &owner).await.expect(200);
    env.post(&format!("/api/invitations/{t2}/accept"), &Cred::None, json!({"password": "password123"}))
        .await
        .expect(404);
    env.post("/api/auth/login", &Cred::None, json!({"email": "late@acme.io", "password": "password123"}))
        .await
        .expect(401);
}

#[tokio::test]
async fn roles_bound_what_members_and_admins_may_do() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let admin_id = env.add_member(&owner, "acme", "admin@acme.io", "admin").await;
    let member_id = env.add_member(&owner, "acme", "member@acme.io", "member").await;
    let admin = env.login("admin@acme.io", "password123").await;
    let member = env.login("member@acme.io", "password123").await;

    // Members see the member list but manage nothing.
    let list = env.get("/api/workspaces/acme/members", &member).await.expect(200);
    assert_eq!(list.data()["total"], json!(3));
    env.post("/api/workspaces/acme/invitations", &member, json!({"email": "x@acme.io"})).await.expect(403);
    env.get("/api/workspaces/acme/invitations", &member).await.expect(403);
    env.post("/api/workspaces/acme/api-keys", &member, json!({"name": "mine"})).await.expect(403);
    env.get("/api/workspaces/acme/api-keys", &member).await.expect(403);
    env.patch(&format!("/api/workspaces/acme/members/{admin_id}"), &member, json!({"role": "member"}))
        .await
        .expect(403);

    // Admins manage members up to their own role.
    let r = env
        .post("/api/workspaces/acme/invitations", &admin, json!({"email": "boss@acme.io", "role": "owner"}))
        .await
        .expect(403);
    assert!(r.error().contains("above your own"), "{}", r.error());
    env.post("/api/workspaces/acme/api-keys", &admin, json!({"name": "k", "role": "owner"})).await.expect(403);
    env.patch(&format!("/api/workspaces/acme/members/{member_id}"), &admin, json!({"role": "owner"})).await.expect(403);
    let owner_id = env.get("/api/auth/me", &owner).await.expect(200).data()["user"]["id"].as_str().unwrap().to_owned();
    env.delete(&format!("/api/workspaces/acme/members/{owner_id}"), &admin).await.expect(403);
    let r = env
        .patch(&format!("/api/workspaces/acme/members/{member_id}"), &admin, json!({"role": "admin"}))
        .await
        .expect(200);
    assert_eq!(r.data()["role"], json!("admin"));
    env.patch(&format!("/api/workspaces/acme/members/{member_id}"), &admin, json!({"role": "boss"})).await.expect(400);
    env.patch("/api/workspaces/acme/members/nobody", &admin, json!({"role": "member"})).await.expect(404);
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed_or_demoted() {
    let env = TestEnv::start().await;
    let (owner_id, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let r = env
        .patch(&format!("/api/workspaces/acme/members/{owner_id}"), &owner, json!({"role": "admin"}))
        .await
        .expect(409);
    assert_eq!(r.code(), "last_owner");
    let r = env.delete(&format!("/api/workspaces/acme/members/{owner_id}"), &owner).await.expect(409);
    assert_eq!(r.code(), "last_owner");

    // With a second owner, the first may step down.
    let second = env.add_member(&owner, "acme", "second@acme.io", "owner").await;
    env.patch(&format!("/api/workspaces/acme/members/{owner_id}"), &owner, json!({"role": "admin"})).await.expect(200);
    let s = env.login("second@acme.io", "password123").await;
    env.delete(&format!("/api/workspaces/acme/members/{second}"), &s).await.expect(409);
    let members = env.get("/api/workspaces/acme/members", &s).await.expect(200);
    assert_eq!(members.data()["members"].as_array().unwrap().iter().filter(|m| m["role"] == json!("owner")).count(), 1);
}

#[tokio::test]
async fn members_are_added_by_id_and_removal_revokes_their_keys() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let (dev_id, dev_key_globex) = env.user_with_key("dev@globex.io", "globex").await;

    let r =
        env.post("/api/workspaces/acme/members", &owner, json!({"user_id": dev_id, "role": "admin"})).await.expect(201);
    assert_eq!(r.data()["email"], json!("dev@globex.io"));
    env.post("/api/workspaces/acme/members", &owner, json!({"user_id": dev_id, "role": "admin"})).await.expect(409);
    let r = env
        .post("/api/workspaces/acme/members", &owner, json!({"user_id": "missing", "role": "member"}))
        .await
        .expect(400);
    assert!(r.error().starts_with("user_id:"));

    let dev = env.login("dev@globex.io", "password123").await;
    let k = env.post("/api/workspaces/acme/api-keys", &dev, json!({"name": "dev-acme"})).await.expect(201);
    let dev_acme_key = Cred::Key(k.data()["key"].as_str().unwrap().to_owned());
    env.get("/api/workspaces/acme", &dev_acme_key).await.expect(200);

    env.delete(&format!("/api/workspaces/acme/members/{dev_id}"), &owner).await.expect(200);
    env.get("/api/workspaces/acme", &dev_acme_key).await.expect(401);
    env.get("/api/workspaces/acme", &dev).await.expect(404);
    env.get("/api/workspaces/globex", &dev_key_globex).await.expect(200);

    // Anyone may leave on their own.
    let m = env.add_member(&owner, "acme", "temp@acme.io", "member").await;
    let temp = env.login("temp@acme.io", "password123").await;
    env.delete(&format!("/api/workspaces/acme/members/{m}"), &temp).await.expect(200);
    env.get("/api/workspaces/acme", &temp).await.expect(404);
}
