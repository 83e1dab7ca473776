//! The `members` table: who belongs to which workspace, with which role.

use super::{StoreError, role, ts};
use crate::domain::{Member, PageRequest, Paged, Role, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

const SELECT: &str =
    "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM members m JOIN users u ON u.id = m.user_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        user_id: row.get("user_id")?,
        email: row.get("email")?,
        name: row.get("name")?,
        role: role(row, "role")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Adds a member; an existing membership is [`StoreError::Unique`].
pub fn insert(
    conn: &Connection,
    workspace_id: &str,
    user_id: &str,
    role: Role,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO members (workspace_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![workspace_id, user_id, role.as_str(), now.to_rfc3339()],
    )?;
    Ok(())
}

pub fn list(conn: &Connection, workspace_id: &str, page: PageRequest) -> Result<Paged<Member>, StoreError> {
    let total = conn.query_row("SELECT COUNT(*) FROM members WHERE workspace_id = ?1", [workspace_id], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE m.workspace_id = ?1 ORDER BY m.created_at, m.user_id LIMIT ?2 OFFSET ?3"
    ))?;
    let items =
        stmt.query_map(params![workspace_id, page.limit, page.offset()], from_row)?.collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

pub fn get(conn: &Connection, workspace_id: &str, user_id: &str) -> Result<Option<Member>, StoreError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE m.workspace_id = ?1 AND m.user_id = ?2"),
            params![workspace_id, user_id],
            from_row,
        )
        .optional()?)
}

pub fn set_role(conn: &Connection, workspace_id: &str, user_id: &str, role: Role) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE members SET role = ?3 WHERE workspace_id = ?1 AND user_id = ?2",
        params![workspace_id, user_id, role.as_str()],
    )?;
    Ok(())
}

/// Removes a member and revokes the API keys they made for this workspace.
pub fn delete(conn: &Connection, workspace_id: &str, user_id: &str, now: Timestamp) -> Result<(), StoreError> {
    conn.execute("DELETE FROM members WHERE workspace_id = ?1 AND user_id = ?2", params![workspace_id, user_id])?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE workspace_id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![workspace_id, user_id, now.to_rfc3339()],
    )?;
    Ok(())
}

pub fn count_owners(conn: &Connection, workspace_id: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM members WHERE workspace_id = ?1 AND role = 'owner'",
        [workspace_id],
        |r| r.get(0),
    )?)
}
