//! The `sessions` table: dashboard and API sign-ins by cookie. Only a digest of each session token is stored.

use super::{StoreError, ts, users};
use crate::domain::{Timestamp, User};
use rusqlite::{Connection, OptionalExtension, params};

pub fn insert(
    conn: &Connection,
    id_hash: &[u8],
    user_id: &str,
    csrf_token: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash, user_id, csrf_token, now.to_rfc3339(), expires_at.to_rfc3339()],
    )?;
    Ok(())
}

/// A live session's user and CSRF token; expired sessions are not returned.
pub fn by_hash(conn: &Connection, id_hash: &[u8], now: Timestamp) -> Result<Option<(User, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.email, u.name, u.is_instance_admin, u.created_at, s.csrf_token, s.expires_at
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1",
    )?;
    let found = stmt
        .query_row([id_hash], |r| Ok((users::from_row(r)?, r.get::<_, String>("csrf_token")?, ts(r, "expires_at")?)))
        .optional()?;
    Ok(found.and_then(|(user, csrf, expires)| (expires > now).then_some((user, csrf))))
}

pub fn delete(conn: &Connection, id_hash: &[u8]) -> Result<(), StoreError> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

/// Removes expired sessions; returns how many.
pub fn delete_expired(conn: &Connection, now: Timestamp) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now.to_rfc3339()])?)
}
