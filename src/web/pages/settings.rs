//! Workspace settings: members and their roles, invitations (the accept link shown once), API keys (the key
//! shown once) and the audit log. Members see the lists; only admins see and may use the forms.

use super::{Chrome, FormErrors, PageResult, Posted, Viewer, is_form_error, render, see_other, when};
use crate::domain::{ApiKey, AuditEntry, Invitation, Member, PageRequest, Role};
use crate::services::{NewKey, ServiceError};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

const ALL: PageRequest = PageRequest { page: 1, limit: 50 };

/// Renders `templates/settings/members.html`.
#[derive(Template)]
#[template(path = "settings/members.html")]
pub struct MembersPage {
    pub chrome: Chrome,
    pub members: Vec<Member>,
    pub invitations: Vec<(Invitation, String)>,
    /// The accept link of the invitation just made: shown once.
    pub created_link: Option<String>,
    pub email: String,
    pub errors: FormErrors,
}

async fn members_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    created_link: Option<String>,
    email: String,
    errors: FormErrors,
) -> PageResult {
    let chrome = Chrome::in_ws(state, viewer, ws, "Members").await?;
    let s = &state.services;
    let members = s.list_members(&viewer.actor, ws, ALL).await?.items;
    let invitations = if chrome.is_admin() {
        s.list_invitations(&viewer.actor, ws, ALL)
            .await?
            .items
            .into_iter()
            .map(|i| (when(&i.expires_at), i))
            .map(|(w, i)| (i, w))
            .collect()
    } else {
        Vec::new()
    };
    Ok(render(&MembersPage { chrome, members, invitations, created_link, email, errors }))
}

/// `GET /w/:ws/settings`: members and invitations.
pub async fn members_get(State(state): State<AppState>, viewer: Viewer, Path(ws): Path<String>) -> PageResult {
    members_page(&state, &viewer, &ws, None, String::new(), FormErrors::default()).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct MembersForm {
    /// `invite`, `revoke_invitation`, `role` or `remove`.
    pub action: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub id: String,
}

fn role_of(v: &str) -> Result<Role, ServiceError> {
    Role::parse(v).ok_or_else(|| ServiceError::invalid("role", format!("'{v}' must be member, admin or owner")))
}

/// `POST /w/:ws/settings`: the API's invitation and member use cases (admin; the last owner stays).
pub async fn members_post(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Posted { viewer, form }: Posted<MembersForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let r: Result<Option<String>, ServiceError> = match form.action.as_str() {
        "invite" => match role_of(&form.role) {
            Ok(role) => s.create_invitation(a, &ws, form.email.trim(), role).await.map(|c| Some(c.accept_url)),
            Err(e) => Err(e),
        },
        "revoke_invitation" => s.delete_invitation(a, &ws, &form.id).await.map(|()| None),
        "role" => match role_of(&form.role) {
            Ok(role) => s.update_member(a, &ws, &form.id, role).await.map(|_| None),
            Err(e) => Err(e),
        },
        "remove" => s.remove_member(a, &ws, &form.id).await.map(|()| None),
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(Some(link)) => members_page(&state, &viewer, &ws, Some(link), String::new(), FormErrors::default()).await,
        Ok(None) => Ok(see_other(&format!("/w/{ws}/settings"))),
        Err(e) if is_form_error(&e) => {
            let errors = FormErrors::from_error(&e, &["email", "role"]);
            members_page(&state, &viewer, &ws, None, form.email, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/settings/api_keys.html`.
#[derive(Template)]
#[template(path = "settings/api_keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub keys: Vec<(ApiKey, String, String)>,
    /// The key just made: shown once.
    pub created: Option<String>,
    pub name: String,
    pub errors: FormErrors,
}

async fn keys_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    created: Option<String>,
    name: String,
    errors: FormErrors,
) -> PageResult {
    let chrome = Chrome::in_ws(state, viewer, ws, "API keys").await?;
    let keys = state
        .services
        .list_api_keys(&viewer.actor, ws, ALL)
        .await?
        .items
        .into_iter()
        .map(|k| {
            let expires = k.expires_at.as_ref().map(when).unwrap_or_else(|| "never".into());
            let used = k.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into());
            (k, expires, used)
        })
        .collect();
    Ok(render(&KeysPage { chrome, keys, created, name, errors }))
}

/// `GET /w/:ws/api-keys`.
pub async fn api_keys_get(State(state): State<AppState>, viewer: Viewer, Path(ws): Path<String>) -> PageResult {
    keys_page(&state, &viewer, &ws, None, String::new(), FormErrors::default()).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct KeysForm {
    /// `create` or `revoke`.
    pub action: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub expires_in_days: String,
    #[serde(default)]
    pub id: String,
}

/// `POST /w/:ws/api-keys`: create (the full key is shown on this response only) or revoke.
pub async fn api_keys_post(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Posted { viewer, form }: Posted<KeysForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let r: Result<Option<String>, ServiceError> = match form.action.as_str() {
        "create" => {
            let days = form.expires_in_days.trim();
            let expires = if days.is_empty() {
                Ok(None)
            } else {
                days.parse::<u32>()
                    .map(Some)
                    .map_err(|_| ServiceError::invalid("expires_in_days", format!("'{days}' is not a number of days")))
            };
            let role = if form.role.is_empty() { Ok(None) } else { role_of(&form.role).map(Some) };
            match (expires, role) {
                (Ok(expires_in_days), Ok(role)) => s
                    .create_api_key(a, &ws, NewKey { name: form.name.clone(), expires_in_days, role })
                    .await
                    .map(|k| Some(k.key)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        "revoke" => s.revoke_api_key(a, &ws, &form.id).await.map(|()| None),
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(Some(key)) => keys_page(&state, &viewer, &ws, Some(key), String::new(), FormErrors::default()).await,
        Ok(None) => Ok(see_other(&format!("/w/{ws}/api-keys"))),
        Err(e) if is_form_error(&e) => {
            keys_page(
                &state,
                &viewer,
                &ws,
                None,
                form.name,
                FormErrors::from_error(&e, &["name", "role", "expires_in_days"]),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/settings/audit.html`.
#[derive(Template)]
#[template(path = "settings/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub entries: Vec<(AuditEntry, String)>,
    pub page: u32,
    pub more: bool,
}

/// The page's query string.
#[derive(Deserialize)]
pub struct AuditQuery {
    pub page: Option<u32>,
}

/// `GET /w/:ws/audit?page=`: who did what, when, newest first (admin, as in the API).
pub async fn audit_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let chrome = Chrome::in_ws(&state, &viewer, &ws, "Audit log").await?;
    let page = q.page.unwrap_or(1).max(1);
    let list = state.services.list_audit(&viewer.actor, &ws, PageRequest { page, limit: 50 }).await?;
    let more = i64::from(page * 50) < list.total;
    let entries = list.items.into_iter().map(|e| (when(&e.created_at), e)).map(|(w, e)| (e, w)).collect();
    Ok(render(&AuditPage { chrome, entries, page, more }))
}
