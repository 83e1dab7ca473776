//! Deployments, their logs, and releases.

use super::error::ApiError;
use super::extract::{ApiQuery, Auth, OptionalJson, Pagination};
use super::views::PageParams;
use super::{CommonErrors, Envelope, ok};
use crate::domain::DeploymentStatus;
use crate::domain::deployment::{Deployment, LogLine, Release};
use crate::services::{DeployInput, DeploymentDetail, ServiceError};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?status=&environment=` on the deployment list.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct DeploymentFilter {
    /// queued, building, deploying, running, failed, cancelled, superseded or stopped.
    pub status: Option<String>,
    /// Environment name (default: all).
    pub environment: Option<String>,
}

/// `?environment=` on `POST …/deployments` (default production).
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EnvironmentParam {
    pub environment: Option<String>,
}

/// `?after=&limit=` on the build log.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Return lines after this sequence number (default 0).
    pub after: Option<i64>,
    /// 1–10000 (default 1000).
    pub limit: Option<u32>,
}

/// A page of deployments.
#[derive(Serialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

/// A page of releases.
#[derive(Serialize, ToSchema)]
pub struct ReleaseList {
    pub releases: Vec<Release>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

/// Build and deploy log lines.
#[derive(Serialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// Pass as `after` to continue.
    pub last_seq: i64,
}

fn accepted<T: Serialize>(data: T) -> Response {
    (StatusCode::ACCEPTED, axum::Json(Envelope { success: true, data })).into_response()
}

/// A project's deployments, newest first.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/deployments", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), DeploymentFilter, PageParams),
    responses((status = 200, description = "A page of deployments", body = Envelope<DeploymentList>), CommonErrors))]
pub async fn list_deployments(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(f): ApiQuery<DeploymentFilter>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let status = match f.status.as_deref() {
        None => None,
        Some(s) => Some(DeploymentStatus::parse(s).ok_or_else(|| {
            ServiceError::invalid("status", format!("'{s}' is not a deployment status (queued, building, deploying, running, failed, cancelled, superseded, stopped)"))
        })?),
    };
    let r = state.services.list_deployments(&actor, &ws, &p, status, f.environment.as_deref(), page).await?;
    Ok(ok(DeploymentList { deployments: r.items, total: r.total, page: page.page, limit: page.limit }))
}

/// Queues a deployment (member): builds the git branch (or runs the project's image) and rolls it out with zero
/// downtime. 202: follow it with `GET /workspaces/:ws/deployments/:id` and its logs.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/deployments", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvironmentParam),
    request_body(content = Option<DeployInput>, description = "Optional"),
    responses((status = 202, description = "Queued", body = Envelope<Deployment>), CommonErrors))]
pub async fn create_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvironmentParam>,
    OptionalJson(body): OptionalJson<DeployInput>,
) -> Result<Response, ApiError> {
    Ok(accepted(state.services.create_deployment(&actor, &ws, &p, q.environment.as_deref(), body).await?))
}

/// One deployment: status, error, events with times, commit, image.
#[utoipa::path(get, path = "/api/workspaces/{ws}/deployments/{id}", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The deployment", body = Envelope<DeploymentDetail>), CommonErrors))]
pub async fn get_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.get_deployment(&actor, &ws, &id).await?))
}

/// The build and deploy log, from a sequence number on.
#[utoipa::path(get, path = "/api/workspaces/{ws}/deployments/{id}/logs", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id"), LogParams),
    responses((status = 200, description = "Log lines", body = Envelope<LogPage>), CommonErrors))]
pub async fn deployment_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LogParams>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ServiceError::invalid("limit", format!("{limit} must be from 1 to 10000")).into());
    }
    let after = q.after.unwrap_or(0);
    let lines = state.services.deployment_logs(&actor, &ws, &id, after, limit).await?;
    let last_seq = lines.last().map_or(after, |l| l.seq);
    Ok(ok(LogPage { lines, last_seq }))
}

/// Cancels a queued, building or deploying deployment (member); 409 once it finished.
#[utoipa::path(post, path = "/api/workspaces/{ws}/deployments/{id}/cancel", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "Cancelled", body = Envelope<Deployment>), CommonErrors))]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.cancel_deployment(&actor, &ws, &id).await?))
}

/// Queues a new deployment like a failed or cancelled one (member); 409 otherwise.
#[utoipa::path(post, path = "/api/workspaces/{ws}/deployments/{id}/retry", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id")),
    responses((status = 202, description = "Queued", body = Envelope<Deployment>), CommonErrors))]
pub async fn retry_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(accepted(state.services.retry_deployment(&actor, &ws, &id).await?))
}

/// Every successful deployment of a project, newest first: the rollback targets.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/releases", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), PageParams),
    responses((status = 200, description = "A page of releases", body = Envelope<ReleaseList>), CommonErrors))]
pub async fn list_releases(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    Pagination(page): Pagination,
) -> Result<Response, ApiError> {
    let r = state.services.list_releases(&actor, &ws, &p, page).await?;
    Ok(ok(ReleaseList { releases: r.items, total: r.total, page: page.page, limit: page.limit }))
}

macro_rules! project_action {
    ($name:ident, $path:literal, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "deployments",
            params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvironmentParam),
            responses((status = 202, description = "Queued", body = Envelope<Deployment>), CommonErrors))]
        pub async fn $name(
            State(state): State<AppState>,
            Auth(actor): Auth,
            Path((ws, p)): Path<(String, String)>,
            ApiQuery(q): ApiQuery<EnvironmentParam>,
        ) -> Result<Response, ApiError> {
            Ok(accepted(state.services.redeploy_project(&actor, &ws, &p, q.environment.as_deref(), $kind).await?))
        }
    };
}

project_action!(
    redeploy_project,
    "/api/workspaces/{ws}/projects/{p}/redeploy",
    crate::domain::DeploymentKind::Redeploy,
    "Rolls out the current release's image again with today's variables (member); no build. 409 before the first successful deployment."
);
project_action!(
    restart_project,
    "/api/workspaces/{ws}/projects/{p}/restart",
    crate::domain::DeploymentKind::Restart,
    "Replaces the replicas with the same image and variables (member); no build, zero downtime."
);
project_action!(
    start_project,
    "/api/workspaces/{ws}/projects/{p}/start",
    crate::domain::DeploymentKind::Redeploy,
    "Starts a stopped project again from its latest release (member)."
);

/// Stops what runs in the environment (member): replicas are removed; variables, volumes and releases stay.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/stop", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvironmentParam),
    responses((status = 200, description = "Stopped", body = Envelope<Deployment>), CommonErrors))]
pub async fn stop_project(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvironmentParam>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.stop_project(&actor, &ws, &p, q.environment.as_deref()).await?))
}

/// Stops a running deployment (member); 409 unless it is running.
#[utoipa::path(post, path = "/api/workspaces/{ws}/deployments/{id}/stop", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "Stopped", body = Envelope<Deployment>), CommonErrors))]
pub async fn stop_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.stop_deployment(&actor, &ws, &id).await?))
}

/// Activates the release this deployment made — its image and variables — without a build (member).
#[utoipa::path(post, path = "/api/workspaces/{ws}/deployments/{id}/rollback", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id")),
    responses((status = 202, description = "Queued", body = Envelope<Deployment>), CommonErrors))]
pub async fn rollback_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(accepted(state.services.rollback_deployment(&actor, &ws, &id).await?))
}

/// The project's status: replicas (ready/total, each with status, restarts, age), resource limits, the latest
/// deployment (`?environment=`, default production).
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/status", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvironmentParam),
    responses((status = 200, description = "The status", body = Envelope<crate::services::ProjectStatus>), CommonErrors))]
pub async fn project_status(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvironmentParam>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.project_status(&actor, &ws, &p, q.environment.as_deref()).await?))
}

/// Where a build-log stream starts: `?after=<seq>` (or the `Last-Event-ID` header on a reconnect).
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    pub after: Option<i64>,
}

struct StreamState {
    state: AppState,
    actor: crate::services::Actor,
    ws: String,
    id: String,
    after: i64,
    status: Option<DeploymentStatus>,
    finished: bool,
}

/// One poll of the stream: new log lines, a status change, and `done` once the rollout is over.
async fn stream_step(mut s: StreamState) -> Option<(Vec<axum::response::sse::Event>, StreamState)> {
    use axum::response::sse::Event;
    if s.finished {
        return None;
    }
    loop {
        let mut events = Vec::new();
        let lines = s.state.services.deployment_logs(&s.actor, &s.ws, &s.id, s.after, 500).await;
        let detail = s.state.services.get_deployment(&s.actor, &s.ws, &s.id).await;
        let (Ok(lines), Ok(detail)) = (lines, detail) else {
            let e = Event::default()
                .json_data(serde_json::json!({"type": "error", "message": "deployment no longer readable"}));
            s.finished = true;
            return Some((e.into_iter().collect(), s));
        };
        for l in &lines {
            s.after = l.seq;
            if let Ok(e) = Event::default().id(l.seq.to_string()).json_data(
                serde_json::json!({"type": "log", "seq": l.seq, "stream": l.stream, "line": l.line, "at": l.at}),
            ) {
                events.push(e);
            }
        }
        let status = detail.deployment.status;
        if s.status != Some(status) {
            s.status = Some(status);
            if let Ok(e) = Event::default().json_data(
                serde_json::json!({"type": "status", "seq": s.after, "status": status, "error": detail.deployment.error}),
            ) {
                events.push(e);
            }
        }
        let over = !status.is_in_progress();
        if over && lines.len() < 500 {
            if let Ok(e) =
                Event::default().json_data(serde_json::json!({"type": "done", "seq": s.after, "status": status}))
            {
                events.push(e);
            }
            s.finished = true;
        }
        if !events.is_empty() {
            return Some((events, s));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Live build and deploy log as Server-Sent Events: frames `{type: log|status|done, seq, …}` with the line's
/// `seq` as the event id, so a reconnecting EventSource resumes after the last line it saw (`Last-Event-ID`).
/// The stream ends after `done`. EventSource clients may authenticate with `?api_key=`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/deployments/{id}/stream", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Deployment id"), StreamParams),
    responses((status = 200, description = "text/event-stream of JSON frames", content_type = "text/event-stream", body = String), CommonErrors))]
pub async fn stream_deployment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<StreamParams>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    use futures_util::StreamExt;
    state.services.get_deployment(&actor, &ws, &id).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let start =
        StreamState { state, actor, ws, id, after: resume.or(q.after).unwrap_or(0), status: None, finished: false };
    let stream = futures_util::stream::unfold(start, stream_step)
        .flat_map(futures_util::stream::iter)
        .map(Ok::<_, std::convert::Infallible>);
    Ok(axum::response::sse::Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::default()).into_response())
}

/// The latest deployment of a project over WebSocket (TOSE's build-logs socket): every log line as a text
/// message, then `[END]` when the rollout is over, or `[ERROR] <reason>` when it failed. Browsers pass the key as
/// `?api_key=`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/build-logs", tag = "deployments",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug")),
    responses((status = 101, description = "WebSocket: text frames, one per log line, then [END] or [ERROR] …"), CommonErrors))]
pub async fn build_logs_socket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let page = crate::domain::PageRequest { page: 1, limit: 1 };
    let latest = state.services.list_deployments(&actor, &ws, &p, None, None, page).await?;
    let d = latest
        .items
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::NotFound(format!("project '{p}' has no deployment yet")))?;
    Ok(upgrade.on_upgrade(move |socket| follow_on_socket(socket, state, actor, ws, d.id)))
}

async fn follow_on_socket(
    mut socket: axum::extract::ws::WebSocket,
    state: AppState,
    actor: crate::services::Actor,
    ws: String,
    id: String,
) {
    use axum::extract::ws::Message;
    let mut after = 0;
    loop {
        let (Ok(lines), Ok(detail)) = (
            state.services.deployment_logs(&actor, &ws, &id, after, 500).await,
            state.services.get_deployment(&actor, &ws, &id).await,
        ) else {
            let _ = socket.send(Message::Text("[ERROR] the deployment can no longer be read".into())).await;
            return;
        };
        for l in &lines {
            after = l.seq;
            if socket.send(Message::Text(l.line.clone().into())).await.is_err() {
                return;
            }
        }
        let status = detail.deployment.status;
        if !status.is_in_progress() && lines.len() < 500 {
            let last = match (status, detail.deployment.error) {
                (DeploymentStatus::Running, _) => "[END]".to_owned(),
                (_, Some(e)) => format!("[ERROR] {e}"),
                (s, None) => format!("[ERROR] deployment {s}"),
            };
            let _ = socket.send(Message::Text(last.into())).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        if lines.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}
