//! Request extractors: credentials, JSON bodies with field-naming errors, pagination.

use super::error::{ApiError, error_response};
use crate::crypto;
use crate::domain::PageRequest;
use crate::services::{Actor, ServiceError, Via};
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "berth_session";
/// Header carrying the CSRF token on cookie-authenticated mutating requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `Set-Cookie` for the session: HttpOnly, `SameSite=Lax`, and `Secure` when the public URL is HTTPS. An empty
/// token with `max_age_secs = 0` clears it. The API's sign-in and the dashboard's set the same cookie.
pub fn session_cookie_header(state: &AppState, token: &str, max_age_secs: i64) -> Option<header::HeaderValue> {
    let secure = if state.services.config().public_url.starts_with("https://") { "; Secure" } else { "" };
    header::HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// The authenticated caller: an API key (`X-API-Key`, `Authorization: Bearer`, or `?api_key=`) or a session cookie.
pub struct Auth(pub Actor);

/// The peer's IP address, when known.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim().to_owned());
        }
    }
    parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api_key=").map(str::to_owned)))
}

/// The session cookie's value, if sent.
pub fn session_cookie(parts: &Parts) -> Option<String> {
    cookie(parts, SESSION_COOKIE)
}

/// The value of the cookie `name`, if sent.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name).and_then(|rest| rest.strip_prefix('=')).map(str::to_owned))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        if let Some(key) = presented_key(parts) {
            return Ok(Auth(state.services.authenticate_key(&key, ip).await?));
        }
        if let Some(token) = session_cookie(parts) {
            let actor = state.services.authenticate_session(&token, ip).await?;
            let actor = actor.ok_or_else(|| {
                ServiceError::unauthorized("session_expired", "session expired or signed out; sign in again")
            })?;
            if let Via::Session { csrf_token } = &actor.via {
                let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !safe && !crypto::digests_equal(sent.as_bytes(), csrf_token.as_bytes()) {
                    return Err(ServiceError::Forbidden(
                        "missing or wrong X-CSRF-Token header for a cookie-authenticated request".into(),
                    )
                    .into());
                }
            }
            return Ok(Auth(actor));
        }
        Err(ServiceError::unauthorized(
            "missing_credentials",
            "authentication required: send X-API-Key: berth_sk_… (or Authorization: Bearer …)",
        )
        .into())
    }
}

/// A JSON body. Malformed JSON, wrong types and unknown fields are 400 with the field named; too large is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// Parses a JSON body, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ServiceError::invalid("body", "is empty: send a JSON object"));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ServiceError::invalid("body", "must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ServiceError::invalid("body", format!("is not valid JSON: {inner}"))
        } else if path == "." {
            ServiceError::invalid("body", inner.to_string())
        } else {
            ServiceError::invalid(path, inner.to_string())
        }
    })
}

/// Query parameters deserialised into `T`; a wrong value is 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "query".to_owned() } else { path };
            ApiError(ServiceError::invalid(field, e.into_inner().to_string()))
        })
    }
}

/// A JSON body that may be absent: an empty body gives `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        Ok(OptionalJson(parse_json(&bytes)?))
    }
}

/// The raw body, with the limit's 413 and a 400 for an unreadable body.
pub async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ServiceError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let max = state.services.config().max_body_bytes;
            ServiceError::TooLarge(format!("request body is larger than {max} bytes"))
        } else {
            ServiceError::invalid("body", rejection.body_text())
        }
    })
}

/// `?page=&limit=`: page ≥ 1 (default 1), limit 1–50 (default 20). Out of range is 400, not clamped.
pub struct Pagination(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (mut page, mut limit) = (1u32, 20u32);
        for (k, v) in url_pairs(parts.uri.query().unwrap_or("")) {
            match k.as_str() {
                "page" => {
                    page = v
                        .parse()
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or_else(|| ServiceError::invalid("page", format!("'{v}' must be a whole number ≥ 1")))?
                }
                "limit" => {
                    limit = v.parse().ok().filter(|l| (1..=50).contains(l)).ok_or_else(|| {
                        ServiceError::invalid("limit", format!("'{v}' must be a whole number from 1 to 50"))
                    })?
                }
                _ => {}
            }
        }
        Ok(Pagination(PageRequest { page, limit }))
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Rejects requests whose declared length is over the limit before reading them (413).
pub async fn limit_declared_length(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let max = state.services.config().max_body_bytes;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {max} bytes"),
        );
    }
    next.run(req).await.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        port: u16,
    }

    async fn message(e: ServiceError) -> String {
        e.to_string()
    }

    #[tokio::test]
    async fn json_errors_name_the_field() {
        let m = message(parse_json::<Body>(br#"{"name": "a", "port": "x"}"#).unwrap_err()).await;
        assert!(m.starts_with("port:"), "{m}");
        let m = message(parse_json::<Body>(br#"{"name": "a", "port": 1, "extra": 1}"#).unwrap_err()).await;
        assert!(m.contains("extra"), "{m}");
        let m = message(parse_json::<Body>(br#"{"port": 1}"#).unwrap_err()).await;
        assert!(m.contains("name"), "{m}");
        let m = message(parse_json::<Body>(br#"{"name": "#).unwrap_err()).await;
        assert!(m.contains("not valid JSON"), "{m}");
        let m = message(parse_json::<Body>(b"[1]").unwrap_err()).await;
        assert!(m.starts_with("body:"), "{m}");
        let m = message(parse_json::<Body>(b"").unwrap_err()).await;
        assert!(m.contains("empty"), "{m}");
    }
}
