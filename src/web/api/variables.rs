//! Environment variables: a project's (optionally one environment's overrides, `?environment=`) and the
//! workspace's shared ones. Secret values are masked on every read.

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth, body_bytes, parse_json};
use super::views::Deleted;
use super::{CommonErrors, Envelope, created, ok};
use crate::domain::Variable;
use crate::domain::env::parse_dotenv;
use crate::services::{Actor, BulkItem, BulkResult, ResolvedVariable, Secrecy, SecrecyChange, ServiceError, VarTarget};
use crate::web::AppState;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// `?environment=` on project variable routes: absent means the project-wide variables (which production and
/// every other environment inherit); a name means that environment's overrides.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EnvQuery {
    /// Environment name (`production`, `staging`, …).
    pub environment: Option<String>,
    /// `true`: the effective set for the environment (default production), with where each value comes from.
    pub resolved: Option<bool>,
    /// `dotenv`: answer a dotenv file (text/plain) instead of JSON.
    pub format: Option<String>,
    /// `true` (owner or admin, audited): show secret values.
    pub reveal: Option<bool>,
    /// On `PUT …/env/bulk` with a dotenv body: `false` replaces all (default `true`, upsert).
    pub merge: Option<bool>,
}

/// The variables of one scope.
#[derive(Serialize, ToSchema)]
pub struct VariableList {
    pub variables: Vec<Variable>,
    /// The environment whose overrides these are (`null`: project-wide or workspace-wide).
    pub environment: Option<String>,
}

/// The effective variables of an environment.
#[derive(Serialize, ToSchema)]
pub struct ResolvedList {
    pub variables: Vec<ResolvedVariable>,
    pub environment: String,
}

/// `POST …/env` and `POST /workspaces/:ws/variables`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVariableRequest {
    /// `^[A-Za-z_][A-Za-z0-9_]*$`
    pub key: String,
    /// Up to 64 KiB.
    pub value: String,
    /// Encrypted at rest and masked on every read.
    #[serde(default)]
    pub is_secret: bool,
    /// Also hand this secret to builds as a build argument (secrets never reach builds otherwise).
    #[serde(default)]
    pub build_secret: bool,
}

/// `PATCH …/env/:key`: a new value and/or secrecy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVariableRequest {
    pub value: Option<String>,
    pub is_secret: Option<bool>,
    pub build_secret: Option<bool>,
}

impl CreateVariableRequest {
    fn secrecy(&self) -> Secrecy {
        Secrecy { is_secret: self.is_secret, build_secret: self.build_secret }
    }
}

impl UpdateVariableRequest {
    fn change(&self) -> SecrecyChange {
        SecrecyChange { is_secret: self.is_secret, build_secret: self.build_secret }
    }
}

/// One entry of the array form of a bulk write.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEntry {
    pub key: String,
    pub value: String,
    /// Absent: an existing variable keeps its secrecy, a new one is plain.
    pub is_secret: Option<bool>,
}

/// The variables of a bulk write: `{"K": "V", …}` or `[{key, value, is_secret}, …]`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BulkVariables {
    Map(BTreeMap<String, String>),
    List(Vec<BulkEntry>),
}

/// `PUT …/env/bulk` as JSON. (A `text/plain` dotenv body is accepted too, with `?merge=`.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub variables: BulkVariables,
    /// `true` (default): upsert the given keys. `false`: also delete every other key of the scope.
    pub merge: Option<bool>,
}

fn target(project: Option<String>, q: &EnvQuery) -> VarTarget {
    VarTarget { project, environment: q.environment.clone() }
}

