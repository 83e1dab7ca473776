//! A project's environment variables: add, edit, delete, paste a `.env` file. Secret values are masked; an admin
//! may reveal one (audited, as in the API).

use super::{Chrome, FormErrors, PageResult, Posted, Viewer, is_form_error, render, see_other, with_notice};
use crate::domain::Variable;
use crate::domain::env::parse_dotenv;
use crate::services::{BulkItem, Secrecy, SecrecyChange, ServiceError, VarTarget};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// Renders `templates/projects/env.html`.
#[derive(Template)]
#[template(path = "projects/env.html")]
pub struct EnvPage {
    pub chrome: Chrome,
    pub vars: Vec<Variable>,
    /// The key whose secret value is shown.
    pub revealed: Option<String>,
    pub key: String,
    pub dotenv: String,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

fn target(p: &str) -> VarTarget {
    VarTarget { project: Some(p.to_owned()), environment: None }
}

/// The page's query string.
#[derive(Deserialize, Default)]
pub struct EnvQuery {
    pub reveal: Option<String>,
    pub notice: Option<String>,
}

struct EnvState {
    key: String,
    dotenv: String,
    errors: FormErrors,
    notice: Option<String>,
}

async fn env_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    p: &str,
    reveal: Option<String>,
    st: EnvState,
) -> PageResult {
    let chrome = Chrome::in_project(state, viewer, ws, p, "env").await?;
    let s = &state.services;
    let mut vars = s.list_variables(&viewer.actor, ws, target(p)).await?;
    let mut revealed = None;
    if let Some(key) = reveal.filter(|_| chrome.is_admin()) {
        let v = s.get_variable(&viewer.actor, ws, target(p), &key, true).await?;
        if let Some(slot) = vars.iter_mut().find(|x| x.key == v.key) {
            *slot = v;
            revealed = Some(key);
        }
    }
    let page = EnvPage { chrome, vars, revealed, key: st.key, dotenv: st.dotenv, errors: st.errors, notice: st.notice };
    Ok(render(&page))
}

/// `GET /w/:ws/p/:p/env` (`?reveal=KEY` shows one secret to an admin).
pub async fn env_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> PageResult {
    let st = EnvState { key: String::new(), dotenv: String::new(), errors: FormErrors::default(), notice: q.notice };
    env_page(&state, &viewer, &ws, &p, q.reveal, st).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct EnvForm {
    /// `add`, `update`, `delete` or `paste`.
    pub action: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub is_secret: Option<String>,
    #[serde(default)]
    pub dotenv: String,
}

/// `POST /w/:ws/p/:p/env`: the API's create, update, delete and bulk (`PUT …/env/bulk`, merging) use cases.
/// Changes apply at the next deployment; the page says so.
pub async fn env_post(
    State(state): State<AppState>,
    Path((ws, p)): Path<(String, String)>,
    Posted { viewer, form }: Posted<EnvForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let secrecy = Secrecy { is_secret: form.is_secret.is_some(), build_secret: false };
    let r: Result<String, ServiceError> = match form.action.as_str() {
        "add" => s
            .create_variable(a, &ws, target(&p), form.key.trim(), &form.value, secrecy)
            .await
            .map(|v| format!("Added {}.", v.key)),
        "update" => s
            .update_variable(a, &ws, target(&p), &form.key, Some(form.value.clone()), SecrecyChange::default())
            .await
            .map(|v| format!("Saved {}.", v.key)),
        "delete" => s.delete_variable(a, &ws, target(&p), &form.key).await.map(|()| format!("Deleted {}.", form.key)),
        "paste" => match parse_dotenv(&form.dotenv) {
            Ok(pairs) => {
                let items = pairs
                    .into_iter()
                    .map(|(key, value)| BulkItem { key, value, is_secret: form.is_secret.is_some().then_some(true) })
                    .collect();
                s.bulk_variables(a, &ws, target(&p), items, true)
                    .await
                    .map(|r| format!("{} added, {} updated.", r.created, r.updated))
            }
            Err(e) => Err(ServiceError::invalid("dotenv", e.message)),
        },
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(notice) => {
            let notice = format!("{notice} Redeploy to apply.");
            Ok(see_other(&with_notice(&format!("/w/{ws}/p/{p}/env"), &notice)))
        }
        Err(e) if is_form_error(&e) => {
            let field = if form.action == "paste" { "dotenv" } else { "key" };
            let errors = match &e {
                ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. } => {
                    FormErrors::from_error(&ServiceError::invalid(field, message.clone()), &[field])
                }
                other => FormErrors::from_error(other, &[]),
            };
            let st = EnvState { key: form.key, dotenv: form.dotenv, errors, notice: None };
            env_page(&state, &viewer, &ws, &p, None, st).await
        }
        Err(e) => Err(e.into()),
    }
}
