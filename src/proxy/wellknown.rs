//! Answers the proxy gives itself, before routing: domain verification tokens
//! (`/.well-known/berth-verification/<token>`).

use std::collections::HashMap;

/// Domain → verification token, swapped as a whole when domains change.
pub type VerificationTokens = HashMap<String, String>;

/// The token body for a verification request to `host` at `path`, when it is one.
pub fn verification_answer(tokens: &VerificationTokens, host: &str, path: &str) -> Option<String> {
    let token = path.strip_prefix("/.well-known/berth-verification/")?;
    let expected = tokens.get(host)?;
    (!token.is_empty() && crate::crypto::digests_equal(token.as_bytes(), expected.as_bytes())).then(|| expected.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_domains_own_token_is_answered() {
        let tokens = VerificationTokens::from([("app.example.com".to_owned(), "abc123".to_owned())]);
        let path = "/.well-known/berth-verification/abc123";
        assert_eq!(verification_answer(&tokens, "app.example.com", path).as_deref(), Some("abc123"));
        assert_eq!(verification_answer(&tokens, "other.example.com", path), None);
        assert_eq!(verification_answer(&tokens, "app.example.com", "/.well-known/berth-verification/abc"), None);
        assert_eq!(verification_answer(&tokens, "app.example.com", "/index.html"), None);
    }
}