async fn list(
    state: &AppState,
    actor: &Actor,
    ws: &str,
    project: Option<String>,
    q: EnvQuery,
) -> Result<Response, ApiError> {
    if let Some(f) = q.format.as_deref()
        && f != "dotenv"
        && f != "json"
    {
        return Err(ServiceError::invalid("format", format!("'{f}' must be dotenv or json")).into());
    }
    if q.resolved == Some(true) {
        let Some(p) = project else {
            return Err(ServiceError::invalid("resolved", "applies to project variables only").into());
        };
        let vars = state.services.resolved_variables(actor, ws, &p, q.environment.as_deref()).await?;
        let environment = q.environment.unwrap_or_else(|| crate::domain::PRODUCTION.to_owned());
        return Ok(ok(ResolvedList { variables: vars, environment }));
    }
    if q.format.as_deref() == Some("dotenv") {
        let text = state.services.export_dotenv(actor, ws, target(project, &q), q.reveal == Some(true)).await?;
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    let variables = state.services.list_variables(actor, ws, target(project, &q)).await?;
    Ok(ok(VariableList { variables, environment: q.environment }))
}

async fn bulk(
    state: &AppState,
    actor: &Actor,
    ws: &str,
    project: Option<String>,
    q: EnvQuery,
    req: Request,
) -> Result<Response, ApiError> {
    let is_text = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    let bytes = body_bytes(req, state).await?;
    let (items, merge) = if is_text {
        let text = std::str::from_utf8(&bytes).map_err(|_| ServiceError::invalid("body", "is not UTF-8 text"))?;
        let pairs = parse_dotenv(text)?;
        (
            pairs.into_iter().map(|(key, value)| BulkItem { key, value, is_secret: None }).collect(),
            q.merge.unwrap_or(true),
        )
    } else {
        let body: BulkRequest = parse_json(&bytes)?;
        let items = match body.variables {
            BulkVariables::Map(m) => {
                m.into_iter().map(|(key, value)| BulkItem { key, value, is_secret: None }).collect()
            }
            BulkVariables::List(l) => {
                l.into_iter().map(|e| BulkItem { key: e.key, value: e.value, is_secret: e.is_secret }).collect()
            }
        };
        (items, body.merge.or(q.merge).unwrap_or(true))
    };
    let result: BulkResult = state.services.bulk_variables(actor, ws, target(project, &q), items, merge).await?;
    Ok(ok(result))
}

/// A project's variables (`?environment=` for one environment's overrides; `?resolved=true` for the effective
/// set; `?format=dotenv` for a dotenv file). Secrets are masked.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/env", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvQuery),
    responses((status = 200, description = "The variables (JSON), the effective set (resolved=true) or a dotenv file (format=dotenv)",
        content((Envelope<VariableList> = "application/json"), (String = "text/plain"))), CommonErrors))]
pub async fn list_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> Result<Response, ApiError> {
    list(&state, &actor, &ws, Some(p), q).await
}

/// Adds a variable (admin); 409 when the key exists in that scope.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/env", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvQuery),
    request_body = CreateVariableRequest,
    responses((status = 201, description = "Created (secret values masked)", body = Envelope<Variable>), CommonErrors))]
pub async fn create_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
    ApiJson(body): ApiJson<CreateVariableRequest>,
) -> Result<Response, ApiError> {
    let v = state
        .services
        .create_variable(&actor, &ws, target(Some(p), &q), &body.key, &body.value, body.secrecy())
        .await?;
    Ok(created(v))
}

/// One variable; `?reveal=true` (owner or admin) shows a secret's value and is audited.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/env/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("key" = String, Path, description = "Variable name"), EnvQuery),
    responses((status = 200, description = "The variable", body = Envelope<Variable>), CommonErrors))]
pub async fn get_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, key)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> Result<Response, ApiError> {
    let reveal = q.reveal == Some(true);
    Ok(ok(state.services.get_variable(&actor, &ws, target(Some(p), &q), &key, reveal).await?))
}

/// Changes a variable's value or secrecy (admin).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/projects/{p}/env/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("key" = String, Path, description = "Variable name"), EnvQuery),
    request_body = UpdateVariableRequest,
    responses((status = 200, description = "Updated (secret values masked)", body = Envelope<Variable>), CommonErrors))]
pub async fn update_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, key)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
    ApiJson(body): ApiJson<UpdateVariableRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state
        .services
        .update_variable(&actor, &ws, target(Some(p), &q), &key, body.value.clone(), body.change())
        .await?))
}

