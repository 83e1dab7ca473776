//! The optional S3-compatible backup target: the `s3_*` keys validated into [`S3Settings`]. Pure: the only I/O
//! is reading `s3_secret_access_key_file`, so the secret need not sit in the config file.

use super::Secret;
use crate::domain::upload_retry::UploadRetry;
use std::path::PathBuf;

/// How object URLs name the bucket (`s3_addressing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://<endpoint>/<bucket>/<key>`: MinIO, Ceph, Garage, moto, and most S3-compatible services.
    Path,
    /// `https://<bucket>.<endpoint>/<key>`: AWS's default, also Wasabi, R2 and B2.
    VirtualHost,
}

impl Addressing {
    pub fn as_str(self) -> &'static str {
        match self {
            Addressing::Path => "path",
            Addressing::VirtualHost => "virtual-host",
        }
    }
}

/// Where finished backups are also uploaded. Present in [`super::Config`] only when `s3_bucket` is set.
/// `Debug` masks the secret, so logging the config cannot leak it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The service's base URL without the bucket (`https://s3.eu-west-1.amazonaws.com`,
    /// `https://<account>.r2.cloudflarestorage.com`, `http://minio.lan:9000`); no trailing slash.
    pub endpoint: String,
    /// The signing region (`us-east-1`, `auto` for R2, `eu-central-003` for B2…).
    pub region: String,
    pub bucket: String,
    /// Object keys are `<prefix>/<database id>/<file name>`; no leading or trailing `/`; may be empty.
    pub prefix: String,
    pub addressing: Addressing,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// When failed uploads are tried again. Not a config key: always the documented schedule, shortened by tests.
    pub upload_retry: UploadRetry,
}

impl S3Settings {
    /// The object key of a backup file: `<prefix>/<database id>/<file name>` (no prefix: `<database id>/<file>`).
    pub fn object_key(&self, database_id: &str, file_name: &str) -> String {
        object_key(&self.prefix, database_id, file_name)
    }

    /// The base URL requests go to: the endpoint, with the bucket as the first host label for virtual-host
    /// addressing.
    pub fn request_endpoint(&self) -> String {
        match self.addressing {
            Addressing::Path => self.endpoint.clone(),
            Addressing::VirtualHost => match self.endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", self.bucket),
                None => self.endpoint.clone(),
            },
        }
    }
}

/// See [`S3Settings::object_key`].
pub fn object_key(prefix: &str, database_id: &str, file_name: &str) -> String {
    if prefix.is_empty() { format!("{database_id}/{file_name}") } else { format!("{prefix}/{database_id}/{file_name}") }
}

/// The `s3_*` keys as the layers gave them.
#[derive(Debug, Default)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub addressing: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// The default `s3_prefix`.
pub const DEFAULT_PREFIX: &str = "berth";
/// The default `s3_region`.
pub const DEFAULT_REGION: &str = "us-east-1";

