//! Notifications: what can be announced (a failed backup or upload, a failing or expiring certificate), the JSON a webhook
//! receives, its Standard Webhooks signature, the retry policy and the rule that keeps one broken thing from
//! announcing itself on every attempt. Pure: the queue and the HTTP delivery are in `services::notifications`.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;

/// How many times one webhook is tried for one notification.
pub const DELIVERY_ATTEMPTS: u32 = 4;
/// How long one delivery attempt may take, connecting included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Something an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A backup (manual, scheduled or the safety backup before a restore) ended `failed`.
    BackupFailed {
        database_id: String,
        database_name: String,
        backup_id: String,
        /// `manual`, `schedule` or `pre_restore`.
        trigger: &'static str,
        error: String,
    },
    /// A succeeded backup's copy could not be uploaded to the S3 target: the backup is only on this server's disk.
    /// Retried at `next_attempt` (`None`: no more attempts are made).
    BackupUploadFailed {
        database_id: String,
        database_name: String,
        backup_id: String,
        /// `s3://<bucket>/<key>`.
        location: String,
        /// The S3 service's URL (never with credentials: `s3_endpoint` refuses them).
        endpoint: String,
        error: String,
        /// Which attempt failed (1 for the first).
        attempt: u32,
        next_attempt: Option<DateTime<Utc>>,
    },
    /// A certificate could not be issued or renewed; retried at `next_attempt`.
    CertificateFailed {
        domains: Vec<String>,
        error: String,
        next_attempt: DateTime<Utc>,
        /// The expiry of the certificate still served meanwhile; `None`: HTTPS fails for these names.
        valid_until: Option<DateTime<Utc>>,
    },
    /// Renewal keeps failing and the served certificate expires at `not_after`, soon.
    CertificateExpiringSoon { domain: String, not_after: DateTime<Utc>, error: Option<String> },
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Event {
    /// The event type, as in the payload's `event`: `backup.failed`, `backup.upload_failed`, `certificate.failed`,
    /// `certificate.expiring_soon`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::BackupFailed { .. } => "backup.failed",
            Event::BackupUploadFailed { .. } => "backup.upload_failed",
            Event::CertificateFailed { .. } => "certificate.failed",
            Event::CertificateExpiringSoon { .. } => "certificate.expiring_soon",
        }
    }

    /// What the event is about, short: `database shop`, `certificate app.example.com`.
    pub fn subject(&self) -> String {
        match self {
            Event::BackupFailed { database_name, .. } | Event::BackupUploadFailed { database_name, .. } => {
                format!("database {database_name}")
            }
            Event::CertificateFailed { domains, .. } => format!("certificate {}", domains.join(", ")),
            Event::CertificateExpiringSoon { domain, .. } => format!("certificate {domain}"),
        }
    }

    /// One sentence for a person (chat messages, e-mail subjects).
    pub fn message(&self, workspace: Option<&str>) -> String {
        let place = workspace.map(|w| format!(" in workspace {w}")).unwrap_or_default();
        match self {
            Event::BackupFailed { database_name, trigger, error, .. } => {
                let kind = match *trigger {
                    "schedule" => "scheduled",
                    "pre_restore" => "safety (before a restore)",
                    other => other,
                };
                format!("The {kind} backup of database {database_name}{place} failed: {error}")
            }
            Event::BackupUploadFailed { database_name, location, error, attempt, next_attempt, .. } => {
                let next = match next_attempt {
                    Some(t) => format!("next attempt at {}", rfc3339(*t)),
                    None if *attempt > 1 => format!("no more attempts are made after {attempt}"),
                    None => "it is not retried".to_owned(),
                };
                format!(
                    "A backup of database {database_name}{place} could not be copied to {location}: {error}. It is only on this server's disk; {next}."
                )
            }
            Event::CertificateFailed { domains, error, next_attempt, valid_until } => {
                let serving = match valid_until {
                    Some(t) => format!("the current certificate still works until {}", rfc3339(*t)),
                    None => "HTTPS does not work for it meanwhile".to_owned(),
                };
                format!(
                    "The certificate for {}{place} could not be issued or renewed: {error}. Next attempt at {}; {serving}.",
                    domains.join(", "),
                    rfc3339(*next_attempt)
                )
            }
            Event::CertificateExpiringSoon { domain, not_after, .. } => format!(
                "The certificate for {domain}{place} expires at {} and renewing it keeps failing.",
                rfc3339(*not_after)
            ),
        }
    }

    /// The event's own fields, as in the payload's `details`.
    pub fn details(&self) -> Value {
        match self {
            Event::BackupFailed { database_id, database_name, backup_id, trigger, error } => json!({
                "database_id": database_id,
                "database_name": database_name,
                "backup_id": backup_id,
                "trigger": trigger,
                "error": error,
            }),
            Event::BackupUploadFailed {
                database_id,
                database_name,
                backup_id,
                location,
                endpoint,
                error,
                attempt,
                next_attempt,
            } => json!({
                "database_id": database_id,
                "database_name": database_name,
                "backup_id": backup_id,
                "location": location,
                "endpoint": endpoint,
                "error": error,
                "attempt": attempt,
                "next_attempt": next_attempt.map(rfc3339),
            }),
            Event::CertificateFailed { domains, error, next_attempt, valid_until } => json!({
                "domains": domains,
                "error": error,
                "next_attempt": rfc3339(*next_attempt),
                "valid_until": valid_until.map(rfc3339),
            }),
            Event::CertificateExpiringSoon { domain, not_after, error } => json!({
                "domain": domain,
                "not_after": rfc3339(*not_after),
                "error": error,
            }),
        }
    }

    /// What makes two events "the same problem again", and how often it is announced while it lasts: a database's
    /// failing backups, and apart from them its failing uploads, at most once an hour; a certificate's failures
    /// and its expiry at most once a day.
    pub fn streak(&self) -> (String, TimeDelta) {
        match self {
            Event::BackupFailed { database_id, .. } => (backup_streak(database_id), TimeDelta::hours(1)),
            Event::BackupUploadFailed { database_id, .. } => (upload_streak(database_id), TimeDelta::hours(1)),
            Event::CertificateFailed { domains, .. } => {
                (certificate_streak(domains.first().map_or("", String::as_str)), TimeDelta::hours(24))
            }
            Event::CertificateExpiringSoon { domain, .. } => {
                (format!("certificate.expiring_soon:{domain}"), TimeDelta::hours(24))
            }
        }
    }
}

