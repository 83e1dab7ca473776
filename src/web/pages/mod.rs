//! The dashboard: server-rendered askama pages mounted at `/`, for people in a browser. Every handler signs the
//! caller in from the same session cookie as the API, calls the same `services` use case as the matching API
//! route (so the same permission checks apply), and renders `templates/<area>/<page>.html`. Forms are plain
//! HTML POSTs carrying the session's CSRF token as a hidden `_csrf` field; success redirects (PRG), a field
//! error re-renders the form with the message next to the field.

mod accounts;
mod databases;
mod deployments;
mod domains;
mod logs;
pub mod projects;
mod settings;
mod variables;
mod workspaces;

use crate::crypto;
use crate::domain::{PageRequest, Role};
use crate::services::{Actor, ServiceError, Via};
use crate::web::AppState;
use crate::web::api::error::status_and_code;
use crate::web::api::extract::{body_bytes, client_ip, session_cookie, session_cookie_header};
use crate::web::assets;
use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

/// Every dashboard route. The API's routes (under `/api`) are merged beside these.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(workspaces::home_get))
        .route("/setup", get(accounts::setup_get).post(accounts::setup_post))
        .route("/login", get(accounts::login_get).post(accounts::login_post))
        .route("/logout", post(accounts::logout_post))
        .route("/invitations/{token}", get(accounts::accept_get).post(accounts::accept_post))
        .route("/workspaces/new", get(workspaces::new_get).post(workspaces::new_post))
        .route("/w/{ws}", get(workspaces::projects_get))
        .route("/w/{ws}/settings", get(settings::members_get).post(settings::members_post))
        .route("/w/{ws}/api-keys", get(settings::api_keys_get).post(settings::api_keys_post))
        .route("/w/{ws}/audit", get(settings::audit_get))
        .route("/w/{ws}/new", get(projects::new_get).post(projects::new_post))
        .route("/w/{ws}/p/{p}", get(projects::overview_get).post(projects::overview_post))
        .route("/w/{ws}/p/{p}/settings", get(projects::settings_get).post(projects::settings_post))
        .route("/w/{ws}/p/{p}/deployments", get(deployments::list_get).post(deployments::list_post))
        .route("/w/{ws}/d/{id}", get(deployments::detail_get).post(deployments::detail_post))
        .route("/w/{ws}/p/{p}/env", get(variables::env_get).post(variables::env_post))
        .route("/w/{ws}/p/{p}/logs", get(logs::logs_get))
        .route("/w/{ws}/p/{p}/domains", get(domains::domains_get).post(domains::domains_post))
        .route("/w/{ws}/databases", get(databases::list_get).post(databases::list_post))
        .route("/w/{ws}/databases/{id}", get(databases::detail_get).post(databases::detail_post))
        .route("/w/{ws}/databases/{id}/backups/{b}/download", get(databases::download_get))
        .route("/static/{file}", get(assets::static_get))
}

/// The signed-in person behind a page request: their session's actor and its CSRF token.
pub struct Viewer {
    pub actor: Actor,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let sign_in = || PageError::SignIn(parts.uri.path().to_owned());
        let token = session_cookie(parts).ok_or_else(sign_in)?;
        let actor = state.services.authenticate_session(&token, client_ip(parts)).await?.ok_or_else(sign_in)?;
        match &actor.via {
            Via::Session { csrf_token } => Ok(Viewer { csrf: csrf_token.clone(), actor }),
            _ => Err(sign_in()),
        }
    }
}

/// A form POST from a signed-in person: the viewer, and the body parsed into `T` after its `_csrf` field was
/// checked against the session's token (a missing or wrong token is a 403 page, nothing is done).
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = body_bytes(Request::from_parts(parts, body), state).await?;
        check_csrf(&bytes, &viewer.csrf)?;
        Ok(Posted { viewer, form: parse_form(&bytes)? })
    }
}

/// `Forbidden` unless the urlencoded body's `_csrf` equals `expected` (compared in constant time).
fn check_csrf(body: &[u8], expected: &str) -> Result<(), ServiceError> {
    let sent = form_urlencoded::parse(body).find(|(k, _)| k == "_csrf").map(|(_, v)| v.into_owned());
    match sent {
        Some(s) if !expected.is_empty() && crypto::digests_equal(s.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ServiceError::Forbidden(
            "the form's security token is missing or out of date; reload the page and try again".into(),
        )),
    }
}

