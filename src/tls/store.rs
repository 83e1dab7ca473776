//! Certificates on disk: `<data_dir>/tls/certs/<primary name>/{cert.pem,key.pem,meta.json}`.
//!
//! Files are 0600 and directories 0700. A certificate is written into a fresh temporary directory which then
//! replaces the old one by renames, so a crash leaves either the old or the new certificate, never half of one; a
//! crash between the two renames leaves the old one under `.old-<name>`, which loading puts back.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::TlsError;

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const META_FILE: &str = "meta.json";

/// What `meta.json` records beside the PEM files: what the certificate was issued for and by whom. Validity and
/// serial are read from the certificate itself at load, so they cannot disagree with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CertMeta {
    /// The names asked for, primary first.
    pub names: Vec<String>,
    /// Which issuer configuration produced it: `acme <directory URL>` or `internal`. A certificate from another
    /// issuer than the configured one is replaced.
    pub source: String,
    pub issued_at: DateTime<Utc>,
}

/// A certificate ready to serve, with the facts the manager schedules on.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCert {
    pub meta: CertMeta,
    pub key: Arc<CertifiedKey>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Hex serial number, for telling a renewed certificate from the old one.
    pub serial: String,
    /// The issuing CA's common name (or whole subject when it has none).
    pub issuer: String,
}

/// The certificate directory under `<data_dir>/tls/certs`.
#[derive(Debug, Clone)]
pub(crate) struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    pub fn new(tls_dir: &Path) -> CertStore {
        CertStore { dir: tls_dir.join("certs") }
    }

    /// Writes a certificate for `meta.names[0]` atomically, replacing any previous one, and returns it parsed.
    /// Refuses a chain whose key does not match, so a bad issuance never replaces a good certificate.
    pub async fn save(&self, chain_pem: String, key_pem: String, meta: CertMeta) -> Result<LoadedCert, TlsError> {
        let loaded = parse(&chain_pem, &key_pem, meta.clone())?;
        let root = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let primary = meta.names.first().cloned().unwrap_or_default();
            let meta_json = serde_json::to_vec_pretty(&meta)
                .map_err(|e| TlsError::BadCertificate(format!("while encoding meta.json: {e}")))?;
            write_cert_dir(
                &root,
                &dir_name(&primary),
                &[(CERT_FILE, chain_pem.as_bytes()), (KEY_FILE, key_pem.as_bytes()), (META_FILE, &meta_json)],
            )
        })
        .await
        .map_err(|e| TlsError::Io {
            context: "while saving a certificate".into(),
            source: std::io::Error::other(e),
        })??;
        Ok(loaded)
    }

    /// Loads every stored certificate. One that cannot be read or parsed is skipped with a warning (it will be
    /// issued again), so a damaged file never stops the rest from being served.
    pub async fn load_all(&self) -> Vec<LoadedCert> {
        let root = self.dir.clone();
        tokio::task::spawn_blocking(move || load_all_blocking(&root)).await.unwrap_or_default()
    }
}

fn load_all_blocking(root: &Path) -> Vec<LoadedCert> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    // Put back a certificate whose replacement was interrupted between the two renames.
    let interrupted: Vec<String> = names.iter().filter_map(|n| n.strip_prefix(".old-")).map(str::to_owned).collect();
    for old in interrupted {
        if !root.join(&old).exists() && fs::rename(root.join(format!(".old-{old}")), root.join(&old)).is_ok() {
            names.push(old);
        }
    }
    names.retain(|n| !n.starts_with('.'));
    names.sort();
    let mut loaded = Vec::new();
    for name in names {
        let dir = root.join(&name);
        let read = || -> Result<LoadedCert, TlsError> {
            let text = |file: &str| fs::read_to_string(dir.join(file)).map_err(TlsError::io(format!("reading {file}")));
            let meta: CertMeta = serde_json::from_str(&text(META_FILE)?)
                .map_err(|e| TlsError::BadCertificate(format!("meta.json: {e}")))?;
            parse(&text(CERT_FILE)?, &text(KEY_FILE)?, meta)
        };
        match read() {
            Ok(cert) => loaded.push(cert),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "stored certificate skipped; it will be issued again")
            }
        }
    }
    loaded
}

