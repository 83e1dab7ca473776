//! The `audit_log` table: append-only.

use super::{StoreError, ts};
use crate::domain::{AuditEntry, PageRequest, Paged, Timestamp};
use rusqlite::{Connection, params};

/// One audit line to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub workspace_id: Option<String>,
    pub actor_kind: &'static str,
    pub actor_id: Option<String>,
    pub actor_label: String,
    pub key_id: Option<String>,
    pub action: &'static str,
    pub target: String,
    pub details: serde_json::Value,
    pub ip: Option<String>,
    pub created_at: Timestamp,
}

pub fn insert(conn: &Connection, e: &NewAuditEntry) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_log (workspace_id, actor_kind, actor_id, actor_label, key_id, action, target, details, ip, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![e.workspace_id, e.actor_kind, e.actor_id, e.actor_label, e.key_id, e.action, e.target, e.details.to_string(), e.ip, e.created_at.to_rfc3339()],
    )?;
    Ok(())
}

/// A workspace's audit trail, newest first.
pub fn list(conn: &Connection, workspace_id: &str, page: PageRequest) -> Result<Paged<AuditEntry>, StoreError> {
    let total =
        conn.query_row("SELECT COUNT(*) FROM audit_log WHERE workspace_id = ?1", [workspace_id], |r| r.get(0))?;
    let mut stmt =
        conn.prepare_cached("SELECT * FROM audit_log WHERE workspace_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3")?;
    let items = stmt
        .query_map(params![workspace_id, page.limit, page.offset()], |r| {
            let details: String = r.get("details")?;
            Ok(AuditEntry {
                id: r.get("id")?,
                actor_kind: r.get("actor_kind")?,
                actor_id: r.get("actor_id")?,
                actor: r.get("actor_label")?,
                key_id: r.get("key_id")?,
                action: r.get("action")?,
                target: r.get("target")?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                ip: r.get("ip")?,
                created_at: ts(r, "created_at")?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}
