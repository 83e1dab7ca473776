//! The dashboard's CSS and JavaScript, compiled into the binary and served under content-hashed URLs
//! (`/static/app.<hash>.css`) with a year-long immutable cache: a new build changes the hash, so browsers never
//! see a stale file and never revalidate a current one.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One embedded file and the URL it is served at.
pub struct Asset {
    pub url: String,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body)[..6]);
    Asset { url: format!("/static/{stem}.{hash}.{ext}"), body, content_type }
}

/// The stylesheet.
pub static CSS: LazyLock<Asset> =
    LazyLock::new(|| asset("app", "css", include_bytes!("../../static/app.css"), "text/css; charset=utf-8"));
/// The script: live logs over EventSource, copy buttons, confirmations.
pub static JS: LazyLock<Asset> =
    LazyLock::new(|| asset("app", "js", include_bytes!("../../static/app.js"), "text/javascript; charset=utf-8"));

/// `GET /static/:file`: the asset whose hashed name matches, else 404 (an old hash is gone with its build).
pub async fn static_get(Path(file): Path<String>) -> Response {
    let path = format!("/static/{file}");
    for a in [&*CSS, &*JS] {
        if a.url == path {
            return (
                [
                    (header::CONTENT_TYPE, a.content_type),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                a.body,
            )
                .into_response();
        }
    }
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        assert!(CSS.url.starts_with("/static/app.") && CSS.url.ends_with(".css"), "{}", CSS.url);
        assert_eq!(CSS.url.len(), "/static/app..css".len() + 12);
        assert_ne!(CSS.url.replace(".css", ""), JS.url.replace(".js", ""));
    }
}
