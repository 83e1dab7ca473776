//! The `auto` builder end to end on the real Docker engine: a stdlib Python app without a Dockerfile is detected,
//! built from a generated Dockerfile on a locally made Python image and served through Berth's HTTP listener; a
//! repository with a Dockerfile is built from it; an unrecognisable repository fails with what to add.

use crate::deploy::{Cleanup, base_image, commit, sh, write_app};
use crate::support::{Cred, TestEnv};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// The Python base image (`tests/fixtures/make-python-base.sh`: debootstrap + Debian's python3, cached by a hash
/// of its recipe).
fn python_base_image() -> String {
    crate::support::fixture_script("make-python-base.sh")
}

/// A Berth on the real engine with an owner key in workspace `acme` (whose Docker objects are removed at the
/// end), the auto builder's Python image set to `python_image`, and an empty git repository on `main`.
async fn setup(python_image: Option<String>) -> (TestEnv, Cred, Cleanup, tempfile::TempDir) {
    let env = TestEnv::start_with(|c| {
        c.allow_local_repos = true;
        c.health_timeout_secs = 20;
        c.drain_secs = 0;
        if let Some(image) = python_image {
            c.auto_image_python = image;
        }
    })
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.expect(200).data()["id"].as_str().unwrap().to_owned();
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    (env, owner, Cleanup(ws_id), repo)
}

/// Creates an `auto` project `name` on `port` (with `build` merged in), connects the repository and deploys;
/// returns the finished deployment and its build log as one text.
async fn deploy(env: &TestEnv, owner: &Cred, repo: &Path, name: &str, port: u16, build: Value) -> (Value, String) {
    let mut build_settings = json!({"builder": "auto"});
    build_settings.as_object_mut().unwrap().extend(build.as_object().unwrap().clone());
    env.post("/api/workspaces/acme/projects", owner, json!({"name": name, "port": port, "build": build_settings}))
        .await
        .expect(201);
    let base = format!("/api/workspaces/acme/projects/{name}");
    env.put(&format!("{base}/git"), owner, json!({"repo_url": format!("file://{}", repo.display())})).await.expect(201);
    let started = Instant::now();
    let r = env.post(&format!("{base}/deployments"), owner, json!({})).await.expect(202);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let d = loop {
        let r = env.get(&format!("/api/workspaces/acme/deployments/{id}"), owner).await.expect(200);
        let status = r.data()["status"].as_str().unwrap().to_owned();
        if ["running", "failed", "cancelled"].contains(&status.as_str()) {
            break r.data().clone();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "deployment {id} is still {status}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("auto_build: {name} ended {} after {} ms", d["status"], started.elapsed().as_millis());
    let logs = env.get(&format!("/api/workspaces/acme/deployments/{id}/logs?limit=10000"), owner).await.expect(200);
    let text = logs.data()["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    (d, text)
}

async fn fetch(env: &TestEnv, host: &str) -> (u16, String) {
    let r = env.http.get(format!("{}/", env.apps)).header("Host", host).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

const PYTHON_APP: &str = r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from python on port " + os.environ["PORT"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Hello).serve_forever()
"#;

#[tokio::test]
async fn a_python_app_without_a_dockerfile_is_detected_built_and_served() {
    let image = python_base_image();
    let (env, owner, _cleanup, repo) = setup(Some(image.clone())).await;
    let dir = repo.path();
    // The app lives in a subdirectory: the root directory is the build context.
    std::fs::create_dir_all(dir.join("services/api")).unwrap();
    std::fs::write(dir.join("services/api/app.py"), PYTHON_APP).unwrap();
    std::fs::write(dir.join("services/api/requirements.txt"), "# the standard library is enough\n").unwrap();
    std::fs::write(dir.join("README.md"), "# a monorepo\n").unwrap();
    commit(dir, "python app");

    let (d, log) = deploy(&env, &owner, dir, "api", 5000, json!({"root_directory": "services/api"})).await;
    assert_eq!(d["status"], json!("running"), "{d}\n{log}");
    assert!(log.contains("builder auto: no Dockerfile; detected python"), "{log}");
    assert!(log.contains("evidence: requirements.txt present"), "{log}");
    assert!(log.contains("generated Dockerfile:"), "{log}");
    assert!(log.contains(&format!("  FROM {image}")), "{log}");
    assert!(log.contains("RUN pip install --no-cache-dir -r requirements.txt"), "{log}");
    assert!(log.contains(r#"CMD ["sh","-c","python app.py"]"#), "{log}");
    assert!(log.contains("project's port is 5000"), "the port note: {log}");
    assert_eq!(fetch(&env, "api.acme.localhost").await, (200, "hello from python on port 5000".to_owned()));

    // The generated Dockerfile is not part of the image (the engine drops it from the context after reading it).
    let tag = d["image"].as_str().unwrap();
    let files = sh(dir, "docker", &["run", "--rm", tag, "sh", "-c", "cd /app && find . -type f | sort"]);
    assert_eq!(files.split_whitespace().collect::<Vec<_>>(), ["./.dockerignore", "./app.py", "./requirements.txt"]);
}

#[tokio::test]
async fn a_repository_dockerfile_wins_over_detection() {
    base_image();
    let (env, owner, _cleanup, repo) = setup(None).await;
    let dir = repo.path();
    write_app(dir, "built from the repository's Dockerfile", 8080);
    // Python markers too: detection would pick Python if the Dockerfile did not win.
    std::fs::write(dir.join("requirements.txt"), "flask\n").unwrap();
    std::fs::write(dir.join("app.py"), "print('not used')\n").unwrap();
    commit(dir, "dockerfile app");

    let (d, log) = deploy(&env, &owner, dir, "web", 8080, json!({})).await;
    assert_eq!(d["status"], json!("running"), "{d}\n{log}");
    assert!(log.contains("builder auto: the repository has Dockerfile; building it as is"), "{log}");
    assert!(!log.contains("generated Dockerfile"), "{log}");
    assert!(log.contains("COPY www /www"), "{log}");
    assert_eq!(fetch(&env, "web.acme.localhost").await, (200, "built from the repository's Dockerfile".to_owned()));
}

#[tokio::test]
async fn an_unrecognisable_repository_fails_saying_what_to_add() {
    let (env, owner, _cleanup, repo) = setup(None).await;
    let dir = repo.path();
    std::fs::write(dir.join("notes.txt"), "just notes\n").unwrap();
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "<h1>hi</h1>\n").unwrap();
    commit(dir, "nothing to build");

    let (d, log) = deploy(&env, &owner, dir, "mystery", 3000, json!({})).await;
    assert_eq!(d["status"], json!("failed"), "{d}");
    let error = d["error"].as_str().unwrap();
    for needle in ["add a Dockerfile", "package.json", "requirements.txt", "go.mod", "Cargo.toml", "index.html"] {
        assert!(error.contains(needle), "{needle} missing from: {error}");
    }
    assert!(error.contains("set the root directory to site"), "the nested site is pointed out: {error}");
    assert!(log.contains("[ERROR] the auto builder could not tell how to build this repository"), "{log}");
    let filter = format!("label=berth.deployment={}", d["id"].as_str().unwrap());
    assert!(sh(dir, "docker", &["ps", "-aq", "--filter", &filter]).trim().is_empty(), "no container was started");
}
