//! Deployments end to end on the real Docker engine: a real git repository with a Dockerfile built from a
//! locally made busybox image, served through Berth's HTTP listener by Host, a failing health check that leaves
//! the old version serving, a zero-downtime swap under continuous requests, cancel, retry and releases.

use crate::support::{Cred, TestEnv};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) const BASE_IMAGE: &str = "berth-test/busybox:1";

pub(crate) fn sh(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A busybox image made from the host's static busybox (no registry here); built once, then reused.
pub(crate) fn base_image() {
    let exists = Command::new("docker").args(["image", "inspect", BASE_IMAGE]).output().unwrap().status.success();
    if exists {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox"))
        .expect("busybox-static must be installed (apt-get install busybox-static)");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )
    .unwrap();
    sh(dir.path(), "docker", &["build", "-q", "-t", BASE_IMAGE, "."]);
}

/// Writes the app: busybox httpd serving `body` on `port`.
pub(crate) fn write_app(dir: &Path, body: &str, port: u16) {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), body).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nCOPY www /www\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"{port}\", \"-h\", \"/www\"]\n"),
    )
    .unwrap();
}

pub(crate) fn commit(dir: &Path, message: &str) {
    sh(dir, "git", &["add", "-A"]);
    sh(dir, "git", &["commit", "-q", "-m", message]);
}

/// Removes every Docker object of the test's workspace, even when the test fails.
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=berth.workspace={}", self.0);
        if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        if let Ok(out) = Command::new("docker").args(["network", "ls", "-q", "--filter", &filter]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["network", "rm", id]).output();
            }
        }
        // By name, not id: tests that build the same app get the same image id, and `rmi -f <id>` would untag the
        // other test's image under it (its next container then fails with "image not found").
        let images = format!("reference=berth/{}/*", self.0);
        let listed = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &images])
            .output();
        if let Ok(out) = listed {
            for name in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rmi", name]).output();
            }
        }
        if let Ok(out) = Command::new("docker").args(["volume", "ls", "-q", "--filter", &filter]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["volume", "rm", id]).output();
            }
        }
    }
}

