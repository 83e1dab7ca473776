//! Repository addresses: which forms Berth hands to `git`, and why the others are refused.
//!
//! Everything that reaches `git` as a URL passes through [`parse_repo_url`], so the checks here are the only thing
//! standing between a user-typed string and a `git` command line: no leading `-` (option injection), no `ext::`
//! or other remote-helper transports (command execution), no credentials (they would be stored and logged), no
//! local paths unless the operator allowed them.

use crate::domain::Invalid;
use serde::Serialize;
use utoipa::ToSchema;

const FIELD: &str = "repo_url";
const EXAMPLES: &str = "https://github.com/owner/repo.git or git@github.com:owner/repo.git";
const MAX_LEN: usize = 2048;

/// The kinds of repository address Berth accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepoUrlKind {
    /// `https://host/owner/repo.git`; may use an access token.
    Https,
    /// `http://host/owner/repo.git`; plain text, meant for servers on a private network.
    Http,
    /// `ssh://[user@]host[:port]/path`; may use a deploy key.
    Ssh,
    /// `[user@]host:owner/repo.git` (scp-like ssh); may use a deploy key.
    Scp,
    /// `git://host[:port]/path`, the unauthenticated git daemon protocol.
    Git,
    /// `file:///absolute/path`; only with `allow_local_repos`.
    File,
    /// `/absolute/path`; only with `allow_local_repos`.
    LocalPath,
}

impl RepoUrlKind {
    /// Whether git reaches this kind of address over ssh (so a deploy key applies).
    pub fn uses_ssh(self) -> bool {
        matches!(self, RepoUrlKind::Ssh | RepoUrlKind::Scp)
    }

    /// Whether git reaches this kind of address over HTTP(S) (so an access token applies).
    pub fn uses_http(self) -> bool {
        matches!(self, RepoUrlKind::Https | RepoUrlKind::Http)
    }

    /// Whether this address is on the server's own file system.
    pub fn is_local(self) -> bool {
        matches!(self, RepoUrlKind::File | RepoUrlKind::LocalPath)
    }
}

/// A checked repository address: safe to pass to `git` as a single argument after `--`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// The address as given (surrounding whitespace removed); never starts with `-`, never holds credentials.
    pub url: String,
    /// Which form the address has.
    pub kind: RepoUrlKind,
    /// The host name, lower-cased, for network kinds; `None` for local kinds.
    pub host: Option<String>,
}

