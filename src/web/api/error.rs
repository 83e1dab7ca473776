//! The API's error envelope: `{"success": false, "error": "<what to fix>", "code": "<machine code>"}`.

use crate::services::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A human message that says what to fix (for 5xx: "internal error" and a request id).
    pub error: String,
    /// A stable machine-readable code, e.g. `invalid_parameter`, `not_found`, `slug_taken`.
    pub code: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// Status and machine code for each kind of service error: the one place this mapping lives.
pub fn status_and_code(e: &ServiceError) -> (StatusCode, &'static str) {
    match e {
        ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
        ServiceError::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
        ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ServiceError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
        ServiceError::Gone { code, .. } => (StatusCode::GONE, code),
        ServiceError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ServiceError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        ServiceError::Rejected { code, .. } => (StatusCode::BAD_REQUEST, code),
        ServiceError::Upstream { code, .. } => (StatusCode::BAD_GATEWAY, code),
        ServiceError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "docker_unavailable"),
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

/// Builds an error response with an explicit status, code and message.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody { success: false, error: message.into(), code: code.to_owned() })).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self.0);
        let message = match &self.0 {
            ServiceError::Internal(cause) => {
                let request_id = uuid::Uuid::now_v7().simple().to_string();
                tracing::error!(%request_id, cause = %cause, "internal error");
                format!("internal error (request id {request_id})")
            }
            ServiceError::RateLimited { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let mut response = error_response(status, code, message);
        if let ServiceError::RateLimited { retry_after, .. } = &self.0
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_status() {
        let cases = [
            (ServiceError::invalid("name", "x"), 400),
            (ServiceError::unauthorized("invalid_api_key", "x"), 401),
            (ServiceError::Forbidden("x".into()), 403),
            (ServiceError::NotFound("x".into()), 404),
            (ServiceError::conflict("slug_taken", "x"), 409),
            (ServiceError::Gone { code: "invitation_used", message: "x".into() }, 410),
            (ServiceError::RateLimited { retry_after: 3, message: "x".into() }, 429),
            (ServiceError::Rejected { code: "git_auth_refused", message: "x".into() }, 400),
            (ServiceError::Upstream { code: "git_unreachable", message: "x".into() }, 502),
            (ServiceError::Unavailable("x".into()), 503),
            (ServiceError::Internal("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(status_and_code(&e).0.as_u16(), status, "{e:?}");
        }
    }

    #[test]
    fn internal_errors_leak_nothing_and_rate_limits_say_when_to_retry() {
        let r = ApiError(ServiceError::Internal("disk I/O error at /var/lib/berth".into())).into_response();
        assert_eq!(r.status(), 500);
        let r = ApiError(ServiceError::RateLimited { retry_after: 7, message: "slow down".into() }).into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
    }
}
