//! Projects and their environments.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination};
use super::views::{Deleted, PageParams};
use super::{CommonErrors, Envelope, created, ok};
use crate::domain::{Environment, Project};
use crate::services::{Access, DeletedWithVolumes, ProjectInput};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project with its default URL.
#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    /// `http://<project>.<workspace>.<base_domain>`: where the project answers once deployed.
    pub url: String,
}

impl ProjectView {
    fn new(state: &AppState, access: &Access, project: Project) -> Self {
        let base = &state.services.config().base_domain;
        let url = format!("http://{}.{}.{base}", project.slug, access.workspace.slug);
        ProjectView { project, url }
    }
}

/// A page of projects.
#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

/// The workspace's projects, oldest first.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug"), PageParams),
    responses((status = 200, description = "A page of projects", body = Envelope<ProjectList>), CommonErrors))]
pub async fn list_projects(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let (access, p) = state.services.list_projects(&actor, &ws, page).await?;
    let projects = p.items.into_iter().map(|p| ProjectView::new(&state, &access, p)).collect();
    Ok(ok(ProjectList { projects, total: p.total, page: page.page, limit: page.limit }))
}

/// Creates a project (admin) with its `production` environment. Status starts as `pending`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug")), request_body = ProjectInput,
    responses((status = 201, description = "Created", body = Envelope<ProjectView>), CommonErrors))]
pub async fn create_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<ProjectInput>,
) -> Result<Response, ApiError> {
    if body.name.is_none() {
        return Err(crate::services::ServiceError::invalid("name", "is required").into());
    }
    let project = state.services.create_project(&actor, &ws, body).await?;
    let access = state.services.access(&actor, &ws).await?;
    Ok(created(ProjectView::new(&state, &access, project)))
}

/// One project.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "The project", body = Envelope<ProjectView>), CommonErrors))]
pub async fn get_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (access, project) = state.services.get_project(&actor, &ws, &p).await?;
    Ok(ok(ProjectView::new(&state, &access, project)))
}

/// Changes a project's settings (admin): name, slug, port, replicas, cpu, ram, image, build, runtime, volumes.
#[utoipa::path(patch, path = "/api/workspaces/{ws}/projects/{p}", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    request_body = ProjectInput,
    responses((status = 200, description = "Updated", body = Envelope<ProjectView>), CommonErrors))]
pub async fn update_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiJson(body): ApiJson<ProjectInput>,
) -> Result<Response, ApiError> {
    let (access, project) = state.services.update_project(&actor, &ws, &p, body).await?;
    Ok(ok(ProjectView::new(&state, &access, project)))
}

/// Deletes a project with its environments, variables and git connection (admin).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "Deleted; its volumes are kept and listed", body = Envelope<DeletedWithVolumes>), CommonErrors))]
pub async fn delete_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.delete_project(&actor, &ws, &p).await?))
}

/// A project's environments.
#[derive(Serialize, ToSchema)]
pub struct EnvironmentList {
    pub environments: Vec<Environment>,
}

/// `POST …/environments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironmentRequest {
    /// Like a slug: `staging`, `preview-1`.
    pub name: String,
    /// The branch it deploys (default: the git connection's).
    pub branch: Option<String>,
}

/// `PATCH …/environments/:env`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironmentRequest {
    /// `""` follows the git connection's branch.
    pub branch: String,
}

/// A project's environments, `production` first.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/environments", tag = "environments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "The environments", body = Envelope<EnvironmentList>), CommonErrors))]
pub async fn list_environments(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let environments = state.services.list_environments(&actor, &ws, &p).await?;
    Ok(ok(EnvironmentList { environments }))
}

/// Adds an environment (admin) with its own branch and variable overrides.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/environments", tag = "environments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    request_body = CreateEnvironmentRequest,
    responses((status = 201, description = "Created", body = Envelope<Environment>), CommonErrors))]
pub async fn create_environment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateEnvironmentRequest>,
) -> Result<Response, ApiError> {
    let e = state.services.create_environment(&actor, &ws, &p, &body.name, body.branch.as_deref()).await?;
    Ok(created(e))
}

/// Changes an environment's branch (admin).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/projects/{p}/environments/{env}", tag = "environments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("env" = String, Path, description = "Environment name")),
    request_body = UpdateEnvironmentRequest,
    responses((status = 200, description = "Updated", body = Envelope<Environment>), CommonErrors))]
pub async fn update_environment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, env)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateEnvironmentRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.update_environment(&actor, &ws, &p, &env, &body.branch).await?))
}

/// Deletes an environment and its overrides (admin); `production` cannot be deleted (409).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}/environments/{env}", tag = "environments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("env" = String, Path, description = "Environment name")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_environment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, env)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let e = state.services.delete_environment(&actor, &ws, &p, &env).await?;
    Ok(ok(Deleted { id: e.id, deleted: true }))
}