impl RepoUrl {
    /// `host:port` git connects to (the scheme's default port when none is given), for messages; `None` for local
    /// kinds.
    pub fn endpoint(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let port = parse_parts(&self.url).ok().and_then(|p| p.port).unwrap_or(match self.kind {
            RepoUrlKind::Https => 443,
            RepoUrlKind::Http => 80,
            RepoUrlKind::Git => 9418,
            _ => 22,
        });
        Some(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
    }
}

/// Parses and checks a repository address typed by a user.
///
/// Accepts `https://`, `http://`, `ssh://` (also `git+ssh://`), scp-like `git@host:owner/repo.git` and `git://`
/// addresses; `file:///path` and plain absolute paths only when `allow_local` (the `allow_local_repos` setting) is
/// on. Every refusal names the field `repo_url` and says what to change, with an example of an address that works.
pub fn parse_repo_url(s: &str, allow_local: bool) -> Result<RepoUrl, Invalid> {
    let url = s.trim();
    let parts = parse_parts(url).map_err(|m| Invalid::new(FIELD, m))?;
    if parts.kind.is_local() && !allow_local {
        return Err(Invalid::new(
            FIELD,
            format!(
                "'{url}' is a repository on this server, and local repositories are disabled; set \
                 allow_local_repos = true in the Berth config to allow file:// URLs and local paths, or use a \
                 network URL such as {EXAMPLES}"
            ),
        ));
    }
    Ok(RepoUrl { url: url.to_owned(), kind: parts.kind, host: parts.host })
}

/// `owner/repo` (a GitHub "full name") → `https://github.com/owner/repo.git`.
///
/// The owner must be a valid GitHub account name and the repository name may only hold letters, digits, `.`, `-`
/// and `_`, so the result always passes [`parse_repo_url`].
pub fn repo_url_from_full_name(full_name: &str) -> Result<RepoUrl, Invalid> {
    let full_name = full_name.trim();
    let bad = || {
        Invalid::new(
            FIELD,
            format!("'{full_name}' is not a GitHub repository name; write it as owner/repo, e.g. octocat/hello-world"),
        )
    };
    let (owner, repo) = full_name.split_once('/').ok_or_else(bad)?;
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let owner_ok = (1..=39).contains(&owner.len())
        && !owner.starts_with('-')
        && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let repo_ok = (1..=100).contains(&repo.len())
        && repo != "."
        && repo != ".."
        && !repo.starts_with('-')
        && repo.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !owner_ok || !repo_ok {
        return Err(bad());
    }
    parse_repo_url(&format!("https://github.com/{owner}/{repo}.git"), false)
}

/// What the syntax alone says about an address.
struct Parts {
    kind: RepoUrlKind,
    host: Option<String>,
    port: Option<u16>,
}

/// Classifies `url` (already trimmed) or says, in a user-facing sentence, what is wrong with it.
fn parse_parts(url: &str) -> Result<Parts, String> {
    if url.is_empty() {
        return Err(format!("enter the address of a git repository, e.g. {EXAMPLES}"));
    }
    if url.len() > MAX_LEN {
        return Err(format!("the address is longer than {MAX_LEN} characters; use e.g. {EXAMPLES}"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the address must not contain spaces or control characters; use e.g. {EXAMPLES}"));
    }
    if url.starts_with('-') {
        return Err(format!("a repository address cannot start with '-'; use e.g. {EXAMPLES}"));
    }
    if let Some(helper) = remote_helper(url) {
        return Err(format!(
            "'{helper}::' addresses run a git remote helper, which Berth does not allow; use e.g. {EXAMPLES}"
        ));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "https" => RepoUrlKind::Https,
            "http" => RepoUrlKind::Http,
            "ssh" | "git+ssh" | "ssh+git" => RepoUrlKind::Ssh,
            "git" => RepoUrlKind::Git,
            "file" => return parse_file(rest),
            _ => {
                return Err(format!(
                    "'{scheme}://' is not a supported scheme; use https://, http://, ssh://, git:// or an scp-like \
                     address, e.g. {EXAMPLES}"
                ));
            }
        };
        return parse_network(kind, rest);
    }
    if url.starts_with('/') {
        return if url.trim_matches('/').is_empty() {
            Err("'/' is not a repository; give the path of the repository, e.g. /srv/git/app.git".to_owned())
        } else {
            Ok(Parts { kind: RepoUrlKind::LocalPath, host: None, port: None })
        };
    }
    parse_scp(url)
}

/// The `<transport>` of git's `<transport>::<address>` syntax, if `url` uses it.
fn remote_helper(url: &str) -> Option<&str> {
    let (helper, _) = url.split_once("::")?;
    let is_name =
        !helper.is_empty() && helper.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    is_name.then_some(helper)
}

fn parse_file(rest: &str) -> Result<Parts, String> {
    match rest.strip_prefix('/') {
        Some(path) if !path.trim_matches('/').is_empty() => {
            Ok(Parts { kind: RepoUrlKind::File, host: None, port: None })
        }
        _ => Err("a file:// URL needs an absolute path with three slashes, e.g. file:///srv/git/app.git".to_owned()),
    }
}

/// `rest` is everything after `scheme://`.
fn parse_network(kind: RepoUrlKind, rest: &str) -> Result<Parts, String> {
    let example = example_for(kind);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if url_has_query(path) {
        return Err(format!("remove the '?…' or '#…' part from the address, e.g. {example}"));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    if let Some(user) = userinfo {
        match kind {
            RepoUrlKind::Https | RepoUrlKind::Http => {
                return Err(format!(
                    "remove the user name and password from the address and put the token in the access token \
                     field instead, e.g. {example}"
                ));
            }
            RepoUrlKind::Git => return Err(format!("git:// addresses take no user name; use e.g. {example}")),
            _ if user.contains(':') => {
                return Err(format!(
                    "ssh addresses cannot carry a password; remove it and add the project's deploy key to the \
                     repository, e.g. {example}"
                ));
            }
            _ => check_user(user, example)?,
        }
    }
    let (host, port) = split_host_port(hostport, example)?;
    if path.trim_matches('/').is_empty() {
        return Err(format!("the address has no repository path after the host; use e.g. {example}"));
    }
    Ok(Parts { kind, host: Some(host), port })
}

/// `[user@]host:path` without a scheme.
fn parse_scp(url: &str) -> Result<Parts, String> {
    let not_url = || {
        format!("'{url}' is not a repository address; use e.g. {EXAMPLES}, or an absolute path for a local repository")
    };
    let (user, rest) = match url.split_once('@') {
        Some((user, rest)) if !user.contains([':', '/']) => (Some(user), rest),
        _ => (None, url),
    };
    let (host, path) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, path) = bracketed.split_once("]:").ok_or_else(not_url)?;
        (format!("[{host}]"), path)
    } else {
        let (host, path) = rest.split_once(':').ok_or_else(not_url)?;
        if host.contains('/') {
            return Err(not_url());
        }
        (host.to_owned(), path)
    };
    let example = example_for(RepoUrlKind::Scp);
    if let Some(user) = user {
        check_user(user, example)?;
    }
    let (host, _) = split_host_port(&host, example)?;
    if path.trim_matches('/').is_empty() {
        return Err(format!("the address has no repository path after '{host}:'; use e.g. {example}"));
    }
    if path.starts_with('-') {
        return Err(format!("the repository path cannot start with '-'; use e.g. {example}"));
    }
    Ok(Parts { kind: RepoUrlKind::Scp, host: Some(host), port: None })
}

fn url_has_query(path: &str) -> bool {
    path.contains(['?', '#'])
}

fn check_user(user: &str, example: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok { Ok(()) } else { Err(format!("'{user}' is not a valid ssh user name; use e.g. {example}")) }
}

/// Splits and checks `host[:port]` or `[v6]:port`; the host comes back lower-cased without brackets.
fn split_host_port(hostport: &str, example: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) =
            bracketed.split_once(']').ok_or_else(|| format!("unclosed '[' in the host; use e.g. {example}"))?;
        let ok = host.contains(':') && host.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !ok {
            return Err(format!("'[{host}]' is not an IPv6 address; use e.g. {example}"));
        }
        let port = match after {
            "" => None,
            after => Some(
                after.strip_prefix(':').ok_or_else(|| format!("unexpected '{after}' after ']'; use e.g. {example}"))?,
            ),
        };
        (host, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("the address has no host; use e.g. {example}"));
    }
    let host_ok = !host.starts_with(['-', '.'])
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Err(format!("'{host}' is not a valid host name; use e.g. {example}"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("'{p}' is not a valid port (1–65535); use e.g. {example}")),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn example_for(kind: RepoUrlKind) -> &'static str {
    match kind {
        RepoUrlKind::Https => "https://github.com/owner/repo.git",
        RepoUrlKind::Http => "http://git.internal:3000/owner/repo.git",
        RepoUrlKind::Ssh => "ssh://git@git.example.com:2222/owner/repo.git",
        RepoUrlKind::Scp => "git@github.com:owner/repo.git",
        RepoUrlKind::Git => "git://git.example.com/owner/repo.git",
        RepoUrlKind::File | RepoUrlKind::LocalPath => "file:///srv/git/app.git",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_supported_forms() {
        let cases: &[(&str, bool, RepoUrlKind, Option<&str>)] = &[
            ("https://github.com/owner/repo.git", false, RepoUrlKind::Https, Some("github.com")),
            ("  https://GitHub.com/owner/repo  ", false, RepoUrlKind::Https, Some("github.com")),
            ("http://127.0.0.1:3000/owner/repo.git", false, RepoUrlKind::Http, Some("127.0.0.1")),
            ("ssh://git@github.com/owner/repo.git", false, RepoUrlKind::Ssh, Some("github.com")),
            ("ssh://host.example:2222/srv/repo", false, RepoUrlKind::Ssh, Some("host.example")),
            ("git+ssh://git@[::1]:22/r.git", false, RepoUrlKind::Ssh, Some("::1")),
            ("git@github.com:owner/repo.git", false, RepoUrlKind::Scp, Some("github.com")),
            ("github.com:owner/repo", false, RepoUrlKind::Scp, Some("github.com")),
            ("git@[::1]:owner/repo", false, RepoUrlKind::Scp, Some("::1")),
            ("git://127.0.0.1:9418/repo", false, RepoUrlKind::Git, Some("127.0.0.1")),
            ("file:///srv/git/app.git", true, RepoUrlKind::File, None),
            ("/srv/git/app", true, RepoUrlKind::LocalPath, None),
        ];
        for &(input, allow_local, kind, host) in cases {
            let parsed = parse_repo_url(input, allow_local).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.kind, kind, "{input}");
            assert_eq!(parsed.host.as_deref(), host, "{input}");
            assert_eq!(parsed.url, input.trim());
        }
    }

    #[test]
    fn rejects_dangerous_and_malformed_input_with_a_hint() {
        let cases: &[(&str, &str)] = &[
            ("", "enter the address"),
            ("   ", "enter the address"),
            ("-uhelp", "cannot start with '-'"),
            ("--upload-pack=touch /tmp/x", "spaces"),
            ("--upload-pack=x", "cannot start with '-'"),
            ("ext::sh -c touch% /tmp/pwned", "spaces"),
            ("ext::sh", "remote helper"),
            ("fd::17", "remote helper"),
            ("https://user:pass@github.com/o/r.git", "access token field"),
            ("https://ghp_token@github.com/o/r.git", "access token field"),
            ("ssh://git:secret@github.com/o/r.git", "cannot carry a password"),
            ("ssh://-oProxyCommand=x/r", "not a valid host"),
            ("ssh://-x@host/r", "not a valid ssh user"),
            ("-oProxyCommand=x:r", "cannot start with '-'"),
            ("git@host:-r", "cannot start with '-'"),
            ("ftp://example.com/r.git", "not a supported scheme"),
            ("https://", "no host"),
            ("https:///owner/repo", "no host"),
            ("https://github.com", "no repository path"),
            ("https://github.com/", "no repository path"),
            ("https://github.com:99999/o/r", "not a valid port"),
            ("https://github.com/o/r?x=1", "'?…'"),
            ("git@github.com:", "no repository path"),
            ("github.com/owner/repo", "not a repository address"),
            ("owner/repo", "not a repository address"),
            ("https://git hub.com/o/r", "spaces"),
            ("https://github.com/o/r\n", "https://github.com/o/r"),
            ("https://github.com/o/\u{7}r", "control characters"),
            ("file:///srv/git/app", "allow_local_repos = true"),
            ("/srv/git/app", "allow_local_repos = true"),
        ];
        for &(input, needle) in cases {
            match parse_repo_url(input, false) {
                Err(e) => {
                    assert_eq!(e.field, "repo_url");
                    assert!(e.message.contains(needle), "{input:?}: {}", e.message);
                }
                Ok(url) if needle.starts_with("https://") => assert_eq!(url.url, needle),
                Ok(url) => panic!("{input:?} was accepted as {url:?}"),
            }
        }
        for input in ["file://host/srv/x", "file:///", "/"] {
            assert!(parse_repo_url(input, true).is_err(), "{input}");
        }
    }

    #[test]
    fn endpoints_include_the_default_port() {
        let endpoint = |s: &str| parse_repo_url(s, true).unwrap().endpoint();
        assert_eq!(endpoint("https://github.com/o/r").as_deref(), Some("github.com:443"));
        assert_eq!(endpoint("git://127.0.0.1:1/x").as_deref(), Some("127.0.0.1:1"));
        assert_eq!(endpoint("git@[::1]:o/r").as_deref(), Some("[::1]:22"));
        assert_eq!(endpoint("/srv/x"), None);
    }

    #[test]
    fn full_names_become_github_urls() {
        let url = repo_url_from_full_name("octo-cat/hello_world.rs").unwrap();
        assert_eq!(url.url, "https://github.com/octo-cat/hello_world.rs.git");
        assert_eq!(url.kind, RepoUrlKind::Https);
        assert_eq!(repo_url_from_full_name("o/r.git").unwrap().url, "https://github.com/o/r.git");
        for bad in ["", "owner", "-o/r", "o/r/x", "o/..", "o/r x", "o/-r", "o:x/r", "o/"] {
            assert!(repo_url_from_full_name(bad).is_err(), "{bad}");
        }
    }
}
