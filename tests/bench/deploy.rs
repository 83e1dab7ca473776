//! Deploy benchmark (run with `cargo bench --bench deploy`; release build of the real binary, real Docker engine):
//! the time from "deploy" to the first 200 with the new content, Berth against doing the same by hand with the
//! docker CLI in the same run (`git clone --depth 1` + `docker build` + `docker run -d --init` + poll the
//! container), N rounds each (`BERTH_BENCH_DEPLOYS`, default 3), each with a changed `index.html`; the two take
//! turns round by round (and in which goes first).
//! Targets (medians): overhead ≤ 1.5 s, ratio ≤ 1.3, "replicas healthy → traffic switched" ≤ 50 ms.
//!
//! It prints measurements, targets and ratios; it does not fail on a noisy machine, only when something breaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod ports;
use admin::{BIN, seed_user_and_key};
use ports::free_ports;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE_IMAGE: &str = "berth-test/busybox:1";
const HOST: &str = "app.bench.localhost";

/// One raw HTTP/1.1 request; the status code and body, or None when nothing answers.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    host: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = key.map(|k| format!("X-API-Key: {k}\r\n")).unwrap_or_default();
    let body = body.map(Value::to_string).unwrap_or_default();
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/json\r\n" };
    let len = if method == "GET" { String::new() } else { format!("Content-Length: {}\r\n", body.len()) };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}{ctype}{len}Connection: close\r\n\r\n{body}").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Some((status, if chunked { dechunk(body) } else { body.to_owned() }))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs a command that must succeed; its stdout.
