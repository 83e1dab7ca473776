use serde::{Deserialize, Serialize};

/// A validated slug: `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$` (1–40 characters, no leading or trailing dash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Checks `s` against the slug rule; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Slug, String> {
        if s.is_empty() || s.len() > 40 {
            return Err(format!("must be 1 to 40 characters long (got {})", s.len()));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("may contain only lowercase letters, digits and '-'".into());
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err("must start and end with a letter or digit".into());
        }
        Ok(Slug(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Derives a slug from a display name ("My App!" → "my-app"), or `None` when the name has no letter or digit.
pub fn derive_slug(name: &str) -> Option<Slug> {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(40);
    let trimmed = out.trim_matches('-');
    Slug::parse(trimmed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_slugs() {
        for s in ["a", "my-app", "a1", "x".repeat(40).as_str()] {
            assert!(Slug::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_slugs() {
        for s in ["", "-a", "a-", "My", "a_b", "x".repeat(41).as_str(), "é"] {
            assert!(Slug::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn derives_slugs_from_names() {
        assert_eq!(derive_slug("My Workspace").map(|s| s.0), Some("my-workspace".into()));
        assert_eq!(derive_slug("  Hello,  World!! ").map(|s| s.0), Some("hello-world".into()));
        assert_eq!(derive_slug("Ünïcode Team").map(|s| s.0), Some("n-code-team".into()));
        assert_eq!(derive_slug("!!!"), None);
        let long = derive_slug(&"ab ".repeat(30)).map(|s| s.0).unwrap_or_default();
        assert!(long.len() <= 40 && !long.ends_with('-'));
    }
}
