//! The `api_keys` table. Only a SHA-256 digest of each key is stored.

use super::{StoreError, role, ts, ts_opt, users};
use crate::domain::{ApiKey, PageRequest, Paged, Role, Timestamp, User, Workspace};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get("id")?,
        name: row.get("name")?,
        role: role(row, "role")?,
        key_prefix: row.get("key_prefix")?,
        created_by: row.get("user_id")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts_opt(row, "expires_at")?,
        last_used_at: ts_opt(row, "last_used_at")?,
    })
}

/// Fields of a new key.
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub key_hash: &'a [u8],
    pub key_prefix: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

pub fn insert(conn: &Connection, k: &NewApiKey<'_>) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO api_keys (id, workspace_id, user_id, name, role, key_hash, key_prefix, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            k.id,
            k.workspace_id,
            k.user_id,
            k.name,
            k.role.as_str(),
            k.key_hash,
            k.key_prefix,
            k.created_at.to_rfc3339(),
            k.expires_at.map(|t| t.to_rfc3339())
        ],
    )?;
    Ok(())
}

/// The workspace's keys that are not revoked, newest first.
pub fn list(conn: &Connection, workspace_id: &str, page: PageRequest) -> Result<Paged<ApiKey>, StoreError> {
    let total = conn.query_row(
        "SELECT COUNT(*) FROM api_keys WHERE workspace_id = ?1 AND revoked_at IS NULL",
        [workspace_id],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM api_keys WHERE workspace_id = ?1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let items =
        stmt.query_map(params![workspace_id, page.limit, page.offset()], from_row)?.collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

/// Revokes a key of the workspace at once; `false` when there is no such unrevoked key.
pub fn revoke(conn: &Connection, workspace_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE workspace_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        params![workspace_id, id, now.to_rfc3339()],
    )? == 1)
}

/// What a presented key resolves to.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: String,
    pub key_hash: Vec<u8>,
    pub key_prefix: String,
    pub key_role: Role,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
    pub user: User,
    pub workspace: Workspace,
    /// The creator's current role in the key's workspace; `None` once they left it.
    pub member_role: Option<Role>,
}

/// Looks a key up by digest with its user, workspace and the user's current membership, in one query.
pub fn by_hash(conn: &Connection, hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT k.id AS key_id, k.key_hash, k.key_prefix, k.role AS key_role, k.expires_at, k.revoked_at,
                u.id, u.email, u.name, u.is_instance_admin, u.created_at,
                w.id AS w_id, w.name AS w_name, w.slug AS w_slug, w.namespace AS w_namespace, w.created_at AS w_created_at,
                m.role AS member_role
         FROM api_keys k
         JOIN users u ON u.id = k.user_id
         JOIN workspaces w ON w.id = k.workspace_id
         LEFT JOIN members m ON m.workspace_id = k.workspace_id AND m.user_id = k.user_id
         WHERE k.key_hash = ?1",
    )?;
    Ok(stmt
        .query_row([hash], |r| {
            let member_role: Option<String> = r.get("member_role")?;
            Ok(KeyRecord {
                key_id: r.get("key_id")?,
                key_hash: r.get("key_hash")?,
                key_prefix: r.get("key_prefix")?,
                key_role: role(r, "key_role")?,
                expires_at: ts_opt(r, "expires_at")?,
                revoked: r.get::<_, Option<String>>("revoked_at")?.is_some(),
                user: users::from_row(r)?,
                workspace: Workspace {
                    id: r.get("w_id")?,
                    name: r.get("w_name")?,
                    slug: r.get("w_slug")?,
                    namespace: r.get("w_namespace")?,
                    created_at: ts(r, "w_created_at")?,
                },
                member_role: member_role.as_deref().and_then(Role::parse),
            })
        })
        .optional()?)
}

/// Records that a key was used.
pub fn touch(conn: &Connection, id: &str, now: Timestamp) -> Result<(), StoreError> {
    conn.execute("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", params![id, now.to_rfc3339()])?;
    Ok(())
}
