//! Environment variables: key and value rules, and the dotenv format (parse and write, round-trip safe).

use super::{Invalid, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most variables in one scope (workspace, project or environment).
pub const MAX_VARIABLES_PER_SCOPE: usize = 1000;
/// What every read shows instead of a secret value.
pub const MASK: &str = "********";

/// Where a variable is defined. More specific scopes win: environment > project > workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Workspace,
    Project,
    Environment,
}

/// A stored variable as the API shows it. A secret's `value` is [`MASK`] unless it was explicitly revealed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub is_secret: bool,
    /// A secret that builds receive too, as a build argument. Plain variables always do; other secrets never.
    pub build_secret: bool,
    /// Whether `value` is the mask rather than the value.
    pub masked: bool,
    pub scope: Scope,
    /// The environment for `scope = environment`.
    pub environment: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`, at most 256 characters.
pub fn validate_key(field: &'static str, key: &str) -> Result<String, Invalid> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && key.bytes().enumerate().all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "'{key}' is not a valid variable name: use letters, digits and '_', not starting with a digit (like DATABASE_URL)"
            ),
        ))
    }
}

/// At most 64 KiB and no NUL bytes (a process environment cannot hold them).
pub fn validate_value(field: &'static str, key: &str, value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Invalid::new(field, format!("value of {key} is {} bytes; the limit is 64 KiB", value.len())));
    }
    if value.contains('\0') {
        return Err(Invalid::new(field, format!("value of {key} contains a NUL byte")));
    }
    Ok(())
}

/// Parses a dotenv file: `KEY=value` lines, optional `export ` prefixes, `#` comments, blank lines, single-quoted
/// (literal) and double-quoted values (with `\n \r \t \" \\` escapes, may span lines), and unquoted values whose
/// trailing ` # comment` is dropped. No variable expansion. Errors give the line number and what to fix.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, Invalid> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let n = i + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(Invalid::new("body", format!("line {n}: expected KEY=value, got '{}'", clip(line))));
        };
        let key = key.trim();
        validate_key("body", key).map_err(|e| Invalid::new("body", format!("line {n}: {}", e.message)))?;
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('"') {
            let mut buf = body.to_owned();
            loop {
                if let Some(v) = close_double(&buf) {
                    break v;
                }
                match lines.next() {
                    Some((_, more)) => {
                        buf.push('\n');
                        buf.push_str(more);
                    }
                    None => {
                        return Err(Invalid::new("body", format!("line {n}: the value of {key} has no closing \"")));
                    }
                }
            }
        } else if let Some(body) = rest.strip_prefix('\'') {
            let mut buf = body.to_owned();
            loop {
                if let Some(end) = buf.find('\'') {
                    buf.truncate(end);
                    break buf;
                }
                match lines.next() {
                    Some((_, more)) => {
                        buf.push('\n');
                        buf.push_str(more);
                    }
                    None => return Err(Invalid::new("body", format!("line {n}: the value of {key} has no closing '"))),
                }
            }
        } else {
            let cut = rest.find(" #").or_else(|| rest.find("\t#")).unwrap_or(rest.len());
            rest[..cut].trim().to_owned()
        };
        validate_value("body", key, &value)?;
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key.to_owned(), value)),
        }
    }
    Ok(out)
}

/// The value inside a double-quoted string if `s` (the text after the opening quote) closes it.
fn close_double(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('$') => out.push('$'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s.to_owned() }
}

/// One `KEY="value"` line, escaped so [`parse_dotenv`] (and common dotenv readers) give the value back exactly.
pub fn dotenv_line(key: &str, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '$' => escaped.push_str("\\$"),
            c => escaped.push(c),
        }
    }
    format!("{key}=\"{escaped}\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in ["A", "_x", "DATABASE_URL", "a1"] {
            assert!(validate_key("key", good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "A.B"] {
            assert!(validate_key("key", bad).is_err(), "{bad}");
        }
        assert!(validate_value("value", "K", &"x".repeat(MAX_VALUE_BYTES)).is_ok());
        assert!(validate_value("value", "K", &"x".repeat(MAX_VALUE_BYTES + 1)).is_err());
    }

    #[test]
    fn dotenv_parses_what_people_write() {
        let text = "# comment\n\nexport A=1\nB = two words # trailing comment\nC=\"quoted # not a comment\"\n\
                    D='single $NOT_EXPANDED'\nE=\"multi\nline\"\nF=\"esc\\n\\\"q\\\"\"\nG=\nH=url#frag\nA=override\n";
        let vars = parse_dotenv(text).unwrap();
        let get = |k: &str| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("override"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("quoted # not a comment"));
        assert_eq!(get("D"), Some("single $NOT_EXPANDED"));
        assert_eq!(get("E"), Some("multi\nline"));
        assert_eq!(get("F"), Some("esc\n\"q\""));
        assert_eq!(get("G"), Some(""));
        assert_eq!(get("H"), Some("url#frag"));
        assert_eq!(vars.len(), 8);
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        let e = parse_dotenv("A=1\nnot a pair\n").unwrap_err();
        assert!(e.message.starts_with("line 2"), "{}", e.message);
        let e = parse_dotenv("A=1\n1BAD=2\n").unwrap_err();
        assert!(e.message.contains("line 2") && e.message.contains("1BAD"), "{}", e.message);
        assert!(parse_dotenv("A=\"open\n").unwrap_err().message.contains("closing"));
    }

    #[test]
    fn dotenv_round_trips() {
        let values = ["plain", "with \"quotes\"", "back\\slash", "multi\nline\r\n", "$HOME ${X}", "", " spaced ", "#"];
        let text: String = values.iter().enumerate().map(|(i, v)| dotenv_line(&format!("K{i}"), v)).collect();
        let parsed = parse_dotenv(&text).unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(parsed[i], (format!("K{i}"), (*v).to_owned()));
        }
    }
}
