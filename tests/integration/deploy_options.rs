//! What a deploy can be asked for, on the real engine: build arguments (plain variables always, secrets only when
//! marked `build_secret`), a pinned commit, a confirmed volume `reset`, builds one at a time, what `status`
//! shows of running and crash-looping replicas, and what deleting a project or its workspace leaves behind (also
//! with route-table rebuilds racing the deletion).

use crate::deploy::{BASE_IMAGE, commit, deploy_setup, get_path, sh, wait_for, write_app};
use crate::support::{Cred, TestEnv};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BASE: &str = "/api/workspaces/acme/projects/svc";

async fn create_svc(env: &TestEnv, owner: &Cred, repo: &std::path::Path, extra: Value) {
    let mut body = json!({"name": "svc", "port": 8080, "build": {"builder": "dockerfile"}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    env.post("/api/workspaces/acme/projects", owner, body).await.expect(201);
    env.put(&format!("{BASE}/git"), owner, json!({"repo_url": format!("file://{}", repo.display())})).await.expect(201);
}

/// Queues a deployment with `body` and waits until it is running or failed.
async fn deploy(env: &TestEnv, owner: &Cred, path: &str, body: Value) -> Value {
    let r = env.post(path, owner, body).await.expect(202);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    wait_for(env, owner, &id, &["running", "failed"], Duration::from_secs(120)).await
}

async fn build_log(env: &TestEnv, owner: &Cred, id: &str) -> String {
    let logs = env.get(&format!("/api/workspaces/acme/deployments/{id}/logs?limit=10000"), owner).await.expect(200);
    logs.data()["lines"]
        .as_array()
        .or_else(|| logs.data().as_array())
        .map(|lines| lines.iter().filter_map(|l| l["line"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[tokio::test]
async fn builds_get_plain_variables_and_only_the_secrets_marked_for_builds() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\nARG GREETING\nARG API_TOKEN\nCOPY www /www\n\
             RUN echo \"greeting=[$GREETING]\" > /www/build.txt && echo \"token=[$API_TOKEN]\" >> /www/build.txt \
             && echo \"building with token=[$API_TOKEN]\"\n\
             CMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    )
    .unwrap();
    commit(dir, "build args");
    create_svc(&env, &owner, dir, json!({})).await;
    env.post(&format!("{BASE}/env"), &owner, json!({"key": "GREETING", "value": "hi"})).await.expect(201);
    env.post(
        &format!("{BASE}/env"),
        &owner,
        json!({"key": "API_TOKEN", "value": "tok-98765-secret", "is_secret": true}),
    )
    .await
    .expect(201);
    let r = env
        .post(&format!("{BASE}/env"), &owner, json!({"key": "PLAIN", "value": "x", "build_secret": true}))
        .await
        .expect(400);
    assert!(r.error().contains("secrets only"), "{}", r.error());

    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(get_path(&env, "/build.txt").await, "greeting=[hi]\ntoken=[]\n", "secrets stay out of builds");

    // Marked as a build secret, the build receives it; the build log shows it masked.
    let r = env.patch(&format!("{BASE}/env/API_TOKEN"), &owner, json!({"build_secret": true})).await.expect(200);
    assert_eq!(r.data()["build_secret"], json!(true));
    assert_eq!(r.data()["value"], json!("********"));
    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(get_path(&env, "/build.txt").await, "greeting=[hi]\ntoken=[tok-98765-secret]\n");
    let log = build_log(&env, &owner, d["id"].as_str().unwrap()).await;
    assert!(log.contains("building with token=[********]"), "the build's output is scrubbed:\n{log}");
    assert!(!log.contains("tok-98765-secret"));
}

#[tokio::test]
async fn a_deploy_can_pin_a_commit_of_the_branch() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    let v1 = sh(dir, "git", &["rev-parse", "HEAD"]).trim().to_owned();
    write_app(dir, "v2", 8080);
    commit(dir, "v2");
    create_svc(&env, &owner, dir, json!({})).await;

    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(get_path(&env, "/").await, "v2");

    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({"commit": &v1[..10]})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(d["commit"], json!(v1), "the full SHA of what was built");
    assert_eq!(get_path(&env, "/").await, "v1");

    let r = env.post(&format!("{BASE}/deployments"), &owner, json!({"commit": "not-a-sha"})).await.expect(400);
    assert!(r.error().contains("hex"), "{}", r.error());
    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({"commit": "0123456789abcdef"})).await;
    assert_eq!(d["status"], json!("failed"));
    assert!(d["error"].as_str().unwrap().contains("is not on branch 'main'"), "{d}");
    assert_eq!(get_path(&env, "/").await, "v1", "the failed deploy left the release serving");
}

#[tokio::test]
async fn reset_needs_the_slug_and_starts_the_volumes_empty() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    let start = "date >> /data/boots && cp /data/boots /www/boots.txt && exec busybox httpd -f -p 8080 -h /www";
    create_svc(
        &env,
        &owner,
        dir,
        json!({"runtime": {"start_command": start}, "volumes": [{"name": "data", "mount_path": "/data"}]}),
    )
    .await;
    let path = format!("{BASE}/deployments");
    assert_eq!(deploy(&env, &owner, &path, json!({})).await["status"], json!("running"));
    assert_eq!(deploy(&env, &owner, &path, json!({})).await["status"], json!("running"));
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 2, "a plain redeploy keeps the volume");

    let r = env.post(&path, &owner, json!({"reset": true})).await.expect(400);
    assert!(r.error().contains("\"confirm\": \"svc\""), "{}", r.error());
    env.post(&path, &owner, json!({"reset": true, "confirm": "other"})).await.expect(400);
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 2, "refused resets changed nothing");

    let d = deploy(&env, &owner, &path, json!({"reset": true, "confirm": "svc"})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(d["reset"], json!(true));
    assert_eq!(d["no_cache"], json!(true), "a reset rebuilds from scratch too");
    assert_eq!(get_path(&env, "/boots.txt").await.lines().count(), 1, "the volume was recreated empty");
    let log = build_log(&env, &owner, d["id"].as_str().unwrap()).await;
    assert!(log.contains("reset: deleted volume data (/data)"), "{log}");
}

#[tokio::test]
async fn builds_run_one_at_a_time_by_default() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    // A build that takes a few seconds, so the second project's build has to wait for it.
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\nCOPY www /www\nRUN sleep 3\nCMD [\"busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    )
    .unwrap();
    commit(dir, "slow build");
    let url = format!("file://{}", dir.display());
    for name in ["one", "two"] {
        env.post(
            "/api/workspaces/acme/projects",
            &owner,
            json!({"name": name, "port": 8080, "build": {"builder": "dockerfile"}}),
        )
        .await
        .expect(201);
        env.put(&format!("/api/workspaces/acme/projects/{name}/git"), &owner, json!({"repo_url": url}))
            .await
            .expect(201);
    }
    let first =
        env.post("/api/workspaces/acme/projects/one/deployments", &owner, json!({"no_cache": true})).await.expect(202);
    let first = first.data()["id"].as_str().unwrap().to_owned();
    wait_for(&env, &owner, &first, &["building"], Duration::from_secs(30)).await;
    let second =
        env.post("/api/workspaces/acme/projects/two/deployments", &owner, json!({"no_cache": true})).await.expect(202);
    let second = second.data()["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut saw_waiting = false;
    while started.elapsed() < Duration::from_secs(2) {
        let d = env.get(&format!("/api/workspaces/acme/deployments/{second}"), &owner).await.expect(200);
        assert_eq!(d.data()["status"], json!("queued"), "the second build waits while the first builds");
        saw_waiting |= build_log(&env, &owner, &second).await.contains("waiting for a build slot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_waiting, "the waiting deployment says why");
    let a = wait_for(&env, &owner, &first, &["running", "failed"], Duration::from_secs(120)).await;
    let b = wait_for(&env, &owner, &second, &["running", "failed"], Duration::from_secs(120)).await;
    assert_eq!((a["status"].clone(), b["status"].clone()), (json!("running"), json!("running")));
    let at = |d: &Value, status: &str| -> String {
        d["events"].as_array().unwrap().iter().find(|e| e["status"] == json!(status)).unwrap()["at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(at(&b, "building") >= at(&a, "deploying"), "the second build started after the first one ended");
}

#[tokio::test]
async fn status_measures_replicas_and_shows_a_crash_loop() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    // Serves long enough to pass the health check, then exits with an error, again and again.
    let start = "busybox httpd -f -p 8080 -h /www & sleep 4; exit 3";
    create_svc(&env, &owner, repo.path(), json!({"replicas": 2, "runtime": {"start_command": start}})).await;
    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}");

    let s = env.get(&format!("{BASE}/status"), &owner).await.expect(200);
    let s = s.data();
    assert_eq!(s["pods"]["total"], json!(2), "{s}");
    assert_eq!(s["pods"]["ready"], json!(2), "{s}");
    let used = s["resources"]["memory"]["used"].as_str().unwrap_or_default();
    assert!(used.ends_with("Mi") && used.trim_end_matches("Mi").parse::<u64>().is_ok(), "measured memory: {s}");
    assert!(s["resources"]["cpu"]["used"].as_str().is_some_and(|c| c.ends_with('m')), "measured cpu: {s}");
    assert_eq!(s["resources"]["memory"]["limit"], json!("512Mi"));
    for pod in s["pods"]["items"].as_array().unwrap() {
        assert!(pod["memory"].as_str().is_some_and(|m| m.ends_with("Mi")), "{pod}");
    }

    // Within a few crash cycles the engine restarts the replicas with a growing delay and status says so.
    let started = Instant::now();
    let s = loop {
        let s = env.get(&format!("{BASE}/status"), &owner).await.expect(200).data().clone();
        let pods = s["pods"]["items"].as_array().unwrap();
        if pods.iter().all(|p| p["status"] == json!("CrashLoopBackOff") && p["restarts"].as_i64() >= Some(1)) {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no crash loop shown: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(s["project"]["status"], json!("crash_looping"), "{s}");
    assert_eq!(s["pods"]["ready"], json!(0), "{s}");
}

#[tokio::test]
async fn an_image_project_runs_its_image_without_a_build() {
    let (env, owner, _cleanup, _repo) = deploy_setup(0, "unused").await;
    let start = "mkdir -p /www && echo from the image > /www/index.html && busybox httpd -f -p 8080 -h /www";
    env.post(
        "/api/workspaces/acme/projects",
        &owner,
        json!({"name": "svc", "port": 8080, "image": BASE_IMAGE, "runtime": {"start_command": start}}),
    )
    .await
    .expect(201);
    let d = deploy(&env, &owner, &format!("{BASE}/deployments"), json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}");
    assert_eq!(d["image"], json!(BASE_IMAGE), "the project's image runs as it is: {d}");
    assert!(
        d["events"].as_array().unwrap().iter().all(|e| e["status"] != json!("building")),
        "nothing is built for an image project: {d}"
    );
    assert_eq!(get_path(&env, "/").await, "from the image\n");
    // There is no commit to build from.
    let r = env.post(&format!("{BASE}/deployments"), &owner, json!({"commit": "abcdef1"})).await.expect(400);
    assert!(r.error().contains("prebuilt image"), "{}", r.error());
}

/// The ids of the containers (running or not) carrying `label`.
fn containers(label: &str) -> Vec<String> {
    let out = sh(std::path::Path::new("/"), "docker", &["ps", "-aq", "--filter", &format!("label={label}")]);
    out.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn deleting_a_project_or_its_workspace_removes_its_replicas_and_keeps_its_volumes() {
    let (env, owner, _cleanup, _repo) = deploy_setup(0, "unused").await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.data()["id"].as_str().unwrap().to_owned();
    let start =
        "echo kept >> /data/boots && mkdir -p /www && echo up > /www/index.html && busybox httpd -f -p 8080 -h /www";
    let mut ids = Vec::new();
    for name in ["svc", "other"] {
        let r = env
            .post(
                "/api/workspaces/acme/projects",
                &owner,
                json!({"name": name, "port": 8080, "image": BASE_IMAGE, "replicas": 2, "runtime": {"start_command": start},
                       "volumes": [{"name": "data", "mount_path": "/data"}]}),
            )
            .await
            .expect(201);
        ids.push(r.data()["id"].as_str().unwrap().to_owned());
        let path = format!("/api/workspaces/acme/projects/{name}/deployments");
        assert_eq!(deploy(&env, &owner, &path, json!({})).await["status"], json!("running"));
        assert_eq!(containers(&format!("berth.project={}", ids.last().unwrap())).len(), 2, "two replicas of {name}");
    }
    assert_eq!(get_path(&env, "/").await, "up\n");

    let r = env.delete(BASE, &owner).await.expect(200);
    assert_eq!(r.data()["volumes_kept"], json!([format!("berth-{}-data", ids[0])]), "the answer names what is kept");
    let r = env.http.get(format!("{}/", env.apps)).header("Host", "svc.acme.localhost").send().await.unwrap();
    assert_eq!(r.status(), 404, "a deleted project's domain is no longer routed");
    assert_eq!(containers(&format!("berth.project={}", ids[0])), Vec::<String>::new(), "its replicas are removed");
    assert_eq!(containers(&format!("berth.project={}", ids[1])).len(), 2, "the other project keeps running");
    let volumes = sh(
        std::path::Path::new("/"),
        "docker",
        &["volume", "ls", "-q", "--filter", &format!("label=berth.workspace={ws_id}")],
    );
    assert!(volumes.contains(&format!("berth-{}-data", ids[0])), "the deleted project's volume is kept: {volumes}");

    let r = env.delete("/api/workspaces/acme", &owner).await.expect(200);
    let mut kept: Vec<String> = ids.iter().map(|id| format!("berth-{id}-data")).collect();
    kept.sort();
    assert_eq!(r.data()["volumes_kept"], json!(kept), "the answer names both projects' volumes");
    assert_eq!(r.data()["id"], json!(ws_id));
    assert_eq!(
        containers(&format!("berth.workspace={ws_id}")),
        Vec::<String>::new(),
        "no replica outlives its workspace"
    );
    let networks = sh(
        std::path::Path::new("/"),
        "docker",
        &["network", "ls", "-q", "--filter", &format!("label=berth.workspace={ws_id}")],
    );
    assert_eq!(networks.trim(), "", "the workspace's network is removed");
    let volumes = sh(
        std::path::Path::new("/"),
        "docker",
        &["volume", "ls", "-q", "--filter", &format!("label=berth.workspace={ws_id}")],
    );
    assert_eq!(volumes.lines().count(), 2, "both projects' volumes are kept: {volumes}");
}

/// Route-table rebuilds that read the database before a deletion committed must not publish after the deletion's
/// own rebuild: the deleted project would be routed again, to replicas that are being removed (a 502 instead of a
/// 404 until something else rebuilt the table). Forty rebuilds start as the deletion is sent, over its first few
/// milliseconds; before rebuilds ran one at a time this failed in the first or second of eight rounds, in three
/// runs out of three.
#[tokio::test]
async fn a_rebuild_racing_a_deletion_never_routes_the_deleted_project_again() {
    let (env, owner, _cleanup, _repo) = deploy_setup(0, "unused").await;
    let services = env.handle.as_ref().unwrap().services.clone();
    let start = "mkdir -p /www && echo up > /www/index.html && busybox httpd -f -p 8080 -h /www";
    for round in 0..8 {
        for name in ["svc", "other"] {
            if round > 0 && name == "other" {
                continue;
            }
            env.post(
                "/api/workspaces/acme/projects",
                &owner,
                json!({"name": name, "port": 8080, "image": BASE_IMAGE, "runtime": {"start_command": start}}),
            )
            .await
            .expect(201);
            let path = format!("/api/workspaces/acme/projects/{name}/deployments");
            assert_eq!(deploy(&env, &owner, &path, json!({})).await["status"], json!("running"));
        }
        assert_eq!(get_path(&env, "/").await, "up\n");
        let rebuilds: Vec<_> = (0..40u64)
            .map(|n| {
                let services = services.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(n * 100)).await;
                    services.refresh_routes().await;
                })
            })
            .collect();
        env.delete(BASE, &owner).await.expect(200);
        for rebuild in rebuilds {
            rebuild.await.unwrap();
        }
        let r = env.http.get(format!("{}/", env.apps)).header("Host", "svc.acme.localhost").send().await.unwrap();
        assert_eq!(r.status(), 404, "round {round}: the deleted project is routed again");
    }
}

#[tokio::test]
async fn cancel_stops_a_running_build_at_once_and_a_newer_deploy_supersedes_a_queued_one() {
    let (env, owner, _cleanup, repo) = deploy_setup(0, "v1").await;
    let dir = repo.path();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN echo long build starts && sleep 120\nCMD [\"busybox\", \"httpd\", \"-f\"]\n"),
    )
    .unwrap();
    commit(dir, "a build that takes two minutes");
    create_svc(&env, &owner, dir, json!({})).await;
    let path = format!("{BASE}/deployments");
    let slow =
        env.post(&path, &owner, json!({"no_cache": true})).await.expect(202).data()["id"].as_str().unwrap().to_owned();
    // Building before the next ones are queued (a deployment still queued would be superseded by them).
    wait_for(&env, &owner, &slow, &["building"], Duration::from_secs(60)).await;
    // Two more while it builds: the newer one supersedes the older queued one, which never starts.
    let queued = env.post(&path, &owner, json!({})).await.expect(202).data()["id"].as_str().unwrap().to_owned();
    let newest = env.post(&path, &owner, json!({})).await.expect(202).data()["id"].as_str().unwrap().to_owned();
    let q = env.get(&format!("/api/workspaces/acme/deployments/{queued}"), &owner).await.expect(200);
    assert_eq!(q.data()["status"], json!("superseded"), "{}", q.body);
    let said = q.data()["events"].as_array().unwrap().iter().any(|e| {
        e["status"] == json!("superseded") && e["message"].as_str().unwrap_or_default().contains("superseded by")
    });
    assert!(said, "the event says which deployment took over: {}", q.body);

    let started = Instant::now();
    while !build_log(&env, &owner, &slow).await.contains("long build starts") {
        assert!(started.elapsed() < Duration::from_secs(60), "the slow build never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled_at = Instant::now();
    env.post(&format!("/api/workspaces/acme/deployments/{slow}/cancel"), &owner, json!({})).await.expect(200);
    let d = wait_for(&env, &owner, &slow, &["cancelled"], Duration::from_secs(10)).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(5), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(d["status"], json!("cancelled"));
    // The engine stopped building: no build container keeps sleeping.
    let started = Instant::now();
    loop {
        let ps = sh(dir, "docker", &["ps", "--no-trunc", "--format", "{{.Command}}"]);
        if !ps.contains("long build starts") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the build container still runs: {ps}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The newest deployment goes on to build after the cancelled one (and is cancelled too, to end the test fast).
    wait_for(&env, &owner, &newest, &["building"], Duration::from_secs(30)).await;
    env.post(&format!("/api/workspaces/acme/deployments/{newest}/cancel"), &owner, json!({})).await.expect(200);
    wait_for(&env, &owner, &newest, &["cancelled"], Duration::from_secs(10)).await;
}
