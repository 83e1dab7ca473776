//! Runtime logs as pure rules: the line shape the API returns, how query parameters are read (limits, time
//! bounds, durations), how engine timestamps are normalised so text order is time order, the one secret-masking
//! rule shared with build logs, and the rule-based analysis that turns log lines into findings with a fix.

use super::Invalid;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// What replaces a secret value in any log line.
pub const MASK: &str = "********";

/// Masks every secret value (of 4 characters or more: shorter ones would mask ordinary text) in `line`. The one
/// redaction rule for build and runtime logs, so a value is hidden the same way wherever it appears.
pub fn mask_secrets(values: &[String], line: String) -> String {
    values.iter().filter(|v| v.len() >= 4).fold(line, |l, v| l.replace(v.as_str(), MASK))
}

/// One line an app wrote, as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuntimeLogLine {
    /// Increases with every stored line of the instance; the SSE event id and the `after` cursor.
    pub seq: i64,
    /// The engine's timestamp: RFC 3339 UTC with nine fraction digits.
    pub timestamp: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, secret values masked.
    pub line: String,
    /// The container (replica) that wrote it.
    pub container: String,
    /// The same as `container` (the name Kubernetes-style clients look for).
    pub pod: String,
    pub deployment_id: String,
    /// The deployment's per-project reference, e.g. `DEP-0003`.
    pub deployment_ref: Option<String>,
}

/// Newest or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// A validated runtime-log query (the project and environment are resolved separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// 1–10000.
    pub limit: u32,
    pub direction: Direction,
    /// Lines at or after this normalised timestamp.
    pub start: Option<String>,
    /// Lines at or before this normalised timestamp.
    pub end: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: Option<String>,
    /// Lowercased substring the line must contain (ASCII case-insensitive).
    pub q: Option<String>,
    /// Lines with a larger `seq` only.
    pub after: Option<i64>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery { limit: 100, direction: Direction::Desc, start: None, end: None, stream: None, q: None, after: None }
    }
}

/// The most lines one query returns.
pub const MAX_LIMIT: u32 = 10_000;

/// Query parameters as sent, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawLogQuery<'a> {
    pub limit: Option<&'a str>,
    pub direction: Option<&'a str>,
    pub start: Option<&'a str>,
    pub end: Option<&'a str>,
    pub since: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub q: Option<&'a str>,
    pub after: Option<&'a str>,
}

impl LogQuery {
    /// Validates the parameters; each error names the parameter and the accepted form. `since` and `start` both
    /// set the lower bound: the later one wins.
    pub fn parse(raw: &RawLogQuery<'_>, now: DateTime<Utc>) -> Result<LogQuery, Invalid> {
        let limit =
            match raw.limit.map(str::trim) {
                None | Some("") => 100,
                Some(v) => v.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    Invalid::new("limit", format!("'{v}' must be a whole number from 1 to {MAX_LIMIT}"))
                })?,
            };
        let direction = match raw.direction.map(|d| d.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("desc") => Direction::Desc,
            Some("asc") => Direction::Asc,
            Some(other) => return Err(Invalid::new("direction", format!("'{other}' must be asc or desc"))),
        };
        let start = raw.start.filter(|s| !s.trim().is_empty()).map(|s| parse_instant("start", s)).transpose()?;
        let since = raw.since.filter(|s| !s.trim().is_empty()).map(|s| parse_since(s, now)).transpose()?;
        let end = raw.end.filter(|s| !s.trim().is_empty()).map(|s| parse_instant("end", s)).transpose()?;
        let lower = start.into_iter().chain(since).max();
        if let (Some(l), Some(e)) = (lower, end)
            && l > e
        {
            return Err(Invalid::new("end", "must not be before start/since"));
        }
        let stream = match raw.stream.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("all") => None,
            Some(s @ ("stdout" | "stderr")) => Some(s.to_owned()),
            Some(other) => return Err(Invalid::new("stream", format!("'{other}' must be stdout or stderr"))),
        };
        let q = raw.q.filter(|q| !q.is_empty()).map(str::to_ascii_lowercase);
        if q.as_ref().is_some_and(|q| q.len() > 1000) {
            return Err(Invalid::new("q", "must be at most 1000 characters"));
        }
        let after = match raw.after.map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| Invalid::new("after", format!("'{v}' must be a sequence number ≥ 0")))?,
            ),
        };
        Ok(LogQuery { limit, direction, start: lower.map(format_ts), end: end.map(format_ts), stream, q, after })
    }
}

