//! The home redirect and workspace switcher, creating a workspace, and a workspace's projects with live status.

use super::{Chrome, FormErrors, PageResult, Posted, Viewer, is_form_error, render, see_other, when};
use crate::domain::{PageRequest, Project};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// The page's query string.
#[derive(Deserialize)]
pub struct HomeQuery {
    pub ws: Option<String>,
}

/// `GET /`: setup while no user exists; else the chosen (`?ws=`, the switcher) or first workspace.
pub async fn home_get(
    State(state): State<AppState>,
    viewer: Result<Viewer, super::PageError>,
    Query(q): Query<HomeQuery>,
) -> PageResult {
    let Ok(viewer) = viewer else {
        return Ok(see_other(if state.services.setup_pending().await { "/setup" } else { "/login" }));
    };
    if let Some(ws) = q.ws.filter(|w| !w.is_empty()) {
        let access = state.services.access(&viewer.actor, &ws).await?;
        return Ok(see_other(&format!("/w/{}", access.workspace.slug)));
    }
    let list = state.services.list_workspaces(&viewer.actor, PageRequest { page: 1, limit: 1 }).await?;
    Ok(match list.items.first() {
        Some((w, _)) => see_other(&format!("/w/{}", w.slug)),
        None => see_other("/workspaces/new"),
    })
}

/// Renders `templates/workspaces/new.html`.
#[derive(Template)]
#[template(path = "workspaces/new.html")]
pub struct NewWorkspacePage {
    pub chrome: Chrome,
    pub name: String,
    pub slug: String,
    pub errors: FormErrors,
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct NewWorkspaceForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub slug: String,
}

/// `GET /workspaces/new`.
pub async fn new_get(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let chrome = Chrome::of(&state, &viewer, "New workspace").await?;
    Ok(render(&NewWorkspacePage { chrome, name: String::new(), slug: String::new(), errors: FormErrors::default() }))
}

/// `POST /workspaces/new`: the same use case as `POST /api/workspaces`; the creator owns it.
pub async fn new_post(State(state): State<AppState>, Posted { viewer, form }: Posted<NewWorkspaceForm>) -> PageResult {
    let slug = Some(form.slug.trim()).filter(|s| !s.is_empty());
    match state.services.create_workspace(&viewer.actor, &form.name, slug).await {
        Ok(w) => Ok(see_other(&format!("/w/{}", w.slug))),
        Err(e) if is_form_error(&e) => {
            let chrome = Chrome::of(&state, &viewer, "New workspace").await?;
            let errors = FormErrors::from_error(&e, &["name", "slug"]);
            Ok(render(&NewWorkspacePage { chrome, name: form.name, slug: form.slug, errors }))
        }
        Err(e) => Err(e.into()),
    }
}

/// One project on the workspace page.
pub struct ProjectRow {
    pub project: Project,
    pub source: String,
    pub updated: String,
}

/// Renders `templates/workspaces/projects.html`.
#[derive(Template)]
#[template(path = "workspaces/projects.html")]
pub struct ProjectsPage {
    pub chrome: Chrome,
    pub projects: Vec<ProjectRow>,
    pub total: i64,
    pub page: u32,
    pub pages: u32,
    /// What a redirect here says was done (deleting a project).
    pub notice: Option<String>,
}

/// The page's query string.
#[derive(Deserialize)]
pub struct PageQuery {
    pub page: Option<u32>,
    pub notice: Option<String>,
}

/// Projects shown on one page of the workspace.
pub const PROJECTS_PER_PAGE: u32 = 50;

/// `GET /w/:ws`: the workspace's projects with their status; the page refreshes itself while one is changing.
pub async fn projects_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let mut chrome = Chrome::in_ws(&state, &viewer, &ws, "Projects").await?;
    chrome.tab = "projects";
    let page = q.page.unwrap_or(1).max(1);
    let (_, list) =
        state.services.list_projects(&viewer.actor, &ws, PageRequest { page, limit: PROJECTS_PER_PAGE }).await?;
    let projects = list
        .items
        .into_iter()
        .map(|p| ProjectRow {
            source: p.image.clone().unwrap_or_else(|| format!("{} build", super::builder_name(p.build.builder))),
            updated: when(&p.updated_at),
            project: p,
        })
        .collect();
    let pages = (list.total.max(0) as u32).div_ceil(PROJECTS_PER_PAGE).max(1);
    Ok(render(&ProjectsPage { chrome, projects, total: list.total, page, pages, notice: q.notice }))
}

impl ProjectsPage {
    /// Whether any project is mid-change, so the page asks the browser to refresh it.
    pub fn changing(&self) -> bool {
        self.projects.iter().any(|p| matches!(p.project.status.as_str(), "building" | "deploying" | "pending"))
    }
}