pub(crate) async fn wait_for(env: &TestEnv, owner: &Cred, id: &str, want: &[&str], within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let r = env.get(&format!("/api/workspaces/acme/deployments/{id}"), owner).await.expect(200);
        let status = r.data()["status"].as_str().unwrap().to_owned();
        if want.contains(&status.as_str()) {
            return r.data().clone();
        }
        assert!(start.elapsed() < within, "deployment {id} is {status}, waited for {want:?}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every text message of the project's build-logs WebSocket until it closes.
async fn socket_lines(env: &TestEnv, owner: &Cred, project: &str) -> Vec<String> {
    use futures::StreamExt;
    let Cred::Key(key) = owner else { unreachable!() };
    let url = format!(
        "{}/api/workspaces/acme/projects/{project}/build-logs?api_key={key}",
        env.base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut lines = Vec::new();
    while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(60), socket.next()).await.unwrap() {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            lines.push(t.to_string());
        }
    }
    lines
}

async fn fetch(env: &TestEnv, host: &str) -> Option<(u16, String)> {
    let r = env.http.get(format!("{}/", env.apps)).header("Host", host).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// A Berth on the real engine with an owner key in workspace `acme`, the workspace's Docker objects removed at
/// the end, and an empty git repository on `main` whose app will serve `body`.
pub(crate) async fn deploy_setup(drain_secs: u32, body: &str) -> (TestEnv, Cred, Cleanup, tempfile::TempDir) {
    base_image();
    let env = TestEnv::start_with(|c| {
        c.allow_local_repos = true;
        c.health_timeout_secs = 5;
        c.drain_secs = drain_secs;
    })
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.expect(200).data()["id"].as_str().unwrap().to_owned();
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    write_app(repo.path(), body, 8080);
    commit(repo.path(), "v1");
    (env, owner, Cleanup(ws_id), repo)
}

#[tokio::test]
async fn a_git_push_becomes_a_running_app_and_bad_deploys_never_take_it_down() {
    let (env, owner, _cleanup, repo) = deploy_setup(1, "hello v1").await;
    let dir = repo.path();

    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "web", "port": 8080, "replicas": 2, "build": {"builder": "dockerfile"}}),
    )
    .await
    .expect(201);
    let base = "/api/workspaces/acme/projects/web";
    let r = env.post(&format!("{base}/deployments"), &owner, json!({})).await.expect(409);
    assert_eq!(r.code(), "nothing_to_deploy");
    env.put(&format!("{base}/git"), &owner, json!({"repo_url": format!("file://{}", dir.display())})).await.expect(201);

    // First deploy.
    let r = env.post(&format!("{base}/deployments"), &owner, json!({"note": "first"})).await.expect(202);
    assert_eq!((r.data()["ref"].clone(), r.data()["status"].clone()), (json!("DEP-0001"), json!("queued")));
    let id1 = r.data()["id"].as_str().unwrap().to_owned();
    let d = wait_for(&env, &owner, &id1, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    let events: Vec<&str> = d["events"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(events, ["queued", "building", "deploying", "running"]);
    assert_eq!(d["commit"].as_str().unwrap().len(), 40);
    let logs = env.get(&format!("/api/workspaces/acme/deployments/{id1}/logs"), &owner).await.expect(200);
    assert!(
        logs.data()["lines"].to_string().contains("COPY www /www"),
        "the build log streams the build: {}",
        logs.body
    );
    assert_eq!(fetch(&env, "web.acme.localhost").await, Some((200, "hello v1".into())));
    let lines = socket_lines(&env, &owner, "web").await;
    assert!(lines.iter().any(|l| l.contains("COPY www /www")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("[END]"));
    assert_eq!(fetch(&env, "WEB.acme.localhost:8080").await.map(|r| r.1), Some("hello v1".into()));
    assert_eq!(fetch(&env, "nope.acme.localhost").await.map(|r| r.0), Some(404));
    let out = sh(dir, "docker", &["ps", "--filter", &format!("label=berth.deployment={id1}"), "-q"]);
    assert_eq!(out.split_whitespace().count(), 2, "two replicas");
    let st = env.get(&format!("{base}/status"), &owner).await.expect(200);
    assert_eq!((st.data()["pods"]["ready"].clone(), st.data()["pods"]["total"].clone()), (json!(2), json!(2)));
    assert_eq!(st.data()["pods"]["items"][0]["status"], json!("Running"));
    assert_eq!(st.data()["project"]["status"], json!("running"));
    assert_eq!(st.data()["latestDeployment"]["id"], json!(id1));
    assert_eq!(st.data()["resources"]["cpu"]["limit"], json!("500m"));

    // A deploy whose app listens on the wrong port fails and leaves v1 serving.
    write_app(dir, "broken", 9090);
    commit(dir, "wrong port");
    let r = env.post(&format!("{base}/deployments"), &owner, json!({})).await.expect(202);
    let id2 = r.data()["id"].as_str().unwrap().to_owned();
    let d = wait_for(&env, &owner, &id2, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!(d["status"], json!("failed"));
    assert!(d["error"].as_str().unwrap().contains("nothing listening on port 8080"), "{d}");
    let lines = socket_lines(&env, &owner, "web").await;
    assert!(lines.last().unwrap().starts_with("[ERROR] nothing listening on port 8080"), "{lines:?}");
    assert_eq!(fetch(&env, "web.acme.localhost").await, Some((200, "hello v1".into())));
    let out = sh(dir, "docker", &["ps", "-a", "--filter", &format!("label=berth.deployment={id2}"), "-q"]);
    assert!(out.trim().is_empty(), "the failed deployment's containers are removed");

    // v2 under continuous requests: not one fails across the swap.
    write_app(dir, "hello v2", 8080);
    commit(dir, "v2");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, ok, failed, http, apps) =
            (stop.clone(), ok.clone(), failed.clone(), env.http.clone(), env.apps.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = http.get(format!("{apps}/")).header("Host", "web.acme.localhost").send().await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let r = env.post(&format!("{base}/deployments"), &owner, json!({})).await.expect(202);
    let id3 = r.data()["id"].as_str().unwrap().to_owned();
    let d = wait_for(&env, &owner, &id3, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the drain of the old replicas
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{} requests failed during the swap", failed.load(Ordering::Relaxed));
    assert!(ok.load(Ordering::Relaxed) > 20);
    assert_eq!(fetch(&env, "web.acme.localhost").await, Some((200, "hello v2".into())));
    let d1 = env.get(&format!("/api/workspaces/acme/deployments/{id1}"), &owner).await.expect(200);
    assert_eq!(d1.data()["status"], json!("superseded"));

    // Releases: one per successful deployment.
    let r = env.get(&format!("{base}/releases"), &owner).await.expect(200);
    assert_eq!(r.data()["total"], json!(2));
    assert_eq!(r.data()["releases"][0]["deployment_id"], json!(id3));

    // Cancel a queued one; retry it; a finished one cannot be cancelled.
    let r = env.post(&format!("{base}/deployments"), &owner, json!({})).await.expect(202);
    let id4 = r.data()["id"].as_str().unwrap().to_owned();
    let r = env.post(&format!("/api/workspaces/acme/deployments/{id4}/cancel"), &owner, json!({})).await;
    if r.status == 200 {
        assert_eq!(r.data()["status"], json!("cancelled"));
    }
    let d = wait_for(&env, &owner, &id4, &["cancelled", "running"], Duration::from_secs(120)).await;
    if d["status"] == json!("cancelled") {
        let r = env.post(&format!("/api/workspaces/acme/deployments/{id4}/retry"), &owner, json!({})).await.expect(202);
        assert_eq!(r.data()["retry_of"], json!(id4));
        let id5 = r.data()["id"].as_str().unwrap().to_owned();
        wait_for(&env, &owner, &id5, &["running"], Duration::from_secs(120)).await;
    }
    let r = env.post(&format!("/api/workspaces/acme/deployments/{id1}/cancel"), &owner, json!({})).await.expect(409);
    assert_eq!(r.code(), "not_cancellable");
    env.post(&format!("/api/workspaces/acme/deployments/{id1}/retry"), &owner, json!({})).await.expect(409);
    assert_eq!(fetch(&env, "web.acme.localhost").await, Some((200, "hello v2".into())));

    // Other workspaces see nothing.
    let (_, stranger) = env.user_with_key("eve@evil.io", "evil").await;
    env.get(&format!("/api/workspaces/acme/deployments/{id1}"), &stranger).await.expect(404);
    env.get(&format!("/api/workspaces/evil/deployments/{id1}"), &stranger).await.expect(404);
}

pub(crate) async fn get_path(env: &TestEnv, path: &str) -> String {
    let r = env.http.get(format!("{}{path}", env.apps)).header("Host", "svc.acme.localhost").send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn redeploy_rollback_stop_and_start_keep_volumes_and_never_log_secrets() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    let start = "date >> /data/boots && cp /data/boots /www/boots.txt && echo \"$GREETING\" > /www/greeting.txt \
                 && echo token=$SECRET_TOKEN && exec busybox httpd -f -p ${APP_PORT:-8080} -h /www";
    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "svc", "port": 8080, "build": {"builder": "dockerfile"}, "runtime": {"start_command": start},
               "volumes": [{"name": "data", "mount_path": "/data"}]}),
    )
    .await
    .expect(201);
    let base = "/api/workspaces/acme/projects/svc";
    env.put(&format!("{base}/git"), &owner, json!({"repo_url": format!("file://{}", dir.display())})).await.expect(201);
    env.put(
        &format!("{base}/env/bulk"),
        &owner,
        json!({"variables": [{"key": "GREETING", "value": "hello"},
        {"key": "SECRET_TOKEN", "value": "supersecret-xyz-123", "is_secret": true}]}),
    )
    .await
    .expect(200);
    let r = env.post(&format!("{base}/redeploy"), &owner, json!({})).await.expect(409);
    assert_eq!(r.code(), "no_release");

    let deploy = |path: String| {
        let env = &env;
        let owner = &owner;
        async move {
            let r = env.post(&path, owner, json!({})).await.expect(202);
            let id = r.data()["id"].as_str().unwrap().to_owned();
            let d = wait_for(env, owner, &id, &["running", "failed"], Duration::from_secs(120)).await;
            assert_eq!(d["status"], json!("running"), "{d}");
            (id, d)
        }
    };
    let (id1, _) = deploy(format!("{base}/deployments")).await;
    assert_eq!(get_path(&env, "/").await, "v1");
    assert_eq!(get_path(&env, "/greeting.txt").await, "hello\n");
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 1);

    // Redeploy: no build, today's variables, the volume kept.
    env.patch(&format!("{base}/env/GREETING"), &owner, json!({"value": "bonjour"})).await.expect(200);
    let (_, d) = deploy(format!("{base}/redeploy")).await;
    let events: Vec<&str> = d["events"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(!events.contains(&"building"), "a redeploy does not build: {events:?}");
    assert_eq!(get_path(&env, "/greeting.txt").await, "bonjour\n");
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 2, "the volume survived the redeploy");

    // A new commit, then a rollback to the first release: its image and its variables, no build.
    write_app(dir, "v2", 8080);
    commit(dir, "v2");
    deploy(format!("{base}/deployments")).await;
    assert_eq!(get_path(&env, "/").await, "v2");
    let (_, d) = deploy(format!("/api/workspaces/acme/deployments/{id1}/rollback")).await;
    assert_eq!(d["kind"], json!("rollback"));
    let events: Vec<&str> = d["events"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert!(!events.contains(&"building"), "{events:?}");
    assert_eq!(get_path(&env, "/").await, "v1");
    assert_eq!(get_path(&env, "/greeting.txt").await, "hello\n", "a rollback restores the release's variables");
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 4, "the volume survived redeploy and rollback");

    // Stop releases the compute; start brings it back; the volume is still there.
    let r = env.post(&format!("{base}/stop"), &owner, json!({})).await.expect(200);
    assert_eq!(r.data()["status"], json!("stopped"));
    let r = env.http.get(format!("{}/", env.apps)).header("Host", "svc.acme.localhost").send().await.unwrap();
    assert_ne!(r.status(), 200, "stopped means not serving");
    env.post(&format!("{base}/stop"), &owner, json!({})).await.expect(409);
    assert_eq!(env.get(base, &owner).await.data()["status"], json!("stopped"));
    let (_, _) = deploy(format!("{base}/start")).await;
    assert_eq!(get_path(&env, "/").await, "v1");
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 5);
    let vols = sh(dir, "docker", &["volume", "ls", "-q", "--filter", "label=berth.managed=true"]);
    assert!(vols.lines().any(|v| v.ends_with("-data")), "{vols}");

    // A failing start prints the secret; neither the error nor the log shows it.
    env.put(&format!("{base}/env/bulk"), &owner, json!({"variables": {"APP_PORT": "not-a-port"}})).await.expect(200);
    let r = env.post(&format!("{base}/redeploy"), &owner, json!({})).await.expect(202);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let d = wait_for(&env, &owner, &id, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!(d["status"], json!("failed"));
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("exited") && error.contains("token=********"), "the app's output, scrubbed: {error}");
    assert_eq!(get_path(&env, "/").await, "v1", "the running release kept serving");
    let list = env.get(&format!("{base}/deployments?limit=50"), &owner).await.expect(200);
    assert!(!list.body.to_string().contains("supersecret-xyz-123"));
    for dep in list.data()["deployments"].as_array().unwrap() {
        let id = dep["id"].as_str().unwrap();
        let logs =
            env.get(&format!("/api/workspaces/acme/deployments/{id}/logs?limit=10000"), &owner).await.expect(200);
        let detail = env.get(&format!("/api/workspaces/acme/deployments/{id}"), &owner).await.expect(200);
        assert!(!logs.body.to_string().contains("supersecret-xyz-123"), "secret in the log of {id}");
        assert!(!detail.body.to_string().contains("supersecret-xyz-123"), "secret in {id}");
    }
    let r = env.get(&format!("{base}/releases"), &owner).await.expect(200);
    assert_eq!(r.data()["total"], json!(5));
}

