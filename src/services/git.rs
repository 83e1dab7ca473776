//! A project's git connection (repository, branch, deploy key, access token, webhook), checking access to it,
//! and detecting what a repository is.

use super::access::{Actor, resolve};
use super::projects::resolve_project;
use super::{ServiceError, Services};
use crate::build::detect::{self, Detection};
use crate::build::git::{self, GitAuth, GitError, GitOptions, RepoUrl};
use crate::domain::project::{validate_branch, validate_repo_path};
use crate::domain::{Project, Role, Timestamp, now};
use crate::store::{self, git::GitRow};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use utoipa::ToSchema;

/// The body of `PUT …/projects/:p/git`. Absent fields keep their current value.
#[derive(Debug, Clone, Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitInput {
    /// `https://host/owner/repo.git`, `ssh://git@host/owner/repo.git`, `git@host:owner/repo.git`, `git://…`;
    /// `file://…` or a local path only when the config allows local repositories.
    pub repo_url: Option<String>,
    /// `owner/repo` on GitHub, as an alternative to `repo_url`.
    pub repo_full_name: Option<String>,
    /// The production branch (`""`: the repository's default branch).
    pub branch: Option<String>,
    /// Deploy on every push to the branch (the webhook receiver arrives with the deploy issue).
    pub auto_deploy: Option<bool>,
    /// Relative directory inside the repository to build from (the same setting as `build.root_directory`).
    pub root_directory: Option<String>,
    /// An access token for https repositories, kept encrypted; `""` removes it.
    pub access_token: Option<String>,
}

/// The public half of the project's deploy key, to add to the repository (read-only is enough).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeployKeyView {
    /// OpenSSH format: `ssh-ed25519 AAAA… berth-<workspace>-<project>`.
    pub public_key: String,
    /// `SHA256:…`, as GitHub and `ssh-keygen -l` show it.
    pub fingerprint: String,
}

/// Where pushes are announced; the build issue's receiver checks the signature with `secret`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    /// `<public_url>/api/hooks/<id>`.
    pub url: String,
    /// Masked (`********`) except right after it was created, or when an admin asks with `?reveal=true`.
    pub secret: String,
}

/// A project's git connection as the API shows it. Token and private key never leave Berth.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GitConnection {
    pub repo_url: String,
    /// `https`, `http`, `ssh`, `scp`, `git`, `file` or `local_path`.
    pub repo_kind: git::RepoUrlKind,
    /// `null`: the repository's default branch.
    pub branch: Option<String>,
    pub auto_deploy: bool,
    pub root_directory: String,
    pub has_access_token: bool,
    pub deploy_key: DeployKeyView,
    pub webhook: WebhookView,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What `POST …/git/test` found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GitTestResult {
    pub ok: bool,
    pub branches: Vec<String>,
    pub default_branch: Option<String>,
    /// The branch deploys use (the configured one, else the default).
    pub branch: Option<String>,
}

/// A detection plus the commit it looked at.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectResult {
    #[serde(flatten)]
    pub detection: Detection,
    pub commit: String,
    pub branch: String,
    pub root_directory: String,
}

fn aad(kind: &str, project_id: &str) -> String {
    format!("{kind}:{project_id}")
}

/// Turns a git failure into an answer that says what is wrong: the caller's settings (400) or the remote (502).
pub(crate) fn git_error(e: GitError) -> ServiceError {
    let message = e.to_string();
    match e {
        GitError::Unreachable { .. } => ServiceError::Upstream { code: "git_unreachable", message },
        GitError::Timeout { .. } => ServiceError::Upstream { code: "git_timeout", message },
        GitError::AuthRefused { .. } => ServiceError::Rejected { code: "git_auth_refused", message },
        GitError::RepoNotFound { .. } => ServiceError::Rejected { code: "git_repo_not_found", message },
        GitError::BranchMissing { .. } => ServiceError::Rejected { code: "git_branch_missing", message },
        GitError::CommitMissing { .. } => ServiceError::Rejected { code: "git_commit_missing", message },
        GitError::Failed { .. } => ServiceError::Rejected { code: "git_failed", message },
    }
}

