//! HTTP-01 key authorizations the proxy answers while an order is being validated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The path prefix HTTP-01 validation requests use (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// A shared map from HTTP-01 token to key authorization. Cheap to clone: clones share the map.
///
/// The certificate manager inserts a token while its order is validated and removes it after; the proxy calls
/// [`Http01Tokens::answer`] for every request before routing, so validation works for any host, routed or not.
#[derive(Debug, Clone, Default)]
pub struct Http01Tokens {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl Http01Tokens {
    /// An empty map.
    pub fn new() -> Http01Tokens {
        Http01Tokens::default()
    }

    /// The key authorization to answer for a request `path` of the form `/.well-known/acme-challenge/<token>`
    /// (a query string is ignored), or `None` when the path is not a challenge or the token is unknown.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(ACME_CHALLENGE_PREFIX)?;
        let token = token.split_once('?').map_or(token, |(token, _)| token);
        if token.is_empty() {
            return None;
        }
        self.tokens.read().ok()?.get(token).cloned()
    }

    /// Starts answering `token` with `key_authorization`.
    pub fn insert(&self, token: &str, key_authorization: &str) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.remove(token);
        }
    }

    /// How many tokens are being answered (0 when no order is in flight).
    pub fn len(&self) -> usize {
        self.tokens.read().map(|t| t.len()).unwrap_or(0)
    }

    /// Whether no token is being answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_known_tokens_only_under_the_challenge_path() {
        let tokens = Http01Tokens::new();
        tokens.insert("abc", "abc.thumb");
        let shared = tokens.clone();
        assert_eq!(shared.answer("/.well-known/acme-challenge/abc").as_deref(), Some("abc.thumb"));
        assert_eq!(shared.answer("/.well-known/acme-challenge/abc?x=1").as_deref(), Some("abc.thumb"));
        assert_eq!(shared.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(shared.answer("/.well-known/acme-challenge/"), None);
        assert_eq!(shared.answer("/abc"), None);
        tokens.remove("abc");
        assert_eq!(shared.answer("/.well-known/acme-challenge/abc"), None);
        assert!(shared.is_empty());
    }
}
