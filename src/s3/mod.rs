//! The S3-compatible backup target: uploads finished backup files, fetches them back, deletes them. The only module
//! that imports `object_store` (Apache Arrow's object store client: SigV4 signing, multipart uploads, retries with
//! backoff, S3's XML errors), whose HTTP goes through Berth's own reqwest client (see [`http`]).

mod http;

use crate::config::S3Settings;
use crate::domain::upload_retry::UploadFailure;
use bytes::BytesMut;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Files up to this size go up in one PUT (read into memory); larger ones as a multipart upload of parts this
/// size (S3's minimum part is 5 MiB; 10 000 parts of 16 MiB allow files up to 156 GiB).
pub const PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts uploaded at once, so an upload holds at most this many parts in memory (plus the one being filled).
const PARTS_IN_FLIGHT: usize = 2;
/// How much of the file is read at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Why an S3 operation failed, in words an operator can act on (never with the secret).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The request did not get through or the service failed (connection errors, timeouts, 5xx, 429), after
    /// object_store's own quick retries.
    #[error("{0}")]
    Store(String),
    /// The service refused the request (401, 403, another 4xx but 408 and 429): it will not pass by waiting.
    #[error("{0}")]
    Refused(String),
    #[error("s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("while reading {path}: {source}")]
    Local { path: String, source: std::io::Error },
    #[error("the uploaded object has {remote} bytes, the file {local}")]
    SizeMismatch { local: u64, remote: u64 },
}

impl S3Error {
    /// How a failed upload is retried (see `domain::upload_retry`): refusals and unreadable local files need a
    /// person; everything else may pass by itself.
    pub fn upload_failure(&self) -> UploadFailure {
        match self {
            S3Error::Store(_) | S3Error::SizeMismatch { .. } => UploadFailure::Transient,
            S3Error::Refused(_) | S3Error::NotFound { .. } | S3Error::Local { .. } => UploadFailure::Refused,
        }
    }
}

/// A configured bucket; cheap to share (`Arc`), one connection pool.
#[derive(Debug)]
pub struct BackupTarget {
    store: AmazonS3,
    settings: S3Settings,
}

