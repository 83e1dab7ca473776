//! The `invitations` table. Only a digest of each token is stored.

use super::{StoreError, role, ts, ts_opt};
use crate::domain::{Invitation, PageRequest, Paged, Role, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// An invitation together with the workspace it is for (when looked up by token).
#[derive(Debug, Clone)]
pub struct InvitationRecord {
    pub workspace_id: String,
    pub invitation: Invitation,
}

fn from_row(row: &Row<'_>, now: Timestamp) -> rusqlite::Result<InvitationRecord> {
    let expires_at = ts(row, "expires_at")?;
    let accepted_at = ts_opt(row, "accepted_at")?;
    let status = if accepted_at.is_some() {
        "accepted"
    } else if expires_at <= now {
        "expired"
    } else {
        "pending"
    };
    Ok(InvitationRecord {
        workspace_id: row.get("workspace_id")?,
        invitation: Invitation {
            id: row.get("id")?,
            email: row.get("email")?,
            role: role(row, "role")?,
            status: status.into(),
            invited_by: row.get("invited_by")?,
            created_at: ts(row, "created_at")?,
            expires_at,
            accepted_at,
        },
    })
}

/// Fields of a new invitation.
pub struct NewInvitation<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a [u8],
    pub invited_by: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

pub fn insert(conn: &Connection, n: &NewInvitation<'_>) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO invitations (id, workspace_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            n.id,
            n.workspace_id,
            n.email,
            n.role.as_str(),
            n.token_hash,
            n.invited_by,
            n.created_at.to_rfc3339(),
            n.expires_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

/// Whether a pending (not accepted, not expired) invitation for `email` exists in the workspace.
pub fn pending_for_email(
    conn: &Connection,
    workspace_id: &str,
    email: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM invitations WHERE workspace_id = ?1 AND email = ?2 COLLATE NOCASE AND accepted_at IS NULL AND expires_at > ?3)",
        params![workspace_id, email, now.to_rfc3339()],
        |r| r.get(0),
    )?)
}

pub fn list(
    conn: &Connection,
    workspace_id: &str,
    page: PageRequest,
    now: Timestamp,
) -> Result<Paged<Invitation>, StoreError> {
    let total =
        conn.query_row("SELECT COUNT(*) FROM invitations WHERE workspace_id = ?1", [workspace_id], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM invitations WHERE workspace_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let items = stmt
        .query_map(params![workspace_id, page.limit, page.offset()], |r| from_row(r, now).map(|x| x.invitation))?
        .collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

pub fn by_token_hash(conn: &Connection, hash: &[u8], now: Timestamp) -> Result<Option<InvitationRecord>, StoreError> {
    Ok(conn.query_row("SELECT * FROM invitations WHERE token_hash = ?1", [hash], |r| from_row(r, now)).optional()?)
}

pub fn mark_accepted(conn: &Connection, id: &str, user_id: &str, now: Timestamp) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE invitations SET accepted_at = ?3, accepted_by = ?2 WHERE id = ?1",
        params![id, user_id, now.to_rfc3339()],
    )?;
    Ok(())
}

/// Deletes an invitation of the workspace; `false` when there was none.
pub fn delete(conn: &Connection, workspace_id: &str, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM invitations WHERE workspace_id = ?1 AND id = ?2", params![workspace_id, id])? == 1)
}
