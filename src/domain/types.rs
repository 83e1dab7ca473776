//! The records Berth keeps, in the shape the API shows them. Secrets (password and key hashes) never live here.

use super::Role;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// A point in time, shown as RFC 3339 UTC with second precision (`2026-11-24T14:16:35Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The stored and displayed text form.
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s).ok().map(|t| Timestamp(t.with_timezone(&Utc)))
    }

    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0 + chrono::Duration::days(days))
    }

    pub fn plus_hours(self, hours: i64) -> Timestamp {
        Timestamp(self.0 + chrono::Duration::hours(hours))
    }

    /// `self` plus `d`, rounded up to the second (the stored precision), so it is never earlier than meant.
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
        let later = i64::try_from(secs)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .and_then(|d| self.0.checked_add_signed(d));
        Timestamp(later.unwrap_or(DateTime::<Utc>::MAX_UTC))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// A person who can sign in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// Instance administrators manage the host itself (wallet top-ups, host metrics).
    pub is_instance_admin: bool,
    pub created_at: Timestamp,
}

/// A workspace: the unit of membership, billing and isolation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// Stable internal name (Docker network and labels); does not change when the slug does.
    pub namespace: String,
    pub created_at: Timestamp,
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// A pending, accepted or expired invitation. The token itself is shown only once, at creation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// `pending`, `accepted` or `expired`.
    pub status: String,
    pub invited_by: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
}

/// An API key as listed: never the key itself, only its prefix.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// `berth_sk_` and the first 4 hex digits: enough to recognise a key, never to use it.
    pub key_prefix: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// One line of the audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// `session`, `api_key`, `cli`, `setup` or `invitation`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    /// Who, in words: the user's email (and key prefix for keys).
    pub actor: String,
    pub key_id: Option<String>,
    /// Dotted verb, e.g. `workspace.update`, `api_key.create`, `member.remove`.
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub ip: Option<String>,
    pub created_at: Timestamp,
}

/// One page of a listing, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    pub fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.limit)
    }
}

/// A page of results plus the total count across all pages.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}
