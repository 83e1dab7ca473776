//! API keys: shown once, revoked at once.

use super::error::ApiError;
use super::extract::{ApiJson, Auth, Pagination};
use super::views::*;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::NewKey;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;

/// Active keys of the workspace, prefixes only (admin).
#[utoipa::path(get, path = "/api/workspaces/{ws}/api-keys", tag = "api-keys", params(("ws" = String, Path, description = "Workspace slug"), PageParams),
    responses((status = 200, description = "A page of keys", body = Envelope<ApiKeyList>), CommonErrors))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let p = state.services.list_api_keys(&actor, &ws, page).await?;
    Ok(ok(ApiKeyList { api_keys: p.items, total: p.total, page: page.page, limit: page.limit }))
}

/// Creates a key (admin) with a role no higher than the caller's. The full key is in this response only.
#[utoipa::path(post, path = "/api/workspaces/{ws}/api-keys", tag = "api-keys", params(("ws" = String, Path, description = "Workspace slug")),
    request_body = CreateApiKeyRequest,
    responses((status = 201, description = "Created", body = Envelope<CreatedApiKeyView>), CommonErrors))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    let c = state
        .services
        .create_api_key(&actor, &ws, NewKey { name: body.name, expires_in_days: body.expires_in_days, role: body.role })
        .await?;
    let k = c.api_key;
    Ok(created(CreatedApiKeyView {
        id: k.id,
        name: k.name,
        key: c.key,
        key_prefix: k.key_prefix,
        role: k.role,
        created_at: k.created_at,
        expires_at: k.expires_at,
    }))
}

/// Revokes a key (admin): the next request with it gets 401.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/api-keys/{id}", tag = "api-keys",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "Revoked", body = Envelope<Deleted>), CommonErrors))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.services.revoke_api_key(&actor, &ws, &id).await?;
    Ok(ok(Deleted { id, deleted: true }))
}
