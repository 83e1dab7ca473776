/// A rejected input: which field, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid { field, message: message.into() }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// An email address as far as Berth cares: one `@`, something on each side, a dot in the domain, no spaces.
pub fn validate_email(field: &'static str, email: &str) -> Result<String, Invalid> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if ok { Ok(email.to_owned()) } else { Err(Invalid::new(field, format!("'{email}' is not a valid email address"))) }
}

/// Passwords: 8 to 1024 characters.
pub fn validate_password(field: &'static str, password: &str) -> Result<(), Invalid> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Invalid::new(field, "must be at least 8 characters long"));
    }
    if n > 1024 {
        return Err(Invalid::new(field, "must be at most 1024 characters long"));
    }
    Ok(())
}

/// Display names: trimmed, 1 to 100 characters, no control characters.
pub fn validate_name(field: &'static str, name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if name.chars().count() > 100 {
        return Err(Invalid::new(field, "must be at most 100 characters long"));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(validate_email("email", "a@b.co").is_ok());
        assert_eq!(validate_email("email", " a@b.co ").ok().as_deref(), Some("a@b.co"));
        for bad in ["", "a", "a@b", "@b.co", "a b@c.de", "a@.co", "a@b.co.", "a@b@c.de"] {
            assert!(validate_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "long enough").is_ok());
        assert!(validate_name("name", "  ").is_err());
        assert_eq!(validate_name("name", " Acme ").ok().as_deref(), Some("Acme"));
        assert!(validate_name("name", "a\u{0}b").is_err());
    }
}