impl Services {
    pub(crate) fn git_options(&self) -> GitOptions {
        GitOptions {
            timeout: Duration::from_secs(u64::from(self.config.git_timeout_secs)),
            known_hosts: self.config.data_dir.join("ssh").join("known_hosts"),
            scratch_dir: self.config.data_dir.join("tmp"),
        }
    }

    fn parse_url(&self, field_value: &str) -> Result<RepoUrl, ServiceError> {
        Ok(git::parse_repo_url(field_value, self.config.allow_local_repos)?)
    }

    fn git_view(&self, project: &Project, g: GitRow, show_secret: bool) -> Result<GitConnection, ServiceError> {
        let secret = if show_secret {
            self.secrets.open(&g.webhook_secret, &aad("webhook", &g.project_id))?
        } else {
            crate::domain::env::MASK.to_owned()
        };
        let kind = git::parse_repo_url(&g.repo_url, true).map(|u| u.kind).unwrap_or(git::RepoUrlKind::Https);
        Ok(GitConnection {
            repo_url: g.repo_url,
            repo_kind: kind,
            branch: g.branch,
            auto_deploy: g.auto_deploy,
            root_directory: project.build.root_directory.clone(),
            has_access_token: g.access_token.is_some(),
            deploy_key: DeployKeyView { public_key: g.deploy_key_public, fingerprint: g.deploy_key_fingerprint },
            webhook: WebhookView {
                url: format!("{}/api/hooks/{}", self.config.public_url, g.webhook_id),
                id: g.webhook_id,
                secret,
            },
            created_at: g.created_at,
            updated_at: g.updated_at,
        })
    }

    /// `GET …/projects/:p/git`: any member; `reveal` (owner or admin, audited) shows the webhook secret.
    pub async fn get_git(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        reveal: bool,
    ) -> Result<GitConnection, ServiceError> {
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (project, row) = self
            .store
            .write(move |tx| {
                let (access, project) = resolve_project(tx, &a, &w, &p)?;
                let row = store::git::get(tx, &project.id)?.ok_or_else(|| {
                    ServiceError::NotFound(format!("project '{}' has no git connection; PUT one first", project.slug))
                })?;
                if reveal {
                    access.require(Role::Admin, "revealing the webhook secret")?;
                    store::audit::insert(
                        tx,
                        &a.audit(Some(&access.workspace.id), "git.reveal", project.slug.clone(), serde_json::json!({})),
                    )?;
                }
                Ok::<_, ServiceError>((project, row))
            })
            .await?;
        self.git_view(&project, row, reveal)
    }

