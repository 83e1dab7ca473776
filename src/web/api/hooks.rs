//! The push webhook receiver (no API key: the signature or token proves the sender).

use super::error::{ApiError, ErrorBody};
use super::extract::body_bytes;
use super::{Envelope, ok};
use crate::services::HookOutcome;
use crate::web::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Answers of the webhook receiver besides success.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum HookErrors {
    /// The body is not a JSON push event.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// The signature (`X-Hub-Signature-256`, `X-Gitea-Signature`) or token (`X-Gitlab-Token`,
    /// `Authorization: Bearer`) does not match the project's webhook secret.
    #[response(status = 401)]
    BadSignature(ErrorBody),
    /// No project has this webhook id.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Body larger than the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

/// Receives a GitHub, Gitea, GitLab or generic push. A push to the tracked branch of a project with
/// `auto_deploy` queues one deployment per commit (202); anything else is acknowledged with the reason (200).
#[utoipa::path(post, path = "/api/hooks/{hook_id}", tag = "deployments", security(()),
    params(("hook_id" = String, Path, description = "The project's webhook id (GET …/git)")),
    request_body(content = String, content_type = "application/json", description = "The provider's push payload"),
    responses((status = 202, description = "A deployment was queued", body = Envelope<HookOutcome>),
        (status = 200, description = "Ignored or a duplicate, with the reason", body = Envelope<HookOutcome>), HookErrors))]
pub async fn receive_hook(
    State(state): State<AppState>,
    Path(hook_id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = body_bytes(req, &state).await?;
    let outcome = state.services.receive_webhook(&hook_id, headers, &body).await?;
    Ok(if outcome.deployment.is_some() {
        (StatusCode::ACCEPTED, axum::Json(Envelope { success: true, data: outcome })).into_response()
    } else {
        ok(outcome)
    })
}