/// The streak key of a database's failing backups (ended by a backup that succeeds).
pub fn backup_streak(database_id: &str) -> String {
    format!("backup.failed:{database_id}")
}

/// The streak key of a database's failing uploads to the S3 target (ended by an upload that succeeds).
pub fn upload_streak(database_id: &str) -> String {
    format!("backup.upload_failed:{database_id}")
}

/// The streak key of a certificate's failures (ended when it is issued or renewed).
pub fn certificate_streak(primary_name: &str) -> String {
    format!("certificate.failed:{primary_name}")
}

/// The streak keys a certificate that was issued or renewed ends.
pub fn certificate_streaks(primary_name: &str) -> [String; 2] {
    [certificate_streak(primary_name), format!("certificate.expiring_soon:{primary_name}")]
}

/// The workspace a notification belongs to, as the payload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRef {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// One notification: an event with its id (also the `webhook-id` header, the same on every retry, so receivers
/// can drop duplicates) and the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub time: DateTime<Utc>,
    pub event: Event,
}

/// The JSON body every webhook receives. `url` links to the dashboard page concerned, when there is one.
pub fn payload(n: &Notification, workspace: Option<&WorkspaceRef>, url: Option<&str>) -> Value {
    json!({
        "id": n.id,
        "event": n.event.kind(),
        "time": rfc3339(n.time),
        "workspace": workspace.map(|w| json!({"id": w.id, "slug": w.slug, "name": w.name})),
        "subject": n.event.subject(),
        "message": n.event.message(workspace.map(|w| w.slug.as_str())),
        "url": url,
        "details": n.event.details(),
    })
}

/// The HMAC key of a configured signing secret: a Standard Webhooks secret (`whsec_` + base64) is decoded, so the
/// receiver can use that spec's libraries; any other text is used as its UTF-8 bytes.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "a secret starting with whsec_ must continue with base64".to_owned()),
        None if secret.len() < 16 => Err("must be at least 16 characters (or whsec_ and base64)".to_owned()),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The `webhook-signature` header of the Standard Webhooks spec: `v1,` and the base64 HMAC-SHA256 of
/// `<webhook-id>.<webhook-timestamp>.<body>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    // HMAC takes keys of any length: this never returns early.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// How long to wait after failed attempt `attempt` (1 for the first) before the next: 2 s, 10 s, 50 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(2 * 5u64.pow(attempt.saturating_sub(1).min(10)))
}

