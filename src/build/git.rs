//! Talking to git remotes: list branches, fetch one commit shallowly into a per-project cache, make deploy keys.
//!
//! Everything runs the `git` CLI (`run`), because it speaks every transport and credential scheme users expect.
//! Addresses are checked by [`parse_repo_url`] before they get near a command line; credentials travel only in
//! environment variables and a short-lived 0600 key file; every call has a deadline; failures come back as a
//! [`GitError`] whose message says what the user should change.

mod deploy_key;
mod repo_url;
mod run;
#[cfg(test)]
mod tests;

pub use deploy_key::{DeployKey, KeyError, generate_deploy_key};
pub use repo_url::{RepoUrl, RepoUrlKind, parse_repo_url, repo_url_from_full_name};

use run::{Deadline, Place, RemoteAccess};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use utoipa::ToSchema;

/// Credentials for a remote. Neither value is ever logged or put in a command line.
#[derive(Clone, Default)]
pub struct GitAuth {
    /// OpenSSH private key, used for `ssh://` and `git@host:owner/repo` URLs.
    pub ssh_private_key: Option<String>,
    /// Access token for `https://` URLs (sent as HTTP basic auth with user `x-access-token`, only to the URL's own
    /// scheme, host and port). Plain `http://` URLs send it too, in clear text: meant for servers on a private
    /// network.
    pub token: Option<String>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| if v.is_some() { "[set]" } else { "[none]" };
        f.debug_struct("GitAuth")
            .field("ssh_private_key", &shown(&self.ssh_private_key))
            .field("token", &shown(&self.token))
            .finish()
    }
}

/// Where git may keep state and how long it may take.
#[derive(Clone, Debug)]
pub struct GitOptions {
    /// Upper bound for one operation ([`ls_remote`] or all of [`fetch_shallow`]); git and its helpers are killed
    /// when it passes.
    pub timeout: Duration,
    /// `known_hosts` file for ssh (host keys accepted on first use and pinned).
    pub known_hosts: PathBuf,
    /// A private directory (0700) for short-lived files such as the ssh key of one call.
    pub scratch_dir: PathBuf,
}

/// Branches of a remote and its default branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RemoteInfo {
    /// Branch names (without `refs/heads/`), sorted.
    pub branches: Vec<String>,
    /// The branch the remote's `HEAD` points to, when the server says.
    pub default_branch: Option<String>,
}

/// A commit fetched into a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCommit {
    /// Full hex object id of the checked-out commit.
    pub sha: String,
    /// The branch it is the tip of.
    pub branch: String,
}

/// What went wrong talking to a remote, in words a user can act on. Texts never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// No connection could be made (`host` is `host:port`; `detail` a short reason such as "connection refused").
    #[error("host unreachable: cannot connect to {host} ({detail}) — check the URL and that the git server is up")]
    Unreachable { host: String, detail: String },
    /// The server wants (other) credentials; `detail` says which to provide.
    #[error("authentication refused by {host} — {detail}")]
    AuthRefused { host: String, detail: String },
    /// The address does not lead to a repository (or, for private ones, not one these credentials can see).
    #[error("repository not found: {detail}")]
    RepoNotFound { detail: String },
    /// The repository exists but has no such branch; `available` lists the ones it has.
    #[error("{}", branch_missing_message(branch, available))]
    BranchMissing { branch: String, available: Vec<String> },
    /// The operation did not finish within [`GitOptions::timeout`]; git was killed.
    #[error(
        "git did not finish within {seconds} s — the server may be slow or overloaded, or the URL may not point to \
         a git server"
    )]
    Timeout { seconds: u64 },
    /// The branch has no such commit (or the SHA is ambiguous).
    #[error("commit '{commit}' is not on branch '{branch}' — check the SHA, or deploy a branch that contains it")]
    CommitMissing { commit: String, branch: String },
    /// Anything else; `detail` is git's own message, trimmed to about 500 characters.
    #[error("git failed: {detail}")]
    Failed { detail: String },
}

fn branch_missing_message(branch: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("branch '{branch}' not found; the repository has no branches yet — push a commit first")
    } else {
        format!("branch '{branch}' not found; the repository has: {}", available.join(", "))
    }
}