fn sh(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("DOCKER_BUILDKIT", "0") // the classic builder, like Berth's `/build`
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Quietly runs a cleanup command; its stdout split into words.
fn quiet(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The busybox image made from the host's static busybox, exactly as tests/integration/deploy.rs makes it.
fn base_image() {
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

/// Commits a new `www/index.html` with `body`.
fn commit(repo: &Path, body: &str) {
    std::fs::write(repo.join("www/index.html"), body).unwrap();
    sh(repo, "git", &["add", "-A"]);
    sh(repo, "git", &["commit", "-q", "-m", body]);
}

/// Removes what this run made, also when it panics.
#[derive(Default)]
struct Cleanup {
    berth: Option<Child>,
    run: String,
    workspace_id: Option<String>,
    project_id: Option<String>,
    network: Option<String>,
    ref_images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.berth.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut filters = vec![format!("label=berth-bench.run={}", self.run)];
        if let Some(ws) = &self.workspace_id {
            filters.push(format!("label=berth.workspace={ws}"));
        }
        for f in &filters {
            for id in quiet(&["ps", "-aq", "--filter", f]) {
                quiet(&["rm", "-f", &id]);
            }
            for id in quiet(&["network", "ls", "-q", "--filter", f]) {
                quiet(&["network", "rm", &id]);
            }
            for id in quiet(&["volume", "ls", "-q", "--filter", f]) {
                quiet(&["volume", "rm", &id]);
            }
        }
        if let Some(net) = &self.network {
            quiet(&["network", "rm", net]);
        }
        let mut images = self.ref_images.clone();
        if let Some(p) = &self.project_id {
            images.extend(quiet(&["images", "-q", "--filter", &format!("label=berth.project={p}")]));
            images.extend(quiet(&["images", "-q", &format!("berth/{p}")]));
        }
        images.sort();
        images.dedup();
        for image in images {
            quiet(&["rmi", "-f", &image]);
        }
    }
}

/// Polls `addr` until it answers 200 with `want` in the body; `check` runs every ~100 ms to fail early.
fn wait_for_content(addr: &str, host: &str, want: &str, mut check: impl FnMut()) {
    let start = Instant::now();
    let mut last_check = Instant::now();
    loop {
        if http(addr, "GET", "/", host, None, None).is_some_and(|(s, b)| s == 200 && b.contains(want)) {
            return;
        }
        if last_check.elapsed() > Duration::from_millis(100) {
            check();
            last_check = Instant::now();
        }
        assert!(start.elapsed() < Duration::from_secs(180), "no 200 with {want:?} from {addr} (Host {host})");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One side of a round.
enum Side {
    Reference,
    Berth,
}

fn main() {
    let rounds: usize = std::env::var("BERTH_BENCH_DEPLOYS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let run = format!("{}-{}", std::process::id(), nanos % 100_000);
    let mut guard = Cleanup::default();
    guard.run.clone_from(&run);
    let docker = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match docker {
        Ok(o) if o.status.success() => {
            println!(
                "berth deploy benchmark ({rounds} rounds, Docker Engine {})",
                String::from_utf8_lossy(&o.stdout).trim()
            )
        }
        Ok(o) => panic!("Docker is unreachable: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("the docker CLI does not run: {e}"),
    }
    base_image();

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("www")).unwrap();
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\nCOPY www /www\nCMD [\"busybox\",\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n"
        ),
    )
    .unwrap();
    sh(&repo, "git", &["init", "-q", "-b", "main"]);
    commit(&repo, "initial");
    let repo_url = format!("file://{}", repo.display());

    // Reference: the same steps by hand with the docker CLI.
    let network = format!("berth-bench-{run}");
    sh(dir.path(), "docker", &["network", "create", "--label", &format!("berth-bench.run={run}"), &network]);
    guard.network = Some(network.clone());

    // Berth, started before the first round (it idles while the reference runs).
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let key = seed_user_and_key(data, "bench@example.com", "benchmark-pw", "bench");
    let [listen, apps] = free_ports().map(|port: u16| format!("127.0.0.1:{port}"));
    let child = Command::new(BIN)
        .args(["serve", "--data-dir", data, "--listen", &listen, "--http-listen", &apps])
        .env("BERTH_ALLOW_LOCAL_REPOS", "true")
        .env("BERTH_API_REQUESTS_PER_MINUTE", "0")
        .env("BERTH_DRAIN_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    guard.berth = Some(child);
    let start = Instant::now();
    while http(&listen, "GET", "/api/health", &listen, None, None).is_none_or(|(s, _)| s != 200) {
        assert!(start.elapsed() < Duration::from_secs(10), "berth did not become healthy on {listen}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let api = |method: &str, path: &str, body: Option<Value>, want: u16| -> Value {
        let (status, text) = http(&listen, method, path, &listen, Some(&key), body.as_ref())
            .unwrap_or_else(|| panic!("{method} {path}: no answer from berth"));
        assert_eq!(status, want, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))["data"].clone()
    };
    guard.workspace_id = Some(api("GET", "/api/workspaces/bench", None, 200)["id"].as_str().unwrap().to_owned());
    let project = json!({"name": "app", "port": 8080, "build": {"builder": "dockerfile"}});
    let p = api("POST", "/api/workspaces/bench/projects", Some(project), 201);
    guard.project_id = Some(p["id"].as_str().unwrap().to_owned());
    api("PUT", "/api/workspaces/bench/projects/app/git", Some(json!({"repo_url": repo_url})), 201);

    // The rounds alternate between the two (and which goes first), so a drift in the machine's speed during the
    // run (other processes, CPU taken by the hypervisor) falls on both rather than on whichever was measured second.
    let mut reference = Vec::new();
    let mut berth = Vec::new();
    let mut switches = Vec::new();
    for i in 0..rounds {
        let order = if i % 2 == 0 { [Side::Reference, Side::Berth] } else { [Side::Berth, Side::Reference] };
        for side in order {
            match side {
                Side::Reference => {
                    let content = format!("reference round {i} of run {run}");
                    commit(&repo, &content);
                    let (clone, tag) = (dir.path().join(format!("ref-{i}")), format!("bench-ref:{i}"));
                    let start = Instant::now();
                    sh(dir.path(), "git", &["clone", "-q", "--depth", "1", &repo_url, clone.to_str().unwrap()]);
                    guard.ref_images.push(tag.clone());
                    sh(dir.path(), "docker", &["build", "-q", "-t", &tag, clone.to_str().unwrap()]);
                    let label = format!("berth-bench.run={run}");
                    let id = sh(
                        dir.path(),
                        "docker",
                        &["run", "-d", "--init", "--label", &label, "--network", &network, &tag],
                    );
                    let id = id.trim();
                    let fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
                    let ip = sh(dir.path(), "docker", &["inspect", "-f", fmt, id]).trim().to_owned();
                    wait_for_content(&format!("{ip}:8080"), &ip, &content, || {});
                    reference.push(start.elapsed());
                    sh(dir.path(), "docker", &["rm", "-f", id]);
                }
                Side::Berth => {
                    let content = format!("berth round {i} of run {run}");
                    commit(&repo, &content);
                    let start = Instant::now();
                    let d = api("POST", "/api/workspaces/bench/projects/app/deployments", Some(json!({})), 202);
                    let id = d["id"].as_str().unwrap().to_owned();
                    let (dep_path, logs_path) = (
                        format!("/api/workspaces/bench/deployments/{id}"),
                        format!("/api/workspaces/bench/deployments/{id}/logs?limit=10000"),
                    );
                    let log_lines = || -> Vec<String> {
                        let logs = api("GET", &logs_path, None, 200);
                        let lines = logs["lines"].as_array().cloned().unwrap_or_default();
                        lines.iter().map(|l| l["line"].as_str().unwrap_or_default().to_owned()).collect()
                    };
                    wait_for_content(&apps, HOST, &content, || {
                        let d = api("GET", &dep_path, None, 200);
                        let status = d["status"].as_str().unwrap_or_default();
                        if matches!(status, "failed" | "cancelled") {
                            panic!("deployment {id} {status}: {}\nlog:\n{}", d["error"], log_lines().join("\n"));
                        }
                    });
                    berth.push(start.elapsed());
                    let started = Instant::now();
                    let switch = loop {
                        let found = log_lines().iter().find_map(|l| {
                            let (_, tail) = l.split_once("traffic switched ")?;
                            tail.split_whitespace().next()?.parse::<f64>().ok()
                        });
                        if let Some(ms) = found {
                            break ms;
                        }
                        assert!(
                            started.elapsed() < Duration::from_secs(10),
                            "no 'traffic switched' line:\n{}",
                            log_lines().join("\n")
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    switches.push(switch);
                    std::thread::sleep(Duration::from_millis(1500)); // past the drain of the old replicas
                }
            }
        }
    }
    drop(guard);

    let (r, b) = (median_ms(&reference), median_ms(&berth));
    switches.sort_by(f64::total_cmp);
    let switch = switches[switches.len() / 2];
    let each = |v: &[Duration]| v.iter().map(|d| format!("{:.0}", ms(*d))).collect::<Vec<_>>().join(", ");
    println!(
        "reference (git clone + docker build + docker run --init + first 200): median {r:.0} ms [{} ms]",
        each(&reference)
    );
    println!(
        "berth (POST deployment → first 200 with the new content through the proxy): median {b:.0} ms [{} ms]",
        each(&berth)
    );
    println!("overhead berth − reference: {:.0} ms  [target ≤ 1500 ms: {}]", b - r, verdict(b - r <= 1500.0));
    println!("ratio berth/reference = {:.2}  [target ≤ 1.3: {}]", b / r, verdict(b / r <= 1.3));
    println!(
        "new replicas healthy → traffic switched: median {switch:.1} ms [{}]  [target ≤ 50 ms: {}]",
        switches.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(", "),
        verdict(switch <= 50.0)
    );
}

fn median_ms(v: &[Duration]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort();
    ms(sorted[sorted.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
