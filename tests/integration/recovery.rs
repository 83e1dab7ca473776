//! Recovery after SIGKILL: the real binary is killed during a build and during a rollout; at the next start the
//! interrupted deployment is failed with the reason, its containers are gone, and the running release — whose
//! containers kept running throughout — is served again.

use crate::deploy::{Cleanup, base_image, commit, sh, write_app};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Client;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

struct Server {
    child: Child,
    api: String,
    apps: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &str) -> Server {
    let [api, apps] = crate::support::free_ports().map(|port: u16| format!("127.0.0.1:{port}"));
    let child = Command::new(BIN)
        .args(["serve", "--data-dir", data, "--listen", &api, "--http-listen", &apps])
        .env("BERTH_ALLOW_LOCAL_REPOS", "true")
        .env("BERTH_HEALTH_TIMEOUT_SECS", "20")
        .env("BERTH_DRAIN_SECS", "0")
        .env("BERTH_API_REQUESTS_PER_MINUTE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server { child, api: format!("http://{api}"), apps: format!("http://{apps}") }
}

async fn call(http: &Client, s: &Server, key: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = http.request(method, format!("{}{path}", s.api)).header("X-API-Key", key).json(&body).send().await.unwrap();
    r.json().await.unwrap()
}

async fn get(http: &Client, s: &Server, key: &str, path: &str) -> Value {
    http.get(format!("{}{path}", s.api)).header("X-API-Key", key).send().await.unwrap().json().await.unwrap()
}

async fn until<F: AsyncFnMut() -> bool>(what: &str, within: Duration, mut f: F) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(http: &Client, s: &Server, key: &str, id: &str) -> Value {
    get(http, s, key, &format!("/api/workspaces/acme/deployments/{id}")).await["data"].clone()
}

async fn served(http: &Client, s: &Server) -> Option<String> {
    let r = http.get(format!("{}/", s.apps)).header("Host", "web.acme.localhost").send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.text().await.ok()
}

fn containers(label: &str) -> usize {
    sh(Path::new("/"), "docker", &["ps", "-aq", "--filter", &format!("label={label}")]).split_whitespace().count()
}

#[tokio::test]
async fn sigkill_mid_build_and_mid_rollout_is_recovered_at_the_next_start() {
    base_image();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = Command::new(BIN)
        .args([
            "admin",
            "create-user",
            "--data-dir",
            data,
            "--email",
            "ops@acme.io",
            "--password",
            "password123",
            "--workspace",
            "acme",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args([
            "admin",
            "create-key",
            "--data-dir",
            data,
            "--email",
            "ops@acme.io",
            "--workspace",
            "acme",
            "--name",
            "t",
        ])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_owned();
    let http = Client::new();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    sh(&repo, "git", &["init", "-q", "-b", "main"]);
    write_app(&repo, "v1", 8080);
    commit(&repo, "v1");

    let mut server = serve(data);
    until("the API", Duration::from_secs(10), async || {
        http.get(format!("{}/api/health", server.api)).send().await.is_ok()
    })
    .await;
    let ws = get(&http, &server, &key, "/api/workspaces/acme").await;
    let _cleanup = Cleanup(ws["data"]["id"].as_str().unwrap().to_owned());
    call(
        &http,
        &server,
        &key,
        reqwest::Method::POST,
        "/api/workspaces/acme/projects",
        json!({"name": "web", "port": 8080, "build": {"builder": "dockerfile"}}),
    )
    .await;
    call(
        &http,
        &server,
        &key,
        reqwest::Method::PUT,
        "/api/workspaces/acme/projects/web/git",
        json!({"repo_url": format!("file://{}", repo.display())}),
    )
    .await;
    let d =
        call(&http, &server, &key, reqwest::Method::POST, "/api/workspaces/acme/projects/web/deployments", json!({}))
            .await;
    let id1 = d["data"]["id"].as_str().unwrap().to_owned();
    until("v1 running", Duration::from_secs(120), async || {
        status(&http, &server, &key, &id1).await["status"] == json!("running")
    })
    .await;
    assert_eq!(served(&http, &server).await.as_deref(), Some("v1"));

    // 1. Killed during a build.
    std::fs::write(
        repo.join("Dockerfile"),
        "FROM berth-test/busybox:1\nRUN sleep 30\nCOPY www /www\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    commit(&repo, "slow build");
    let d =
        call(&http, &server, &key, reqwest::Method::POST, "/api/workspaces/acme/projects/web/deployments", json!({}))
            .await;
    let id2 = d["data"]["id"].as_str().unwrap().to_owned();
    until("the slow step", Duration::from_secs(60), async || {
        let logs = get(&http, &server, &key, &format!("/api/workspaces/acme/deployments/{id2}/logs")).await;
        logs["data"]["lines"].to_string().contains("sleep 30")
    })
    .await;
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = server.child.wait();
    assert_eq!(
        containers(&format!("berth.deployment={id1}")),
        1,
        "the running release keeps running while Berth is down"
    );
    drop(server);
    server = serve(data);
    until("the API again", Duration::from_secs(10), async || {
        http.get(format!("{}/api/health", server.api)).send().await.is_ok()
    })
    .await;
    let d = status(&http, &server, &key, &id2).await;
    assert_eq!(d["status"], json!("failed"), "{d}");
    assert!(d["error"].as_str().unwrap().contains("interrupted"), "{d}");
    assert_eq!(served(&http, &server).await.as_deref(), Some("v1"), "the release is served again after the restart");

    // 2. Killed during a rollout: the new replica never passes its health check before the kill.
    write_app(&repo, "v3", 8080);
    commit(&repo, "v3");
    call(
        &http,
        &server,
        &key,
        reqwest::Method::PATCH,
        "/api/workspaces/acme/projects/web",
        json!({"runtime": {"health_check_path": "/not-there.html"}}),
    )
    .await;
    let d =
        call(&http, &server, &key, reqwest::Method::POST, "/api/workspaces/acme/projects/web/deployments", json!({}))
            .await;
    let id3 = d["data"]["id"].as_str().unwrap().to_owned();
    until("the rollout", Duration::from_secs(60), async || {
        status(&http, &server, &key, &id3).await["status"] == json!("deploying")
            && containers(&format!("berth.deployment={id3}")) > 0
    })
    .await;
    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = server.child.wait();
    drop(server);
    let server = serve(data);
    until("the API once more", Duration::from_secs(10), async || {
        http.get(format!("{}/api/health", server.api)).send().await.is_ok()
    })
    .await;
    let d = status(&http, &server, &key, &id3).await;
    assert_eq!(d["status"], json!("failed"), "{d}");
    assert!(d["error"].as_str().unwrap().contains("interrupted"), "{d}");
    assert_eq!(containers(&format!("berth.deployment={id3}")), 0, "half-created replicas are removed");
    assert_eq!(containers(&format!("berth.deployment={id1}")), 1);
    assert_eq!(served(&http, &server).await.as_deref(), Some("v1"));
    let list = get(&http, &server, &key, "/api/workspaces/acme/projects/web/deployments").await;
    let stuck: Vec<&Value> = list["data"]["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| ["queued", "building", "deploying"].contains(&d["status"].as_str().unwrap()))
        .collect();
    assert!(stuck.is_empty(), "nothing is left in progress: {stuck:?}");
}
