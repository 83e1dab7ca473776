//! A project's custom domains with their verification and TLS status: add, verify now, delete (admin).

use super::{Chrome, FormErrors, PageResult, Posted, Viewer, is_form_error, render, see_other};
use crate::services::{DomainView, ServiceError};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, State};
use serde::Deserialize;

/// Renders `templates/projects/domains.html`.
#[derive(Template)]
#[template(path = "projects/domains.html")]
pub struct DomainsPage {
    pub chrome: Chrome,
    pub domains: Vec<DomainView>,
    pub domain: String,
    pub errors: FormErrors,
}

async fn domains_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    p: &str,
    domain: String,
    errors: FormErrors,
) -> PageResult {
    let chrome = Chrome::in_project(state, viewer, ws, p, "domains").await?;
    let domains = state.services.list_domains(&viewer.actor, ws, p).await?;
    Ok(render(&DomainsPage { chrome, domains, domain, errors }))
}

/// `GET /w/:ws/p/:p/domains`.
pub async fn domains_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
) -> PageResult {
    domains_page(&state, &viewer, &ws, &p, String::new(), FormErrors::default()).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct DomainForm {
    /// `add`, `verify` or `delete`.
    pub action: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub id: String,
}

/// `POST /w/:ws/p/:p/domains`: the API's add, verify and delete use cases.
pub async fn domains_post(
    State(state): State<AppState>,
    Path((ws, p)): Path<(String, String)>,
    Posted { viewer, form }: Posted<DomainForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let r = match form.action.as_str() {
        "add" => s.add_domain(a, &ws, &p, form.domain.trim(), None).await.map(|_| ()),
        "verify" => s.verify_domain(a, &ws, &p, &form.id).await.map(|_| ()),
        "delete" => s.delete_domain(a, &ws, &p, &form.id).await,
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(()) => Ok(see_other(&format!("/w/{ws}/p/{p}/domains"))),
        Err(e) if is_form_error(&e) => {
            let e = match e {
                ServiceError::Conflict { message, .. } => ServiceError::invalid("domain", message),
                other => other,
            };
            domains_page(&state, &viewer, &ws, &p, form.domain, FormErrors::from_error(&e, &["domain"])).await
        }
        Err(e) => Err(e.into()),
    }
}