/// Parses a urlencoded form; a wrong value names the field.
pub fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ServiceError::invalid(if path == "." { "form".into() } else { path }, e.into_inner().to_string())
    })
}

/// Why a page could not be shown: not signed in (redirect to the sign-in page), or what the use case said.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in; carries the path to come back to.
    SignIn(String),
    Service(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError::Service(e.into())
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub heading: &'static str,
    pub message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = match self {
            PageError::SignIn(next) => {
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                return Redirect::to(&format!("/login?next={next}")).into_response();
            }
            PageError::Service(e) => e,
        };
        let (status, _) = status_and_code(&e);
        let heading = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Slow down",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let message = match &e {
            ServiceError::Internal(cause) => {
                let request_id = uuid::Uuid::now_v7().simple().to_string();
                tracing::error!(%request_id, cause = %cause, "internal error on a page");
                format!("internal error (request id {request_id})")
            }
            ServiceError::RateLimited { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let page = ErrorPage { chrome: Chrome::bare(heading), status: status.as_u16(), heading, message };
        (status, render(&page)).into_response()
    }
}

/// A page's result.
pub type PageResult = Result<Response, PageError>;

/// Renders a template into an HTML response (a template error is logged and becomes a plain 500).
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A 303 to `to`: the R of PRG.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `path?notice=…`: where a redirect shows what was done (pages read it as `?notice=`).
pub fn with_notice(path: &str, notice: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("notice", notice).finish();
    format!("{path}?{q}")
}

/// What the layout around every page shows: the stylesheet and script URLs, who is signed in, the workspace
/// switcher, the current workspace and project, and the CSRF token forms carry.
pub struct Chrome {
    pub title: String,
    pub css: &'static str,
    pub js: &'static str,
    pub user: Option<String>,
    pub csrf: String,
    /// (slug, name) of every workspace the viewer belongs to.
    pub workspaces: Vec<(String, String)>,
    /// The current workspace's slug, name and the viewer's role in it.
    pub ws: Option<(String, String, Role)>,
    /// The current project's slug and the selected tab (outside a project: `projects` or `databases`, the
    /// workspace navigation's current entry).
    pub project: Option<String>,
    pub tab: &'static str,
}

impl Chrome {
    /// The layout for pages shown to someone not signed in.
    pub fn bare(title: &str) -> Chrome {
        Chrome {
            title: title.to_owned(),
            css: &assets::CSS.url,
            js: &assets::JS.url,
            user: None,
            csrf: String::new(),
            workspaces: Vec::new(),
            ws: None,
            project: None,
            tab: "",
        }
    }

    /// The layout for a signed-in viewer, with their workspaces for the switcher.
    pub async fn of(state: &AppState, viewer: &Viewer, title: impl Into<String>) -> Result<Chrome, PageError> {
        let list = state.services.list_workspaces(&viewer.actor, PageRequest { page: 1, limit: 50 }).await?;
        Ok(Chrome {
            title: title.into(),
            user: Some(viewer.actor.user.email.clone()),
            csrf: viewer.csrf.clone(),
            workspaces: list.items.into_iter().map(|(w, _)| (w.slug, w.name)).collect(),
            ..Chrome::bare("")
        })
    }

    /// The layout inside workspace `ws`: 404 when the viewer is no member.
    pub async fn in_ws(
        state: &AppState,
        viewer: &Viewer,
        ws: &str,
        title: impl Into<String>,
    ) -> Result<Chrome, PageError> {
        let access = state.services.access(&viewer.actor, ws).await?;
        let mut c = Chrome::of(state, viewer, title).await?;
        c.ws = Some((access.workspace.slug, access.workspace.name, access.role));
        Ok(c)
    }

    /// The layout of a project's page, with its tab selected.
    pub async fn in_project(
        state: &AppState,
        viewer: &Viewer,
        ws: &str,
        project: &str,
        tab: &'static str,
    ) -> Result<Chrome, PageError> {
        let mut c = Chrome::in_ws(state, viewer, ws, format!("{project} · {tab}")).await?;
        c.project = Some(project.to_owned());
        c.tab = tab;
        Ok(c)
    }

    /// The current workspace's slug ("" outside one).
    pub fn ws_slug(&self) -> &str {
        self.ws.as_ref().map(|w| w.0.as_str()).unwrap_or("")
    }

    /// Whether the viewer is at least an admin of the current workspace: admin buttons show only then (the use
    /// case checks again when the form is posted).
    pub fn is_admin(&self) -> bool {
        self.ws.as_ref().is_some_and(|w| w.2 >= Role::Admin)
    }

