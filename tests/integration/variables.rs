//! Environment variables: CRUD, bulk counts, dotenv, precedence, masking on every read path, reveal audit,
//! secrets never in the database file, key rotation with the real binary.

use crate::support::{Cred, TestEnv};
use reqwest::Method;
use serde_json::{Value, json};

const P: &str = "/api/workspaces/acme/projects/app";

async fn setup() -> (TestEnv, Cred) {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "app"})).await.expect(201);
    (env, owner)
}

fn by_key<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|v| v["key"] == json!(key)).unwrap_or_else(|| panic!("{key} not in {list}"))
}

#[tokio::test]
async fn variables_are_created_read_masked_revealed_changed_and_deleted() {
    let (env, owner) = setup().await;
    let member = env.key_with_role(&owner, "acme", "member").await;
    let admin = env.key_with_role(&owner, "acme", "admin").await;
    let env_url = format!("{P}/env");

    env.post(&env_url, &owner, json!({"key": "NODE_ENV", "value": "production"})).await.expect(201);
    let r = env
        .post(&env_url, &admin, json!({"key": "API_TOKEN", "value": "tok-s3cr3t", "is_secret": true}))
        .await
        .expect(201);
    assert_eq!((r.data()["value"].clone(), r.data()["masked"].clone()), (json!("********"), json!(true)));
    let r = env.post(&env_url, &owner, json!({"key": "NODE_ENV", "value": "x"})).await.expect(409);
    assert!(r.error().contains("PATCH"), "{}", r.error());
    env.post(&env_url, &member, json!({"key": "X", "value": "1"})).await.expect(403);
    for bad in ["1ABC", "A-B", "", "A B"] {
        let r = env.post(&env_url, &owner, json!({"key": bad, "value": "1"})).await.expect(400);
        assert!(r.error().starts_with("key"), "{}", r.error());
    }
    let r = env.post(&env_url, &owner, json!({"key": "BIG", "value": "x".repeat(64 * 1024 + 1)})).await.expect(400);
    assert!(r.error().contains("64 KiB"), "{}", r.error());
    env.post(&env_url, &owner, json!({"key": "BIG", "value": "x".repeat(64 * 1024)})).await.expect(201);

    // Every read masks the secret, for every role.
    for who in [&owner, &admin, &member] {
        let list = env.get(&env_url, who).await.expect(200);
        let v = by_key(&list.data()["variables"], "API_TOKEN");
        assert_eq!(v["value"], json!("********"));
        assert_eq!(by_key(&list.data()["variables"], "NODE_ENV")["value"], json!("production"));
        let one = env.get(&format!("{env_url}/API_TOKEN"), who).await.expect(200);
        assert_eq!(one.data()["value"], json!("********"));
        assert!(!list.body.to_string().contains("tok-s3cr3t"));
    }

    // Reveal: owner and admin only, and audited.
    let r = env.get(&format!("{env_url}/API_TOKEN?reveal=true"), &member).await.expect(403);
    assert!(r.error().contains("admin"), "{}", r.error());
    let r = env.get(&format!("{env_url}/API_TOKEN?reveal=true"), &admin).await.expect(200);
    assert_eq!((r.data()["value"].clone(), r.data()["masked"].clone()), (json!("tok-s3cr3t"), json!(false)));
    let audit = env.get("/api/workspaces/acme/audit?limit=50", &owner).await.expect(200);
    let reveals: Vec<&Value> =
        audit.data()["entries"].as_array().unwrap().iter().filter(|e| e["action"] == json!("env.reveal")).collect();
    assert_eq!(reveals.len(), 1, "exactly one reveal row");
    assert_eq!(reveals[0]["target"], json!("app:API_TOKEN"));
    assert!(!audit.body.to_string().contains("tok-s3cr3t"), "the audit log never holds values");

    // Change value and secrecy.
    let r = env.patch(&format!("{env_url}/NODE_ENV"), &owner, json!({"value": "staging"})).await.expect(200);
    assert_eq!(r.data()["value"], json!("staging"));
    let r = env.patch(&format!("{env_url}/NODE_ENV"), &owner, json!({"is_secret": true})).await.expect(200);
    assert_eq!(r.data()["value"], json!("********"));
    let r = env.get(&format!("{env_url}/NODE_ENV?reveal=true"), &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!("staging"), "making it secret kept the value");
    let r = env.patch(&format!("{env_url}/NODE_ENV"), &owner, json!({"is_secret": false})).await.expect(400);
    assert!(r.error().contains("value"), "{}", r.error());
    env.patch(&format!("{env_url}/MISSING"), &owner, json!({"value": "1"})).await.expect(404);
    env.patch(&format!("{env_url}/NODE_ENV"), &member, json!({"value": "1"})).await.expect(403);
    env.delete(&format!("{env_url}/NODE_ENV"), &member).await.expect(403);
    env.delete(&format!("{env_url}/NODE_ENV"), &owner).await.expect(200);
    env.get(&format!("{env_url}/NODE_ENV"), &owner).await.expect(404);
}