/// The stored form of a time: RFC 3339 UTC with exactly nine fraction digits.
pub fn format_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// An engine timestamp (RFC 3339 with up to nine fraction digits, trailing zeros trimmed) in the stored form.
pub fn normalize_timestamp(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| format_ts(t.with_timezone(&Utc)))
}

/// RFC 3339 (`2026-01-02T03:04:05Z`) or Unix seconds (`1767323045`, fractions allowed).
pub fn parse_instant(field: &'static str, value: &str) -> Result<DateTime<Utc>, Invalid> {
    let v = value.trim();
    let bad = || Invalid::new(field, format!("'{v}' must be an RFC 3339 time (2026-01-02T03:04:05Z) or Unix seconds"));
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = v.parse().map_err(|_| bad())?;
        let whole = secs.trunc() as i64;
        let nanos = ((secs - secs.trunc()) * 1e9) as u32;
        return DateTime::from_timestamp(whole, nanos).ok_or_else(bad);
    }
    DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| bad())
}

/// `since`: a duration back from now (`30s`, `15m`, `2h`, `1d`, `1w`, or combined like `1h30m`) or a Unix
/// timestamp (a bare number).
pub fn parse_since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Invalid> {
    let v = value.trim();
    let bad = || {
        Invalid::new("since", format!("'{v}' must be a duration like 15m, 2h or 1d, or a Unix timestamp in seconds"))
    };
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_instant("since", v).map_err(|_| bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|s| total.checked_add(s)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 || total > 10 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(now - chrono::Duration::seconds(total))
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
}

/// A problem the log shows, with the lines that show it and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Finding {
    /// Stable machine name: `port_in_use`, `bound_to_localhost`, `wrong_port`, `out_of_memory`,
    /// `missing_module`, `connection_refused`, `permission_denied`, `missing_env_var`, `crash`, `dns_failure`.
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    /// Up to five of the lines that show it.
    pub evidence: Vec<String>,
    /// The suggested fix.
    pub suggestion: String,
}

const MAX_EVIDENCE: usize = 5;

fn has_any(lower: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| lower.contains(n))
}

/// Words that say a line announces where the app listens.
const LISTENING: &[&str] =
    &["listening", "listen on", "running on", "serving on", "server started", "started server", "bound to", "bind "];

/// Port numbers a listening line names (`:3000`, `port 3000`, `port: 3000`).
fn ports_in(lower: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    let bytes = lower.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let after_marker = if bytes[i] == b':' {
            Some(i + 1)
        } else if bytes[i..].starts_with(b"port") {
            let mut j = i + 4;
            while j < bytes.len() && matches!(bytes[j], b' ' | b':' | b'=') {
                j += 1;
            }
            Some(j)
        } else {
            None
        };
        if let Some(start) = after_marker {
            let end = (start..bytes.len()).find(|&k| !bytes[k].is_ascii_digit()).unwrap_or(bytes.len());
            if end > start
                && end - start <= 5
                && let Some(Ok(p)) = lower.get(start..end).map(str::parse::<u16>)
                && p > 0
            {
                ports.push(p);
            }
        }
        i += 1;
    }
    ports
}