fn set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// Validates the `s3_*` keys: `Ok(None)` when no S3 target is configured (no key set), else every key checked.
/// An error is (key, message saying what to fix); the message never contains the secret.
pub fn validate(raw: RawS3) -> Result<Option<S3Settings>, (&'static str, String)> {
    let any_other = [
        ("s3_endpoint", set(&raw.endpoint)),
        ("s3_region", set(&raw.region)),
        ("s3_prefix", raw.prefix.is_some()),
        ("s3_addressing", set(&raw.addressing)),
        ("s3_access_key_id", set(&raw.access_key_id)),
        ("s3_secret_access_key", set(&raw.secret_access_key)),
        ("s3_secret_access_key_file", raw.secret_access_key_file.is_some()),
    ]
    .into_iter()
    .find(|(_, on)| *on);
    let bucket = match raw.bucket.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => b.to_owned(),
        None => {
            return match any_other {
                Some((key, _)) => Err((
                    "s3_bucket",
                    format!(
                        "must be set because {key} is (set the bucket, or remove every s3_* key to keep backups only under the data dir)"
                    ),
                )),
                None => Ok(None),
            };
        }
    };

    let region = raw.region.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or(DEFAULT_REGION).to_owned();
    if region.len() > 64 || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(("s3_region", format!("'{region}' is not a region like us-east-1, eu-central-003 or auto")));
    }

    let endpoint = match raw.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(validate_endpoint(e).map_err(|m| ("s3_endpoint", m))?),
        None => None,
    };
    let addressing = match raw.addressing.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None if endpoint.is_some() => Addressing::Path,
        None => Addressing::VirtualHost,
        Some("path") => Addressing::Path,
        Some("virtual-host") => Addressing::VirtualHost,
        Some(other) => {
            return Err(("s3_addressing", format!("'{other}' must be \"path\" or \"virtual-host\"")));
        }
    };
    let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));

    let bucket_chars = bucket.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let edges_ok = bucket.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && bucket.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    if !(3..=63).contains(&bucket.len()) || !bucket_chars || !edges_ok {
        return Err((
            "s3_bucket",
            format!(
                "'{bucket}' is not a bucket name: 3 to 63 letters, digits, '.', '-' or '_', starting and ending with a letter or digit"
            ),
        ));
    }
    if addressing == Addressing::VirtualHost {
        let dns_ok = bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !dns_ok {
            return Err((
                "s3_bucket",
                format!(
                    "'{bucket}' cannot be a host name label for virtual-host addressing (only lowercase letters, digits and '-'): set s3_addressing = \"path\""
                ),
            ));
        }
    }

    let prefix = raw.prefix.as_deref().unwrap_or(DEFAULT_PREFIX).trim().trim_matches('/').to_owned();
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if prefix.len() > 256 || (!prefix.is_empty() && !prefix.split('/').all(segment_ok)) {
        return Err((
            "s3_prefix",
            format!(
                "'{prefix}' is not a key prefix like berth or backups/berth-1: '/'-separated parts of letters, digits, '.', '-' and '_'"
            ),
        ));
    }

    let access_key_id = raw.access_key_id.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if access_key_id.is_empty() {
        return Err(("s3_access_key_id", "must be set when s3_bucket is (the access key's id, e.g. AKIA…)".into()));
    }
    if access_key_id.len() > 256 || access_key_id.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(("s3_access_key_id", "must be one word without spaces (the access key's id, e.g. AKIA…)".into()));
    }

    let inline = raw.secret_access_key.filter(|s| !s.trim().is_empty());
    let secret = match (inline, raw.secret_access_key_file) {
        (Some(_), Some(_)) => {
            return Err((
                "s3_secret_access_key_file",
                "set either s3_secret_access_key or s3_secret_access_key_file, not both".into(),
            ));
        }
        (Some(s), None) => s.trim().to_owned(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ("s3_secret_access_key_file", format!("cannot read {}: {e}", path.display())))?;
            let s = text.trim().to_owned();
            if s.is_empty() {
                return Err(("s3_secret_access_key_file", format!("{} is empty", path.display())));
            }
            s
        }
        (None, None) => {
            return Err((
                "s3_secret_access_key",
                "must be set when s3_bucket is: give it as BERTH_S3_SECRET_ACCESS_KEY or point s3_secret_access_key_file at a file holding it"
                    .into(),
            ));
        }
    };
    if secret.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(("s3_secret_access_key", "must be one word without spaces or line breaks".into()));
    }

    Ok(Some(S3Settings {
        endpoint,
        region,
        bucket,
        prefix,
        addressing,
        access_key_id,
        secret_access_key: Secret(secret),
        upload_retry: UploadRetry::default(),
    }))
}

