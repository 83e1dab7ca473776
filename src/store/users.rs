//! The `users` table.

use super::{StoreError, ts};
use crate::domain::User;
use rusqlite::{Connection, OptionalExtension, Row, params};

const COLUMNS: &str = "id, email, name, is_instance_admin, created_at";

pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get("id")?,
        email: row.get("email")?,
        name: row.get("name")?,
        is_instance_admin: row.get("is_instance_admin")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Inserts a user; a taken email is [`StoreError::Unique`].
pub fn insert(conn: &Connection, user: &User, password_hash: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO users (id, email, name, password_hash, is_instance_admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user.id, user.email, user.name, password_hash, user.is_instance_admin, user.created_at.to_rfc3339()],
    )?;
    Ok(())
}

/// How many users exist (0 means first-run setup is still open).
pub fn count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<User>, StoreError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"), [id], from_row).optional()?)
}

/// A user by email (case-insensitive).
pub fn by_email(conn: &Connection, email: &str) -> Result<Option<User>, StoreError> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM users WHERE email = ?1"), [email], from_row).optional()?)
}

/// A user and their password hash, for signing in.
pub fn credentials(conn: &Connection, email: &str) -> Result<Option<(User, String)>, StoreError> {
    Ok(conn
        .query_row(&format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = ?1"), [email], |r| {
            Ok((from_row(r)?, r.get("password_hash")?))
        })
        .optional()?)
}

pub fn set_password(conn: &Connection, id: &str, password_hash: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, password_hash])? == 1)
}
