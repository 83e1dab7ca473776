//! Running the `git` CLI safely: a cleared environment, credentials that never reach a command line or a log, a
//! deadline that kills the whole process group, and failures sorted into what the user can fix.

use super::{GitAuth, GitError, GitOptions, RepoUrl, RepoUrlKind};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio::time::Instant;

/// Longest piece of git's stderr that an error carries.
const MAX_DETAIL: usize = 500;

/// Variables kept from Berth's own environment: what git needs to find programs, proxies and CA certificates.
/// Everything else is dropped, so no `GIT_DIR`, askpass helper or credential setting of the host leaks in.
const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

/// One overall time limit shared by the git commands of one operation.
pub(super) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub(super) fn after(total: Duration) -> Self {
        Deadline { at: Instant::now() + total, total }
    }

    fn timeout_error(&self) -> GitError {
        let millis = self.total.as_millis();
        GitError::Timeout { seconds: u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX) }
    }
}

/// Where a git command runs.
pub(super) enum Place<'a> {
    /// Outside any repository (`ls-remote`).
    Nowhere,
    /// In `dir`, creating a repository there (`init`).
    Init(&'a Path),
    /// In the repository whose work tree is `dir`, with `GIT_DIR` set so git never searches parent directories.
    Repo(&'a Path),
}

/// What a finished git command printed.
pub(super) struct Output {
    pub(super) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// How to reach one remote: environment for git, the secrets to scrub from its messages, and the ssh key file
/// (removed when this is dropped).
pub(super) struct RemoteAccess {
    env: Vec<(&'static str, OsString)>,
    secrets: Vec<String>,
    used_key: bool,
    used_token: bool,
    _key_file: Option<KeyFile>,
}

impl RemoteAccess {
    /// Prepares credentials for `url`: an ssh key file and `GIT_SSH_COMMAND` for ssh kinds, an `Authorization`
    /// header scoped to the URL's origin (passed through `GIT_CONFIG_*`, never argv) for http kinds.
    pub(super) fn new(url: &RepoUrl, auth: &GitAuth, opts: &GitOptions) -> Result<Self, GitError> {
        let protocol = match url.kind {
            RepoUrlKind::Https => "https",
            RepoUrlKind::Http => "http",
            RepoUrlKind::Ssh | RepoUrlKind::Scp => "ssh",
            RepoUrlKind::Git => "git",
            RepoUrlKind::File | RepoUrlKind::LocalPath => "file",
        };
        let mut access = RemoteAccess {
            env: vec![("GIT_ALLOW_PROTOCOL", protocol.into())],
            secrets: Vec::new(),
            used_key: false,
            used_token: false,
            _key_file: None,
        };
        if url.kind.uses_ssh() {
            access.setup_ssh(auth, opts)?;
        }
        if let (true, Some(token)) = (url.kind.uses_http(), auth.token.as_deref().filter(|t| !t.trim().is_empty())) {
            let token = token.trim();
            let basic = BASE64.encode(format!("x-access-token:{token}"));
            let origin = origin_of(&url.url);
            access.env.push(("GIT_CONFIG_COUNT", "1".into()));
            access.env.push(("GIT_CONFIG_KEY_0", format!("http.{origin}.extraHeader").into()));
            access.env.push(("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}").into()));
            access.secrets = vec![token.to_owned(), basic];
            access.used_token = true;
        }
        Ok(access)
    }

    fn setup_ssh(&mut self, auth: &GitAuth, opts: &GitOptions) -> Result<(), GitError> {
        let io_failed = |what: &str, path: &Path, e: std::io::Error| GitError::Failed {
            detail: format!("cannot {what} {}: {e}; check that Berth's data directory is writable", path.display()),
        };
        if let Some(parent) = opts.known_hosts.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent).map_err(|e| io_failed("create", parent, e))?;
        }
        let mut command = format!(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} \
             -o ConnectTimeout=10 -o IdentityAgent=none -o IdentitiesOnly=yes",
            shell_quote(&opts.known_hosts)?
        );
        match auth.ssh_private_key.as_deref().filter(|k| !k.trim().is_empty()) {
            Some(key) => {
                let file = KeyFile::write(&opts.scratch_dir, key)
                    .map_err(|e| io_failed("write the ssh key to", &opts.scratch_dir, e))?;
                command.push_str(&format!(" -i {}", shell_quote(&file.path)?));
                self._key_file = Some(file);
                self.used_key = true;
            }
            None => command.push_str(" -o IdentityFile=none"),
        }
        self.env.push(("GIT_SSH_COMMAND", command.into()));
        self.env.push(("GIT_SSH_VARIANT", "ssh".into()));
        Ok(())
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub(super) fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |acc, s| acc.replace(s.as_str(), "[redacted]"))
    }

    /// Sorts a failed network command into the error the user can act on, from git's (`LC_ALL=C`) stderr.
    pub(super) fn classify(&self, url: &RepoUrl, stderr: &str) -> GitError {
        let stderr = self.redact(stderr);
        let text = stderr.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
        let host = url.endpoint().unwrap_or_else(|| url.url.clone());

        if let Some(reason) = unreachable_reason(&text) {
            return GitError::Unreachable { host, detail: reason.to_owned() };
        }
        if has(&["host key verification failed", "remote host identification has changed"]) {
            return GitError::Failed {
                detail: format!(
                    "the ssh host key of {host} does not match the one Berth pinned on first contact; if the server's \
                     key really changed, remove its line from Berth's known_hosts file"
                ),
            };
        }
        let not_found = has(&[
            "repository not found",
            "could not be found",
            "not exported",
            "no such repository",
            "returned error: 404",
            "does not appear to be a git repository",
        ]) || (text.contains("repository '") && text.contains("' not found"));
        if not_found {
            return GitError::RepoNotFound { detail: not_found_detail(url) };
        }
        if !url.kind.is_local()
            && has(&[
                "authentication failed",
                "could not read username",
                "could not read password",
                "terminal prompts disabled",
                "permission denied",
                "returned error: 401",
                "returned error: 403",
                "access denied",
                "invalid username or password",
                "invalid format",
            ])
        {
            let host = url.host.clone().unwrap_or(host);
            return GitError::AuthRefused { host, detail: self.auth_hint(url, &text) };
        }
        GitError::Failed { detail: trim_detail(&stderr) }
    }

    fn auth_hint(&self, url: &RepoUrl, text: &str) -> String {
        if url.kind.uses_ssh() {
            if self.used_key && text.contains("invalid format") {
                "the stored deploy key is not a valid OpenSSH private key; generate a new deploy key and add it to \
                 the repository"
            } else if self.used_key {
                "the deploy key was not accepted; add the project's deploy key (its public key is shown in the \
                 project settings) to the repository with read access"
            } else {
                "ssh URLs need a deploy key; generate one for the project and add its public key to the repository"
            }
        } else if self.used_token {
            "the access token was rejected; check that it is correct, has not expired and can read this repository"
        } else {
            "the repository needs credentials; set an access token with read access, or use an ssh URL with the \
             project's deploy key"
        }
        .to_owned()
    }
}