/// The variable a "missing variable" line names, when it names one.
fn missing_var_name(line: &str) -> Option<String> {
    let ident = |s: &str| -> Option<String> {
        let name: String = s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        (!name.is_empty()).then_some(name)
    };
    if let Some(i) = line.find("KeyError: '") {
        return ident(&line[i + 11..]);
    }
    if let Some(i) = line.find(" is not defined") {
        return line[..i].rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().and_then(ident);
    }
    let lower = line.to_ascii_lowercase();
    if let Some(i) = lower.find("environment variable") {
        let rest = line[i + 20..].trim_start_matches([' ', ':', '"', '\'', '`']);
        return ident(rest).filter(|n| n.chars().any(|c| c.is_ascii_uppercase()));
    }
    None
}

struct Rule {
    kind: &'static str,
    severity: Severity,
    title: &'static str,
    matches: fn(&str, &str, u16) -> bool,
    suggestion: fn(&[&str], u16) -> String,
}

const RULES: &[Rule] = &[
    Rule {
        kind: "port_in_use",
        severity: Severity::Critical,
        title: "The port is already in use",
        matches: |_, l, _| {
            has_any(l, &["eaddrinuse", "address already in use", "port is already allocated", "port already in use"])
        },
        suggestion: |_, port| {
            format!(
                "Two servers in the container try to bind the same port. Start only one server process, and have it \
                 listen on 0.0.0.0:{port} (the project's port; also in $PORT)."
            )
        },
    },
    Rule {
        kind: "bound_to_localhost",
        severity: Severity::Critical,
        title: "The app listens on 127.0.0.1 only",
        matches: |_, l, _| has_any(l, &["127.0.0.1", "localhost:", "[::1]"]) && has_any(l, LISTENING),
        suggestion: |_, port| {
            format!(
                "A server bound to 127.0.0.1 cannot be reached from outside its container. Bind 0.0.0.0:{port} \
                 (e.g. --host 0.0.0.0, HOST=0.0.0.0, app.listen({port}, '0.0.0.0'))."
            )
        },
    },
    Rule {
        kind: "wrong_port",
        severity: Severity::Critical,
        title: "The app listens on another port than the project's",
        matches: |_, l, port| {
            has_any(l, LISTENING) && {
                let ports = ports_in(l);
                !ports.is_empty() && !ports.contains(&port)
            }
        },
        suggestion: |evidence, port| {
            let seen = evidence.iter().flat_map(|l| ports_in(&l.to_ascii_lowercase())).find(|p| *p != port);
            match seen {
                Some(p) => format!(
                    "The app listens on port {p}, the project expects {port}. Set the project's port to {p} \
                     (PATCH …/projects/:p {{\"port\": {p}}}) or make the app listen on $PORT ({port})."
                ),
                None => format!("Make the app listen on the project's port {port} ($PORT)."),
            }
        },
    },
    Rule {
        kind: "out_of_memory",
        severity: Severity::Critical,
        title: "The app ran out of memory",
        matches: |_, l, _| {
            has_any(
                l,
                &[
                    "out of memory",
                    "oomkilled",
                    "oom-kill",
                    "memoryerror",
                    "exit code 137",
                    "exited with code 137",
                    "status 137",
                    "signal: killed",
                    "cannot allocate memory",
                    "allocation failed",
                ],
            ) || l.trim() == "killed"
        },
        suggestion: |_, _| {
            "The process was killed for using more memory than its limit (exit 137). Raise the project's ram \
             (PATCH …/projects/:p {\"ram\": \"1\"}), or lower the app's memory use (worker count, caches, \
             --max-old-space-size for Node)."
                .to_owned()
        },
    },
    Rule {
        kind: "missing_module",
        severity: Severity::Critical,
        title: "A module or package is missing",
        matches: |_, l, _| {
            has_any(
                l,
                &["modulenotfounderror", "no module named", "cannot find module", "importerror", "cannot find package"],
            )
        },
        suggestion: |_, _| {
            "A dependency is not installed in the image. Add it to requirements.txt / package.json / go.mod (a \
             runtime dependency, not a dev one), check the build's install command, and redeploy."
                .to_owned()
        },
    },
    Rule {
        kind: "connection_refused",
        severity: Severity::Error,
        title: "A connection to a database or service was refused",
        matches: |_, l, _| {
            has_any(
                l,
                &[
                    "econnrefused",
                    "connection refused",
                    "could not connect to server",
                    "can't connect to",
                    "connect: connection",
                ],
            )
        },
        suggestion: |evidence, _| {
            let local =
                evidence.iter().any(|l| l.contains("127.0.0.1") || l.contains("localhost") || l.contains("::1"));
            if local {
                "The app connects to localhost, which inside a container is the container itself. Use the \
                 database's or service's host name (a project in the same workspace is reachable by its slug) in \
                 DATABASE_URL or the host variable, and redeploy."
                    .to_owned()
            } else {
                "The database or service is not accepting connections: check that it runs, that the host, port and \
                 credentials in the connection variables are right, and that the app retries while it starts."
                    .to_owned()
            }
        },
    },
    Rule {
        kind: "permission_denied",
        severity: Severity::Error,
        title: "Permission denied",
        matches: |_, l, _| has_any(l, &["permission denied", "eacces", "operation not permitted", "eperm"]),
        suggestion: |_, _| {
            "The app may not read, write or execute a path, or bind a port below 1024. Write only to /tmp or a \
             mounted volume, make scripts executable (chmod +x) in the Dockerfile, and listen on a port ≥ 1024."
                .to_owned()
        },
    },
    Rule {
        kind: "missing_env_var",
        severity: Severity::Error,
        title: "An environment variable is missing",
        matches: |raw, l, _| {
            raw.contains("KeyError: '")
                || l.contains(" is not defined")
                || (l.contains("environment variable")
                    && has_any(
                        l,
                        &["not set", "missing", "required", "undefined", "not defined", "not found", "must be set"],
                    ))
                || has_any(l, &["missing required env", "env var not set"])
        },
        suggestion: |evidence, _| {
            let names: Vec<String> = evidence.iter().filter_map(|l| missing_var_name(l)).collect();
            match names.first() {
                Some(name) => format!(
                    "Add {name} under …/projects/:p/env (is_secret for credentials) and redeploy; variables reach \
                     the app only at the next deployment."
                ),
                None => "Add the missing variable under …/projects/:p/env and redeploy; variables reach the app only \
                         at the next deployment."
                    .to_owned(),
            }
        },
    },
    Rule {
        kind: "crash",
        severity: Severity::Error,
        title: "The app crashed with an unhandled error",
        matches: |raw, l, _| {
            has_any(
                l,
                &[
                    "traceback (most recent call last)",
                    "unhandled exception",
                    "unhandledpromiserejection",
                    "uncaught exception",
                    "uncaughtexception",
                    "panicked at",
                    "exception in thread",
                    "segmentation fault",
                    "fatal error:",
                ],
            ) || raw.starts_with("panic:")
                || raw.starts_with("Error: ")
        },
        suggestion: |_, _| {
            "Read the first error and stack frame in the evidence and fix that code path; the container restarts \
             after a crash, so the same error repeating means a crash loop."
                .to_owned()
        },
    },
    Rule {
        kind: "dns_failure",
        severity: Severity::Error,
        title: "A host name could not be resolved",
        matches: |_, l, _| {
            has_any(
                l,
                &[
                    " enotfound",
                    "'enotfound'",
                    "getaddrinfo",
                    "name or service not known",
                    "temporary failure in name resolution",
                    "no such host",
                    "could not resolve host",
                    "nodename nor servname",
                    "name resolution",
                ],
            )
        },
        suggestion: |_, _| {
            "Check the host name in the app's variables for typos. Projects in the same workspace resolve by their \
             slug; outside names need working DNS from the host."
                .to_owned()
        },
    },
];

