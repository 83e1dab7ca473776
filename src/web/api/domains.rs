//! Custom domains of a project: add, list, read, verify, change, delete.

use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::views::Deleted;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::DomainView;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST …/domains`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomainRequest {
    /// A bare domain name (`app.example.com`, or `*.example.com` with a DNS-01 provider configured). It must not
    /// be under `base_domain`.
    pub domain: String,
    /// Redirect plain HTTP to HTTPS (308) once the certificate is active. Default true.
    pub https_redirect: Option<bool>,
}

/// `PATCH …/domains/:id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomainRequest {
    pub https_redirect: bool,
}

/// A project's domains.
#[derive(Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainView>,
}

/// The project's custom domains (member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/domains", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 200, description = "The domains", body = Envelope<DomainList>), CommonErrors))]
pub async fn list_domains(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(DomainList { domains: state.services.list_domains(&actor, &ws, &p).await? }))
}

/// Adds a custom domain (admin) and checks its DNS at once: `pending_dns` with the records to create, or
/// `verified`. 409 when any project of this Berth has the domain.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/domains", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    request_body = AddDomainRequest,
    responses((status = 201, description = "Added", body = Envelope<DomainView>), CommonErrors))]
pub async fn add_domain(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiJson(body): ApiJson<AddDomainRequest>,
) -> Result<Response, ApiError> {
    Ok(created(state.services.add_domain(&actor, &ws, &p, &body.domain, body.https_redirect).await?))
}

/// One domain (member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/domains/{id}", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("id" = String, Path, description = "Domain id")),
    responses((status = 200, description = "The domain", body = Envelope<DomainView>), CommonErrors))]
pub async fn get_domain(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.get_domain(&actor, &ws, &p, &id).await?))
}

/// Changes whether plain HTTP redirects to HTTPS (admin).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/projects/{p}/domains/{id}", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("id" = String, Path, description = "Domain id")),
    request_body = UpdateDomainRequest,
    responses((status = 200, description = "Changed", body = Envelope<DomainView>), CommonErrors))]
pub async fn update_domain(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateDomainRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.update_domain(&actor, &ws, &p, &id, body.https_redirect).await?))
}

/// Removes a domain (admin): it is no longer routed and its certificate is no longer renewed.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/projects/{p}/domains/{id}", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("id" = String, Path, description = "Domain id")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_domain(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    state.services.delete_domain(&actor, &ws, &p, &id).await?;
    Ok(ok(Deleted { id, deleted: true }))
}

/// Checks the domain's DNS now (member); the answer says what was found and what to change while pending.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/domains/{id}/verify", tag = "domains",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        ("id" = String, Path, description = "Domain id")),
    responses((status = 200, description = "Checked", body = Envelope<DomainView>), CommonErrors))]
pub async fn verify_domain(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.verify_domain(&actor, &ws, &p, &id).await?))
}

/// The internal CA's root certificate (PEM), for installing on devices when `tls = "internal"` (any signed-in
/// user). 404 in other TLS modes.
#[utoipa::path(get, path = "/api/tls/internal-ca.pem", tag = "domains",
    responses((status = 200, description = "The root certificate", content_type = "application/x-pem-file", body = String),
        CommonErrors))]
pub async fn internal_ca_root(State(state): State<AppState>, Auth(_actor): Auth) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    let pem = state.services.internal_ca_root().ok_or_else(|| {
        crate::services::ServiceError::NotFound("Berth runs no internal CA (tls is not \"internal\")".into())
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/x-pem-file"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"berth-internal-ca.pem\""),
        ],
        pem,
    )
        .into_response())
}