impl BackupTarget {
    /// Builds the client (no request is made). Fails only on settings object_store refuses.
    pub fn new(settings: &S3Settings) -> Result<BackupTarget, S3Error> {
        let connector =
            http::Connector::new().map_err(|e| S3Error::Store(format!("while building the HTTP client: {e}")))?;
        let store = AmazonS3Builder::new()
            .with_endpoint(settings.request_endpoint())
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(settings.addressing == crate::config::Addressing::VirtualHost)
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key.0)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(120),
            })
            .with_http_connector(connector)
            .build()
            .map_err(|e| S3Error::Store(message(&e)))?;
        Ok(BackupTarget { store, settings: settings.clone() })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// Whether a copy recorded at (endpoint, bucket) lives in this target.
    pub fn holds(&self, endpoint: &str, bucket: &str) -> bool {
        self.settings.endpoint == endpoint && self.settings.bucket == bucket
    }

    /// Uploads the file at `path` as `key`, streamed from disk (one PUT up to [`PART_SIZE`], multipart above it,
    /// aborted on failure), then checks the object's size. Returns the size.
    pub async fn upload_file(&self, path: &Path, key: &str) -> Result<u64, S3Error> {
        let local = |source| S3Error::Local { path: path.display().to_string(), source };
        let location = self.location(key)?;
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let size = file.metadata().await.map_err(local)?.len();
        if size <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut buf).await.map_err(local)?;
            self.store.put(&location, PutPayload::from(buf)).await.map_err(|e| self.error("uploading to", key, e))?;
        } else {
            let upload = self
                .store
                .put_multipart(&location)
                .await
                .map_err(|e| self.error("starting a multipart upload to", key, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            match feed(&mut file, &mut writer).await {
                Ok(()) => {
                    writer.finish().await.map_err(|e| self.error("finishing the multipart upload to", key, e))?;
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(match e {
                        Fed::Read(source) => local(source),
                        Fed::Store(e) => self.error("uploading to", key, e),
                    });
                }
            }
        }
        let meta = self.store.head(&location).await.map_err(|e| self.error("checking the upload of", key, e))?;
        if meta.size != size {
            return Err(S3Error::SizeMismatch { local: size, remote: meta.size });
        }
        Ok(size)
    }

    /// Downloads `key` into a new file at `dest` (mode 0600, synced), streamed; returns (size, SHA-256 hex). The
    /// caller checks the checksum and removes `dest` on any error.
    pub async fn download_file(&self, key: &str, dest: &Path) -> Result<(u64, String), S3Error> {
        use futures_util::StreamExt;
        let local = |source| S3Error::Local { path: dest.display().to_string(), source };
        let location = self.location(key)?;
        let got = self.store.get(&location).await.map_err(|e| self.error("fetching", key, e))?;
        let mut stream = got.into_stream();
        let mut file =
            tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dest).await.map_err(local)?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("fetching", key, e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Deletes `key`; an object that is already gone counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        match self.store.delete(&self.location(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", key, e)),
        }
    }

    fn location(&self, key: &str) -> Result<ObjectPath, S3Error> {
        ObjectPath::parse(key).map_err(|e| S3Error::Store(format!("'{key}' is not a valid object key: {e}")))
    }

    fn error(&self, doing: &str, key: &str, e: object_store::Error) -> S3Error {
        match e {
            object_store::Error::NotFound { .. } => {
                S3Error::NotFound { bucket: self.settings.bucket.clone(), key: key.to_owned() }
            }
            e => {
                let text = message(&e);
                let refused = matches!(
                    e,
                    object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
                ) || refusal(&text);
                let text =
                    format!("while {doing} s3://{}/{key} at {}: {text}", self.settings.bucket, self.settings.endpoint);
                if refused { S3Error::Refused(text) } else { S3Error::Store(text) }
            }
        }
    }
}

/// Why feeding a multipart upload stopped.
enum Fed {
    Read(std::io::Error),
    Store(object_store::Error),
}

async fn feed(file: &mut tokio::fs::File, writer: &mut WriteMultipart) -> Result<(), Fed> {
    loop {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        if file.read_buf(&mut buf).await.map_err(Fed::Read)? == 0 {
            return Ok(());
        }
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(Fed::Store)?;
        writer.put(buf.freeze());
    }
}

/// object_store's error with its causes, shortened to what an operator acts on (see [`summarize`]).
fn message(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    summarize(&text)
}

/// From object_store's long form ("Error performing PUT <url> in 1.2s, after 4 retries … - Server returned non-2xx
/// status code: 403 Forbidden: <?xml…><Code>…</Code><Message>…</Message>…") keeps the status with S3's error code
/// and message, or the connection error, and how many retries were made.
fn summarize(text: &str) -> String {
    let between = |s: &str, open: &str, close: &str| {
        let start = s.find(open)? + open.len();
        let len = s[start..].find(close)?;
        Some(s[start..start + len].trim().to_owned())
    };
    let retries = between(text, ", after ", " retries").map(|n| format!(" (after {n} retries)")).unwrap_or_default();
    const STATUS: &str = "Server returned non-2xx status code: ";
    if let Some(i) = text.find(STATUS) {
        let rest = &text[i + STATUS.len()..];
        let status = rest.split(':').next().unwrap_or(rest).trim();
        let detail = match (between(rest, "<Code>", "</Code>"), between(rest, "<Message>", "</Message>")) {
            (Some(code), Some(message)) => format!(": {code}: {message}"),
            (Some(code), None) => format!(": {code}"),
            _ => String::new(),
        };
        return format!("the server answered {status}{detail}{retries}");
    }
    const HTTP: &str = " - HTTP error: ";
    if let Some(i) = text.find(HTTP) {
        return format!("{}{retries}", text[i + HTTP.len()..].trim());
    }
    text.trim_start_matches("Generic S3 error: ").to_owned()
}

/// Whether a [`summarize`]d error is an answer that waiting will not change: a 4xx other than 408 (timeout) and
/// 429 (slow down).
fn refusal(summary: &str) -> bool {
    let Some(rest) = summary.strip_prefix("the server answered ") else { return false };
    let status: u16 = rest.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
    (400..500).contains(&status) && status != 408 && status != 429
}

#[cfg(test)]
mod tests {
    use super::{refusal, summarize};

    #[test]
    fn errors_keep_the_status_the_s3_code_and_message_or_the_connection_failure() {
        let refused = "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/k in 1.2s, after 4 retries, \
                       max_retries: 4, retry_timeout: 120s  - HTTP error: error sending request: client error \
                       (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            summarize(refused),
            "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111) \
             (after 4 retries)"
        );
        let denied = "The operation lacked the necessary privileges to complete for path k: Error performing PUT \
                      http://127.0.0.1:1/b/k in 29ms - Server returned non-2xx status code: 403 Forbidden: <?xml \
                      version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we \
                      calculated does not match</Message></Error>";
        assert_eq!(
            summarize(denied),
            "the server answered 403 Forbidden: SignatureDoesNotMatch: The request signature we calculated does not \
             match"
        );
        assert_eq!(summarize("Generic S3 error: Missing bucket name"), "Missing bucket name");
        assert!(refusal(&summarize(denied)));
        assert!(!refusal(&summarize(refused)));
    }

    #[test]
    fn only_answers_that_waiting_will_not_change_are_refusals() {
        for status in ["400 Bad Request", "401 Unauthorized", "403 Forbidden", "404 Not Found", "412 Precondition"] {
            assert!(refusal(&format!("the server answered {status}: X")), "{status}");
        }
        for status in ["408 Request Timeout", "429 Too Many Requests", "500 Internal", "503 Slow Down"] {
            assert!(!refusal(&format!("the server answered {status}: X (after 4 retries)")), "{status}");
        }
        assert!(!refusal("error sending request: connection refused"));
    }
}