/// Parses a PEM chain (leaf first) and PEM private key into a servable certificate, checking they match.
pub(crate) fn parse(chain_pem: &str, key_pem: &str, meta: CertMeta) -> Result<LoadedCert, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate(format!("certificate PEM: {e}")))?;
    let leaf = chain.first().ok_or_else(|| TlsError::BadCertificate("no certificate in the chain".into()))?.clone();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::BadCertificate(format!("private key PEM: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| TlsError::BadCertificate(format!("certificate and key: {e}")))?;
    let (_, x509) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| TlsError::BadCertificate(format!("certificate: {e}")))?;
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0)
            .ok_or_else(|| TlsError::BadCertificate("validity out of range".into()))
    };
    let issuer = x509
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| x509.issuer().to_string(), str::to_owned);
    Ok(LoadedCert {
        not_before: time(x509.validity().not_before)?,
        not_after: time(x509.validity().not_after)?,
        serial: x509.tbs_certificate.raw_serial_as_string(),
        issuer,
        key: Arc::new(certified),
        meta,
    })
}

/// The directory name for a primary name: `*.example.com` becomes `_.example.com` (`_` cannot occur in a
/// certificate's host name, so it never collides with a real name).
pub(crate) fn dir_name(primary: &str) -> String {
    match primary.strip_prefix("*.") {
        Some(parent) => format!("_.{parent}"),
        None => primary.to_owned(),
    }
}

/// Writes `files` into `<root>/<name>/`, replacing the directory as a whole.
fn write_cert_dir(root: &Path, name: &str, files: &[(&str, &[u8])]) -> Result<(), TlsError> {
    create_private_dir(root)?;
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let tmp = root.join(format!(".tmp-{name}-{}-{nonce}", std::process::id()));
    create_private_dir(&tmp)?;
    for (file, bytes) in files {
        write_new_private(&tmp.join(file), bytes)?;
    }
    sync_dir(&tmp);
    let target = root.join(name);
    let old = root.join(format!(".old-{name}"));
    if target.exists() {
        let _ = fs::remove_dir_all(&old);
        fs::rename(&target, &old).map_err(TlsError::io(format!("moving aside {}", target.display())))?;
    }
    fs::rename(&tmp, &target).map_err(TlsError::io(format!("putting {} in place", target.display())))?;
    sync_dir(root);
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700, and tightens it to 0700 when it already existed.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(TlsError::io(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(TlsError::io(format!("setting permissions of {}", dir.display())))
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file beside it, synced, then renamed over.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    create_private_dir(parent)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_new_private(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(TlsError::io(format!("putting {} in place", path.display())))?;
    sync_dir(parent);
    Ok(())
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let context = || format!("writing {}", path.display());
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(TlsError::io(context()))?;
    file.write_all(bytes).map_err(TlsError::io(context()))?;
    file.sync_all().map_err(TlsError::io(context()))
}

/// Makes renames in `dir` durable; best effort (some file systems refuse to sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn meta(names: &[&str]) -> CertMeta {
        CertMeta {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            source: "internal".into(),
            issued_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn saves_private_files_replaces_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let (cert, key) = self_signed(&["*.example.test", "example.test"]);
        let first = store.save(cert, key, meta(&["*.example.test", "example.test"])).await.unwrap();
        let cert_dir = dir.path().join("certs/_.example.test");
        for file in [CERT_FILE, KEY_FILE, META_FILE] {
            assert_eq!(fs::metadata(cert_dir.join(file)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(fs::metadata(&cert_dir).unwrap().permissions().mode() & 0o777, 0o700);

        let (cert, key) = self_signed(&["*.example.test", "example.test"]);
        let second = store.save(cert, key, meta(&["*.example.test", "example.test"])).await.unwrap();
        assert_ne!(first.serial, second.serial);
        let loaded = store.load_all().await;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].serial, second.serial);
        assert_eq!(loaded[0].meta.names[0], "*.example.test");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("certs")).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "no temporary or old directories are left behind");
    }

    #[tokio::test]
    async fn an_interrupted_replacement_is_recovered_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(dir.path());
        let (cert, key) = self_signed(&["a.test"]);
        store.save(cert.clone(), key, meta(&["a.test"])).await.unwrap();
        let certs = dir.path().join("certs");
        fs::rename(certs.join("a.test"), certs.join(".old-a.test")).unwrap();
        assert_eq!(store.load_all().await.len(), 1, "the old certificate is put back");

        let (_, other_key) = self_signed(&["a.test"]);
        let refused = store.save(cert, other_key, meta(&["a.test"])).await;
        assert!(matches!(refused, Err(TlsError::BadCertificate(_))), "{refused:?}");
        fs::write(certs.join("a.test").join(KEY_FILE), "garbage").unwrap();
        assert!(store.load_all().await.is_empty(), "a damaged certificate is skipped");
    }
}