/// Runs `git args…` at `place` under `deadline`, with stdin closed, prompts disabled and a C locale.
///
/// git runs in its own process group; when the deadline passes or the returned future is dropped, the whole group
/// (git, ssh, git-remote-https…) is killed.
pub(super) async fn git(
    args: &[&str],
    place: Place<'_>,
    access: Option<&RemoteAccess>,
    deadline: &Deadline,
) -> Result<Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.kill_on_drop(true).process_group(0).env_clear();
    for name in KEPT_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.env("LC_ALL", "C").env("LANG", "C").env("GIT_TERMINAL_PROMPT", "0");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null");
    match place {
        Place::Nowhere => {
            cmd.current_dir("/");
        }
        Place::Init(dir) => {
            cmd.current_dir(dir);
        }
        Place::Repo(dir) => {
            cmd.current_dir(dir).env("GIT_DIR", dir.join(".git")).env("GIT_WORK_TREE", dir);
        }
    }
    if let Some(access) = access {
        cmd.envs(access.env.iter().map(|(k, v)| (k, v)));
    }
    let child = cmd
        .spawn()
        .map_err(|e| GitError::Failed { detail: format!("cannot run git: {e}; install git on the server") })?;
    let group = GroupKiller(child.id().and_then(|id| i32::try_from(id).ok()));
    let result = tokio::time::timeout_at(deadline.at, child.wait_with_output()).await;
    match result {
        Err(_) => Err(deadline.timeout_error()),
        Ok(Err(e)) => Err(GitError::Failed { detail: format!("waiting for git failed: {e}") }),
        Ok(Ok(out)) => {
            group.disarm();
            Ok(Output {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }
}

/// Runs a command that only touches the local repository at `dir`; any failure is [`GitError::Failed`].
pub(super) async fn local(args: &[&str], place: Place<'_>, deadline: &Deadline) -> Result<Output, GitError> {
    let out = git(args, place, None, deadline).await?;
    if out.success {
        Ok(out)
    } else {
        Err(GitError::Failed { detail: format!("git {}: {}", args.first().unwrap_or(&""), trim_detail(&out.stderr)) })
    }
}

/// Kills git's process group when dropped, unless git finished on its own.
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.filter(|&p| p > 1) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A private key written to a fresh 0600 file for one ssh call; the file is removed on drop, on every path.
struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    fn write(dir: &Path, key: &str) -> std::io::Result<Self> {
        private_dir(dir)?;
        let suffix = crate::crypto::random_bytes::<12>().map_err(std::io::Error::other)?;
        let path = dir.join(format!("ssh-key-{}", hex::encode(suffix)));
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        let guard = KeyFile { path };
        let mut text = key.replace("\r\n", "\n").trim().to_owned();
        text.push('\n');
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(guard)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// `path` as one word for `sh` (git runs `GIT_SSH_COMMAND` through the shell).
fn shell_quote(path: &Path) -> Result<String, GitError> {
    let s = path.to_str().ok_or_else(|| GitError::Failed {
        detail: format!("the path {} is not valid UTF-8; configure a plain path for Berth's data", path.display()),
    })?;
    Ok(format!("'{}'", s.replace('\'', r"'\''")))
}

/// `scheme://host[:port]/` of a checked network URL: the scope an access token is sent to, so a redirect to
/// another host never carries it.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{}://{authority}/", scheme.to_ascii_lowercase())
}

/// A short reason when `text` (lower-cased stderr) says the server could not be reached at all.
fn unreachable_reason(text: &str) -> Option<&'static str> {
    let has = |n: &str| text.contains(n);
    if has("could not resolve host")
        || has("could not resolve hostname")
        || has("unable to look up")
        || has("name or service not known")
        || has("temporary failure in name resolution")
        || has("no address associated with hostname")
    {
        Some("the host name does not resolve")
    } else if has("connection refused") {
        Some("connection refused")
    } else if has("timed out") || has("timeout was reached") {
        Some("connection timed out")
    } else if has("network is unreachable") {
        Some("network unreachable")
    } else if has("no route to host") {
        Some("no route to host")
    } else if has("failed to connect to") || has("unable to connect") || has("could not connect") {
        Some("cannot connect")
    } else {
        None
    }
}

fn not_found_detail(url: &RepoUrl) -> String {
    if url.kind.is_local() {
        format!("{} is not a git repository; check the path", url.url)
    } else {
        format!(
            "{} does not exist or is not visible with these credentials; check the owner and name in the URL \
             (e.g. https://github.com/owner/repo.git), and for a private repository set an access token (https) or \
             add the deploy key (ssh)",
            url.url
        )
    }
}

/// git's message without blank lines or hints, at most [`MAX_DETAIL`] characters.
pub(super) fn trim_detail(stderr: &str) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect::<Vec<_>>()
        .join(" / ");
    if joined.is_empty() {
        return "git exited with an error and printed nothing".to_owned();
    }
    match joined.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RepoUrl {
        super::super::parse_repo_url(s, true).unwrap()
    }

    fn classify(u: &str, stderr: &str) -> GitError {
        let access = RemoteAccess { env: vec![], secrets: vec![], used_key: false, used_token: false, _key_file: None };
        access.classify(&url(u), stderr)
    }

    #[test]
    fn classifies_typical_git_messages() {
        let https = "https://github.com/o/r.git";
        let cases: &[(&str, &str, &str)] = &[
            (https, "fatal: unable to access 'https://x/': Could not resolve host: x", "Unreachable"),
            ("ssh://git@h/r", "ssh: connect to host h port 22: Connection refused", "Unreachable"),
            (
                https,
                "fatal: unable to access 'x': Failed to connect to h port 443 after 1 ms: Timeout was reached",
                "Unreachable",
            ),
            (
                https,
                "remote: Repository not found.\nfatal: repository 'https://github.com/o/r.git/' not found",
                "RepoNotFound",
            ),
            ("git://h/r", "fatal: remote error: access denied or repository not exported: /r", "RepoNotFound"),
            ("/srv/x", "fatal: '/srv/x' does not appear to be a git repository", "RepoNotFound"),
            (
                https,
                "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
                "AuthRefused",
            ),
            (https, "fatal: Authentication failed for 'https://github.com/o/r.git/'", "AuthRefused"),
            (
                "git@h:o/r",
                "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
                "AuthRefused",
            ),
            ("git@h:o/r", "Host key verification failed.", "Failed"),
            (https, "fatal: something odd", "Failed"),
        ];
        for &(u, stderr, want) in cases {
            let got = classify(u, stderr);
            assert!(format!("{got:?}").starts_with(want), "{stderr}: {got:?}");
        }
    }

    #[test]
    fn tokens_are_scoped_to_the_origin_and_redacted() {
        let opts = GitOptions {
            timeout: Duration::from_secs(1),
            known_hosts: PathBuf::from("/nonexistent/known_hosts"),
            scratch_dir: PathBuf::from("/nonexistent"),
        };
        let auth = GitAuth { ssh_private_key: None, token: Some("s3cret".into()) };
        let access = RemoteAccess::new(&url("https://git.example:8443/o/r.git"), &auth, &opts).unwrap();
        let key = access.env.iter().find(|(k, _)| *k == "GIT_CONFIG_KEY_0").map(|(_, v)| v.clone());
        assert_eq!(key, Some("http.https://git.example:8443/.extraHeader".into()));
        let basic = BASE64.encode("x-access-token:s3cret");
        let redacted = access.redact(&format!("token s3cret header Basic {basic}"));
        assert_eq!(redacted, "token [redacted] header Basic [redacted]");
        let git_url = RemoteAccess::new(&url("git://h/r"), &auth, &opts).unwrap();
        assert!(git_url.secrets.is_empty() && !git_url.env.iter().any(|(k, _)| k.starts_with("GIT_CONFIG")));
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote(Path::new("/a b/it's")).unwrap(), r"'/a b/it'\''s'");
    }

    #[test]
    fn details_are_trimmed() {
        assert_eq!(trim_detail("hint: x\nfatal: a\n\nerror: b\n"), "fatal: a / error: b");
        assert_eq!(trim_detail(&"é".repeat(600)).chars().count(), MAX_DETAIL + 1);
    }
}
