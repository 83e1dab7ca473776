//! A project's deployments and releases, and one deployment with its build log (the log so far in the page,
//! then live over the API's EventSource stream) and its actions: cancel, retry, rollback.

use super::{Chrome, PageResult, Posted, Viewer, render, see_other, when};
use crate::domain::DeploymentStatus;
use crate::domain::PageRequest;
use crate::domain::deployment::{Deployment, DeploymentEvent, LogLine, Release};
use crate::services::{DeployInput, ServiceError};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// A deployment row, with the times already formatted.
pub struct DeploymentRow {
    pub d: Deployment,
    pub created: String,
    pub commit: String,
}

impl DeploymentRow {
    fn new(d: Deployment) -> Self {
        let commit = d.commit.as_deref().map(|c| c.chars().take(7).collect()).unwrap_or_default();
        DeploymentRow { created: when(&d.created_at), commit, d }
    }
}

/// A release row: the image's tag for display, and whether it is the one serving now.
pub struct ReleaseRow {
    pub release: Release,
    pub tag: String,
    pub created: String,
    pub current: bool,
}

/// Renders `templates/deployments/list.html`.
#[derive(Template)]
#[template(path = "deployments/list.html")]
pub struct DeploymentsPage {
    pub chrome: Chrome,
    pub project: String,
    pub deployments: Vec<DeploymentRow>,
    pub releases: Vec<ReleaseRow>,
    pub error: Option<String>,
    pub page: u32,
    pub more: bool,
}

impl DeploymentsPage {
    /// Whether any deployment is still in progress (the page refreshes itself then).
    pub fn changing(&self) -> bool {
        self.deployments.iter().any(|r| r.d.status.is_in_progress())
    }
}

/// The page's query string.
#[derive(Deserialize)]
pub struct ListQuery {
    pub page: Option<u32>,
}

const PER_PAGE: u32 = 20;

async fn list(state: &AppState, viewer: &Viewer, ws: &str, p: &str, page: u32, error: Option<String>) -> PageResult {
    let chrome = Chrome::in_project(state, viewer, ws, p, "deployments").await?;
    let s = &state.services;
    let list = s.list_deployments(&viewer.actor, ws, p, None, None, PageRequest { page, limit: PER_PAGE }).await?;
    let releases = s.list_releases(&viewer.actor, ws, p, PageRequest { page: 1, limit: 10 }).await?;
    let more = i64::from(page * PER_PAGE) < list.total;
    let serving = list.items.iter().find(|d| d.status == DeploymentStatus::Running).and_then(|d| d.release_id.clone());
    let deployments = list.items.into_iter().map(DeploymentRow::new).collect();
    let releases = releases
        .items
        .into_iter()
        .map(|r| ReleaseRow {
            tag: r.image.rsplit_once(':').map(|(_, t)| t.to_owned()).unwrap_or_else(|| r.image.clone()),
            created: when(&r.created_at),
            current: serving.as_deref() == Some(r.id.as_str()),
            release: r,
        })
        .collect();
    Ok(render(&DeploymentsPage { chrome, project: p.to_owned(), deployments, releases, error, page, more }))
}

/// `GET /w/:ws/p/:p/deployments`: every deployment, newest first, and the releases to roll back to.
pub async fn list_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> PageResult {
    list(&state, &viewer, &ws, &p, q.page.unwrap_or(1).max(1), None).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct DeployForm {
    pub branch: Option<String>,
    pub no_cache: Option<String>,
    pub note: Option<String>,
}

/// `POST /w/:ws/p/:p/deployments`: a new deployment from git (`POST …/deployments`), then its log.
pub async fn list_post(
    State(state): State<AppState>,
    Path((ws, p)): Path<(String, String)>,
    Posted { viewer, form }: Posted<DeployForm>,
) -> PageResult {
    let input = DeployInput {
        branch: form.branch.filter(|b| !b.trim().is_empty()),
        no_cache: form.no_cache.is_some(),
        note: form.note.filter(|n| !n.trim().is_empty()),
        ..Default::default()
    };
    match state.services.create_deployment(&viewer.actor, &ws, &p, None, input).await {
        Ok(d) => Ok(see_other(&format!("/w/{ws}/d/{}", d.id))),
        Err(e @ (ServiceError::Conflict { .. } | ServiceError::Invalid { .. })) => {
            list(&state, &viewer, &ws, &p, 1, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/deployments/detail.html`.
#[derive(Template)]
#[template(path = "deployments/detail.html")]
pub struct DeploymentPage {
    pub chrome: Chrome,
    pub d: Deployment,
    pub events: Vec<(DeploymentEvent, String)>,
    pub log: String,
    pub last_seq: i64,
    pub created: String,
    pub error: Option<String>,
    /// Whether this deployment's release can be rolled back to.
    pub has_release: bool,
}

/// Lines of build log put in the page before streaming.
const LOG_IN_PAGE: u32 = 5000;

async fn detail(state: &AppState, viewer: &Viewer, ws: &str, id: &str, error: Option<String>) -> PageResult {
    let s = &state.services;
    let detail = s.get_deployment(&viewer.actor, ws, id).await?;
    let project = s.deployment_project_slug(&viewer.actor, ws, id).await?;
    let mut chrome = Chrome::in_project(state, viewer, ws, &project, "deployments").await?;
    chrome.title = format!("{} · {project}", detail.deployment.reference);
    let lines: Vec<LogLine> = s.deployment_logs(&viewer.actor, ws, id, 0, LOG_IN_PAGE).await?;
    let last_seq = lines.last().map(|l| l.seq).unwrap_or(0);
    let mut log = String::new();
    for l in &lines {
        log.push_str(&l.line);
        log.push('\n');
    }
    let events = detail.events.into_iter().map(|e| (when(&e.at), e)).map(|(w, e)| (e, w)).collect();
    let d = detail.deployment;
    let has_release = d.release_id.is_some()
        && d.kind != crate::domain::DeploymentKind::Rollback
        && d.status != DeploymentStatus::Running;
    Ok(render(&DeploymentPage { chrome, created: when(&d.created_at), d, events, log, last_seq, error, has_release }))
}

/// `GET /w/:ws/d/:id`: status, timeline and build log; the log follows live while the deployment runs.
pub async fn detail_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, id)): Path<(String, String)>,
) -> PageResult {
    detail(&state, &viewer, &ws, &id, None).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct ActionForm {
    /// `cancel`, `retry`, `rollback` or `stop`.
    pub action: String,
}

/// `POST /w/:ws/d/:id`: the deployment's actions (the API's `…/deployments/:id/<action>`); the new deployment
/// (retry, rollback) or the same one is shown next.
pub async fn detail_post(
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    Posted { viewer, form }: Posted<ActionForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let r = match form.action.as_str() {
        "cancel" => s.cancel_deployment(a, &ws, &id).await,
        "retry" => s.retry_deployment(a, &ws, &id).await,
        "rollback" => s.rollback_deployment(a, &ws, &id).await,
        "stop" => s.stop_deployment(a, &ws, &id).await,
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(d) => Ok(see_other(&format!("/w/{ws}/d/{}", d.id))),
        Err(e @ (ServiceError::Conflict { .. } | ServiceError::Invalid { .. })) => {
            detail(&state, &viewer, &ws, &id, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}
