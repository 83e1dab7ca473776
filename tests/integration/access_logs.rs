//! The proxy's access log of a deployed app: errors and writes are kept, successful reads are not (by default),
//! filters work, and another workspace sees nothing.

use crate::deploy::{deploy_setup, wait_for};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn errors_and_writes_are_logged_per_project() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "hello").await;
    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "svc", "port": 8080, "build": {"builder": "dockerfile"}}),
    )
    .await
    .expect(201);
    let base = "/api/workspaces/acme/projects/svc";
    env.put(&format!("{base}/git"), &owner, json!({"repo_url": format!("file://{}", repo.path().display())}))
        .await
        .expect(201);
    let r = env.post(&format!("{base}/deployments"), &owner, json!({})).await.expect(202);
    let d = wait_for(&env, &owner, r.data()["id"].as_str().unwrap(), &["running", "failed"], Duration::from_secs(120))
        .await;
    assert_eq!(d["status"], json!("running"), "{d}");

    let app = |method: reqwest::Method, path: &str| {
        env.http.request(method, format!("{}{path}", env.apps)).header("Host", "svc.acme.localhost").send()
    };
    assert_eq!(app(reqwest::Method::GET, "/").await.unwrap().status(), 200);
    assert_eq!(app(reqwest::Method::GET, "/missing.html?token=abc").await.unwrap().status(), 404);
    let posted = app(reqwest::Method::POST, "/form").await.unwrap().status().as_u16();

    // Entries are written in batches: wait for both.
    let started = Instant::now();
    let entries = loop {
        let r = env.get(&format!("{base}/access-logs"), &owner).await.expect(200);
        let entries = r.data()["entries"].as_array().unwrap().clone();
        if entries.len() >= 2 {
            break entries;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "access log stayed short: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entries.len(), 2, "the successful GET is not kept by default: {entries:?}");
    let missing = &entries[0];
    assert_eq!(missing["method"], json!("GET"));
    assert_eq!(missing["path"], json!("/missing.html"), "the query string is not stored");
    assert_eq!(missing["status"], json!(404));
    assert_eq!(missing["host"], json!("svc.acme.localhost"));
    assert_eq!(missing["deployment_id"], d["id"]);
    assert!(missing["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(entries[1]["method"], json!("POST"));
    assert_eq!(entries[1]["status"], json!(posted));

    let r = env.get(&format!("{base}/access-logs?status=404"), &owner).await.expect(200);
    assert_eq!(r.data()["entries"].as_array().unwrap().len(), 1);
    let after = r.data()["last_seq"].as_i64().unwrap();
    let r = env.get(&format!("{base}/access-logs?after={after}&status=4xx"), &owner).await.expect(200);
    assert_eq!(r.data()["entries"].as_array().unwrap().len(), usize::from(posted == 404 || posted == 405));
    for bad in ["status=7xx", "limit=0", "limit=5000", "after=-1"] {
        env.get(&format!("{base}/access-logs?{bad}"), &owner).await.expect(400);
    }
    let (_, other) = env.user_with_key("eve@other.io", "other").await;
    env.get("/api/workspaces/acme/projects/svc/access-logs", &other).await.expect(404);
}
