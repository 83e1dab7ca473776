//! Credentials: random tokens from the OS CSPRNG, SHA-256 digests for keys and tokens, argon2id for passwords.

pub mod keyring;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The fixed start of every API key.
pub const API_KEY_PREFIX: &str = "berth_sk_";

/// The OS random source failed: nothing secure can be made without it.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// `n` random bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(buf)
}

/// A random token of 32 bytes as 64 lowercase hex digits (sessions, invitations, setup).
pub fn random_token() -> Result<String, RandomError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// A new API key: `berth_sk_` + 40 lowercase hex digits (160 random bits).
pub fn new_api_key() -> Result<String, RandomError> {
    Ok(format!("{API_KEY_PREFIX}{}", hex::encode(random_bytes::<20>()?)))
}

/// Whether `s` has the shape of an API key. Cheap, so malformed keys are refused before any lookup.
pub fn looks_like_api_key(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX)
        .is_some_and(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The part of a key that may be shown again: `berth_sk_` and 4 hex digits.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 4).collect()
}

/// SHA-256 of a high-entropy secret (API key, session or invitation token). Such secrets need no slow hash.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two digests in constant time.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Hashing a password failed (only on a broken random source or absurd parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes) and a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt_bytes = random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches a stored argon2 hash. A malformed stored hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash that matches no password, verified against when the user does not exist so timing does not tell.
pub const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Iu0WkZ2Kqg2EMzmi3A3KRzv0Y0eMNg3OK0a4YmD9Rk";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_documented_shape() {
        let key = new_api_key().unwrap();
        assert!(looks_like_api_key(&key), "{key}");
        assert_eq!(key.len(), API_KEY_PREFIX.len() + 40);
        assert_eq!(api_key_prefix(&key).len(), API_KEY_PREFIX.len() + 4);
        assert_ne!(key, new_api_key().unwrap());
        assert!(!looks_like_api_key("berth_sk_ABCDEF0123456789abcdef0123456789abcdef01"));
        assert!(!looks_like_api_key("berth_sk_abc"));
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("anything", "not a hash"));
        assert!(!verify_password("anything", DUMMY_PASSWORD_HASH));
    }

    #[test]
    fn digests_compare() {
        assert!(digests_equal(&digest("a"), &digest("a")));
        assert!(!digests_equal(&digest("a"), &digest("b")));
    }
}