#[tokio::test]
async fn bulk_writes_answer_exact_counts_for_merge_and_replace() {
    let (env, owner) = setup().await;
    let bulk = format!("{P}/env/bulk");
    let r = env.put(&bulk, &owner, json!({"variables": {"A": "1", "B": "2"}, "merge": true})).await.expect(200);
    assert_eq!(r.data(), &json!({"created": 2, "updated": 0, "deleted": 0, "unchanged": 0}));
    let r = env.put(&bulk, &owner, json!({"variables": {"B": "2", "C": "3"}, "merge": true})).await.expect(200);
    assert_eq!(r.data(), &json!({"created": 1, "updated": 0, "deleted": 0, "unchanged": 1}));
    let r = env.put(&bulk, &owner, json!({"variables": {"B": "20"}})).await.expect(200);
    assert_eq!(r.data(), &json!({"created": 0, "updated": 1, "deleted": 0, "unchanged": 0}), "merge defaults to true");
    let r = env
        .put(&bulk, &owner, json!({"variables": [{"key": "A", "value": "1"}, {"key": "S", "value": "shh", "is_secret": true}], "merge": false}))
        .await
        .expect(200);
    assert_eq!(r.data(), &json!({"created": 1, "updated": 0, "deleted": 2, "unchanged": 1}));
    let list = env.get(&format!("{P}/env"), &owner).await.expect(200);
    let keys: Vec<&str> =
        list.data()["variables"].as_array().unwrap().iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["A", "S"]);
    assert_eq!(by_key(&list.data()["variables"], "S")["value"], json!("********"));
    // Sending a secret's same value again changes nothing; the map form keeps its secrecy.
    let r = env.put(&bulk, &owner, json!({"variables": {"S": "shh"}})).await.expect(200);
    assert_eq!(r.data()["unchanged"], json!(1));
    let r = env.put(&bulk, &owner, json!({"variables": {"S": "new"}})).await.expect(200);
    assert_eq!(r.data()["updated"], json!(1));
    assert_eq!(env.get(&format!("{P}/env/S"), &owner).await.data()["is_secret"], json!(true));

    // A bad entry rejects the whole write and names it.
    let r = env.put(&bulk, &owner, json!({"variables": {"OK": "1", "9BAD": "2"}, "merge": false})).await.expect(400);
    assert!(r.error().contains("9BAD"), "{}", r.error());
    let r = env
        .put(&bulk, &owner, json!({"variables": [{"key": "D", "value": "1"}, {"key": "D", "value": "2"}]}))
        .await
        .expect(400);
    assert!(r.error().contains("twice"), "{}", r.error());
    env.put(&bulk, &owner, json!({"variables": "A=1"})).await.expect(400);
    env.put(&bulk, &owner, json!({"variables": {}, "merge": false, "extra": 1})).await.expect(400);
    assert_eq!(env.get(&format!("{P}/env"), &owner).await.data()["variables"].as_array().unwrap().len(), 2);
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.put(&bulk, &member, json!({"variables": {"A": "2"}})).await.expect(403);
}