/// Lists the branches of `url` and its default branch (`git ls-remote --symref`), within `opts.timeout`.
pub async fn ls_remote(url: &RepoUrl, auth: &GitAuth, opts: &GitOptions) -> Result<RemoteInfo, GitError> {
    ls_remote_until(url, auth, opts, &Deadline::after(opts.timeout)).await
}

async fn ls_remote_until(
    url: &RepoUrl,
    auth: &GitAuth,
    opts: &GitOptions,
    deadline: &Deadline,
) -> Result<RemoteInfo, GitError> {
    let access = RemoteAccess::new(url, auth, opts)?;
    let args = ["ls-remote", "--symref", "--", url.url.as_str(), "HEAD", "refs/heads/*"];
    let out = run::git(&args, Place::Nowhere, Some(&access), deadline).await?;
    if !out.success {
        return Err(access.classify(url, &out.stderr));
    }
    Ok(parse_ls_remote(&out.stdout))
}

fn parse_ls_remote(stdout: &str) -> RemoteInfo {
    let mut branches = Vec::new();
    let mut default_branch = None;
    for line in stdout.lines() {
        let Some((left, reference)) = line.split_once('\t') else { continue };
        if let Some(target) = left.strip_prefix("ref: ") {
            if reference == "HEAD" {
                default_branch = target.strip_prefix("refs/heads/").map(str::to_owned);
            }
        } else if let Some(branch) = reference.strip_prefix("refs/heads/") {
            branches.push(branch.to_owned());
        }
    }
    branches.sort();
    branches.dedup();
    RemoteInfo { branches, default_branch }
}