    /// Whether the viewer owns the current workspace.
    pub fn is_owner(&self) -> bool {
        self.ws.as_ref().is_some_and(|w| w.2 == Role::Owner)
    }

    /// The project's tabs, the current one marked.
    pub fn tabs(&self) -> Vec<TabLink> {
        let Some(p) = &self.project else { return Vec::new() };
        let base = format!("/w/{}/p/{p}", self.ws_slug());
        [
            ("overview", "Overview", ""),
            ("deployments", "Deployments", "/deployments"),
            ("logs", "Logs", "/logs"),
            ("env", "Environment", "/env"),
            ("domains", "Domains", "/domains"),
            ("settings", "Settings", "/settings"),
        ]
        .into_iter()
        .map(|(tab, label, path)| TabLink { href: format!("{base}{path}"), label, current: tab == self.tab })
        .collect()
    }

    /// The viewer's role in the current workspace.
    pub fn role(&self) -> &'static str {
        self.ws.as_ref().map(|w| w.2.as_str()).unwrap_or("")
    }
}

/// One tab of a project's pages.
pub struct TabLink {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// A form's errors: one message per field name, plus messages that belong to no field.
#[derive(Default, Debug)]
pub struct FormErrors {
    fields: Vec<(String, String)>,
    pub general: Option<String>,
}

impl FormErrors {
    /// Splits a use-case error: a field error goes next to the field (when the form has it), anything else on
    /// top of the form.
    pub fn from_error(e: &ServiceError, fields: &[&str]) -> FormErrors {
        match e {
            ServiceError::Invalid { field, message } if fields.contains(&field.as_str()) => {
                FormErrors { fields: vec![(field.clone(), message.clone())], general: None }
            }
            other => FormErrors { fields: Vec::new(), general: Some(other.to_string()) },
        }
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }

    pub fn any(&self) -> bool {
        self.general.is_some() || !self.fields.is_empty()
    }
}

/// Whether an error should be shown in the form (fix and resubmit) rather than as an error page.
pub fn is_form_error(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Invalid { .. }
            | ServiceError::Conflict { .. }
            | ServiceError::Rejected { .. }
            | ServiceError::Upstream { .. }
            | ServiceError::Unauthorized { .. }
            | ServiceError::RateLimited { .. }
            | ServiceError::Gone { .. }
    )
}

/// A redirect that also sets the session cookie.
pub fn signed_in_redirect(state: &AppState, token: &str, to: &str) -> Response {
    let mut r = see_other(to);
    let ttl = i64::from(state.services.config().session_ttl_hours) * 3600;
    if let Some(c) = session_cookie_header(state, token, ttl) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// A path on this site to come back to after signing in (anything else becomes `/`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// The word for a builder, as the API spells it.
pub fn builder_name(b: crate::domain::Builder) -> &'static str {
    match b {
        crate::domain::Builder::Auto => "auto",
        crate::domain::Builder::Dockerfile => "dockerfile",
        crate::domain::Builder::Image => "image",
    }
}

/// Short, readable time: `2026-11-24 14:16 UTC`.
pub fn when(t: &crate::domain::Timestamp) -> String {
    t.0.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_must_match_the_session() {
        assert!(check_csrf(b"name=x&_csrf=abc", "abc").is_ok());
        assert!(check_csrf(b"name=x&_csrf=abd", "abc").is_err());
        assert!(check_csrf(b"name=x", "abc").is_err());
        assert!(check_csrf(b"_csrf=", "").is_err());
    }

    #[test]
    fn pages_escape_what_they_show_and_link_the_hashed_assets() {
        let page = ErrorPage {
            chrome: Chrome::bare("<b>title</b>"),
            status: 404,
            heading: "Not found",
            message: "project '<script>alert(1)</script>' not found".into(),
        };
        let html = page.render().unwrap();
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains(&assets::CSS.url) && html.contains(&assets::JS.url));
        assert!(html.contains("<html lang=\"en\">") && html.contains("name=\"viewport\""));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/w/acme")), "/w/acme");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn field_errors_go_next_to_their_field() {
        let e = FormErrors::from_error(&ServiceError::invalid("port", "too big"), &["name", "port"]);
        assert_eq!(e.get("port"), Some("too big"));
        assert!(e.general.is_none());
        let e = FormErrors::from_error(&ServiceError::invalid("image", "bad"), &["name"]);
        assert!(e.general.as_deref().is_some_and(|m| m.contains("bad")));
    }
}