/// Whether an answer with this status is worth another attempt: timeouts, rate limits and server errors are;
/// other refusals (a wrong URL, a signature the receiver rejects, a redirect) will not change by waiting.
pub fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Remembers when each streak was last announced, so one failing database or certificate raises a notification
/// when it starts failing and then at most once per its reminder interval, until a success ends the streak.
#[derive(Debug, Default)]
pub struct Streaks {
    last: HashMap<String, DateTime<Utc>>,
}

impl Streaks {
    /// Whether an event of streak `key` is announced at `now`; records it when it is.
    pub fn admit(&mut self, key: &str, every: TimeDelta, now: DateTime<Utc>) -> bool {
        match self.last.get(key) {
            Some(last) if now - *last < every => false,
            _ => {
                self.last.insert(key.to_owned(), now);
                true
            }
        }
    }

    /// Ends a streak: its next failure is announced at once.
    pub fn end(&mut self, key: &str) {
        self.last.remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn backup_failed() -> Notification {
        Notification {
            id: "0195a3c4-0000-7000-8000-000000000001".into(),
            time: at("2026-11-22T10:00:00Z"),
            event: Event::BackupFailed {
                database_id: "db1".into(),
                database_name: "shop".into(),
                backup_id: "b1".into(),
                trigger: "manual",
                error: "database shop is not running (start it first)".into(),
            },
        }
    }

    #[test]
    fn a_backup_failure_payload_names_everything_a_receiver_needs() {
        let ws = WorkspaceRef { id: "w1".into(), slug: "acme".into(), name: "Acme".into() };
        let p = payload(&backup_failed(), Some(&ws), Some("https://berth.example.com/w/acme/databases/db1"));
        assert_eq!(
            p,
            json!({
                "id": "0195a3c4-0000-7000-8000-000000000001",
                "event": "backup.failed",
                "time": "2026-11-22T10:00:00Z",
                "workspace": {"id": "w1", "slug": "acme", "name": "Acme"},
                "subject": "database shop",
                "message": "The manual backup of database shop in workspace acme failed: database shop is not running (start it first)",
                "url": "https://berth.example.com/w/acme/databases/db1",
                "details": {
                    "database_id": "db1",
                    "database_name": "shop",
                    "backup_id": "b1",
                    "trigger": "manual",
                    "error": "database shop is not running (start it first)",
                },
            })
        );
    }

    #[test]
    fn an_upload_failure_payload_names_the_copy_the_error_and_the_next_attempt() {
        let failed = |attempt, next_attempt| Notification {
            id: "n4".into(),
            time: at("2026-11-22T03:00:05Z"),
            event: Event::BackupUploadFailed {
                database_id: "db1".into(),
                database_name: "shop".into(),
                backup_id: "b1".into(),
                location: "s3://backups/berth/db1/shop-x.dump.gz".into(),
                endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
                error: "the server answered 403 Forbidden: AccessDenied: Access Denied".into(),
                attempt,
                next_attempt,
            },
        };
        let ws = WorkspaceRef { id: "w1".into(), slug: "acme".into(), name: "Acme".into() };
        let p = payload(
            &failed(1, Some(at("2026-11-22T03:31:05Z"))),
            Some(&ws),
            Some("https://b.example/w/acme/databases/db1"),
        );
        assert_eq!(
            p,
            json!({
                "id": "n4",
                "event": "backup.upload_failed",
                "time": "2026-11-22T03:00:05Z",
                "workspace": {"id": "w1", "slug": "acme", "name": "Acme"},
                "subject": "database shop",
                "message": "A backup of database shop in workspace acme could not be copied to s3://backups/berth/db1/shop-x.dump.gz: the server answered 403 Forbidden: AccessDenied: Access Denied. It is only on this server's disk; next attempt at 2026-11-22T03:31:05Z.",
                "url": "https://b.example/w/acme/databases/db1",
                "details": {
                    "database_id": "db1",
                    "database_name": "shop",
                    "backup_id": "b1",
                    "location": "s3://backups/berth/db1/shop-x.dump.gz",
                    "endpoint": "https://s3.eu-west-1.amazonaws.com",
                    "error": "the server answered 403 Forbidden: AccessDenied: Access Denied",
                    "attempt": 1,
                    "next_attempt": "2026-11-22T03:31:05Z",
                },
            })
        );
        let last = payload(&failed(16, None), None, None);
        assert_eq!(last["details"]["next_attempt"], Value::Null);
        assert!(last["message"].as_str().unwrap().ends_with("no more attempts are made after 16."), "{last}");
        // Its own streak: a failing upload does not silence a failing backup of the same database, or the reverse.
        let (key, every) = failed(1, None).event.streak();
        assert_eq!((key.as_str(), every), ("backup.upload_failed:db1", TimeDelta::hours(1)));
        assert_eq!(key, upload_streak("db1"));
        assert_ne!(key, backup_streak("db1"));
    }

    #[test]
    fn certificate_payloads_say_whether_https_still_works() {
        let failed = Notification {
            id: "n2".into(),
            time: at("2026-11-22T10:00:00Z"),
            event: Event::CertificateFailed {
                domains: vec!["shop.example.com".into()],
                error: "validation failed: 404".into(),
                next_attempt: at("2026-11-22T10:01:00Z"),
                valid_until: None,
            },
        };
        let p = payload(&failed, None, None);
        assert_eq!(p["event"], "certificate.failed");
        assert_eq!(p["workspace"], Value::Null);
        assert_eq!(p["subject"], "certificate shop.example.com");
        assert_eq!(
            p["details"],
            json!({"domains": ["shop.example.com"], "error": "validation failed: 404",
                   "next_attempt": "2026-11-22T10:01:00Z", "valid_until": null})
        );
        assert!(p["message"].as_str().unwrap().ends_with("HTTPS does not work for it meanwhile."), "{p}");

        let expiring = Notification {
            id: "n3".into(),
            time: at("2026-11-22T10:00:00Z"),
            event: Event::CertificateExpiringSoon {
                domain: "shop.example.com".into(),
                not_after: at("2026-11-29T10:00:00Z"),
                error: Some("rate limited".into()),
            },
        };
        let p = payload(&expiring, None, None);
        assert_eq!(p["event"], "certificate.expiring_soon");
        assert_eq!(
            p["details"],
            json!({"domain": "shop.example.com", "not_after": "2026-11-29T10:00:00Z", "error": "rate limited"})
        );
    }

    #[test]
    fn the_signature_follows_standard_webhooks() {
        // The Standard Webhooks specification's own example (its reference libraries produce this value).
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let plain = signing_key("a-long-enough-plain-secret").unwrap();
        assert_eq!(plain, b"a-long-enough-plain-secret");
        assert_ne!(signature(&plain, "id", 1, b"x"), signature(&plain, "id", 2, b"x"), "the timestamp is signed");
        assert!(signing_key("whsec_not base64!").is_err());
        assert!(signing_key("short").is_err());
    }

    #[test]
    fn retries_back_off_and_stop_on_refusals() {
        let delays: Vec<u64> = (1..DELIVERY_ATTEMPTS).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [2, 10, 50]);
        for status in [408, 429, 500, 502, 503] {
            assert!(retryable(status), "{status}");
        }
        for status in [301, 400, 401, 403, 404, 410] {
            assert!(!retryable(status), "{status}");
        }
    }

    #[test]
    fn a_streak_is_announced_first_then_once_per_interval_until_it_ends() {
        let mut s = Streaks::default();
        let (key, every) = backup_failed().event.streak();
        assert_eq!((key.as_str(), every), ("backup.failed:db1", TimeDelta::hours(1)));
        let t0 = at("2026-11-22T10:00:00Z");
        assert!(s.admit(&key, every, t0));
        assert!(!s.admit(&key, every, t0 + TimeDelta::minutes(1)));
        assert!(!s.admit(&key, every, t0 + TimeDelta::minutes(59)));
        assert!(s.admit("backup.failed:db2", every, t0), "another database is another streak");
        assert!(s.admit(&key, every, t0 + TimeDelta::minutes(61)), "a reminder an hour later");
        s.end(&key);
        assert!(s.admit(&key, every, t0 + TimeDelta::minutes(62)), "after a success the next failure is news");
        let cert = Event::CertificateFailed {
            domains: vec!["a.example.com".into()],
            error: String::new(),
            next_attempt: t0,
            valid_until: None,
        };
        assert_eq!(cert.streak(), (certificate_streak("a.example.com"), TimeDelta::hours(24)));
        assert!(certificate_streaks("a.example.com").contains(&cert.streak().0));
    }
}
