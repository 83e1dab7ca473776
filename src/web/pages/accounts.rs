//! First-run setup, sign-in and sign-out, and the invitation accept page. These forms are shown before a session
//! exists, so their CSRF token is a random value in a short-lived `SameSite=Strict` cookie that the form echoes
//! (double submit); after sign-in, forms carry the session's token.

use super::{
    Chrome, FormErrors, PageResult, Viewer, is_form_error, parse_form, render, safe_next, see_other, signed_in_redirect,
};
use crate::crypto;
use crate::domain::Invitation;
use crate::services::ServiceError;
use crate::web::AppState;
use crate::web::api::extract::{body_bytes, client_ip, cookie, session_cookie, session_cookie_header};
use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

const FORM_COOKIE: &str = "berth_form";

/// A fresh pre-session token and the `Set-Cookie` that holds it.
fn form_token() -> Result<(String, HeaderValue), ServiceError> {
    let token = crypto::random_token()?;
    let cookie =
        HeaderValue::from_str(&format!("{FORM_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600"))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok((token, cookie))
}

/// Renders a pre-session form page with a new token in its cookie.
fn with_form_cookie(mut page: Response, cookie: HeaderValue) -> Response {
    page.headers_mut().append(header::SET_COOKIE, cookie);
    page
}

/// Reads a pre-session form: the body's `_csrf` must equal the form cookie.
async fn pre_session_form<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: Request,
) -> Result<(Parts, T), ServiceError> {
    let (parts, body) = req.into_parts();
    let cookie = cookie(&parts, FORM_COOKIE).unwrap_or_default();
    let bytes = body_bytes(Request::from_parts(parts.clone(), body), state).await?;
    super::check_csrf(&bytes, &cookie)?;
    Ok((parts, parse_form(&bytes)?))
}

/// Renders `templates/accounts/setup.html`.
#[derive(Template)]
#[template(path = "accounts/setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub form: SetupForm,
    pub errors: FormErrors,
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked against the form cookie.
#[derive(Deserialize, Default)]
pub struct SetupForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub workspace_name: String,
}

fn setup_page(form: SetupForm, errors: FormErrors) -> PageResult {
    let (token, cookie) = form_token()?;
    let mut chrome = Chrome::bare("Set up Berth");
    chrome.csrf = token;
    Ok(with_form_cookie(render(&SetupPage { chrome, form, errors }), cookie))
}

/// `GET /setup`: the first-run form (once a user exists, sign-in instead).
pub async fn setup_get(State(state): State<AppState>) -> PageResult {
    if !state.services.setup_pending().await {
        return Ok(see_other("/login"));
    }
    setup_page(SetupForm::default(), FormErrors::default())
}

