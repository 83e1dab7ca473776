//! Runtime logs on the real engine: a deployed busybox app prints numbered lines to stdout and stderr (one with a
//! secret value); they arrive in the store masked, answer every filter, stream over SSE (resumable) and
//! WebSocket, download as gzip, count in the usage, feed the analysis, and a restart of Berth neither loses nor
//! repeats one.

use crate::deploy::{Cleanup, base_image, commit, sh, write_app};
use crate::support::{Cred, TestEnv};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SECRET: &str = "s3cr3t-value-987";
const BASE: &str = "/api/workspaces/logs/projects/web";

async fn logs(env: &TestEnv, cred: &Cred, query: &str) -> Vec<Value> {
    let r = env.get(&format!("{BASE}/logs?{query}"), cred).await.expect(200);
    r.data()["logs"].as_array().unwrap().clone()
}

/// Polls the log (oldest first) until `ok` holds for it.
async fn wait_logs(env: &TestEnv, cred: &Cred, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let lines = logs(env, cred, "limit=10000&direction=asc").await;
        if ok(&lines) {
            return lines;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "waited for {what}; have {} lines", lines.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn text(l: &Value) -> &str {
    l["line"].as_str().unwrap()
}

fn seq(l: &Value) -> i64 {
    l["seq"].as_i64().unwrap()
}

/// The numbers of the `out N` lines, asserting none repeats and none is missing.
fn assert_numbered_once(lines: &[Value]) -> usize {
    let numbers: Vec<u64> =
        lines.iter().filter_map(|l| text(l).strip_prefix("out ")?.split_whitespace().next()?.parse().ok()).collect();
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "a line was stored twice: {numbers:?}");
    let (first, last) = (*unique.first().unwrap(), *unique.last().unwrap());
    assert_eq!(unique.len() as u64, last - first + 1, "a line is missing: {numbers:?}");
    numbers.len()
}

/// Reads SSE frames until `want` log frames arrived; returns their (id, data).
async fn sse_frames(
    env: &TestEnv,
    key: &str,
    query: &str,
    last_event_id: Option<i64>,
    want: usize,
) -> Vec<(i64, Value)> {
    use futures::StreamExt;
    let mut req = env.http.get(format!("{}{BASE}/logs/stream?api_key={key}{query}", env.base));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();
    let (mut buf, mut frames) = (String::new(), Vec::new());
    while frames.len() < want {
        let chunk = tokio::time::timeout(Duration::from_secs(30), body.next()).await.unwrap().unwrap().unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let id = frame.lines().find_map(|l| l.strip_prefix("id:")).map(|v| v.trim().parse::<i64>().unwrap());
            let data =
                frame.lines().find_map(|l| l.strip_prefix("data:")).map(|d| serde_json::from_str(d.trim()).unwrap());
            if let (Some(id), Some(data)) = (id, data) {
                frames.push((id, data));
            }
        }
    }
    frames
}

