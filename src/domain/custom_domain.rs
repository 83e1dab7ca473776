//! Custom domains: the name rules and the verification states. Pure; the DNS and HTTP checks live in
//! `services::domains`.

use super::Invalid;
use serde::Serialize;
use utoipa::ToSchema;

/// Where a custom domain is in its life: added (DNS not pointing here yet), verified (routed), or active (served
/// over HTTPS with a valid certificate; with `tls = "off"` verified domains are active at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    PendingDns,
    Verified,
    Active,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::PendingDns => "pending_dns",
            DomainStatus::Verified => "verified",
            DomainStatus::Active => "active",
        }
    }

    /// The stored form (only `pending_dns` and `verified` are stored; `active` is derived from the certificate).
    pub fn parse(s: &str) -> Option<DomainStatus> {
        match s {
            "pending_dns" => Some(DomainStatus::PendingDns),
            "verified" => Some(DomainStatus::Verified),
            "active" => Some(DomainStatus::Active),
            _ => None,
        }
    }
}

impl std::fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks and normalises a domain as a user types it: lowercase, no trailing dot, no scheme, port or path; labels
/// of letters, digits and hyphens (punycode for international names); at least two labels, not an IP address.
/// A leading `*.` asks for a wildcard. Names under `base_domain` are refused: they are Berth's default domains.
pub fn validate_domain(field: &'static str, raw: &str, base_domain: &str) -> Result<String, Invalid> {
    let invalid = |why: String| Invalid::new(field, why);
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err(invalid("a domain name like app.example.com is required".into()));
    }
    if d.contains("://") || d.contains('/') || d.contains(':') {
        return Err(invalid(format!(
            "'{raw}' is not a bare domain name: leave out the scheme, port and path (app.example.com)"
        )));
    }
    if d.len() > 253 {
        return Err(invalid(format!("'{raw}' is longer than 253 characters")));
    }
    let host = d.strip_prefix("*.").unwrap_or(&d);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid(format!("'{raw}' needs a dot: a domain name like app.example.com")));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(invalid(format!(
                "'{label}' in '{raw}' is not a valid label: letters, digits and inner hyphens, up to 63 \
                 (international names in punycode, xn--…)"
            )));
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(invalid(format!("'{raw}' is an IP address; add a domain name that points at it instead")));
    }
    let base = base_domain.trim_end_matches('.');
    if host == base || host.ends_with(&format!(".{base}")) {
        return Err(invalid(format!(
            "'{raw}' is under base_domain {base}, where Berth names projects itself \
             (<project>.<workspace>.{base}); add a domain outside it"
        )));
    }
    Ok(d)
}

/// Whether `name` is covered by `pattern` (equal, or `*.parent` with `name` exactly one label below `parent`).
pub fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_bad_ones_explained() {
        assert_eq!(validate_domain("domain", " App.Example.COM. ", "localhost").unwrap(), "app.example.com");
        assert_eq!(validate_domain("domain", "*.example.com", "localhost").unwrap(), "*.example.com");
        assert_eq!(validate_domain("domain", "xn--bcher-kva.example", "localhost").unwrap(), "xn--bcher-kva.example");
        for (bad, why) in [
            ("", "required"),
            ("https://app.example.com", "scheme"),
            ("app.example.com:8443", "port"),
            ("app.example.com/x", "path"),
            ("localhost", "needs a dot"),
            ("-a.example.com", "not a valid label"),
            ("a_b.example.com", "not a valid label"),
            ("a..example.com", "not a valid label"),
            ("*.*.example.com", "not a valid label"),
            ("10.0.0.1", "IP address"),
            ("web.acme.apps.example.com", "under base_domain"),
            ("apps.example.com", "under base_domain"),
        ] {
            let e = validate_domain("domain", bad, "apps.example.com").unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_wildcard_covers_one_level() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("example.com", "example.com"));
    }
}