/// `POST /setup`: creates the first user and workspace (the same use case as `POST /api/setup`), signs in.
pub async fn setup_post(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, form) = pre_session_form::<SetupForm>(&state, req).await?;
    let r =
        state.services.setup(&form.token, &form.email, &form.password, &form.workspace_name, client_ip(&parts)).await;
    match r {
        Ok(r) => Ok(signed_in_redirect(&state, &r.session_token, &format!("/w/{}", r.workspace.slug))),
        Err(ServiceError::Unauthorized { message, .. }) => {
            let errors = FormErrors::from_error(&ServiceError::invalid("token", message), &["token"]);
            setup_page(SetupForm { password: String::new(), ..form }, errors)
        }
        Err(e) if is_form_error(&e) => {
            let errors = FormErrors::from_error(&e, &["token", "email", "password", "workspace_name"]);
            setup_page(SetupForm { password: String::new(), ..form }, errors)
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/accounts/login.html`.
#[derive(Template)]
#[template(path = "accounts/login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub email: String,
    pub next: String,
    pub errors: FormErrors,
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked against the form cookie.
#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    pub next: Option<String>,
}

/// The page's query string.
#[derive(Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

fn login_page(email: String, next: String, errors: FormErrors) -> PageResult {
    let (token, cookie) = form_token()?;
    let mut chrome = Chrome::bare("Sign in");
    chrome.csrf = token;
    Ok(with_form_cookie(render(&LoginPage { chrome, email, next, errors }), cookie))
}

/// `GET /login`: the sign-in form (first-run setup while no user exists).
pub async fn login_get(
    State(state): State<AppState>,
    viewer: Result<Viewer, super::PageError>,
    Query(q): Query<NextQuery>,
) -> PageResult {
    if state.services.setup_pending().await {
        return Ok(see_other("/setup"));
    }
    if viewer.is_ok() {
        return Ok(see_other(&safe_next(q.next.as_deref())));
    }
    login_page(String::new(), safe_next(q.next.as_deref()), FormErrors::default())
}

/// `POST /login`: the same use case as `POST /api/auth/login` (failed attempts rate limited per email).
pub async fn login_post(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, form) = pre_session_form::<LoginForm>(&state, req).await?;
    let next = safe_next(form.next.as_deref());
    match state.services.login(&form.email, &form.password, client_ip(&parts)).await {
        Ok(r) => Ok(signed_in_redirect(&state, &r.session_token, &next)),
        Err(e) if is_form_error(&e) => {
            let errors = FormErrors::from_error(&e, &["email", "password"]);
            login_page(form.email, next, errors)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /logout`: ends the session and clears its cookie.
pub async fn logout_post(State(state): State<AppState>, req: Request) -> PageResult {
    let (mut parts, body) = req.into_parts();
    let viewer = <Viewer as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await?;
    let token = session_cookie(&parts).unwrap_or_default();
    let bytes = body_bytes(Request::from_parts(parts, body), &state).await?;
    super::check_csrf(&bytes, &viewer.csrf)?;
    state.services.logout(&viewer.actor, &token).await?;
    let mut r = see_other("/login");
    if let Some(c) = session_cookie_header(&state, "", 0) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Renders `templates/accounts/accept.html`.
#[derive(Template)]
#[template(path = "accounts/accept.html")]
pub struct AcceptPage {
    pub chrome: Chrome,
    pub token: String,
    pub invitation: Invitation,
    pub has_account: bool,
    pub name: String,
    pub errors: FormErrors,
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked against the form cookie.
#[derive(Deserialize, Default)]
pub struct AcceptForm {
    pub password: Option<String>,
    pub name: Option<String>,
}

async fn accept_page(state: &AppState, token: String, name: String, errors: FormErrors) -> PageResult {
    let (invitation, has_account) = state.services.invitation_for_token(&token).await?;
    let (csrf, cookie) = form_token()?;
    let mut chrome = Chrome::bare("Join a workspace");
    chrome.csrf = csrf;
    let page = AcceptPage { chrome, token, invitation, has_account, name, errors };
    Ok(with_form_cookie(render(&page), cookie))
}

/// `GET /invitations/:token`: who is invited to what, and the form to accept.
pub async fn accept_get(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    accept_page(&state, token, String::new(), FormErrors::default()).await
}

/// `POST /invitations/:token`: accepts (a new account needs a password), then signs the person in.
pub async fn accept_post(State(state): State<AppState>, Path(token): Path<String>, req: Request) -> PageResult {
    let (parts, form) = pre_session_form::<AcceptForm>(&state, req).await?;
    let password = form.password.filter(|p| !p.is_empty());
    let name = form.name.filter(|n| !n.trim().is_empty());
    let ip = client_ip(&parts);
    match state.services.accept_invitation(&token, password.as_deref(), name.as_deref(), ip.clone()).await {
        Ok(accepted) => {
            let to = format!("/w/{}", accepted.workspace.slug);
            // A new account signs in with the password just chosen; an existing one signs in as usual.
            match password {
                Some(p) if accepted.created_user => match state.services.login(&accepted.user.email, &p, ip).await {
                    Ok(r) => Ok(signed_in_redirect(&state, &r.session_token, &to)),
                    Err(_) => Ok(see_other(&format!("/login?next={to}"))),
                },
                _ => Ok(see_other(&format!("/login?next={to}"))),
            }
        }
        Err(e) if is_form_error(&e) => {
            let errors = FormErrors::from_error(&e, &["password", "name"]);
            accept_page(&state, token, name.unwrap_or_default(), errors).await
        }
        Err(e) => Err(e.into()),
    }
}
