//! Invitations: created by admins, accepted with the one-time token.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination, client_ip, parse_json};
use super::views::*;
use super::{CommonErrors, Envelope, created, ok};
use crate::domain::Role;
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::Response;

/// Invitations of the workspace, pending, accepted and expired (admin).
#[utoipa::path(get, path = "/api/workspaces/{ws}/invitations", tag = "invitations", params(("ws" = String, Path, description = "Workspace slug"), PageParams),
    responses((status = 200, description = "A page of invitations", body = Envelope<InvitationList>), CommonErrors))]
pub async fn list_invitations(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let p = state.services.list_invitations(&actor, &ws, page).await?;
    Ok(ok(InvitationList { invitations: p.items, total: p.total, page: page.page, limit: page.limit }))
}

/// Invites an email with a role (admin). The token and accept URL are in this response only.
#[utoipa::path(post, path = "/api/workspaces/{ws}/invitations", tag = "invitations", params(("ws" = String, Path, description = "Workspace slug")),
    request_body = CreateInvitationRequest,
    responses((status = 201, description = "Created", body = Envelope<CreatedInvitationView>), CommonErrors))]
pub async fn create_invitation(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreateInvitationRequest>,
) -> Result<Response, ApiError> {
    let c = state.services.create_invitation(&actor, &ws, &body.email, body.role.unwrap_or(Role::Member)).await?;
    Ok(created(CreatedInvitationView { invitation: c.invitation, token: c.token, accept_url: c.accept_url }))
}

/// Deletes an invitation (admin); its token stops working.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/invitations/{id}", tag = "invitations",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Invitation id")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_invitation(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.services.delete_invitation(&actor, &ws, &id).await?;
    Ok(ok(Deleted { id, deleted: true }))
}

/// Accepts an invitation: creates the account (a password is then required) or adds the existing user.
/// No authentication: the token is the credential. Used or expired tokens answer 410.
#[utoipa::path(post, path = "/api/invitations/{token}/accept", tag = "invitations", security(()),
    params(("token" = String, Path, description = "The invitation token")),
    request_body(content = AcceptInvitationRequest, description = "Optional for existing users"),
    responses((status = 200, description = "Joined", body = Envelope<AcceptedView>),
              (status = 410, description = "Invitation used or expired", body = super::error::ErrorBody), CommonErrors))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    Path(token): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: AcceptInvitationRequest =
        if body.iter().all(u8::is_ascii_whitespace) { AcceptInvitationRequest::default() } else { parse_json(&body)? };
    let r = state
        .services
        .accept_invitation(&token, body.password.as_deref(), body.name.as_deref(), client_ip(&parts))
        .await?;
    Ok(ok(AcceptedView {
        user: r.user,
        workspace: WorkspaceView::new(r.workspace, r.role),
        role: r.role,
        created_user: r.created_user,
    }))
}
