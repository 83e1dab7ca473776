//! Workspace members.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination};
use super::views::*;
use super::{CommonErrors, Envelope, created, ok};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;

/// Members of the workspace (any member).
#[utoipa::path(get, path = "/api/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path, description = "Workspace slug"), PageParams),
    responses((status = 200, description = "A page of members", body = Envelope<MemberList>), CommonErrors))]
pub async fn list_members(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let p = state.services.list_members(&actor, &ws, page).await?;
    Ok(ok(MemberList { members: p.items, total: p.total, page: page.page, limit: page.limit }))
}

/// Adds an existing user with a role no higher than the caller's (admin).
#[utoipa::path(post, path = "/api/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path, description = "Workspace slug")),
    request_body = AddMemberRequest,
    responses((status = 201, description = "Added", body = Envelope<crate::domain::Member>), CommonErrors))]
pub async fn add_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<Response, ApiError> {
    Ok(created(state.services.add_member(&actor, &ws, &body.user_id, body.role).await?))
}

/// Changes a member's role (admin; owners only by owners). The last owner cannot be demoted (409).
#[utoipa::path(patch, path = "/api/workspaces/{ws}/members/{user_id}", tag = "members",
    params(("ws" = String, Path, description = "Workspace slug"), ("user_id" = String, Path, description = "User id")),
    request_body = UpdateMemberRequest,
    responses((status = 200, description = "Updated", body = Envelope<crate::domain::Member>), CommonErrors))]
pub async fn update_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateMemberRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.update_member(&actor, &ws, &user_id, body.role).await?))
}

/// Removes a member (admin), or leaves (any member, own id). Their keys for this workspace are revoked.
/// The last owner cannot be removed (409).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/members/{user_id}", tag = "members",
    params(("ws" = String, Path, description = "Workspace slug"), ("user_id" = String, Path, description = "User id")),
    responses((status = 200, description = "Removed", body = Envelope<Deleted>), CommonErrors))]
pub async fn remove_member(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.services.remove_member(&actor, &ws, &user_id).await?;
    Ok(ok(Deleted { id: user_id, deleted: true }))
}
