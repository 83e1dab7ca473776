//! Workspaces and their audit log.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination};
use super::views::*;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::{DeletedWithVolumes, WorkspacePatch};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;

/// Workspaces the caller belongs to (for an API key: its own workspace).
#[utoipa::path(get, path = "/api/workspaces", tag = "workspaces", params(PageParams),
    responses((status = 200, description = "A page of workspaces", body = Envelope<WorkspaceList>), CommonErrors))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let p = state.services.list_workspaces(&actor, page).await?;
    let workspaces = p.items.into_iter().map(|(w, r)| WorkspaceView::new(w, r)).collect();
    Ok(ok(WorkspaceList { workspaces, total: p.total, page: page.page, limit: page.limit }))
}

/// Creates a workspace; the caller becomes its owner. The slug is derived from the name when omitted.
#[utoipa::path(post, path = "/api/workspaces", tag = "workspaces", request_body = CreateWorkspaceRequest,
    responses((status = 201, description = "Created", body = Envelope<WorkspaceView>), CommonErrors))]
pub async fn create_workspace(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(body): ApiJson<CreateWorkspaceRequest>,
) -> Result<Response, ApiError> {
    let ws = state.services.create_workspace(&actor, &body.name, body.slug.as_deref()).await?;
    Ok(created(WorkspaceView::new(ws, crate::domain::Role::Owner)))
}

/// One workspace.
#[utoipa::path(get, path = "/api/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "Workspace slug")),
    responses((status = 200, description = "The workspace", body = Envelope<WorkspaceView>), CommonErrors))]
pub async fn get_workspace(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    let access = state.services.access(&actor, &ws).await?;
    Ok(ok(WorkspaceView::new(access.workspace, access.role)))
}

/// Renames a workspace or changes its slug (admin).
#[utoipa::path(patch, path = "/api/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "Workspace slug")),
    request_body = UpdateWorkspaceRequest,
    responses((status = 200, description = "Updated", body = Envelope<WorkspaceView>), CommonErrors))]
pub async fn update_workspace(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<UpdateWorkspaceRequest>,
) -> Result<Response, ApiError> {
    let updated =
        state.services.update_workspace(&actor, &ws, WorkspacePatch { name: body.name, slug: body.slug }).await?;
    let access = state.services.access(&actor, &updated.slug).await?;
    Ok(ok(WorkspaceView::new(updated, access.role)))
}

/// Deletes a workspace with its members, invitations and keys (owner). The audit trail is kept.
#[utoipa::path(delete, path = "/api/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path, description = "Workspace slug")),
    responses((status = 200, description = "Deleted; the volumes it kept are listed", body = Envelope<DeletedWithVolumes>), CommonErrors))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.delete_workspace(&actor, &ws).await?))
}

/// Who did what, when, from which key or session (admin). Newest first.
#[utoipa::path(get, path = "/api/workspaces/{ws}/audit", tag = "audit", params(("ws" = String, Path, description = "Workspace slug"), PageParams),
    responses((status = 200, description = "A page of audit entries", body = Envelope<AuditList>), CommonErrors))]
pub async fn list_audit(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let p = state.services.list_audit(&actor, &ws, page).await?;
    Ok(ok(AuditList { entries: p.items, total: p.total, page: page.page, limit: page.limit }))
}
