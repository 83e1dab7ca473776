//! Health, first-run setup, sign-in and the caller's identity.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, client_ip, session_cookie, session_cookie_header};
use super::views::*;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::Via;
use crate::web::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;

/// Instance health: no authentication. 503 when the database does not answer.
#[utoipa::path(get, path = "/api/health", tag = "health", security(()),
    responses((status = 200, description = "Up (status ok, or degraded without Docker)", body = Envelope<HealthView>),
              (status = 503, description = "Database unreachable", body = Envelope<HealthView>)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let h = state.services.health().await;
    let status = if !h.database {
        "down"
    } else if h.docker.reachable {
        "ok"
    } else {
        "degraded"
    };
    let view = HealthView {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: DatabaseHealthView { reachable: h.database },
        docker: DockerHealthView {
            reachable: h.docker.reachable,
            version: h.docker.version,
            api_version: h.docker.api_version,
            error: h.docker.error,
        },
    };
    let mut r = ok(view);
    if !h.database {
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    r
}

/// First-run setup: creates the first user (instance administrator) and their workspace, and signs them in.
/// Works once, with the token printed in the server log.
#[utoipa::path(post, path = "/api/setup", tag = "auth", security(()), request_body = SetupRequest,
    responses((status = 201, description = "Created; sets the session cookie", body = Envelope<SetupView>), CommonErrors))]
pub async fn setup(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<SetupRequest>,
) -> Result<Response, ApiError> {
    let r =
        state.services.setup(&body.token, &body.email, &body.password, &body.workspace_name, client_ip(&parts)).await?;
    let mut response = created(SetupView {
        user: r.user,
        workspace: WorkspaceView::new(r.workspace, crate::domain::Role::Owner),
        csrf_token: r.csrf_token,
    });
    if let Some(c) =
        session_cookie_header(&state, &r.session_token, i64::from(state.services.config().session_ttl_hours) * 3600)
    {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(response)
}

/// Signs in with email and password; sets an HttpOnly session cookie. Failed attempts are rate limited per email.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, description = "Signed in; sets the session cookie", body = Envelope<LoginView>), CommonErrors))]
pub async fn login(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let r = state.services.login(&body.email, &body.password, client_ip(&parts)).await?;
    let mut response = ok(LoginView { user: r.user, csrf_token: r.csrf_token, expires_at: r.expires_at });
    if let Some(c) =
        session_cookie_header(&state, &r.session_token, i64::from(state.services.config().session_ttl_hours) * 3600)
    {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(response)
}

/// Ends the current session and clears its cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 200, description = "Signed out", body = Envelope<bool>), CommonErrors))]
pub async fn logout(State(state): State<AppState>, Auth(actor): Auth, parts: Parts) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&parts) {
        state.services.logout(&actor, &token).await?;
    }
    let mut response = ok(true);
    if let Some(c) = session_cookie_header(&state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(response)
}

/// The caller, their memberships and how they authenticated.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = Envelope<MeView>), CommonErrors))]
pub async fn me(State(state): State<AppState>, Auth(actor): Auth) -> Result<Response, ApiError> {
    let memberships = state.services.me(&actor).await?;
    let auth = match &actor.via {
        Via::ApiKey { key_prefix, workspace, .. } => AuthInfo {
            method: "api_key".into(),
            key_prefix: Some(key_prefix.clone()),
            workspace: Some(workspace.slug.clone()),
            csrf_token: None,
        },
        Via::Session { csrf_token } => AuthInfo {
            method: "session".into(),
            key_prefix: None,
            workspace: None,
            csrf_token: Some(csrf_token.clone()),
        },
        Via::Cli => AuthInfo { method: "cli".into(), key_prefix: None, workspace: None, csrf_token: None },
    };
    let memberships = memberships
        .into_iter()
        .map(|(w, role)| MembershipView { workspace: WorkspaceView::new(w, role), role })
        .collect();
    Ok(ok(MeView { user: actor.user, memberships, auth }))
}
