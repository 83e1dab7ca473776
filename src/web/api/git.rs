//! A project's git connection, access checks, and detection of what a repository is.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Auth, OptionalJson};
use super::views::Deleted;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::{DetectResult, GitConnection, GitInput, GitTestResult};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Answers of routes that reach a git host for the caller.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum GitErrors {
    /// The git host refused (authentication, repository or branch missing), with codes `git_auth_refused`,
    /// `git_repo_not_found`, `git_branch_missing`, `git_failed`; or a parameter is invalid.
    #[response(status = 400)]
    Rejected(#[to_schema] ErrorBody),
    /// The git host is unreachable or too slow (`git_unreachable`, `git_timeout`).
    #[response(status = 502)]
    Unreachable(ErrorBody),
}

/// `?reveal=true` (owner or admin, audited) shows the webhook secret.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    pub reveal: Option<bool>,
}

/// `POST …/projects/:p/detect` (body optional).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DetectProjectRequest {
    /// Default: the git connection's branch, else the repository's default.
    pub branch: Option<String>,
    /// Default: the project's root directory.
    pub root_directory: Option<String>,
}

/// `POST /workspaces/:ws/projects/detect`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectRepoRequest {
    pub repo_url: String,
    pub branch: Option<String>,
    pub root_directory: Option<String>,
    /// For private https repositories; used once, never stored.
    pub access_token: Option<String>,
}

/// The project's git connection: repository, branch, deploy key (public half), webhook.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/git", tag = "git",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), RevealQuery),
    responses((status = 200, description = "The connection", body = Envelope<GitConnection>), CommonErrors))]
pub async fn get_git(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<RevealQuery>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.get_git(&actor, &ws, &p, q.reveal == Some(true)).await?))
}

/// Connects or changes the repository (admin). The first call generates the project's ed25519 deploy key and
/// webhook (201, webhook secret shown once); later calls keep them (200).
#[utoipa::path(put, path = "/api/workspaces/{ws}/projects/{p}/git", tag = "git",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    request_body = GitInput,
    responses((status = 200, description = "Updated", body = Envelope<GitConnection>),
        (status = 201, description = "Connected", body = Envelope<GitConnection>), CommonErrors))]
pub async fn put_git(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiJson(input): ApiJson<GitInput>,
) -> Result<Response, ApiError> {
    let (conn, is_new) = state.services.put_git(&actor, &ws, &p, input).await?;
    Ok(if is_new { created(conn) } else { ok(conn) })
}

/// Disconnects the repository (admin): forgets the deploy key, token and webhook.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}/git", tag = "git",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "Disconnected", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_git(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.services.delete_git(&actor, &ws, &p).await?;
    Ok(ok(Deleted { id: p, deleted: true }))
}

/// Checks that Berth can read the repository: lists its branches and default branch, or says what is wrong
/// (host unreachable, authentication refused, repository or branch missing).
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/git/test", tag = "git",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "Reachable", body = Envelope<GitTestResult>), GitErrors, CommonErrors))]
pub async fn test_git(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.test_git(&actor, &ws, &p).await?))
}

/// Fetches the project's repository shallowly and says what it is and how to build and start it.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/detect", tag = "detection",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    request_body(content = Option<DetectProjectRequest>, description = "Optional"),
    responses((status = 200, description = "What the repository is", body = Envelope<DetectResult>), GitErrors, CommonErrors))]
pub async fn detect_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<DetectProjectRequest>,
) -> Result<Response, ApiError> {
    let r =
        state.services.detect_project(&actor, &ws, &p, body.branch.as_deref(), body.root_directory.as_deref()).await?;
    Ok(ok(r))
}

/// Fetches any repository shallowly (before a project exists) and says what it is (admin).
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/detect", tag = "detection",
    params(("ws" = String, Path, description = "Workspace slug")), request_body = DetectRepoRequest,
    responses((status = 200, description = "What the repository is", body = Envelope<DetectResult>), GitErrors, CommonErrors))]
pub async fn detect_repo(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<DetectRepoRequest>,
) -> Result<Response, ApiError> {
    let r = state
        .services
        .detect_repo(
            &actor,
            &ws,
            &body.repo_url,
            body.branch.as_deref(),
            body.root_directory.as_deref(),
            body.access_token.as_deref(),
        )
        .await?;
    Ok(ok(r))
}