#[tokio::test]
async fn dotenv_files_import_and_export_round_trip() {
    let (env, owner) = setup().await;
    let text = "# app settings\nexport DATABASE_HOST=db.internal\nGREETING=\"hello \\\"world\\\"\"\nMULTI=\"line1\nline2\"\n\
                LITERAL='$NOT_EXPANDED'\nPLAIN=value # a comment\nEMPTY=\n";
    let r = env.send_raw(Method::PUT, &format!("{P}/env/bulk"), &owner, "text/plain", text).await.expect(200);
    assert_eq!(r.data()["created"], json!(6));
    env.post(&format!("{P}/env"), &owner, json!({"key": "SECRET_KEY", "value": "s3cr3t-dotenv", "is_secret": true}))
        .await
        .expect(201);
    let list = env.get(&format!("{P}/env"), &owner).await.expect(200);
    let vars = &list.data()["variables"];
    assert_eq!(by_key(vars, "GREETING")["value"], json!("hello \"world\""));
    assert_eq!(by_key(vars, "MULTI")["value"], json!("line1\nline2"));
    assert_eq!(by_key(vars, "LITERAL")["value"], json!("$NOT_EXPANDED"));
    assert_eq!(by_key(vars, "PLAIN")["value"], json!("value"));

    // The masked export keeps secrets out; the revealed one (owner) re-imports with no change at all.
    let (status, masked) = env.get_text(&format!("{P}/env?format=dotenv"), &owner).await;
    assert_eq!(status, 200);
    assert!(!masked.contains("s3cr3t-dotenv") && masked.contains("# SECRET_KEY"), "{masked}");
    let (_, full) = env.get_text(&format!("{P}/env?format=dotenv&reveal=true"), &owner).await;
    assert!(full.contains("s3cr3t-dotenv"));
    let r =
        env.send_raw(Method::PUT, &format!("{P}/env/bulk?merge=false"), &owner, "text/plain", &full).await.expect(200);
    assert_eq!(r.data(), &json!({"created": 0, "updated": 0, "deleted": 0, "unchanged": 7}));
    // A masked export re-imported with merge keeps the secret.
    env.send_raw(Method::PUT, &format!("{P}/env/bulk"), &owner, "text/plain", &masked).await.expect(200);
    let r = env.get(&format!("{P}/env/SECRET_KEY?reveal=true"), &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!("s3cr3t-dotenv"));

    let r = env
        .send_raw(Method::PUT, &format!("{P}/env/bulk"), &owner, "text/plain", "A=1\nthis is not a pair\n")
        .await
        .expect(400);
    assert!(r.error().contains("line 2"), "{}", r.error());
    let member = env.key_with_role(&owner, "acme", "member").await;
    let (status, _) = env.get_text(&format!("{P}/env?format=dotenv&reveal=true"), &member).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn environment_beats_project_beats_workspace_and_resolved_says_where_from() {
    let (env, owner) = setup().await;
    env.post(&format!("{P}/environments"), &owner, json!({"name": "staging"})).await.expect(201);
    env.post("/api/workspaces/acme/variables", &owner, json!({"key": "REGION", "value": "eu"})).await.expect(201);
    env.post("/api/workspaces/acme/variables", &owner, json!({"key": "LOG_LEVEL", "value": "info"})).await.expect(201);
    env.post(
        "/api/workspaces/acme/variables",
        &owner,
        json!({"key": "SHARED_SECRET", "value": "ws-secret-value", "is_secret": true}),
    )
    .await
    .expect(201);
    env.post(&format!("{P}/env"), &owner, json!({"key": "LOG_LEVEL", "value": "warn"})).await.expect(201);
    env.post(&format!("{P}/env?environment=staging"), &owner, json!({"key": "LOG_LEVEL", "value": "debug"}))
        .await
        .expect(201);
    let r = env.get(&format!("{P}/env?environment=staging"), &owner).await.expect(200);
    assert_eq!(r.data()["variables"].as_array().unwrap().len(), 1, "only staging's overrides");
    assert_eq!(r.data()["variables"][0]["scope"], json!("environment"));

    let r = env.get(&format!("{P}/env?resolved=true&environment=staging"), &owner).await.expect(200);
    let vars = &r.data()["variables"];
    assert_eq!(by_key(vars, "LOG_LEVEL")["value"], json!("debug"));
    assert_eq!(by_key(vars, "LOG_LEVEL")["source"], json!("environment"));
    assert_eq!(by_key(vars, "LOG_LEVEL")["overrides"], json!(["project", "workspace"]));
    assert_eq!(by_key(vars, "REGION")["source"], json!("workspace"));
    assert_eq!(by_key(vars, "SHARED_SECRET")["value"], json!("********"));
    let r = env.get(&format!("{P}/env?resolved=true"), &owner).await.expect(200);
    assert_eq!(r.data()["environment"], json!("production"));
    assert_eq!(by_key(&r.data()["variables"], "LOG_LEVEL")["value"], json!("warn"));
    assert_eq!(by_key(&r.data()["variables"], "LOG_LEVEL")["source"], json!("project"));
    assert!(!r.body.to_string().contains("ws-secret-value"));

    // Workspace variables: masked, revealable by admins, reachable by key.
    let list = env.get("/api/workspaces/acme/variables", &owner).await.expect(200);
    assert_eq!(by_key(&list.data()["variables"], "SHARED_SECRET")["value"], json!("********"));
    let r = env.get("/api/workspaces/acme/variables/SHARED_SECRET?reveal=true", &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!("ws-secret-value"));
    env.patch("/api/workspaces/acme/variables/REGION", &owner, json!({"value": "us"})).await.expect(200);
    env.delete("/api/workspaces/acme/variables/REGION", &owner).await.expect(200);
    let r = env.get(&format!("{P}/env?resolved=true"), &owner).await.expect(200);
    assert!(r.data()["variables"].as_array().unwrap().iter().all(|v| v["key"] != json!("REGION")));
    env.get("/api/workspaces/acme/variables?environment=staging", &owner).await.expect(400);

    // Deleting the environment removes its overrides.
    env.delete(&format!("{P}/environments/staging"), &owner).await.expect(200);
    env.post(&format!("{P}/environments"), &owner, json!({"name": "staging"})).await.expect(201);
    let r = env.get(&format!("{P}/env?environment=staging"), &owner).await.expect(200);
    assert_eq!(r.data()["variables"], json!([]));
}

/// Every file of the data dir's database (main file and write-ahead log) as bytes.
fn database_bytes(env: &TestEnv) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        if let Ok(b) = std::fs::read(env.dir.path().join(name)) {
            all.extend(b);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_database_file_alone_reveals_no_secret_and_rotation_keeps_every_value() {
    let (mut env, owner) = setup().await;
    let secret = "plaintext-needle-4f1b2c";
    env.post(&format!("{P}/env"), &owner, json!({"key": "DB_PASSWORD", "value": secret, "is_secret": true}))
        .await
        .expect(201);
    env.post(
        "/api/workspaces/acme/variables",
        &owner,
        json!({"key": "WS_TOKEN", "value": "ws-needle-77", "is_secret": true}),
    )
    .await
    .expect(201);
    env.put(
        &format!("{P}/env/bulk"),
        &owner,
        json!({"variables": [{"key": "BULK_SECRET", "value": "bulk-needle-99", "is_secret": true}]}),
    )
    .await
    .expect(200);
    env.post(&format!("{P}/env"), &owner, json!({"key": "VISIBLE", "value": "plain-marker-123"})).await.expect(201);

    let bytes = database_bytes(&env);
    assert!(contains(&bytes, "plain-marker-123"), "the search works: a plain value is found");
    for needle in [secret, "ws-needle-77", "bulk-needle-99"] {
        assert!(!contains(&bytes, needle), "{needle} found in the database file");
    }
    let key_file = env.dir.path().join("secret.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    // Rotate with the real binary while Berth is stopped, then read everything back.
    env.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["admin", "rotate-secret-key", "--data-dir", env.dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("re-encrypted 3 secret variables"), "{stdout}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(old_key, new_key);
    assert_eq!(std::fs::read_to_string(env.dir.path().join("secret.key.old")).unwrap(), old_key);
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    // With the old key gone, the new key alone opens every value.
    std::fs::remove_file(env.dir.path().join("secret.key.old")).unwrap();
    let env = env.boot_again().await;
    let r = env.get(&format!("{P}/env/DB_PASSWORD?reveal=true"), &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!(secret));
    let r = env.get("/api/workspaces/acme/variables/WS_TOKEN?reveal=true", &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!("ws-needle-77"));
    let r = env.get(&format!("{P}/env/BULK_SECRET?reveal=true"), &owner).await.expect(200);
    assert_eq!(r.data()["value"], json!("bulk-needle-99"));
    let bytes = database_bytes(&env);
    assert!(!contains(&bytes, secret));
}

#[tokio::test]
async fn a_group_readable_key_file_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = berth::config::Config::for_data_dir(dir.path().to_path_buf());
    let listeners = berth::app::Listeners {
        api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http: None,
        https: None,
    };
    let err = berth::app::start(std::sync::Arc::new(config), listeners).await.err().unwrap();
    assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
}
