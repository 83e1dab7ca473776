//! A project's runtime log: search and time range as a plain GET form (works without JavaScript), then new lines
//! live over the API's EventSource stream with the same search.

use super::{Chrome, FormErrors, PageResult, Viewer, render};
use crate::domain::runtime_logs::{LogQuery, RawLogQuery, RuntimeLogLine};
use crate::services::ServiceError;
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// The page's query string.
#[derive(Deserialize, Default)]
pub struct LogsQuery {
    #[serde(default)]
    pub q: String,
    /// `15m`, `1h`, `24h`, `7d` or empty (everything).
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    #[serde(default)]
    pub stream: String,
}

/// Renders `templates/projects/logs.html`.
#[derive(Template)]
#[template(path = "projects/logs.html")]
pub struct LogsPage {
    pub chrome: Chrome,
    pub filter: LogsQuery,
    pub text: String,
    pub count: usize,
    pub last_seq: i64,
    pub live_url: String,
    pub errors: FormErrors,
}

const LINES: &str = "500";

/// `GET /w/:ws/p/:p/logs?q=&since=&start=&end=&stream=`.
pub async fn logs_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
    Query(filter): Query<LogsQuery>,
) -> PageResult {
    let chrome = Chrome::in_project(&state, &viewer, &ws, &p, "logs").await?;
    let opt = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
    let (q, since, start, end, stream) =
        (opt(&filter.q), opt(&filter.since), opt(&filter.start), opt(&filter.end), opt(&filter.stream));
    let raw = RawLogQuery {
        limit: Some(LINES),
        direction: Some("desc"),
        q: q.as_deref(),
        since: since.as_deref(),
        start: start.as_deref(),
        end: end.as_deref(),
        stream: stream.as_deref(),
        ..Default::default()
    };
    let parsed = LogQuery::parse(&raw, chrono::Utc::now()).map_err(ServiceError::from);
    let (lines, errors): (Vec<RuntimeLogLine>, FormErrors) = match parsed {
        Ok(query) => (state.services.runtime_logs(&viewer.actor, &ws, &p, None, query).await?, FormErrors::default()),
        Err(e) => (Vec::new(), FormErrors::from_error(&e, &["q", "since", "start", "end", "stream"])),
    };
    let last_seq = lines.first().map(|l| l.seq).unwrap_or(0);
    let mut text = String::new();
    for l in lines.iter().rev() {
        text.push_str(&format!("{} {} {}\n", l.timestamp, l.stream, l.line));
    }
    let mut live = form_urlencoded::Serializer::new(String::new());
    if let Some(q) = &q {
        live.append_pair("q", q);
    }
    if let Some(s) = &stream {
        live.append_pair("stream", s);
    }
    let live_url = format!("/api/workspaces/{ws}/projects/{p}/logs/stream?{}", live.finish());
    let live_url = if end.is_some() { String::new() } else { live_url };
    Ok(render(&LogsPage { chrome, filter, count: lines.len(), text, last_seq, live_url, errors }))
}
