//! The JSON API under `/api`, described by the OpenAPI document it serves at `/api/openapi.json`.
//! Every route is registered through `utoipa_axum::routes!`, so a route cannot exist without its description.

mod access_logs;
mod accounts;
mod api_keys;
pub mod databases;
mod deployments;
mod domains;
pub mod error;
pub mod extract;
mod git;
mod hooks;
mod invitations;
mod logs;
mod members;
mod projects;
mod variables;
mod views;
mod workspaces;

use crate::web::AppState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use error::{ErrorBody, error_response};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The success envelope: `{"success": true, "data": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

/// 200 with the envelope.
pub fn ok<T: Serialize>(data: T) -> Response {
    (StatusCode::OK, Json(Envelope { success: true, data })).into_response()
}

/// 201 with the envelope.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, Json(Envelope { success: true, data })).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Berth API", description = "Self-hosted PaaS in one binary. Errors use {success:false, error, code}."),
    modifiers(&Security),
    security(("api_key" = []), ("bearer" = []))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("berth_sk_…").build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(extract::SESSION_COOKIE))),
        );
    }
}

/// The API routes plus `/api/openapi.json`, with the envelope for unknown routes and methods.
pub fn router(state: AppState) -> Router<AppState> {
    let (routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::health))
        .routes(routes!(accounts::setup))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(workspaces::list_workspaces, workspaces::create_workspace))
        .routes(routes!(workspaces::get_workspace, workspaces::update_workspace, workspaces::delete_workspace))
        .routes(routes!(members::list_members, members::add_member))
        .routes(routes!(members::update_member, members::remove_member))
        .routes(routes!(invitations::list_invitations, invitations::create_invitation))
        .routes(routes!(invitations::delete_invitation))
        .routes(routes!(invitations::accept_invitation))
        .routes(routes!(api_keys::list_api_keys, api_keys::create_api_key))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(workspaces::list_audit))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(projects::get_project, projects::update_project, projects::delete_project))
        .routes(routes!(projects::list_environments, projects::create_environment))
        .routes(routes!(projects::update_environment, projects::delete_environment))
        .routes(routes!(variables::list_env, variables::create_env))
        .routes(routes!(variables::get_env, variables::update_env, variables::delete_env))
        .routes(routes!(variables::bulk_env))
        .routes(routes!(variables::list_ws_vars, variables::create_ws_var))
        .routes(routes!(variables::get_ws_var, variables::update_ws_var, variables::delete_ws_var))
        .routes(routes!(variables::bulk_ws_vars))
        .routes(routes!(git::get_git, git::put_git, git::delete_git))
        .routes(routes!(git::test_git))
        .routes(routes!(git::detect_project))
        .routes(routes!(git::detect_repo))
        .routes(routes!(deployments::list_deployments, deployments::create_deployment))
        .routes(routes!(deployments::get_deployment))
        .routes(routes!(deployments::deployment_logs))
        .routes(routes!(deployments::cancel_deployment))
        .routes(routes!(deployments::retry_deployment))
        .routes(routes!(deployments::list_releases))
        .routes(routes!(deployments::redeploy_project))
        .routes(routes!(deployments::restart_project))
        .routes(routes!(deployments::start_project))
        .routes(routes!(deployments::stop_project))
        .routes(routes!(deployments::stop_deployment))
        .routes(routes!(deployments::rollback_deployment))
        .routes(routes!(hooks::receive_hook))
        .routes(routes!(deployments::project_status))
        .routes(routes!(deployments::stream_deployment))
        .routes(routes!(deployments::build_logs_socket))
        .routes(routes!(logs::project_logs))
        .routes(routes!(logs::download_logs))
        .routes(routes!(logs::logs_usage))
        .routes(routes!(logs::analyze_logs))
        .routes(routes!(logs::stream_logs))
        .routes(routes!(logs::live_logs_socket))
        .routes(routes!(domains::list_domains, domains::add_domain))
        .routes(routes!(domains::get_domain, domains::update_domain, domains::delete_domain))
        .routes(routes!(domains::verify_domain))
        .routes(routes!(access_logs::access_logs))
        .routes(routes!(domains::internal_ca_root))
        .routes(routes!(databases::list_databases, databases::create_database))
        .routes(routes!(databases::get_database, databases::delete_database))
        .routes(routes!(databases::start_database))
        .routes(routes!(databases::stop_database))
        .routes(routes!(databases::restart_database))
        .routes(routes!(databases::attach_database))
        .routes(routes!(databases::list_backups, databases::create_backup))
        .routes(routes!(databases::delete_backup))
        .routes(routes!(databases::restore_backup))
        .routes(routes!(databases::download_backup))
        .routes(routes!(databases::put_backup_schedule))
        .split_for_parts();
    // Compact JSON. Building the document takes several MB of short-lived allocations; their pages go back to the
    // system when startup ends (`memory::release_freed_memory`).
    let spec = bytes::Bytes::from(openapi.to_json().unwrap_or_else(|_| "{}".into()));
    drop(openapi);
    routes
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec) }),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), extract::limit_declared_length))
        .layer(axum::extract::DefaultBodyLimit::max(state.services.config().max_body_bytes))
}

async fn route_not_found(uri: axum::http::Uri) -> Response {
    if !uri.path().starts_with("/api") {
        // Outside the API a person is browsing: the dashboard's error page.
        let e = crate::services::ServiceError::NotFound(format!("there is no page at {}", uri.path()));
        return crate::web::pages::PageError::Service(e).into_response();
    }
    error_response(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {}; see /api/openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The error responses most authenticated routes can give, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum CommonErrors {
    /// Invalid parameters: the message names the field.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Missing, invalid, expired or revoked credentials.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role lacks the permission.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Not found, or in a workspace the caller is not a member of.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Already exists, or the state forbids the action.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Body larger than the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Rate limit reached; see Retry-After.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Internal error, with a request id.
    #[response(status = 500)]
    Internal(ErrorBody),
}
