//! Why the proxy could not forward a request, and the one place that turns that into a response.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::ProxyBody;
use super::headers::X_REQUEST_ID;

/// Why a request was answered by the proxy itself instead of an app. Each variant maps to exactly one status in
/// [`error_response`], so the mapping is tested in one place.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// 400: the request cannot be routed: it names no host (HTTP/1.0 without `Host`) or is a `CONNECT` (this is a
    /// reverse proxy, not a tunnel to arbitrary hosts).
    #[error("bad request: {reason}")]
    BadRequest { reason: &'static str },
    /// 404: no app is routed at this host.
    #[error("no app is deployed at {host}")]
    UnknownHost { host: String },
    /// 503: the app is routed but has no replica to send to (scaled to zero, or all stopped).
    #[error("{host} has no running replicas")]
    NoReplicas { host: String },
    /// 502: every replica refused the connection or timed out connecting, or the request failed after being sent.
    #[error("could not reach {host}: {source}")]
    BadGateway {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// 504: the replica accepted the request but sent no response headers within the response timeout.
    #[error("{host} did not answer in time")]
    Timeout { host: String },
}

impl ProxyError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::UnknownHost { .. } => StatusCode::NOT_FOUND,
            ProxyError::NoReplicas { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The response for `error`: its status, a small HTML page saying what happened in words a visitor of the app can
/// read, `Cache-Control: no-store` (an outage must not be cached by the browser or a CDN) and the request id, so a
/// visitor can quote it and an operator can find the cause (which is logged, not shown).
pub fn error_response(error: &ProxyError, request_id: &HeaderValue) -> Response<ProxyBody> {
    let status = error.status();
    let (title, message) = match error {
        ProxyError::BadRequest { reason } => ("Bad request", format!("The request {}.", escape_html(reason))),
        ProxyError::UnknownHost { host } => ("Not found", format!("No app is deployed at {}.", escape_html(host))),
        ProxyError::NoReplicas { host } => {
            ("Service unavailable", format!("{} has no running replicas.", escape_html(host)))
        }
        ProxyError::BadGateway { host, .. } => {
            ("Bad gateway", format!("The app at {} could not be reached.", escape_html(host)))
        }
        ProxyError::Timeout { host } => {
            ("Gateway timeout", format!("The app at {} did not answer in time.", escape_html(host)))
        }
    };
    let id = escape_html(request_id.to_str().unwrap_or(""));
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body><h1>{code} {title}</h1>\n<p>{message}</p>\n<p><small>Request id: {id}</small></p></body></html>\n",
        code = status.as_u16(),
    );
    let mut response = Response::new(Full::new(Bytes::from(page)).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID, request_id.clone());
    response
}

/// Escapes the five HTML-significant characters, so a hostile `Host` cannot inject markup into the error page.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
