//! Git connections and detection against real repositories: local ones over file://, one served by a real
//! `git daemon` on loopback, a closed port and an unresolvable host.

use crate::support::{Cred, TestEnv, free_ports};
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const P: &str = "/api/workspaces/acme/projects/app";

fn git(dir: &Path, args: &[&str]) {
    crate::deploy::sh(dir, "git", args);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect").join(name)
}

/// A real repository at `dir` with the fixture's files committed on `main`, plus a `dev` branch.
fn repo_from_fixture(name: &str, dir: &Path) -> String {
    copy_dir(&fixture(name), dir);
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
    git(dir, &["branch", "dev"]);
    format!("file://{}", dir.display())
}

/// A `git daemon` serving `base` on loopback; killed on drop.
struct Daemon(Child, u16);

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let [port] = free_ports();
        // Run git-daemon itself: `git daemon` would leave it behind as a grandchild that outlives the test.
        let exec = Command::new("git").arg("--exec-path").output().unwrap();
        let exec = PathBuf::from(String::from_utf8(exec.stdout).unwrap().trim());
        let child = Command::new(exec.join("git-daemon"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .args([
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                base.to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon(child, port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn setup(allow_local: bool) -> (TestEnv, Cred) {
    let env = TestEnv::start_with(|c| c.allow_local_repos = allow_local).await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "app"})).await.expect(201);
    (env, owner)
}

fn database_bytes(env: &TestEnv) -> Vec<u8> {
    ["berth.db", "berth.db-wal"].iter().filter_map(|n| std::fs::read(env.dir.path().join(n)).ok()).flatten().collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn connecting_a_repository_makes_a_deploy_key_and_keeps_its_secrets_sealed() {
    let (env, owner) = setup(true).await;
    let repos = tempfile::tempdir().unwrap();
    let url = repo_from_fixture("node-next-pnpm", &repos.path().join("app"));
    let member = env.key_with_role(&owner, "acme", "member").await;

    let r = env.put(&format!("{P}/git"), &owner, json!({"repo_url": url, "auto_deploy": true})).await.expect(201);
    let g = r.data().clone();
    let public = g["deploy_key"]["public_key"].as_str().unwrap().to_owned();
    assert!(public.starts_with("ssh-ed25519 AAAA") && public.ends_with("berth-acme-app"), "{public}");
    assert!(g["deploy_key"]["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    let secret = g["webhook"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64, "the webhook secret is shown once, at creation");
    assert!(g["webhook"]["url"].as_str().unwrap().contains("/api/hooks/"));
    assert_eq!(
        (g["repo_kind"].clone(), g["branch"].clone(), g["auto_deploy"].clone()),
        (json!("file"), json!(null), json!(true))
    );

    let r = env.get(&format!("{P}/git"), &member).await.expect(200);
    assert_eq!(r.data()["webhook"]["secret"], json!("********"));
    env.get(&format!("{P}/git?reveal=true"), &member).await.expect(403);
    let r = env.get(&format!("{P}/git?reveal=true"), &owner).await.expect(200);
    assert_eq!(r.data()["webhook"]["secret"], json!(secret));

    // Changing the connection keeps the key and the webhook.
    let r = env
        .put(
            &format!("{P}/git"),
            &owner,
            json!({"branch": "dev", "root_directory": "./", "access_token": "ghp_tokenneedle123"}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["deploy_key"]["public_key"], json!(public));
    assert_eq!(r.data()["webhook"]["id"], g["webhook"]["id"]);
    assert_eq!((r.data()["branch"].clone(), r.data()["has_access_token"].clone()), (json!("dev"), json!(true)));
    assert!(!r.body.to_string().contains("ghp_tokenneedle123"));
    let bytes = database_bytes(&env);
    for needle in ["ghp_tokenneedle123", "OPENSSH PRIVATE KEY", &secret] {
        assert!(!contains(&bytes, needle), "{needle} is in the database file");
    }
    env.put(&format!("{P}/git"), &member, json!({"branch": "main"})).await.expect(403);

    for (body, field) in [
        (json!({"repo_url": "ftp://example.com/x.git"}), "repo_url"),
        (json!({"repo_url": "-uhelp"}), "repo_url"),
        (json!({"repo_url": "https://user:pass@github.com/a/b.git"}), "repo_url"),
        (json!({"repo_url": "ext::sh -c touch% /tmp/pwned"}), "repo_url"),
        (json!({"repo_url": url, "repo_full_name": "a/b"}), "repo_url"),
        (json!({"root_directory": "../outside"}), "root_directory"),
        (json!({"branch": "bad..branch"}), "branch"),
        (json!({"repo_url": url, "token": "x"}), "token"),
    ] {
        let r = env.put(&format!("{P}/git"), &owner, body.clone()).await.expect(400);
        assert!(r.error().contains(field), "{body}: {}", r.error());
    }
    let r = env.put(&format!("{P}/git"), &owner, json!({"repo_full_name": "acme/app", "branch": ""})).await.expect(200);
    assert_eq!(
        (r.data()["repo_url"].clone(), r.data()["branch"].clone()),
        (json!("https://github.com/acme/app.git"), json!(null))
    );

    env.delete(&format!("{P}/git"), &member).await.expect(403);
    env.delete(&format!("{P}/git"), &owner).await.expect(200);
    env.get(&format!("{P}/git"), &owner).await.expect(404);
    env.delete(&format!("{P}/git"), &owner).await.expect(404);
}

#[tokio::test]
async fn local_repositories_need_the_config_switch() {
    let (env, owner) = setup(false).await;
    let repos = tempfile::tempdir().unwrap();
    let url = repo_from_fixture("static", &repos.path().join("site"));
    let r = env.put(&format!("{P}/git"), &owner, json!({"repo_url": url})).await.expect(400);
    assert!(r.error().contains("allow_local_repos"), "{}", r.error());
    let r = env
        .put(&format!("{P}/git"), &owner, json!({"repo_url": repos.path().join("site").to_str().unwrap()}))
        .await
        .expect(400);
    assert!(r.error().contains("allow_local_repos"), "{}", r.error());
}

#[tokio::test]
async fn git_test_lists_branches_or_says_what_is_wrong() {
    let (env, owner) = setup(true).await;
    let member = env.key_with_role(&owner, "acme", "member").await;
    let repos = tempfile::tempdir().unwrap();
    let url = repo_from_fixture("go", &repos.path().join("app.git"));
    env.post(&format!("{P}/git/test"), &owner, json!({})).await.expect(404);

    env.put(&format!("{P}/git"), &owner, json!({"repo_url": url})).await.expect(201);
    let r = env.post(&format!("{P}/git/test"), &member, json!({})).await.expect(200);
    assert_eq!(r.data()["branches"], json!(["dev", "main"]));
    assert_eq!((r.data()["default_branch"].clone(), r.data()["branch"].clone()), (json!("main"), json!("main")));

    env.put(&format!("{P}/git"), &owner, json!({"branch": "nope"})).await.expect(200);
    let r = env.post(&format!("{P}/git/test"), &owner, json!({})).await.expect(400);
    assert_eq!(r.code(), "git_branch_missing");
    assert!(r.error().contains("nope") && r.error().contains("dev, main"), "{}", r.error());

    // The same repository served by a real git daemon.
    let daemon = Daemon::start(repos.path());
    let served = format!("git://127.0.0.1:{}/app.git", daemon.1);
    env.put(&format!("{P}/git"), &owner, json!({"repo_url": served, "branch": "dev"})).await.expect(200);
    let r = env.post(&format!("{P}/git/test"), &owner, json!({})).await.expect(200);
    assert_eq!(r.data()["branch"], json!("dev"));
    let r = env.post(&format!("{P}/detect"), &owner, json!({})).await.expect(200);
    assert_eq!((r.data()["type"].clone(), r.data()["branch"].clone()), (json!("go"), json!("dev")));
    env.put(&format!("{P}/git"), &owner, json!({"repo_url": format!("git://127.0.0.1:{}/missing.git", daemon.1)}))
        .await
        .expect(200);
    let r = env.post(&format!("{P}/git/test"), &owner, json!({})).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(r.code(), "git_repo_not_found", "{}", r.body);

    // Nothing listening, and a host that does not resolve.
    let [closed] = free_ports();
    env.put(&format!("{P}/git"), &owner, json!({"repo_url": format!("git://127.0.0.1:{closed}/app.git")}))
        .await
        .expect(200);
    let r = env.post(&format!("{P}/git/test"), &owner, json!({})).await.expect(502);
    assert_eq!(r.code(), "git_unreachable");
    assert!(r.error().contains("127.0.0.1"), "{}", r.error());
    env.put(&format!("{P}/git"), &owner, json!({"repo_url": "https://nonexistent.invalid/acme/app.git"}))
        .await
        .expect(200);
    let r = env.post(&format!("{P}/git/test"), &owner, json!({})).await.expect(502);
    assert_eq!(r.code(), "git_unreachable");
    assert!(r.error().contains("nonexistent.invalid"), "{}", r.error());
}

/// What each fixture is, as the API must answer.
const FIXTURES: &[(&str, &str, Option<&str>)] = &[
    ("dockerfile", "dockerfile", None),
    ("node-next-pnpm", "node", Some("nextjs")),
    ("node-vite-react", "node", Some("vite")),
    ("node-express-yarn", "node", Some("express")),
    ("node-nestjs", "node", Some("nestjs")),
    ("node-astro", "node", Some("astro")),
    ("python-django", "python", Some("django")),
    ("python-flask", "python", Some("flask")),
    ("python-fastapi-poetry", "python", Some("fastapi")),
    ("python-pipenv-flask", "python", Some("flask")),
    ("go", "go", None),
    ("rust", "rust", None),
    ("static", "static", None),
    ("procfile", "procfile", None),
    ("unknown", "unknown", None),
];

#[tokio::test]
async fn detection_answers_for_real_repositories_of_every_supported_kind() {
    let (env, owner) = setup(true).await;
    let repos = tempfile::tempdir().unwrap();
    for (name, kind, framework) in FIXTURES {
        let url = repo_from_fixture(name, &repos.path().join(name));
        let r = env.post("/api/workspaces/acme/projects/detect", &owner, json!({"repo_url": url})).await.expect(200);
        let d = r.data();
        assert_eq!(d["type"], json!(kind), "{name}: {d}");
        if let Some(f) = framework {
            assert_eq!(d["framework"], json!(f), "{name}: {d}");
        }
        assert!(!d["evidence"].as_array().unwrap().is_empty(), "{name}: evidence says what was seen");
        assert_eq!(d["commit"].as_str().unwrap().len(), 40);
        if *kind == "unknown" {
            assert_eq!(d["confidence"], json!(0.0));
            assert!(d["evidence"].to_string().contains("README.md"), "{name}: lists what it saw: {d}");
        } else {
            assert!(d["confidence"].as_f64().unwrap() > 0.5, "{name}: {d}");
        }
    }
    let r =
        env.post("/api/workspaces/acme/projects/detect", &owner, json!({"repo_url": "file:///nonexistent/repo"})).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(r.code(), "git_repo_not_found", "{}", r.body);
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.post("/api/workspaces/acme/projects/detect", &member, json!({"repo_url": "file:///x"})).await.expect(403);
    assert!(
        std::fs::read_dir(env.dir.path().join("tmp")).map(|d| d.count()).unwrap_or(0) == 0,
        "scratch copies are removed"
    );
}

#[tokio::test]
async fn a_monorepo_is_detected_per_root_directory() {
    let (env, owner) = setup(true).await;
    let repos = tempfile::tempdir().unwrap();
    let url = repo_from_fixture("monorepo", &repos.path().join("mono"));
    let detect = |root: Option<&str>| {
        let mut body = json!({"repo_url": url});
        if let Some(r) = root {
            body["root_directory"] = json!(r);
        }
        body
    };
    let r = env.post("/api/workspaces/acme/projects/detect", &owner, detect(None)).await.expect(200);
    assert_eq!(r.data()["type"], json!("unknown"));
    assert!(r.data()["evidence"].to_string().contains("apps/web"), "{}", r.data());
    let r = env.post("/api/workspaces/acme/projects/detect", &owner, detect(Some("apps/web"))).await.expect(200);
    assert_eq!((r.data()["type"].clone(), r.data()["framework"].clone()), (json!("node"), json!("nextjs")));
    let r = env.post("/api/workspaces/acme/projects/detect", &owner, detect(Some("services/api"))).await.expect(200);
    assert_eq!((r.data()["type"].clone(), r.data()["framework"].clone()), (json!("python"), json!("fastapi")));
    let r = env.post("/api/workspaces/acme/projects/detect", &owner, detect(Some("nope"))).await.expect(400);
    assert!(r.error().contains("does not exist"), "{}", r.error());
    env.post("/api/workspaces/acme/projects/detect", &owner, detect(Some("../.."))).await.expect(400);

    // Through a project: its root directory is the default, the body can override it.
    env.put(&format!("{P}/git"), &owner, json!({"repo_url": url, "root_directory": "services/api"})).await.expect(201);
    let r = env.get(P, &owner).await.expect(200);
    assert_eq!(r.data()["build"]["root_directory"], json!("services/api"));
    let r = env.send_raw(Method::POST, &format!("{P}/detect"), &owner, "application/json", "").await.expect(200);
    assert_eq!(r.data()["framework"], json!("fastapi"));
    assert_eq!(r.data()["root_directory"], json!("services/api"));
    let r = env
        .post(&format!("{P}/detect"), &owner, json!({"root_directory": "apps/web", "branch": "dev"}))
        .await
        .expect(200);
    assert_eq!((r.data()["framework"].clone(), r.data()["branch"].clone()), (json!("nextjs"), json!("dev")));
    let r = env.post(&format!("{P}/detect"), &owner, json!({"branch": "missing"})).await.expect(400);
    assert_eq!(r.code(), "git_branch_missing");
}
