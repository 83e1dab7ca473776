//! object_store's HTTP transport, backed by Berth's own reqwest 0.12 client (rustls with ring, webpki roots), so
//! the S3 client adds no second HTTP client or TLS stack.

use http_body_util::BodyExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use std::time::Duration;

/// How long connecting to the S3 endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the endpoint may stay silent mid-request.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one request (a part of at most `PART_SIZE`, or a small object) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Hands object_store our client (it calls `connect` once, when the store is built).
#[derive(Debug)]
pub(super) struct Connector(reqwest::Client);

impl Connector {
    pub(super) fn new() -> Result<Connector, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Connector(client))
    }
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &object_store::ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Service(self.0.clone())))
    }
}

#[derive(Debug)]
struct Service(reqwest::Client);

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let mut request = reqwest::Request::new(parts.method, url);
        *request.headers_mut() = parts.headers;
        *request.body_mut() = Some(match body.as_bytes() {
            Some(bytes) => reqwest::Body::from(bytes.clone()),
            None => reqwest::Body::wrap(body),
        });
        let response = self.0.execute(request).await.map_err(classify)?;
        let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body.map_err(classify))))
    }
}

/// Which failures object_store may retry: connecting, timeouts and broken connections are; decoding is not.
fn classify(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else if e.is_body() {
        HttpErrorKind::Interrupted
    } else {
        HttpErrorKind::Request
    };
    HttpError::new(kind, e.without_url())
}