/// Deletes a variable (admin).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}/env/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("key" = String, Path, description = "Variable name"), EnvQuery),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, key)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> Result<Response, ApiError> {
    state.services.delete_variable(&actor, &ws, target(Some(p), &q), &key).await?;
    Ok(ok(Deleted { id: key, deleted: true }))
}

/// Writes many variables at once (admin): JSON `{variables: {K: V} | [{key, value, is_secret}], merge}` or a
/// dotenv file (`Content-Type: text/plain`, `?merge=false` to replace all). Answers exact counts.
#[utoipa::path(put, path = "/api/workspaces/{ws}/projects/{p}/env/bulk", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvQuery),
    request_body(content((BulkRequest = "application/json"), (String = "text/plain")), description = "JSON, or a dotenv file"),
    responses((status = 200, description = "What changed", body = Envelope<BulkResult>), CommonErrors))]
pub async fn bulk_env(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    bulk(&state, &actor, &ws, Some(p), q, req).await
}

/// The workspace's shared variables (every project inherits them; project and environment values win).
#[utoipa::path(get, path = "/api/workspaces/{ws}/variables", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), EnvQuery),
    responses((status = 200, description = "The variables, or a dotenv file (format=dotenv)",
        content((Envelope<VariableList> = "application/json"), (String = "text/plain"))), CommonErrors))]
pub async fn list_ws_vars(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> Result<Response, ApiError> {
    if q.environment.is_some() {
        return Err(ServiceError::invalid("environment", "applies to project variables only").into());
    }
    list(&state, &actor, &ws, None, q).await
}

/// Adds a workspace variable (admin).
#[utoipa::path(post, path = "/api/workspaces/{ws}/variables", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug")), request_body = CreateVariableRequest,
    responses((status = 201, description = "Created (secret values masked)", body = Envelope<Variable>), CommonErrors))]
pub async fn create_ws_var(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreateVariableRequest>,
) -> Result<Response, ApiError> {
    let v = state
        .services
        .create_variable(&actor, &ws, VarTarget::default(), &body.key, &body.value, body.secrecy())
        .await?;
    Ok(created(v))
}

/// One workspace variable; `?reveal=true` (owner or admin, audited) shows a secret.
#[utoipa::path(get, path = "/api/workspaces/{ws}/variables/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("key" = String, Path, description = "Variable name"), EnvQuery),
    responses((status = 200, description = "The variable", body = Envelope<Variable>), CommonErrors))]
pub async fn get_ws_var(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, key)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> Result<Response, ApiError> {
    let reveal = q.reveal == Some(true);
    Ok(ok(state.services.get_variable(&actor, &ws, VarTarget::default(), &key, reveal).await?))
}

/// Changes a workspace variable (admin).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/variables/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("key" = String, Path, description = "Variable name")),
    request_body = UpdateVariableRequest,
    responses((status = 200, description = "Updated", body = Envelope<Variable>), CommonErrors))]
pub async fn update_ws_var(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateVariableRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state
        .services
        .update_variable(&actor, &ws, VarTarget::default(), &key, body.value.clone(), body.change())
        .await?))
}

/// Deletes a workspace variable (admin).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/variables/{key}", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), ("key" = String, Path, description = "Variable name")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_ws_var(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.services.delete_variable(&actor, &ws, VarTarget::default(), &key).await?;
    Ok(ok(Deleted { id: key, deleted: true }))
}

/// Writes many workspace variables at once (admin), like the project bulk route.
#[utoipa::path(put, path = "/api/workspaces/{ws}/variables/bulk", tag = "env vars",
    params(("ws" = String, Path, description = "Workspace slug"), EnvQuery),
    request_body(content((BulkRequest = "application/json"), (String = "text/plain")), description = "JSON, or a dotenv file"),
    responses((status = 200, description = "What changed", body = Envelope<BulkResult>), CommonErrors))]
pub async fn bulk_ws_vars(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<EnvQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    if q.environment.is_some() {
        return Err(ServiceError::invalid("environment", "applies to project variables only").into());
    }
    bulk(&state, &actor, &ws, None, q, req).await
}
