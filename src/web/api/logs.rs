//! Runtime logs: what a project's containers write to stdout and stderr — query, download, usage, analysis,
//! and live streams over SSE and WebSocket.

use super::error::ApiError;
use super::extract::{ApiQuery, Auth, OptionalJson};
use super::{CommonErrors, Envelope, ok};
use crate::domain::runtime_logs::{Direction, LogQuery, RawLogQuery, RuntimeLogLine};
use crate::services::{Actor, LogAnalysis, LogUsage, ServiceError};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Filters of the runtime log (all optional).
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// 1–10000 (default 100).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `desc` (default, newest first) or `asc`.
    pub direction: Option<String>,
    /// Lines at or after this time: RFC 3339 or Unix seconds.
    pub start: Option<String>,
    /// Lines at or before this time: RFC 3339 or Unix seconds.
    pub end: Option<String>,
    /// Lines newer than a duration ago (`15m`, `2h`, `1d`) or a Unix timestamp.
    pub since: Option<String>,
    /// `stdout` or `stderr` (default both).
    pub stream: Option<String>,
    /// Case-insensitive substring the line must contain.
    pub q: Option<String>,
    /// Environment name (default production).
    pub environment: Option<String>,
}

impl LogFilter {
    fn query(&self) -> Result<LogQuery, ServiceError> {
        let raw = RawLogQuery {
            limit: self.limit.as_deref(),
            direction: self.direction.as_deref(),
            start: self.start.as_deref(),
            end: self.end.as_deref(),
            since: self.since.as_deref(),
            stream: self.stream.as_deref(),
            q: self.q.as_deref(),
            after: None,
        };
        Ok(LogQuery::parse(&raw, chrono::Utc::now())?)
    }
}

/// A page of runtime log lines.
#[derive(Serialize, ToSchema)]
pub struct RuntimeLogPage {
    pub logs: Vec<RuntimeLogLine>,
    /// How many lines this page holds (at most `limit`).
    pub count: usize,
    pub limit: u32,
    /// `asc` or `desc`.
    pub direction: String,
}

/// The body of `POST …/logs/analyze`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// Log text (one string with newlines, or an array of lines). Default: the project's recent lines.
    pub logs: Option<LogsText>,
}

/// Log text as one string or as lines.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LogsText {
    Text(String),
    Lines(Vec<String>),
}

/// `?environment=` (default production).
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct EnvironmentParam {
    /// Environment name (default production).
    pub environment: Option<String>,
}

/// Where a live stream starts, and what it shows.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// Continue after this `seq` (an SSE reconnect sends `Last-Event-ID` instead). Default: the last 100 lines,
    /// then new ones.
    pub after: Option<String>,
    /// `stdout` or `stderr` (default both).
    pub stream: Option<String>,
    /// Case-insensitive substring the line must contain.
    pub q: Option<String>,
    /// Environment name (default production).
    pub environment: Option<String>,
}

/// Lines a live stream shows before following, when it does not resume.
const TAIL: u32 = 100;

/// The runtime log of a project: what its containers wrote to stdout and stderr (secret values masked),
/// newest first by default, filtered by time, stream and text.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/logs", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), LogFilter),
    responses((status = 200, description = "Log lines", body = Envelope<RuntimeLogPage>), CommonErrors))]
pub async fn project_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(f): ApiQuery<LogFilter>,
) -> Result<Response, ApiError> {
    let q = f.query()?;
    let (limit, direction) = (q.limit, q.direction);
    let logs = state.services.runtime_logs(&actor, &ws, &p, f.environment.as_deref(), q).await?;
    let direction = if direction == Direction::Asc { "asc" } else { "desc" }.to_owned();
    Ok(ok(RuntimeLogPage { count: logs.len(), logs, limit, direction }))
}

/// Every line matching the filters (oldest first; `limit` is ignored) as a gzip-compressed text file, one line
/// per log line: `<timestamp> <stream> <container> <text>`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/logs/download", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), LogFilter),
    responses((status = 200, description = "gzip-compressed text", content_type = "application/gzip", body = Vec<u8>), CommonErrors))]
pub async fn download_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(f): ApiQuery<LogFilter>,
) -> Result<Response, ApiError> {
    let mut q = LogQuery { limit: crate::domain::runtime_logs::MAX_LIMIT, direction: Direction::Asc, ..f.query()? };
    let mut text = String::new();
    loop {
        let page = state.services.runtime_logs(&actor, &ws, &p, f.environment.as_deref(), q.clone()).await?;
        for l in &page {
            text.push_str(&format!("{} {} {} {}\n", l.timestamp, l.stream, l.container, l.line));
        }
        match page.last() {
            Some(last) if page.len() == q.limit as usize => q.after = Some(last.seq),
            _ => break,
        }
    }
    let gz = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes())?;
        enc.finish()
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("while compressing logs: {e}")))?
    .map_err(|e| ServiceError::Internal(format!("while compressing logs: {e}")))?;
    let filename = format!("{p}-{}-logs.txt.gz", f.environment.as_deref().unwrap_or(crate::domain::PRODUCTION));
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        gz,
    )
        .into_response())
}

/// How much runtime log each project of the workspace keeps (lines, bytes, oldest and newest line), with the
/// instance's retention settings.
#[utoipa::path(get, path = "/api/workspaces/{ws}/logs/usage", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug")),
    responses((status = 200, description = "Usage per project", body = Envelope<LogUsage>), CommonErrors))]
pub async fn logs_usage(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.runtime_log_usage(&actor, &ws).await?))
}