fn github_signature(secret: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_push_deploys_once_and_a_bad_signature_is_refused() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "pushed").await;
    let dir = repo.path();
    let sha = sh(dir, "git", &["rev-parse", "HEAD"]).trim().to_owned();
    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "hooked", "port": 8080, "build": {"builder": "dockerfile"}}),
    )
    .await
    .expect(201);
    let base = "/api/workspaces/acme/projects/hooked";
    let g = env
        .put(
            &format!("{base}/git"),
            &owner,
            json!({"repo_url": format!("file://{}", dir.display()), "branch": "main", "auto_deploy": true}),
        )
        .await
        .expect(201);
    let secret = g.data()["webhook"]["secret"].as_str().unwrap().to_owned();
    let hook = format!("{}/api/hooks/{}", env.base, g.data()["webhook"]["id"].as_str().unwrap());
    let body = json!({"ref": "refs/heads/main", "after": sha, "repository": {"default_branch": "main"}}).to_string();
    let send = |sig: String, body: String, event: &'static str| {
        env.http
            .post(&hook)
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", "d-1")
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
    };

    let r = send("sha256=00".into(), body.clone(), "push").await.unwrap();
    assert_eq!(r.status(), 401);
    let r = send(github_signature("wrong", &body), body.clone(), "push").await.unwrap();
    assert_eq!(r.status(), 401);
    let r = send(github_signature(&secret, &body), body.clone(), "ping").await.unwrap();
    assert_eq!(r.status(), 200);
    let r = send(github_signature(&secret, &body), body.clone(), "push").await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let id = v["data"]["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["data"]["deployment"]["trigger"], json!("webhook"));
    let r = send(github_signature(&secret, &body), body.clone(), "push").await.unwrap();
    assert_eq!(r.status(), 200, "a redelivery does not deploy twice");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["action"], json!("duplicate"));
    let other = json!({"ref": "refs/heads/feature", "after": "1".repeat(40)}).to_string();
    let r = send(github_signature(&secret, &other), other, "push").await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["action"], json!("ignored"), "{v}");

    // Follow the build live over SSE (EventSource-style auth with ?api_key=) until `done`.
    let Cred::Key(key) = &owner else { unreachable!() };
    let url = format!("{}/api/workspaces/acme/deployments/{id}/stream?api_key={key}", env.base);
    let mut resp = env.http.get(&url).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("\"type\":\"done\"") {
        assert!(Instant::now() < deadline, "no done frame: {text}");
        match tokio::time::timeout(Duration::from_secs(60), resp.chunk()).await.unwrap().unwrap() {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    assert!(text.contains("\"type\":\"log\"") && text.contains("COPY www /www"), "{text}");
    assert!(text.contains("\"status\":\"running\""), "{text}");
    let first_id: i64 = text.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().trim().parse().unwrap();
    // Resuming with Last-Event-ID continues after that line.
    let resumed = env
        .http
        .get(format!("{}/api/workspaces/acme/deployments/{id}/stream", env.base))
        .header("X-API-Key", key)
        .header("Last-Event-ID", first_id.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !resumed.contains(&format!("id: {first_id}\n")) && resumed.contains(&format!("id: {}", first_id + 1)),
        "{resumed}"
    );
    let d = wait_for(&env, &owner, &id, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    let r = env.http.get(format!("{}/", env.apps)).header("Host", "hooked.acme.localhost").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "pushed");
    let list = env.get(&format!("{base}/deployments"), &owner).await.expect(200);
    assert_eq!(list.data()["total"], json!(1), "exactly one deployment for one commit");

    // GitLab's token header works too; a wrong token is 401; an unknown hook is 404.
    let gl = |token: &str| {
        env.http
            .post(&hook)
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Token", token)
            .body(json!({"ref": "refs/heads/main", "checkout_sha": "2".repeat(40)}).to_string())
            .send()
    };
    assert_eq!(gl("nope").await.unwrap().status(), 401);
    assert_eq!(gl(&secret).await.unwrap().status(), 202);
    let r = env.http.post(format!("{}/api/hooks/unknown", env.base)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Turning auto-deploy off stops deploys from pushes.
    env.put(&format!("{base}/git"), &owner, json!({"auto_deploy": false})).await.expect(200);
    let r = gl(&secret).await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["action"], json!("ignored"));
    let latest = env.get(&format!("{base}/deployments"), &owner).await.expect(200);
    let newest = latest.data()["deployments"][0]["id"].as_str().unwrap().to_owned();
    wait_for(&env, &owner, &newest, &["running", "failed", "superseded", "cancelled"], Duration::from_secs(120)).await;
}
