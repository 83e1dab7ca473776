//! Who is calling, and what they may do in a workspace.

use super::{ServiceError, Services};
use crate::domain::{Role, User, Workspace, now};
use crate::store::{self, audit::NewAuditEntry};
use rusqlite::Connection;

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A dashboard/API session cookie; mutating requests must carry this CSRF token.
    Session { csrf_token: String },
    /// An API key, scoped to one workspace with a role no higher than its creator's current role.
    ApiKey { key_id: String, key_prefix: String, workspace: Workspace, role: Role },
    /// The `berth admin` command line, working on the data dir directly.
    Cli,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub via: Via,
    pub ip: Option<String>,
}

/// A caller's standing in one workspace.
#[derive(Debug, Clone)]
pub struct Access {
    pub workspace: Workspace,
    pub role: Role,
}

impl Access {
    /// `Forbidden` unless the role is at least `needed`; the message says which role the action needs.
    pub fn require(&self, needed: Role, action: &str) -> Result<(), ServiceError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "{action} needs the {needed} role; you have {} in workspace '{}'",
                self.role, self.workspace.slug
            )))
        }
    }
}

impl Actor {
    /// The text the audit log shows for this caller.
    fn label(&self) -> String {
        match &self.via {
            Via::ApiKey { key_prefix, .. } => format!("{} (key {key_prefix}…)", self.user.email),
            _ => self.user.email.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self.via {
            Via::Session { .. } => "session",
            Via::ApiKey { .. } => "api_key",
            Via::Cli => "cli",
        }
    }

    /// An audit line for an action of this caller.
    pub(crate) fn audit(
        &self,
        workspace_id: Option<&str>,
        action: &'static str,
        target: impl Into<String>,
        details: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            workspace_id: workspace_id.map(str::to_owned),
            actor_kind: self.kind(),
            actor_id: Some(self.user.id.clone()),
            actor_label: self.label(),
            key_id: match &self.via {
                Via::ApiKey { key_id, .. } => Some(key_id.clone()),
                _ => None,
            },
            action,
            target: target.into(),
            details,
            ip: self.ip.clone(),
            created_at: now(),
        }
    }
}

/// Resolves `slug` for `actor` on an open connection: `NotFound` for a workspace that does not exist, that the
/// caller is no member of, or that the caller's API key is not scoped to: all three look the same from outside.
pub(crate) fn resolve(conn: &Connection, actor: &Actor, slug: &str) -> Result<Access, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("workspace '{slug}' not found"));
    match &actor.via {
        Via::ApiKey { workspace, role, .. } => {
            if workspace.slug != slug {
                return Err(not_found());
            }
            // Re-read so a renamed or re-roled workspace is seen as it is now.
            let (ws, member_role) = store::workspaces::for_member(conn, &actor.user.id, slug)?.ok_or_else(not_found)?;
            Ok(Access { workspace: ws, role: member_role.min(*role) })
        }
        _ => {
            let (workspace, role) = store::workspaces::for_member(conn, &actor.user.id, slug)?.ok_or_else(not_found)?;
            Ok(Access { workspace, role })
        }
    }
}

impl Services {
    /// The caller's access to a workspace, read outside any transaction.
    pub async fn access(&self, actor: &Actor, slug: &str) -> Result<Access, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store.read(move |c| resolve(c, &actor, &slug)).await
    }
}
