//! The `workspaces` table, and workspace lookups through membership.

use super::{StoreError, role, ts};
use crate::domain::{PageRequest, Paged, Role, Workspace};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn from_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: row.get("id")?,
        name: row.get("name")?,
        slug: row.get("slug")?,
        namespace: row.get("namespace")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Inserts a workspace; a taken slug is [`StoreError::Unique`] naming `workspaces.slug`.
pub fn insert(conn: &Connection, ws: &Workspace) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO workspaces (id, name, slug, namespace, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ws.id, ws.name, ws.slug, ws.namespace, ws.created_at.to_rfc3339()],
    )?;
    Ok(())
}

pub fn by_slug(conn: &Connection, slug: &str) -> Result<Option<Workspace>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM workspaces WHERE slug = ?1")?.query_row([slug], from_row).optional()?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Workspace>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM workspaces WHERE id = ?1")?.query_row([id], from_row).optional()?)
}

/// The workspace with `slug` and the user's role in it, or `None` when it does not exist or they are no member.
pub fn for_member(conn: &Connection, user_id: &str, slug: &str) -> Result<Option<(Workspace, Role)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT w.*, m.role FROM workspaces w JOIN members m ON m.workspace_id = w.id WHERE w.slug = ?1 AND m.user_id = ?2",
        )?
        .query_row(params![slug, user_id], |r| Ok((from_row(r)?, role(r, "role")?)))
        .optional()?)
}

/// The workspaces a user belongs to, with their role, oldest first. `only` restricts to one workspace id.
///
/// The two cases use separate statements: a `?2 IS NULL OR …` condition would make SQLite re-plan the cached
/// statement on every run (its plan depends on the bound value), which cost a third of a request's time.
pub fn list_for_member(
    conn: &Connection,
    user_id: &str,
    only: Option<&str>,
    page: PageRequest,
) -> Result<Paged<(Workspace, Role)>, StoreError> {
    const SELECT: &str =
        "SELECT w.*, m.role FROM workspaces w JOIN members m ON m.workspace_id = w.id WHERE m.user_id = ?1";
    let row = |r: &Row<'_>| Ok((from_row(r)?, role(r, "role")?));
    let (total, items) = match only {
        Some(ws) => {
            let total = conn
                .prepare_cached("SELECT COUNT(*) FROM members WHERE user_id = ?1 AND workspace_id = ?2")?
                .query_row(params![user_id, ws], |r| r.get(0))?;
            let items = conn
                .prepare_cached(&format!("{SELECT} AND w.id = ?2 LIMIT ?3 OFFSET ?4"))?
                .query_map(params![user_id, ws, page.limit, page.offset()], row)?
                .collect::<Result<_, _>>()?;
            (total, items)
        }
        None => {
            let total = conn
                .prepare_cached("SELECT COUNT(*) FROM members WHERE user_id = ?1")?
                .query_row(params![user_id], |r| r.get(0))?;
            let items = conn
                .prepare_cached(&format!("{SELECT} ORDER BY w.created_at, w.id LIMIT ?2 OFFSET ?3"))?
                .query_map(params![user_id, page.limit, page.offset()], row)?
                .collect::<Result<_, _>>()?;
            (total, items)
        }
    };
    Ok(Paged { items, total })
}

/// Renames a workspace and/or changes its slug.
pub fn update(conn: &Connection, id: &str, name: &str, slug: &str) -> Result<(), StoreError> {
    conn.execute("UPDATE workspaces SET name = ?2, slug = ?3 WHERE id = ?1", params![id, name, slug])?;
    Ok(())
}

/// Deletes a workspace; members, invitations and keys go with it (foreign keys cascade).
pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM workspaces WHERE id = ?1", [id])?;
    Ok(())
}