    /// `PUT …/projects/:p/git` (admin): connects or changes the repository. The deploy key and webhook are made
    /// once and kept across changes. Returns the connection and whether it was new (then the webhook secret is
    /// shown).
    pub async fn put_git(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        input: GitInput,
    ) -> Result<(GitConnection, bool), ServiceError> {
        let url = match (&input.repo_url, &input.repo_full_name) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::invalid("repo_url", "send repo_url or repo_full_name, not both"));
            }
            (Some(u), None) => Some(self.parse_url(u)?),
            (None, Some(n)) => Some(git::repo_url_from_full_name(n)?),
            (None, None) => None,
        };
        let branch = match input.branch.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(b) => Some(Some(validate_branch("branch", b)?)),
        };
        let root = input.root_directory.as_deref().map(|r| validate_repo_path("root_directory", r)).transpose()?;
        // Made outside the transaction (key generation and sealing are CPU work); used only when new.
        let key = git::generate_deploy_key(&format!("berth-{ws}-{project}"))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let webhook_secret = crate::crypto::random_token()?;
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let probe = self.store.read(move |c| {
            let (access, project) = resolve_project(c, &a, &w, &p)?;
            access.require(Role::Admin, "connecting a repository")?;
            Ok::<_, ServiceError>(project.id)
        });
        let project_id = probe.await?;
        let sealed_key = self.secrets.seal(&key.private_openssh, &aad("deploy-key", &project_id))?;
        let sealed_hook = self.secrets.seal(&webhook_secret, &aad("webhook", &project_id))?;
        let sealed_token = match input.access_token.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(t) => Some(Some(self.secrets.seal(t.trim(), &aad("git-token", &project_id))?)),
        };
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (project, row, created) = self
            .store
            .write(move |tx| {
                let (access, mut project) = resolve_project(tx, &a, &w, &p)?;
                access.require(Role::Admin, "connecting a repository")?;
                let t = now();
                let existing = store::git::get(tx, &project.id)?;
                let created = existing.is_none();
                let mut row = match existing {
                    Some(row) => row,
                    None => GitRow {
                        project_id: project.id.clone(),
                        repo_url: String::new(),
                        branch: None,
                        auto_deploy: false,
                        access_token: None,
                        deploy_key_public: key.public_openssh.clone(),
                        deploy_key_private: sealed_key,
                        deploy_key_fingerprint: key.fingerprint.clone(),
                        webhook_id: uuid::Uuid::now_v7().simple().to_string(),
                        webhook_secret: sealed_hook,
                        created_at: t,
                        updated_at: t,
                    },
                };
                match url {
                    Some(u) => row.repo_url = u.url,
                    None if created => {
                        return Err(ServiceError::invalid("repo_url", "is required to connect a repository, e.g. https://github.com/acme/app.git"));
                    }
                    None => {}
                }
                if let Some(b) = branch {
                    row.branch = b;
                }
                if let Some(ad) = input.auto_deploy {
                    row.auto_deploy = ad;
                }
                if let Some(tok) = sealed_token {
                    row.access_token = tok;
                }
                row.updated_at = t;
                store::git::upsert(tx, &row)?;
                if let Some(root) = root {
                    project.build.root_directory = root;
                    project.updated_at = t;
                    store::projects::update(tx, &project)?;
                }
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        if created { "git.connect" } else { "git.update" },
                        project.slug.clone(),
                        serde_json::json!({"repo_url": row.repo_url, "branch": row.branch, "auto_deploy": row.auto_deploy,
                            "access_token": input.access_token.as_ref().map(|t| if t.is_empty() { "removed" } else { "set" })}),
                    ),
                )?;
                Ok::<_, ServiceError>((project, row, created))
            })
            .await?;
        Ok((self.git_view(&project, row, created)?, created))
    }

    /// `DELETE …/projects/:p/git` (admin): forgets the repository, deploy key, token and webhook.
    pub async fn delete_git(&self, actor: &Actor, ws: &str, project: &str) -> Result<(), ServiceError> {
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .write(move |tx| {
                let (access, project) = resolve_project(tx, &a, &w, &p)?;
                access.require(Role::Admin, "disconnecting a repository")?;
                if !store::git::delete(tx, &project.id)? {
                    return Err(ServiceError::NotFound(format!("project '{}' has no git connection", project.slug)));
                }
                store::audit::insert(
                    tx,
                    &a.audit(Some(&access.workspace.id), "git.disconnect", project.slug.clone(), serde_json::json!({})),
                )?;
                Ok(())
            })
            .await
    }

    /// The project, its connection's URL and the credentials to reach it (secrets opened).
    async fn connection(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
    ) -> Result<(Project, GitRow, RepoUrl, GitAuth), ServiceError> {
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (project, row) = self
            .store
            .read(move |c| {
                let (_, project) = resolve_project(c, &a, &w, &p)?;
                let row = store::git::get(c, &project.id)?.ok_or_else(|| {
                    ServiceError::NotFound(format!("project '{}' has no git connection; PUT …/git first", project.slug))
                })?;
                Ok::<_, ServiceError>((project, row))
            })
            .await?;
        // Stored URLs were checked when saved; a local one stays usable only while the config allows it.
        let url = self.parse_url(&row.repo_url)?;
        let auth = GitAuth {
            ssh_private_key: Some(self.secrets.open(&row.deploy_key_private, &aad("deploy-key", &project.id))?),
            token: match &row.access_token {
                Some(t) => Some(self.secrets.open(t, &aad("git-token", &project.id))?),
                None => None,
            },
        };
        Ok((project, row, url, auth))
    }

    /// `POST …/projects/:p/git/test`: any member. Lists the branches; fails with what is wrong (host unreachable,
    /// authentication refused, repository or configured branch missing).
    pub async fn test_git(&self, actor: &Actor, ws: &str, project: &str) -> Result<GitTestResult, ServiceError> {
        let (_, row, url, auth) = self.connection(actor, ws, project).await?;
        let info = git::ls_remote(&url, &auth, &self.git_options()).await.map_err(git_error)?;
        if let Some(b) = &row.branch
            && !info.branches.contains(b)
        {
            return Err(git_error(GitError::BranchMissing { branch: b.clone(), available: info.branches }));
        }
        Ok(GitTestResult {
            ok: true,
            branch: row.branch.clone().or_else(|| info.default_branch.clone()),
            branches: info.branches,
            default_branch: info.default_branch,
        })
    }

    /// `POST …/projects/:p/detect`: any member. Fetches the connection's branch (or `branch`) shallowly into the
    /// project's checkout cache and inspects `root_directory` (default: the project's).
    pub async fn detect_project(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        branch: Option<&str>,
        root_directory: Option<&str>,
    ) -> Result<DetectResult, ServiceError> {
        let branch = branch.map(|b| validate_branch("branch", b)).transpose()?;
        let root = root_directory.map(|r| validate_repo_path("root_directory", r)).transpose()?;
        let (project, row, url, auth) = self.connection(actor, ws, project).await?;
        let dest = self.config.data_dir.join("repos").join(&project.id);
        let branch = branch.or(row.branch);
        let root = root.unwrap_or(project.build.root_directory);
        self.fetch_and_detect(&url, branch.as_deref(), &auth, &dest, &root).await
    }

    /// `POST /workspaces/:ws/projects/detect` (admin: it precedes creating a project): fetches any repository
    /// (public, or with `access_token`) into a scratch directory, inspects it and removes the copy.
    pub async fn detect_repo(
        &self,
        actor: &Actor,
        ws: &str,
        repo_url: &str,
        branch: Option<&str>,
        root_directory: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<DetectResult, ServiceError> {
        let (a, w) = (actor.clone(), ws.to_owned());
        self.store
            .read(move |c| {
                resolve(c, &a, &w)?.require(Role::Admin, "inspecting a repository for a new project")?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        let url = self.parse_url(repo_url)?;
        let branch = branch.map(|b| validate_branch("branch", b)).transpose()?;
        let root = root_directory.map(|r| validate_repo_path("root_directory", r)).transpose()?.unwrap_or_default();
        let auth = GitAuth { ssh_private_key: None, token: access_token.map(str::to_owned) };
        let dest = self.config.data_dir.join("tmp").join(format!("detect-{}", uuid::Uuid::now_v7().simple()));
        let result = self.fetch_and_detect(&url, branch.as_deref(), &auth, &dest, &root).await;
        let _ = tokio::fs::remove_dir_all(&dest).await;
        result
    }

    async fn fetch_and_detect(
        &self,
        url: &RepoUrl,
        branch: Option<&str>,
        auth: &GitAuth,
        dest: &Path,
        root: &str,
    ) -> Result<DetectResult, ServiceError> {
        let fetched = git::fetch_shallow(url, branch, auth, &self.git_options(), dest).await.map_err(git_error)?;
        let dir = inside(dest, root)?;
        let detection = tokio::task::spawn_blocking(move || detect::detect(&dir))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(DetectResult { detection, commit: fetched.sha, branch: fetched.branch, root_directory: root.to_owned() })
    }
}

/// `root` inside the checkout `dest`, refusing a directory that is missing or that a symlink leads outside.
fn inside(dest: &Path, root: &str) -> Result<PathBuf, ServiceError> {
    let base = dest.canonicalize().map_err(|e| ServiceError::Internal(format!("checkout {}: {e}", dest.display())))?;
    let dir = base.join(root);
    let missing = || ServiceError::invalid("root_directory", format!("'{root}' does not exist in the repository"));
    let real = dir.canonicalize().map_err(|_| missing())?;
    if !real.starts_with(&base) {
        return Err(ServiceError::invalid("root_directory", format!("'{root}' leads outside the repository")));
    }
    if !real.is_dir() {
        return Err(ServiceError::invalid("root_directory", format!("'{root}' is not a directory")));
    }
    Ok(real)
}
