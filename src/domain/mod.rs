//! Pure types and rules: identifiers, slugs, roles and input validation. No I/O, no async.

pub mod custom_domain;
pub mod database;
pub mod deployment;
pub mod env;
pub mod notification;
pub mod project;
mod role;
pub mod runtime_logs;
mod slug;
mod types;
pub mod upload_retry;
mod validate;

pub use deployment::{DeploymentKind, DeploymentStatus, deployment_ref};
pub use env::{Scope, Variable};
pub use project::{BuildConfig, Builder, Environment, Limits, PRODUCTION, Project, RuntimeConfig, Volume};
pub use role::Role;
pub use slug::{Slug, derive_slug};
pub use types::*;
pub use validate::{Invalid, validate_email, validate_name, validate_password};

/// The current time as Berth stores and returns it: RFC 3339, UTC, second precision.
pub fn now() -> Timestamp {
    Timestamp(chrono::Utc::now().with_nanosecond_zeroed())
}

trait ZeroNanos {
    fn with_nanosecond_zeroed(self) -> Self;
}

impl ZeroNanos for chrono::DateTime<chrono::Utc> {
    fn with_nanosecond_zeroed(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// A new random identifier (UUID v7: time-ordered, so ids sort by creation).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