/// `s3_endpoint`: an `http(s)://host[:port]` URL, without credentials, path (a bucket goes in `s3_bucket`) or query.
fn validate_endpoint(e: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(e)
        .map_err(|err| format!("'{e}' is not a URL like https://s3.eu-west-1.amazonaws.com ({err})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("'{e}' must start with https:// (or http:// on a trusted network)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{e}' has no host name"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials: use s3_access_key_id and s3_secret_access_key".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "'{e}' must be only scheme, host and port, like https://s3.eu-west-1.amazonaws.com; put the bucket in s3_bucket and a folder in s3_prefix"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawS3 {
        RawS3 {
            bucket: Some("berth-backups".into()),
            access_key_id: Some("AKIAEXAMPLE".into()),
            secret_access_key: Some("s3cr3t/Key+value".into()),
            ..RawS3::default()
        }
    }

    #[test]
    fn nothing_set_means_no_target_and_a_bucket_alone_is_not_enough() {
        assert_eq!(validate(RawS3::default()), Ok(None));
        let e = validate(RawS3 { endpoint: Some("https://s3.example.com".into()), ..RawS3::default() }).unwrap_err();
        assert_eq!(e.0, "s3_bucket");
        assert!(e.1.contains("s3_endpoint"), "{}", e.1);
        let e = validate(RawS3 { bucket: Some("b-1".into()), ..RawS3::default() }).unwrap_err();
        assert_eq!(e.0, "s3_access_key_id");
        let e = validate(RawS3 { secret_access_key: None, ..raw() }).unwrap_err();
        assert_eq!(e.0, "s3_secret_access_key");
        assert!(e.1.contains("BERTH_S3_SECRET_ACCESS_KEY"), "{}", e.1);
    }

    #[test]
    fn aws_by_default_virtual_host_and_path_style_for_other_endpoints() {
        let s = validate(raw()).unwrap().unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.region.as_str(), s.prefix.as_str(), s.addressing),
            ("https://s3.us-east-1.amazonaws.com", "us-east-1", "berth", Addressing::VirtualHost)
        );
        assert_eq!(s.request_endpoint(), "https://berth-backups.s3.us-east-1.amazonaws.com");
        let s = validate(RawS3 {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            region: Some("auto".into()),
            prefix: Some("/ops/berth-1/".into()),
            ..raw()
        })
        .unwrap()
        .unwrap();
        assert_eq!((s.endpoint.as_str(), s.addressing), ("http://127.0.0.1:9000", Addressing::Path));
        assert_eq!(s.request_endpoint(), "http://127.0.0.1:9000");
        assert_eq!(s.object_key("d1", "shop-x.dump.gz"), "ops/berth-1/d1/shop-x.dump.gz");
        let s = validate(RawS3 {
            endpoint: Some("https://s3.eu-central-003.backblazeb2.com".into()),
            addressing: Some("virtual-host".into()),
            prefix: Some(String::new()),
            ..raw()
        })
        .unwrap()
        .unwrap();
        assert_eq!(s.request_endpoint(), "https://berth-backups.s3.eu-central-003.backblazeb2.com");
        assert_eq!(s.object_key("d1", "f.gz"), "d1/f.gz");
    }

    #[test]
    fn bad_values_name_the_key_and_what_to_fix() {
        for (r, key, says) in [
            (RawS3 { endpoint: Some("s3.amazonaws.com".into()), ..raw() }, "s3_endpoint", "URL"),
            (RawS3 { endpoint: Some("ftp://s3.example.com".into()), ..raw() }, "s3_endpoint", "https://"),
            (RawS3 { endpoint: Some("https://s3.example.com/my-bucket".into()), ..raw() }, "s3_endpoint", "s3_bucket"),
            (RawS3 { endpoint: Some("https://k:s@s3.example.com".into()), ..raw() }, "s3_endpoint", "credentials"),
            (RawS3 { addressing: Some("vhost".into()), ..raw() }, "s3_addressing", "\"path\""),
            (RawS3 { bucket: Some("a".into()), ..raw() }, "s3_bucket", "3 to 63"),
            (RawS3 { bucket: Some("-bad-".into()), ..raw() }, "s3_bucket", "3 to 63"),
            (RawS3 { bucket: Some("My_Bucket".into()), ..raw() }, "s3_bucket", "s3_addressing = \"path\""),
            (RawS3 { region: Some("eu west".into()), ..raw() }, "s3_region", "us-east-1"),
            (RawS3 { prefix: Some("a/../b".into()), ..raw() }, "s3_prefix", "parts"),
            (RawS3 { prefix: Some("a b".into()), ..raw() }, "s3_prefix", "parts"),
            (RawS3 { access_key_id: Some("AK IA".into()), ..raw() }, "s3_access_key_id", "without spaces"),
            (
                RawS3 { secret_access_key_file: Some("/nonexistent/s3.key".into()), ..raw() },
                "s3_secret_access_key_file",
                "not both",
            ),
        ] {
            let (k, m) = validate(r).unwrap_err();
            assert_eq!(k, key, "{m}");
            assert!(m.contains(says), "{key}: {m}");
            assert!(!m.contains("s3cr3t"), "an error never shows the secret: {m}");
        }
        let (k, m) = validate(RawS3 {
            secret_access_key: None,
            secret_access_key_file: Some("/nonexistent/s3.key".into()),
            ..raw()
        })
        .unwrap_err();
        assert_eq!(k, "s3_secret_access_key_file");
        assert!(m.contains("/nonexistent/s3.key"), "{m}");
        let (k, _) = validate(RawS3 { secret_access_key: Some("two words".into()), ..raw() }).unwrap_err();
        assert_eq!(k, "s3_secret_access_key");
        // Path addressing takes names that are not host labels.
        assert!(validate(RawS3 { bucket: Some("My_Bucket".into()), addressing: Some("path".into()), ..raw() }).is_ok());
    }

    #[test]
    fn the_secret_comes_from_a_file_trimmed_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3.key");
        std::fs::write(&file, "from-a-file-secret\n").unwrap();
        let s = validate(RawS3 { secret_access_key: None, secret_access_key_file: Some(file.clone()), ..raw() })
            .unwrap()
            .unwrap();
        assert_eq!(s.secret_access_key.0, "from-a-file-secret");
        assert!(!format!("{s:?}").contains("from-a-file-secret"));
        std::fs::write(&file, "\n").unwrap();
        let (k, m) =
            validate(RawS3 { secret_access_key: None, secret_access_key_file: Some(file), ..raw() }).unwrap_err();
        assert_eq!(k, "s3_secret_access_key_file");
        assert!(m.contains("empty"), "{m}");
    }
}