#[tokio::test]
async fn runtime_logs_are_followed_masked_filtered_streamed_and_survive_a_restart() {
    base_image();
    let env = TestEnv::start_with(|c| {
        c.allow_local_repos = true;
        c.health_timeout_secs = 20;
        c.drain_secs = 0;
        c.api_requests_per_minute = 0;
    })
    .await;
    let (_, owner) = env.user_with_key("ops@logs.io", "logs").await;
    let Cred::Key(key) = owner.clone() else { unreachable!() };
    let ws_id = env.get("/api/workspaces/logs", &owner).await.expect(200).data()["id"].as_str().unwrap().to_owned();
    let _cleanup = Cleanup(ws_id);
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    write_app(repo.path(), "hi", 8080);
    commit(repo.path(), "v1");

    let start = "echo 'Error: listen EADDRINUSE: address already in use :::8080' >&2; \
                 (i=0; while true; do i=$((i+1)); echo \"out $i token=$SECRET_TOKEN\"; echo \"ERR $i\" >&2; sleep 0.1; done) & \
                 exec busybox httpd -f -p 8080 -h /www";
    env.post(
        "/api/workspaces/logs/projects",
        &owner,
        json!({"name": "web", "port": 8080, "build": {"builder": "dockerfile"}, "runtime": {"start_command": start}}),
    )
    .await
    .expect(201);
    env.put(&format!("{BASE}/git"), &owner, json!({"repo_url": format!("file://{}", repo.path().display())}))
        .await
        .expect(201);
    env.post(&format!("{BASE}/env"), &owner, json!({"key": "SECRET_TOKEN", "value": SECRET, "is_secret": true}))
        .await
        .expect(201);
    let r = env.post(&format!("{BASE}/deployments"), &owner, json!({})).await.expect(202);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let began = Instant::now();
    loop {
        let d = env.get(&format!("/api/workspaces/logs/deployments/{id}"), &owner).await.expect(200);
        match d.data()["status"].as_str().unwrap() {
            "running" => break,
            "failed" => panic!("deploy failed: {}", d.body),
            _ => {}
        }
        assert!(began.elapsed() < Duration::from_secs(120), "deploy too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Lines arrive, secret values masked, with their container and deployment.
    let all = wait_logs(&env, &owner, "20 stdout lines", |ls| {
        ls.iter().filter(|l| text(l).starts_with("out ")).count() >= 20
    })
    .await;
    assert!(!serde_json::to_string(&all).unwrap().contains(SECRET), "a secret value reached the log");
    let out = all.iter().find(|l| text(l).starts_with("out ")).unwrap();
    assert!(text(out).ends_with("token=********"), "{out}");
    assert_eq!(out["stream"], json!("stdout"));
    assert_eq!(out["deployment_ref"], json!("DEP-0001"));
    assert_eq!(out["deployment_id"], json!(id));
    assert!(out["container"].as_str().unwrap().starts_with("berth-") && out["pod"] == out["container"], "{out}");
    assert!(out["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_numbered_once(&all);

    // Filters.
    let newest = logs(&env, &owner, "limit=3").await;
    assert_eq!(newest.len(), 3);
    assert!(seq(&newest[0]) > seq(&newest[1]) && seq(&newest[1]) > seq(&newest[2]), "newest first by default");
    let oldest = logs(&env, &owner, "limit=3&direction=asc").await;
    assert_eq!(seq(&oldest[0]), seq(&all[0]));
    let errs = logs(&env, &owner, "q=err&limit=50").await;
    assert!(!errs.is_empty() && errs.iter().all(|l| text(l).to_lowercase().contains("err")));
    let stderr = logs(&env, &owner, "stream=stderr&limit=50").await;
    assert!(!stderr.is_empty() && stderr.iter().all(|l| l["stream"] == json!("stderr")));
    let stdout = logs(&env, &owner, "stream=stdout&limit=50").await;
    assert!(!stdout.is_empty() && stdout.iter().all(|l| l["stream"] == json!("stdout")));
    assert!(!logs(&env, &owner, "since=1h").await.is_empty());
    let future = chrono::Utc::now().timestamp() + 3600;
    assert!(logs(&env, &owner, &format!("start={future}")).await.is_empty());
    assert!(logs(&env, &owner, "end=1000").await.is_empty());
    let middle = &all[all.len() / 2];
    let cut = middle["timestamp"].as_str().unwrap();
    let later = logs(&env, &owner, &format!("start={cut}&limit=10000&direction=asc")).await;
    assert!(later.iter().all(|l| l["timestamp"].as_str().unwrap() >= cut) && seq(&later[0]) <= seq(middle));
    let earlier = logs(&env, &owner, &format!("end={cut}&limit=10000&direction=asc")).await;
    assert!(earlier.iter().all(|l| l["timestamp"].as_str().unwrap() <= cut) && !earlier.is_empty());
    for (bad, field) in [
        ("limit=0", "1 to 10000"),
        ("limit=10001", "1 to 10000"),
        ("direction=up", "asc or desc"),
        ("since=yesterday", "since"),
        ("stream=stdin", "stdout or stderr"),
        ("start=soon", "start"),
    ] {
        let r = env.get(&format!("{BASE}/logs?{bad}"), &owner).await.expect(400);
        assert!(r.error().contains(field), "{bad}: {}", r.error());
    }
    env.get(&format!("{BASE}/logs?environment=nope"), &owner).await.expect(404);

    // Download: the same lines, gzip-compressed.
    let resp = env
        .http
        .get(format!("{}{BASE}/logs/download?end={cut}", env.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("attachment; filename="));
    let gz = resp.bytes().await.unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    let downloaded: Vec<&str> = plain.lines().collect();
    assert_eq!(downloaded.len(), earlier.len());
    for (d, l) in downloaded.iter().zip(&earlier) {
        assert!(d.starts_with(l["timestamp"].as_str().unwrap()) && d.ends_with(text(l)), "{d} vs {l}");
    }

    // Usage and analysis.
    let u = env.get("/api/workspaces/logs/logs/usage", &owner).await.expect(200);
    let web = u.data()["projects"].as_array().unwrap().iter().find(|p| p["project"] == json!("web")).unwrap().clone();
    assert!(web["lines"].as_i64().unwrap() >= 40 && web["bytes"].as_i64().unwrap() > 0, "{web}");
    assert!(web["oldest"].as_str().unwrap() <= web["newest"].as_str().unwrap());
    assert_eq!(u.data()["retention"], json!({"days": 7, "lines_per_project": 100000}));
    let a = env.post(&format!("{BASE}/logs/analyze"), &owner, json!({})).await.expect(200);
    let f = a.data()["findings"].as_array().unwrap();
    let port = f.iter().find(|f| f["kind"] == json!("port_in_use")).unwrap_or_else(|| panic!("{}", a.body));
    assert!(port["evidence"][0].as_str().unwrap().contains("EADDRINUSE"));
    assert!(!port["suggestion"].as_str().unwrap().is_empty());
    let a = env
        .post(
            &format!("{BASE}/logs/analyze"),
            &owner,
            json!({"logs": "boot\nModuleNotFoundError: No module named 'flask'"}),
        )
        .await
        .expect(200);
    assert_eq!(a.data()["findings"][0]["kind"], json!("missing_module"));
    assert_eq!(a.data()["lines_analyzed"], json!(2));
    env.post(&format!("{BASE}/logs/analyze"), &owner, json!({"lines": []})).await.expect(400);

    // SSE: new lines arrive; a reconnect with Last-Event-ID continues right after it.
    let last = seq(&logs(&env, &owner, "limit=1").await[0]);
    let frames = sse_frames(&env, &key, &format!("&after={last}"), None, 6).await;
    assert!(frames.iter().all(|(id, d)| d["type"] == json!("log") && d["seq"] == json!(id) && *id > last));
    assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "in order, never twice");
    let resume_at = frames[2].0;
    let again = sse_frames(&env, &key, "", Some(resume_at), 3).await;
    assert_eq!(again[0].0, frames[3].0, "resumes right after the last event seen");
    assert!(again.windows(2).all(|w| w[0].0 < w[1].0));
    let tail = sse_frames(&env, &key, "&stream=stderr", None, 3).await;
    assert!(tail.iter().all(|(_, d)| d["stream"] == json!("stderr")));

    // WebSocket: the recent tail, then live lines.
    {
        use futures::StreamExt;
        let url = format!("{}{BASE}/live-logs?api_key={key}", env.base.replace("http://", "ws://"));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 120 {
            let msg = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.unwrap().unwrap().unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                got.push(t.to_string());
            }
        }
        assert!(got.iter().any(|l| l.starts_with("out ") && l.ends_with("token=********")), "{got:?}");
        assert!(got.iter().any(|l| l.starts_with("ERR ")));
        assert!(!got.iter().any(|l| l.contains(SECRET)));
    }

    // Another workspace sees nothing.
    let (_, stranger) = env.user_with_key("eve@evil.io", "evil").await;
    env.get(&format!("{BASE}/logs"), &stranger).await.expect(404);
    env.get(&format!("{BASE}/logs/stream"), &stranger).await.expect(404);
    env.post(&format!("{BASE}/logs/analyze"), &stranger, json!({})).await.expect(404);
    env.get("/api/workspaces/logs/logs/usage", &stranger).await.expect(404);
    env.get(&format!("{BASE}/logs"), &Cred::None).await.expect(401);

    // A restart of Berth neither loses nor repeats a line (the app keeps printing throughout).
    let before = wait_logs(&env, &owner, "lines", |ls| !ls.is_empty()).await;
    let last_before = seq(before.last().unwrap());
    let env = env.restart().await;
    let after = wait_logs(&env, &owner, "lines after the restart", |ls| {
        ls.iter().filter(|l| seq(l) > last_before && text(l).starts_with("out ")).count() >= 10
    })
    .await;
    assert!(after.len() > before.len());
    assert_numbered_once(&after);
}
