//! Projects and their environments.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination};
use super::views::{Deleted, PageParams};
use super::{CommonErrors, Envelope, created, ok};
use crate::domain::{Builder, Environment, Project, Volume};
use crate::services::{Access, BuildPatch, ProjectInput, RuntimePatch};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Deserializer, Serialize};
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

/// Accepts `"0.5"` or `0.5`.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a decimal number as a string (\"0.5\") or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }
    d.deserialize_any(V)
}

/// Build settings; absent fields stay as they are, `""` clears a command.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    pub builder: Option<Builder>,
    /// Relative directory inside the repository (no `..`).
    pub root_directory: Option<String>,
    pub dockerfile_path: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
}

/// Runtime settings; absent fields stay as they are, `""` clears.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RuntimeRequest {
    pub health_check_path: Option<String>,
    pub start_command: Option<String>,
}

/// `POST /workspaces/:ws/projects` and `PATCH …/projects/:p`. On create only `name` is required; port 3000,
/// 1 replica, 0.5 cores and 0.5 GiB are the defaults.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectRequest {
    pub name: Option<String>,
    /// `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`; derived from the name when omitted.
    pub slug: Option<String>,
    /// The port the app listens on (1–65535).
    pub port: Option<u32>,
    /// 0 to the configured maximum (default 10).
    pub replicas: Option<u32>,
    /// Cores, e.g. "0.5" (0.1 up to the host's cores).
    #[serde(default, deserialize_with = "decimal")]
    #[schema(value_type = Option<String>)]
    pub cpu: Option<String>,
    /// GiB, e.g. "0.5" (0.064 up to the host's memory).
    #[serde(default, deserialize_with = "decimal")]
    #[schema(value_type = Option<String>)]
    pub ram: Option<String>,
    /// A prebuilt image to run (`""` clears).
    pub image: Option<String>,
    pub template_name: Option<String>,
    pub build: Option<BuildRequest>,
    pub runtime: Option<RuntimeRequest>,
    /// Replaces the list of volumes.
    pub volumes: Option<Vec<Volume>>,
}

impl From<ProjectRequest> for ProjectInput {
    fn from(r: ProjectRequest) -> Self {
        ProjectInput {
            name: r.name,
            slug: r.slug,
            port: r.port,
            replicas: r.replicas,
            cpu: r.cpu,
            ram: r.ram,
            image: r.image,
            template_name: r.template_name,
            build: r.build.map(|b| BuildPatch {
                builder: b.builder,
                root_directory: b.root_directory,
                dockerfile_path: b.dockerfile_path,
                install_command: b.install_command,
                build_command: b.build_command,
                start_command: b.start_command,
            }),
            runtime: r
                .runtime
                .map(|r| RuntimePatch { health_check_path: r.health_check_path, start_command: r.start_command }),
            volumes: r.volumes,
        }
    }
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
    params(("ws" = String, Path, description = "Workspace slug")), request_body = ProjectRequest,
    responses((status = 201, description = "Created", body = Envelope<ProjectView>), CommonErrors))]
pub async fn create_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<ProjectRequest>,
) -> Result<Response, ApiError> {
    if body.name.is_none() {
        return Err(crate::services::ServiceError::invalid("name", "is required").into());
    }
    let project = state.services.create_project(&actor, &ws, body.into()).await?;
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
    request_body = ProjectRequest,
    responses((status = 200, description = "Updated", body = Envelope<ProjectView>), CommonErrors))]
pub async fn update_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiJson(body): ApiJson<ProjectRequest>,
) -> Result<Response, ApiError> {
    let (access, project) = state.services.update_project(&actor, &ws, &p, body.into()).await?;
    Ok(ok(ProjectView::new(&state, &access, project)))
}

/// Deletes a project with its environments, variables and git connection (admin).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}", tag = "projects",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = state.services.delete_project(&actor, &ws, &p).await?;
    Ok(ok(Deleted { id: project.id, deleted: true }))
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
