//! Encryption at rest for secret values (env var secrets, git tokens, deploy keys, webhook secrets).
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) with a random 192-bit nonce per value, under a 256-bit
//! key kept in a file of its own (mode 0600), never in the database. A sealed value reads
//! `v1.<key id>.<base64(nonce ‖ ciphertext)>`; the key id (8 hex digits of the key's SHA-256) lets a rotated
//! keyring open values written under the previous key. Each value is bound to what it belongs to through the
//! associated data (e.g. `var:<id>`), so a ciphertext copied onto another row does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a key file or a sealed value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("secret key file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("secret value was sealed under key {0}, which is not in the keyring (was the key file replaced?)")]
    UnknownKey(String),
    #[error("secret value is corrupt or does not belong here ({0})")]
    Corrupt(&'static str),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn from_bytes(bytes: &[u8; 32]) -> Key {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Key { id, cipher: XChaCha20Poly1305::new(bytes.into()) }
    }
}

/// The current key plus older ones kept to read values sealed before a rotation.
pub struct Keyring {
    current: Key,
    older: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let older: Vec<&str> = self.older.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("current", &self.current.id).field("older", &older).finish()
    }
}

impl Keyring {
    /// A keyring over one key (tests, and a fresh rotation).
    pub fn from_key(bytes: &[u8; 32]) -> Keyring {
        Keyring { current: Key::from_bytes(bytes), older: Vec::new() }
    }

    /// Loads `path`, creating it (32 random bytes, hex, mode 0600, in a 0700 directory if that is new) when it
    /// does not exist. Refuses a key file that group or others can read. Also loads `<path>.old` and `<path>.new`
    /// when present, so values stay readable across an interrupted or recent rotation.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyringError> {
        if !path.exists() {
            let key = new_key_bytes()?;
            write_key_file(path, &key)?;
            tracing::info!(path = %path.display(), "created the secret key file; back it up with the database");
        }
        let current = Key::from_bytes(&read_key_file(path)?);
        let mut older = Vec::new();
        for suffix in ["new", "old"] {
            let p = sibling(path, suffix);
            if p.exists() {
                let k = Key::from_bytes(&read_key_file(&p)?);
                if k.id != current.id {
                    older.push(k);
                }
            }
        }
        Ok(Keyring { current, older })
    }

    /// The id of the key new values are sealed under.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, KeyringError> {
        seal_with(&self.current, plaintext, aad)
    }

    /// Opens a value made by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, KeyringError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyringError::Corrupt("not a sealed value"));
        };
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
            .ok_or_else(|| KeyringError::UnknownKey(id.to_owned()))?;
        let raw = B64.decode(body).map_err(|_| KeyringError::Corrupt("bad encoding"))?;
        if raw.len() < 24 + 16 {
            return Err(KeyringError::Corrupt("too short"));
        }
        let (nonce, ct) = raw.split_at(24);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map_err(|_| KeyringError::Corrupt("authentication failed"))
    }

    /// Opens a value as UTF-8 text.
    pub fn open_string(&self, sealed: &str, aad: &str) -> Result<String, KeyringError> {
        String::from_utf8(self.open(sealed, aad)?).map_err(|_| KeyringError::Corrupt("not UTF-8"))
    }
}

fn seal_with(key: &Key, plaintext: &[u8], aad: &str) -> Result<String, KeyringError> {
    let nonce: [u8; 24] = super::random_bytes().map_err(|e| KeyringError::Random(e.to_string()))?;
    let ct = key
        .cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
        .map_err(|_| KeyringError::Corrupt("encryption failed"))?;
    let mut raw = Vec::with_capacity(24 + ct.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&ct);
    Ok(format!("v1.{}.{}", key.id, B64.encode(raw)))
}

/// `<path>.<suffix>`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// 32 fresh random bytes.
pub fn new_key_bytes() -> Result<[u8; 32], KeyringError> {
    super::random_bytes().map_err(|e| KeyringError::Random(e.to_string()))
}

/// Writes a key file with mode 0600 (creating its directory with 0700 if missing) and syncs it to disk.
pub fn write_key_file(path: &Path, key: &[u8; 32]) -> Result<(), KeyringError> {
    let err = |message: String| KeyringError::File { path: path.to_path_buf(), message };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its directory: {e}")))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(format!("cannot write: {e}")))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| err(format!("cannot chmod: {e}")))?;
    f.write_all(format!("{}\n", hex::encode(key)).as_bytes()).map_err(|e| err(format!("cannot write: {e}")))?;
    f.sync_all().map_err(|e| err(format!("cannot sync: {e}")))?;
    Ok(())
}

fn read_key_file(path: &Path) -> Result<[u8; 32], KeyringError> {
    let err = |message: String| KeyringError::File { path: path.to_path_buf(), message };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "is readable by group or others (mode {:o}); run: chmod 600 {}",
            meta.permissions().mode() & 0o777,
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let bytes = hex::decode(text.trim()).map_err(|_| err("must hold 64 hex digits (32 bytes)".into()))?;
    bytes.try_into().map_err(|_| err("must hold 64 hex digits (32 bytes)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let k = Keyring::from_key(&[7; 32]);
        let s = k.seal(b"hunter2", "var:1").unwrap();
        assert!(s.starts_with(&format!("v1.{}.", k.current_id())));
        assert!(!s.contains("hunter2"));
        assert_eq!(k.open(&s, "var:1").unwrap(), b"hunter2");
        assert_ne!(s, k.seal(b"hunter2", "var:1").unwrap(), "nonces must differ");
        assert!(matches!(k.open(&s, "var:2"), Err(KeyringError::Corrupt(_))));
        let other = Keyring::from_key(&[8; 32]);
        assert!(matches!(other.open(&s, "var:1"), Err(KeyringError::UnknownKey(_))));
    }

    #[test]
    fn key_files_are_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let k = Keyring::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = k.seal(b"x", "a").unwrap();
        let again = Keyring::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "a").unwrap(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keyring::load_or_create(&path).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // After a rotation the previous key lives on as `.old` and still opens old values.
        std::fs::rename(&path, sibling(&path, "old")).unwrap();
        write_key_file(&path, &[9; 32]).unwrap();
        let rotated = Keyring::load_or_create(&path).unwrap();
        assert_eq!(rotated.open(&sealed, "a").unwrap(), b"x");
        assert_ne!(rotated.current_id(), k.current_id());
    }
}