/// Looks for common failures in the given log text or, without a body, the project's recent lines: port in use
/// or wrong, bound to 127.0.0.1, out of memory, missing module or variable, refused connections, permission
/// and DNS errors, crashes. Each finding has the lines that show it and a suggested fix. Rule-based.
#[utoipa::path(post, path = "/api/workspaces/{ws}/projects/{p}/logs/analyze", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), EnvironmentParam),
    request_body(content = Option<AnalyzeRequest>, description = "Optional"),
    responses((status = 200, description = "Findings", body = Envelope<LogAnalysis>), CommonErrors))]
pub async fn analyze_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EnvironmentParam>,
    OptionalJson(body): OptionalJson<AnalyzeRequest>,
) -> Result<Response, ApiError> {
    let logs = body.logs.map(|l| match l {
        LogsText::Text(t) => t.lines().map(str::to_owned).collect(),
        LogsText::Lines(v) => v,
    });
    Ok(ok(state.services.analyze_runtime_logs(&actor, &ws, &p, q.environment.as_deref(), logs).await?))
}

/// The query a live stream starts with: resume after `resume`, else after the last [`TAIL`] lines (which are
/// returned to be sent first).
async fn live_start(
    state: &AppState,
    actor: &Actor,
    ws: &str,
    p: &str,
    params: &LiveParams,
    resume: Option<&str>,
) -> Result<(LogQuery, Vec<RuntimeLogLine>), ServiceError> {
    let raw = RawLogQuery {
        stream: params.stream.as_deref(),
        q: params.q.as_deref(),
        after: resume.or(params.after.as_deref()),
        ..RawLogQuery::default()
    };
    let mut q = LogQuery::parse(&raw, chrono::Utc::now())?;
    q.direction = Direction::Asc;
    q.limit = 500;
    if q.after.is_some() {
        state
            .services
            .runtime_logs(actor, ws, p, params.environment.as_deref(), LogQuery { limit: 1, ..q.clone() })
            .await?;
        return Ok((q, Vec::new()));
    }
    let tail = LogQuery { limit: TAIL, direction: Direction::Desc, ..q.clone() };
    let mut lines = state.services.runtime_logs(actor, ws, p, params.environment.as_deref(), tail).await?;
    lines.reverse();
    q.after = Some(lines.last().map_or(0, |l| l.seq));
    Ok((q, lines))
}

struct Live {
    state: AppState,
    actor: Actor,
    ws: String,
    p: String,
    environment: Option<String>,
    q: LogQuery,
    first: Vec<RuntimeLogLine>,
    over: bool,
}

impl Live {
    /// The next lines: the tail first, then whatever arrives. `Err` ends the stream with a reason.
    async fn next(&mut self) -> Option<Result<Vec<RuntimeLogLine>, ServiceError>> {
        if !self.first.is_empty() {
            return Some(Ok(std::mem::take(&mut self.first)));
        }
        if self.over {
            return None;
        }
        let env = self.environment.clone();
        match self.state.services.next_runtime_logs(&self.actor, &self.ws, &self.p, env.as_deref(), &mut self.q).await {
            Ok(Some(lines)) => Some(Ok(lines)),
            Ok(None) => None,
            Err(e) => {
                self.over = true;
                Some(Err(e))
            }
        }
    }
}

/// The runtime log live as Server-Sent Events: frames `{type: "log", seq, timestamp, stream, line, container,
/// deployment_ref}` with `seq` as the event id. Starts with the last 100 lines, or after `Last-Event-ID` /
/// `?after=` on a reconnect — nothing twice, nothing missed. EventSource clients may authenticate with `?api_key=`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/logs/stream", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), LiveParams),
    responses((status = 200, description = "text/event-stream of JSON frames", content_type = "text/event-stream", body = String), CommonErrors))]
pub async fn stream_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<LiveParams>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (q, first) = live_start(&state, &actor, &ws, &p, &params, resume.as_deref()).await?;
    let live = Live { state, actor, ws, p, environment: params.environment, q, first, over: false };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let events: Vec<Event> = match live.next().await? {
            Ok(lines) => lines
                .into_iter()
                .filter_map(|l| {
                    let mut frame = serde_json::to_value(&l).ok()?;
                    frame["type"] = serde_json::json!("log");
                    Event::default().id(l.seq.to_string()).json_data(frame).ok()
                })
                .collect(),
            Err(e) => Event::default()
                .json_data(serde_json::json!({"type": "error", "message": e.to_string()}))
                .into_iter()
                .collect(),
        };
        Some((events, live))
    })
    .flat_map(futures_util::stream::iter)
    .map(Ok::<_, std::convert::Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The runtime log live over WebSocket: one text message per log line — the last 100 lines, then new ones as
/// they are written — and `[ERROR] <message>` when the log can no longer be read. Browsers pass `?api_key=`.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/live-logs", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"), LiveParams),
    responses((status = 101, description = "WebSocket: text frames, one per log line; [ERROR] … on failure"), CommonErrors))]
pub async fn live_logs_socket(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<LiveParams>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (q, first) = live_start(&state, &actor, &ws, &p, &params, None).await?;
    let live = Live { state, actor, ws, p, environment: params.environment, q, first, over: false };
    Ok(upgrade.on_upgrade(move |socket| live_on_socket(socket, live)))
}

async fn live_on_socket(mut socket: axum::extract::ws::WebSocket, mut live: Live) {
    use axum::extract::ws::Message;
    loop {
        let next = tokio::select! {
            next = live.next() => next,
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        };
        match next {
            Some(Ok(lines)) => {
                for l in lines {
                    if socket.send(Message::Text(l.line.into())).await.is_err() {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                let _ = socket.send(Message::Text(format!("[ERROR] {e}").into())).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            None => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