/// Makes `dest` a checkout of the tip of `branch` (the remote's default branch when `None`) of `url`, fetched with
/// depth 1, and returns its commit.
///
/// `dest` is created when missing and reused when it already holds a repository (the per-project cache): the new
/// commit is checked out with `--force` and untracked and ignored files are removed, so the tree matches the commit
/// exactly. The caller must not run two fetches into the same `dest` at once. The whole operation, including the
/// `ls-remote` needed to find the default branch, finishes within `opts.timeout`.
pub async fn fetch_shallow(
    url: &RepoUrl,
    branch: Option<&str>,
    auth: &GitAuth,
    opts: &GitOptions,
    dest: &Path,
) -> Result<FetchedCommit, GitError> {
    let deadline = Deadline::after(opts.timeout);
    let branch = match branch {
        Some(b) if plausible_branch(b) => b.to_owned(),
        Some(b) => return Err(branch_missing(url, b, auth, opts, &deadline).await),
        None => default_branch(&ls_remote_until(url, auth, opts, &deadline).await?)?,
    };
    prepare_repo(dest, &deadline).await?;

    let access = RemoteAccess::new(url, auth, opts)?;
    let refspec = format!("refs/heads/{branch}");
    let args = [
        "-c",
        "gc.autoDetach=false",
        "fetch",
        "--quiet",
        "--depth=1",
        "--no-tags",
        "--no-recurse-submodules",
        "--",
        url.url.as_str(),
        refspec.as_str(),
    ];
    let out = run::git(&args, Place::Repo(dest), Some(&access), &deadline).await?;
    if !out.success {
        if out.stderr.contains("couldn't find remote ref") {
            return Err(branch_missing(url, &branch, auth, opts, &deadline).await);
        }
        return Err(access.classify(url, &out.stderr));
    }
    drop(access);

    run::local(&["checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], Place::Repo(dest), &deadline).await?;
    run::local(&["clean", "-ffdxq"], Place::Repo(dest), &deadline).await?;
    let head = run::local(&["rev-parse", "--verify", "HEAD^{commit}"], Place::Repo(dest), &deadline).await?;
    Ok(FetchedCommit { sha: head.stdout.trim().to_owned(), branch })
}

/// Like [`fetch_shallow`], but checks out `commit` (7–40 hex digits) of the branch rather than its tip. The tip is
/// fetched first (depth 1); when it is not the commit asked for, the branch's whole history is fetched into the
/// cached repository and the commit must be one of its ancestors.
pub async fn fetch_commit(
    url: &RepoUrl,
    branch: Option<&str>,
    commit: &str,
    auth: &GitAuth,
    opts: &GitOptions,
    dest: &Path,
) -> Result<FetchedCommit, GitError> {
    let tip = fetch_shallow(url, branch, auth, opts, dest).await?;
    if tip.sha.starts_with(commit) {
        return Ok(tip);
    }
    let deadline = Deadline::after(opts.timeout);
    let access = RemoteAccess::new(url, auth, opts)?;
    let refspec = format!("refs/heads/{}", tip.branch);
    let shallow = dest.join(".git").join("shallow").exists();
    let mut args = vec!["-c", "gc.autoDetach=false", "fetch", "--quiet", "--no-tags", "--no-recurse-submodules"];
    if shallow {
        args.push("--unshallow");
    }
    args.extend(["--", url.url.as_str(), refspec.as_str()]);
    let out = run::git(&args, Place::Repo(dest), Some(&access), &deadline).await?;
    if !out.success {
        return Err(access.classify(url, &out.stderr));
    }
    drop(access);
    let missing = || GitError::CommitMissing { commit: commit.to_owned(), branch: tip.branch.clone() };
    let wanted = format!("{commit}^{{commit}}");
    let sha = run::local(&["rev-parse", "--verify", "--quiet", &wanted], Place::Repo(dest), &deadline)
        .await
        .map_err(|_| missing())?
        .stdout
        .trim()
        .to_owned();
    let on_branch = run::git(&["merge-base", "--is-ancestor", &sha, "FETCH_HEAD"], Place::Repo(dest), None, &deadline)
        .await?
        .success;
    if !on_branch {
        return Err(missing());
    }
    run::local(&["checkout", "--quiet", "--force", "--detach", &sha], Place::Repo(dest), &deadline).await?;
    run::local(&["clean", "-ffdxq"], Place::Repo(dest), &deadline).await?;
    Ok(FetchedCommit { sha, branch: tip.branch })
}

/// The branch to build when none was chosen: the remote's `HEAD`, else `main`, `master` or the only branch.
fn default_branch(info: &RemoteInfo) -> Result<String, GitError> {
    if let Some(b) = &info.default_branch {
        return Ok(b.clone());
    }
    let found = ["main", "master"].into_iter().find(|c| info.branches.iter().any(|b| b == c));
    match (found, info.branches.as_slice()) {
        (Some(b), _) => Ok(b.to_owned()),
        (None, [only]) => Ok(only.clone()),
        _ => Err(GitError::BranchMissing { branch: "HEAD".to_owned(), available: info.branches.clone() }),
    }
}

/// The error for a branch the remote does not have, listing the ones it has (or why they could not be listed).
async fn branch_missing(
    url: &RepoUrl,
    branch: &str,
    auth: &GitAuth,
    opts: &GitOptions,
    deadline: &Deadline,
) -> GitError {
    match ls_remote_until(url, auth, opts, deadline).await {
        Ok(info) => GitError::BranchMissing { branch: branch.to_owned(), available: info.branches },
        Err(e) => e,
    }
}

/// Whether `b` could be a branch name at all (a subset of `git check-ref-format --branch`); anything else is
/// reported as missing without ever reaching a command line.
fn plausible_branch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && b != "@"
        && !b
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
}

/// Makes `dest` an (empty or reusable) repository: created when missing, re-initialised when its `.git` is broken,
/// with lock files of an earlier killed run removed.
async fn prepare_repo(dest: &Path, deadline: &Deadline) -> Result<(), GitError> {
    let fs_failed = |what: &str, e: std::io::Error| GitError::Failed {
        detail: format!("cannot {what} {}: {e}; check that Berth's data directory is writable", dest.display()),
    };
    tokio::fs::create_dir_all(dest).await.map_err(|e| fs_failed("create", e))?;
    let git_dir = dest.join(".git");
    if git_dir.is_dir() {
        let check = run::git(&["rev-parse", "--git-dir"], Place::Repo(dest), None, deadline).await?;
        if check.success {
            for lock in ["index.lock", "shallow.lock", "HEAD.lock"] {
                let _ = tokio::fs::remove_file(git_dir.join(lock)).await;
            }
            return Ok(());
        }
        tokio::fs::remove_dir_all(&git_dir).await.map_err(|e| fs_failed("clear the broken repository in", e))?;
    } else if tokio::fs::symlink_metadata(&git_dir).await.is_ok() {
        tokio::fs::remove_file(&git_dir).await.map_err(|e| fs_failed("clear the broken repository in", e))?;
    }
    run::local(&["-c", "init.defaultBranch=berth", "init", "--quiet"], Place::Init(dest), deadline).await?;
    Ok(())
}
