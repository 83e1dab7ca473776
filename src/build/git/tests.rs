//! Real git against real remotes: a repository in a temp dir, served over `file://`, `git daemon`, and tiny HTTP
//! servers that refuse or stall.

use super::*;
use std::net::SocketAddr;
use std::process::{Child, Command as StdCommand};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A repository `src` with two commits on `main` and one more on `dev`.
struct Fixture {
    dir: tempfile::TempDir,
    main_sha: String,
    dev_sha: String,
}

fn git_sync(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("src");
        std::fs::create_dir(&repo).unwrap();
        git_sync(&repo, &["init", "--quiet", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        git_sync(&repo, &["add", "a.txt"]);
        git_sync(&repo, &["commit", "--quiet", "-m", "a"]);
        std::fs::write(repo.join("b.txt"), "b\n").unwrap();
        git_sync(&repo, &["add", "b.txt"]);
        git_sync(&repo, &["commit", "--quiet", "-m", "b"]);
        git_sync(&repo, &["checkout", "--quiet", "-b", "dev"]);
        std::fs::write(repo.join("c.txt"), "c\n").unwrap();
        git_sync(&repo, &["add", "c.txt"]);
        git_sync(&repo, &["commit", "--quiet", "-m", "c"]);
        git_sync(&repo, &["checkout", "--quiet", "main"]);
        let main_sha = git_sync(&repo, &["rev-parse", "main"]);
        let dev_sha = git_sync(&repo, &["rev-parse", "dev"]);
        Fixture { dir, main_sha, dev_sha }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn opts(&self, timeout: Duration) -> GitOptions {
        GitOptions {
            timeout,
            known_hosts: self.dir.path().join("ssh/known_hosts"),
            scratch_dir: self.dir.path().join("scratch"),
        }
    }
}

fn local_url(s: &str) -> RepoUrl {
    parse_repo_url(s, true).unwrap()
}

fn both() -> Vec<String> {
    vec!["dev".to_owned(), "main".to_owned()]
}

#[tokio::test]
async fn file_urls_list_and_fetch_branches_into_a_reused_cache() {
    let fx = Fixture::new();
    let opts = fx.opts(Duration::from_secs(30));
    let auth = GitAuth::default();
    let url = local_url(&format!("file://{}", fx.repo().display()));

    let info = ls_remote(&url, &auth, &opts).await.unwrap();
    assert_eq!(info, RemoteInfo { branches: both(), default_branch: Some("main".to_owned()) });
    let plain = ls_remote(&local_url(&fx.repo().display().to_string()), &auth, &opts).await.unwrap();
    assert_eq!(plain.branches, both());

    let dest = fx.dir.path().join("cache/project");
    let main = fetch_shallow(&url, Some("main"), &auth, &opts, &dest).await.unwrap();
    assert_eq!(main, FetchedCommit { sha: fx.main_sha.clone(), branch: "main".to_owned() });
    assert!(dest.join("a.txt").is_file() && dest.join("b.txt").is_file() && !dest.join("c.txt").exists());

    // The cache is reused, and leftovers of the previous build are gone.
    std::fs::write(dest.join(".git/berth-marker"), "x").unwrap();
    std::fs::write(dest.join("junk.txt"), "x").unwrap();
    std::fs::write(dest.join("a.txt"), "modified").unwrap();
    let dev = fetch_shallow(&url, Some("dev"), &auth, &opts, &dest).await.unwrap();
    assert_eq!(dev, FetchedCommit { sha: fx.dev_sha.clone(), branch: "dev".to_owned() });
    assert!(dest.join(".git/berth-marker").exists());
    assert!(dest.join("c.txt").is_file() && !dest.join("junk.txt").exists());
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "a\n");
    assert_eq!(git_sync(&dest, &["rev-parse", "HEAD"]), fx.dev_sha);

    let default = fetch_shallow(&url, None, &auth, &opts, &dest).await.unwrap();
    assert_eq!(default.branch, "main");
    assert_eq!(default.sha, fx.main_sha);

    for missing in ["nope", "-x", "a..b", "with space"] {
        match fetch_shallow(&url, Some(missing), &auth, &opts, &dest).await {
            Err(GitError::BranchMissing { branch, available }) => {
                assert_eq!(branch, missing);
                assert_eq!(available, both());
            }
            other => panic!("{missing}: {other:?}"),
        }
    }
    let err = fetch_shallow(&url, Some("nope"), &auth, &opts, &dest).await.unwrap_err();
    assert_eq!(err.to_string(), "branch 'nope' not found; the repository has: dev, main");

    // A broken cache is rebuilt rather than failing every later build.
    std::fs::remove_file(dest.join(".git/HEAD")).unwrap();
    let again = fetch_shallow(&url, Some("dev"), &auth, &opts, &dest).await.unwrap();
    assert_eq!(again.sha, fx.dev_sha);

    let gone = local_url(&format!("file://{}/nope", fx.dir.path().display()));
    let err = ls_remote(&gone, &auth, &opts).await.unwrap_err();
    assert!(matches!(err, GitError::RepoNotFound { .. }), "{err:?}");
}

/// A `git daemon` serving the fixture's directory; killed and reaped on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    async fn start(base: &Path) -> Self {
        let port = free_port();
        // `git daemon` would run git-daemon as a grandchild that outlives a kill; start the program itself.
        let exec_path = git_sync(base, &["--exec-path"]);
        let child = StdCommand::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut daemon = Daemon { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return daemon;
            }
            assert!(daemon.child.try_wait().unwrap().is_none(), "git daemon exited early");
            assert!(std::time::Instant::now() < deadline, "git daemon did not listen on port {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn git_daemon_urls_list_and_fetch() {
    let fx = Fixture::new();
    let daemon = Daemon::start(fx.dir.path()).await;
    let opts = fx.opts(Duration::from_secs(30));
    let auth = GitAuth::default();
    let url = parse_repo_url(&format!("git://127.0.0.1:{}/src", daemon.port), false).unwrap();

    let info = ls_remote(&url, &auth, &opts).await.unwrap();
    assert_eq!(info.branches, both());
    assert_eq!(info.default_branch.as_deref(), Some("main"));

    let dest = fx.dir.path().join("dest");
    let dev = fetch_shallow(&url, Some("dev"), &auth, &opts, &dest).await.unwrap();
    assert_eq!(dev.sha, fx.dev_sha);
    assert!(dest.join("c.txt").is_file());
    assert_eq!(git_sync(&dest, &["rev-list", "--count", "HEAD"]), "1", "the fetch is shallow");

    let wrong = parse_repo_url(&format!("git://127.0.0.1:{}/nope", daemon.port), false).unwrap();
    let err = ls_remote(&wrong, &auth, &opts).await.unwrap_err();
    assert!(matches!(err, GitError::RepoNotFound { .. }), "{err:?}");
    let err = fetch_shallow(&wrong, Some("main"), &auth, &opts, &fx.dir.path().join("dest2")).await.unwrap_err();
    assert!(matches!(err, GitError::RepoNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_hosts_are_reported_as_such() {
    let fx = Fixture::new();
    let opts = fx.opts(Duration::from_secs(60));
    let closed = free_port();

    let url = parse_repo_url(&format!("git://127.0.0.1:{closed}/x"), false).unwrap();
    let err = ls_remote(&url, &GitAuth::default(), &opts).await.unwrap_err();
    assert!(matches!(&err, GitError::Unreachable { host, .. } if *host == format!("127.0.0.1:{closed}")), "{err:?}");
    assert!(err.to_string().contains("connection refused"), "{err}");

    let url = parse_repo_url("https://nonexistent.invalid/x.git", false).unwrap();
    let err = ls_remote(&url, &GitAuth::default(), &opts).await.unwrap_err();
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");

    // ssh with a deploy key: the key file exists only while ssh runs.
    let key = generate_deploy_key("berth-test").unwrap();
    let auth = GitAuth { ssh_private_key: Some(key.private_openssh), token: None };
    let url = parse_repo_url(&format!("ssh://git@127.0.0.1:{closed}/x.git"), false).unwrap();
    let err = fetch_shallow(&url, Some("main"), &auth, &opts, &fx.dir.path().join("dest")).await.unwrap_err();
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(&opts.scratch_dir).unwrap().count(), 0, "the key file was removed");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&opts.scratch_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// An HTTP server answering every request with 401 and recording the request heads.
async fn refusing_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\
                             Content-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn refused_credentials_are_reported_without_leaking_the_token() {
    let fx = Fixture::new();
    let opts = fx.opts(Duration::from_secs(30));
    let (addr, seen) = refusing_server().await;
    let url = parse_repo_url(&format!("http://{addr}/repo.git"), false).unwrap();

    let err = ls_remote(&url, &GitAuth::default(), &opts).await.unwrap_err();
    assert!(matches!(&err, GitError::AuthRefused { host, .. } if host == "127.0.0.1"), "{err:?}");
    assert!(err.to_string().contains("access token"), "{err}");

    let token = "tok-SECRET-123";
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("x-access-token:{token}"));
    let auth = GitAuth { ssh_private_key: None, token: Some(token.to_owned()) };
    let err = ls_remote(&url, &auth, &opts).await.unwrap_err();
    assert!(matches!(err, GitError::AuthRefused { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(token) && !text.contains(&basic), "{text}");
    assert!(text.contains("token was rejected"), "{text}");

    let heads = seen.lock().unwrap().clone();
    let sent = heads
        .iter()
        .filter(|h| h.to_ascii_lowercase().contains(&format!("authorization: basic {}", basic.to_ascii_lowercase())));
    assert!(sent.count() >= 1, "the token was sent as a header: {heads:?}");
}

#[tokio::test]
async fn stalled_servers_time_out_and_git_is_killed() {
    let fx = Fixture::new();
    let opts = fx.opts(Duration::from_secs(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = tx.send(stream);
        }
    });
    let url = parse_repo_url(&format!("http://{addr}/repo.git"), false).unwrap();
    let started = std::time::Instant::now();
    let err = ls_remote(&url, &GitAuth::default(), &opts).await.unwrap_err();
    assert!(matches!(err, GitError::Timeout { seconds: 2 }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // git-remote-http (a grandchild) was killed too: the connection it held is closed.
    let mut stream = rx.await.unwrap();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the helper process still holds the connection");
}