/// Runs every rule over `lines` for a project listening on `port`: one finding per rule that matched, most
/// severe first, each with up to five distinct matching lines.
pub fn analyze(lines: &[String], port: u16) -> Vec<Finding> {
    let mut findings: Vec<(usize, Finding)> = Vec::new();
    for rule in RULES {
        let mut evidence: Vec<&str> = Vec::new();
        let mut first = None;
        for (i, raw) in lines.iter().enumerate() {
            let lower = raw.to_ascii_lowercase();
            if (rule.matches)(raw, &lower, port) {
                first.get_or_insert(i);
                if evidence.len() < MAX_EVIDENCE && !evidence.contains(&raw.as_str()) {
                    evidence.push(raw);
                }
            }
        }
        if let Some(first) = first {
            findings.push((
                first,
                Finding {
                    kind: rule.kind.to_owned(),
                    severity: rule.severity,
                    title: rule.title.to_owned(),
                    suggestion: (rule.suggestion)(&evidence, port),
                    evidence: evidence.into_iter().map(str::to_owned).collect(),
                },
            ));
        }
    }
    findings.sort_by_key(|(first, f)| (f.severity, *first));
    findings.into_iter().map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(lines: &[&str], port: u16) -> Vec<String> {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        analyze(&lines, port).into_iter().map(|f| f.kind).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn each_rule_finds_its_failure_with_evidence_and_a_fix() {
        let lines: Vec<String> =
            vec!["booting".into(), "Error: listen EADDRINUSE: address already in use :::8080".into()];
        let f = analyze(&lines, 8080);
        assert_eq!(f[0].kind, "port_in_use");
        assert_eq!(f[0].evidence, vec![lines[1].clone()]);
        assert!(f[0].suggestion.contains("0.0.0.0:8080"));

        assert!(kinds(&["Server listening on http://127.0.0.1:8080"], 8080).contains(&"bound_to_localhost".into()));
        let lines = vec!["Listening on port 3000".to_owned()];
        let f = analyze(&lines, 8080);
        assert_eq!(f[0].kind, "wrong_port");
        assert!(f[0].suggestion.contains("3000") && f[0].suggestion.contains("8080"), "{}", f[0].suggestion);
        assert!(kinds(&["Listening on 0.0.0.0:8080"], 8080).is_empty(), "the right port is fine");

        assert_eq!(
            kinds(&["<--- JS stacktrace ---> FATAL ERROR: JavaScript heap out of memory"], 80)[0],
            "out_of_memory"
        );
        assert_eq!(kinds(&["Killed"], 80), ["out_of_memory"]);
        assert_eq!(kinds(&["ModuleNotFoundError: No module named 'flask'"], 80), ["missing_module"]);
        assert!(kinds(&["Error: Cannot find module 'express'"], 80).contains(&"missing_module".into()));

        let lines = vec!["connect ECONNREFUSED 127.0.0.1:5432".to_owned()];
        let f = analyze(&lines, 80);
        assert_eq!(f[0].kind, "connection_refused");
        assert!(f[0].suggestion.contains("localhost"));
        assert_eq!(kinds(&["open /data/x: permission denied"], 80), ["permission_denied"]);

        let lines = vec!["    KeyError: 'DATABASE_URL'".to_owned()];
        let f = analyze(&lines, 80);
        assert_eq!(f[0].kind, "missing_env_var");
        assert!(f[0].suggestion.contains("DATABASE_URL"), "{}", f[0].suggestion);
        let lines = vec!["environment variable STRIPE_KEY is not set".to_owned()];
        assert!(analyze(&lines, 80)[0].suggestion.contains("STRIPE_KEY"));
        assert!(kinds(&["ReferenceError: API_TOKEN is not defined"], 80).contains(&"missing_env_var".into()));

        assert_eq!(kinds(&["Traceback (most recent call last):"], 80), ["crash"]);
        assert_eq!(kinds(&["thread 'main' panicked at src/main.rs:3:5:"], 80), ["crash"]);
        assert!(kinds(&["Error: getaddrinfo ENOTFOUND db.internal"], 80).contains(&"dns_failure".into()));
        assert!(kinds(&["GET / 200 3ms", "all good"], 80).is_empty());
    }

    #[test]
    fn findings_are_ordered_by_severity_and_evidence_is_bounded_and_distinct() {
        let mut lines = vec!["connect ECONNREFUSED db:5432".to_owned(); 3];
        lines.extend((0..10).map(|i| format!("EADDRINUSE {i}")));
        let f = analyze(&lines, 80);
        assert_eq!(f[0].kind, "port_in_use", "critical before error");
        assert_eq!(f[0].evidence.len(), 5);
        assert_eq!(f[1].evidence.len(), 1, "the same line counts once");
    }

    #[test]
    fn query_parameters_are_validated_with_the_range_named() {
        let q = LogQuery::parse(&RawLogQuery::default(), now()).unwrap();
        assert_eq!((q.limit, q.direction), (100, Direction::Desc));
        for bad in ["0", "10001", "x", "-1"] {
            let e = LogQuery::parse(&RawLogQuery { limit: Some(bad), ..Default::default() }, now()).unwrap_err();
            assert_eq!(e.field, "limit");
            assert!(e.message.contains("1 to 10000"), "{e}");
        }
        let e = LogQuery::parse(&RawLogQuery { direction: Some("up"), ..Default::default() }, now()).unwrap_err();
        assert_eq!(e.field, "direction");
        let e = LogQuery::parse(&RawLogQuery { stream: Some("stdin"), ..Default::default() }, now()).unwrap_err();
        assert_eq!(e.field, "stream");
        let e = LogQuery::parse(&RawLogQuery { since: Some("5 minutes"), ..Default::default() }, now()).unwrap_err();
        assert_eq!(e.field, "since");
        let e = LogQuery::parse(&RawLogQuery { start: Some("yesterday"), ..Default::default() }, now()).unwrap_err();
        assert_eq!(e.field, "start");

        let q = LogQuery::parse(
            &RawLogQuery {
                limit: Some("10000"),
                direction: Some("ASC"),
                since: Some("1h30m"),
                end: Some("1767323045"),
                stream: Some("stderr"),
                q: Some("Hello"),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(q.start.as_deref(), Some("2026-01-02T01:34:05.000000000Z"));
        assert_eq!(q.end.as_deref(), Some("2026-01-02T03:04:05.000000000Z"));
        assert_eq!(
            (q.limit, q.direction, q.stream.as_deref(), q.q.as_deref()),
            (10000, Direction::Asc, Some("stderr"), Some("hello"))
        );
        let e = LogQuery::parse(&RawLogQuery { since: Some("1d"), end: Some("1000"), ..Default::default() }, now())
            .unwrap_err();
        assert_eq!(e.field, "end");
    }

    #[test]
    fn engine_timestamps_normalise_to_sortable_text() {
        let a = normalize_timestamp("2024-05-01T10:00:00.12Z").unwrap();
        let b = normalize_timestamp("2024-05-01T10:00:00.123Z").unwrap();
        assert_eq!(a, "2024-05-01T10:00:00.120000000Z");
        assert!(a < b);
        assert_eq!(normalize_timestamp("2024-05-01T12:00:00+02:00").unwrap(), "2024-05-01T10:00:00.000000000Z");
        assert_eq!(normalize_timestamp("nope"), None);
    }

    #[test]
    fn secrets_are_masked_but_short_values_are_not() {
        let values = vec!["hunter22".to_owned(), "abc".to_owned()];
        assert_eq!(mask_secrets(&values, "pw=hunter22 abc".into()), "pw=******** abc");
    }
}
