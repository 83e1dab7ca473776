//! The real `berth` binary: bootstrap with `berth admin`, serve, answer curl-like requests, healthcheck, and
//! exit 0 on SIGTERM.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("RUST_LOG").output().unwrap()
}

#[tokio::test]
async fn the_binary_bootstraps_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let listen = format!("127.0.0.1:{}", crate::support::free_ports::<1>()[0]);

    let out = berth(&[
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
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = berth(&[
        "admin",
        "create-key",
        "--data-dir",
        data,
        "--email",
        "ops@acme.io",
        "--workspace",
        "acme",
        "--name",
        "ci",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("berth_sk_") && key.len() == 49, "the key is the last line of stdout: {stdout}");
    let out = berth(&[
        "admin",
        "create-key",
        "--data-dir",
        data,
        "--email",
        "ops@acme.io",
        "--workspace",
        "nope",
        "--name",
        "ci",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            data,
            "--listen",
            &listen,
            "--http-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("BERTH_DOCKER_HOST", "unix:///var/run/docker.sock")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http.get(format!("http://{listen}/api/health")).send().await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "berth serve did not become healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = berth(&["healthcheck", "--listen", &listen]);
    assert!(out.status.success(), "healthcheck: {}", String::from_utf8_lossy(&out.stderr));

    // curl -H "X-API-Key: …" http://…/api/workspaces
    let r: serde_json::Value = http
        .get(format!("http://{listen}/api/workspaces"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["workspaces"][0]["slug"], "acme");
    // curl -X POST -d '{"email":…}' (no content type, as curl -d sends)
    let r = http
        .post(format!("http://{listen}/api/workspaces/acme/invitations"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(r#"{"email":"dev@acme.io","role":"member"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A user created by the CLI while the server runs can sign in at once.
    let out =
        berth(&["admin", "create-user", "--data-dir", data, "--email", "late@acme.io", "--password", "password123"]);
    assert!(out.status.success());
    let r = http
        .post(format!("http://{listen}/api/auth/login"))
        .json(&serde_json::json!({"email": "late@acme.io", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "berth did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(
        logs.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "--log-format json writes JSON lines:\n{logs}"
    );
    assert!(logs.contains("SIGTERM received"));

    let out = berth(&["healthcheck", "--listen", &listen]);
    assert!(!out.status.success(), "healthcheck fails once the server is gone");
}

#[test]
fn config_print_default_is_a_valid_config_and_bad_config_names_the_key() {
    let out = berth(&["config", "print-default"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    std::fs::write(dir.path().join("bad.toml"), "listen = 7080\n").unwrap();
    let out = berth(&["healthcheck", "--config", dir.path().join("bad.toml").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen") && err.contains("bad.toml"), "{err}");
    let out = Command::new(BIN)
        .args(["healthcheck", "--config", file.to_str().unwrap()])
        .env("BERTH_LISTEN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing listens on port 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}
