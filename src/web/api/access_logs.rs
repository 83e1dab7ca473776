//! The proxy's access log of a project.

use super::error::ApiError;
use super::extract::{ApiQuery, Auth};
use super::{CommonErrors, Envelope, ok};
use crate::services::AccessLogEntry;
use crate::services::{ServiceError, parse_status_filter};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?after&status&limit`.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct AccessLogParams {
    /// Entries after this `seq` (default 0: from the oldest kept).
    #[param(value_type = Option<i64>)]
    pub after: Option<String>,
    /// `404`, `4xx`, `5xx` or `error` (any 4xx/5xx).
    pub status: Option<String>,
    /// 1–1000 (default 100).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// A page of access-log entries.
#[derive(Serialize, ToSchema)]
pub struct AccessLogPage {
    pub entries: Vec<AccessLogEntry>,
    /// Pass as `after` to continue (the `after` given when nothing new came).
    pub last_seq: i64,
}

/// The project's access log from Berth's proxy (member), oldest first: every 4xx/5xx answer and every request other
/// than GET/HEAD, plus one in `access_log_sample` of the rest.
#[utoipa::path(get, path = "/api/workspaces/{ws}/projects/{p}/access-logs", tag = "logs",
    params(("ws" = String, Path, description = "Workspace slug"), ("p" = String, Path, description = "Project slug"),
        AccessLogParams),
    responses((status = 200, description = "Entries", body = Envelope<AccessLogPage>), CommonErrors))]
pub async fn access_logs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, p)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<AccessLogParams>,
) -> Result<Response, ApiError> {
    let after = match q.after.as_deref() {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ServiceError::invalid("after", format!("'{s}' is not a sequence number (0 or more)")))?,
    };
    let limit =
        match q.limit.as_deref() {
            None => 100,
            Some(s) => s.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                ServiceError::invalid("limit", format!("'{s}' must be a whole number from 1 to 1000"))
            })?,
        };
    let status = q.status.as_deref().map(parse_status_filter).transpose()?;
    let entries = state.services.access_logs(&actor, &ws, &p, after, status, limit).await?;
    let last_seq = entries.last().map_or(after, |e| e.seq);
    Ok(ok(AccessLogPage { entries, last_seq }))
}
