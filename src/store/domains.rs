//! The `domains` table: custom domains, unique instance-wide.

use super::{StoreError, ts, ts_opt};
use crate::domain::Timestamp;
use crate::domain::custom_domain::DomainStatus;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A stored custom domain.
#[derive(Debug, Clone)]
pub struct DomainRow {
    pub id: String,
    pub workspace_id: String,
    pub project_id: String,
    pub domain: String,
    pub status: DomainStatus,
    /// What Berth's HTTP listener answers at `/.well-known/berth-verification/<token>` for this domain.
    pub token: String,
    /// How it was verified: `dns` or `http`.
    pub method: Option<String>,
    /// Why it is still pending (or what the last check found).
    pub message: Option<String>,
    /// The addresses the domain resolved to at the last check.
    pub found: Vec<String>,
    pub https_redirect: bool,
    pub checked_at: Option<Timestamp>,
    pub verified_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<DomainRow> {
    let status: String = row.get("status")?;
    let found: String = row.get("found")?;
    Ok(DomainRow {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        project_id: row.get("project_id")?,
        domain: row.get("domain")?,
        status: DomainStatus::parse(&status).unwrap_or(DomainStatus::PendingDns),
        token: row.get("token")?,
        method: row.get("method")?,
        message: row.get("message")?,
        found: serde_json::from_str(&found).unwrap_or_default(),
        https_redirect: row.get("https_redirect")?,
        checked_at: ts_opt(row, "checked_at")?,
        verified_at: ts_opt(row, "verified_at")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Inserts a domain; a domain already taken (by any project of the instance) is [`StoreError::Unique`].
pub fn insert(conn: &Connection, d: &DomainRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO domains (id, workspace_id, project_id, domain, status, token, https_redirect, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            d.id,
            d.workspace_id,
            d.project_id,
            d.domain,
            d.status.as_str(),
            d.token,
            d.https_redirect,
            d.created_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<DomainRow>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM domains WHERE id = ?1")?.query_row([id], from_row).optional()?)
}

/// The row holding `domain`, whichever project it belongs to.
pub fn by_name(conn: &Connection, domain: &str) -> Result<Option<DomainRow>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM domains WHERE domain = ?1")?.query_row([domain], from_row).optional()?)
}

pub fn for_project(conn: &Connection, project_id: &str) -> Result<Vec<DomainRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM domains WHERE project_id = ?1 ORDER BY domain")?
        .query_map([project_id], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Every domain of the instance (the route table, certificates and the background verifier use it).
pub fn all(conn: &Connection) -> Result<Vec<DomainRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM domains ORDER BY domain")?
        .query_map([], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Records a check: its outcome, what was found and why it is (still) pending.
pub fn set_checked(
    conn: &Connection,
    id: &str,
    status: DomainStatus,
    method: Option<&str>,
    message: Option<&str>,
    found: &[String],
    at: Timestamp,
) -> Result<(), StoreError> {
    let found = serde_json::to_string(found).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let verified = (status == DomainStatus::Verified).then(|| at.to_rfc3339());
    conn.execute(
        "UPDATE domains SET status = ?2, method = COALESCE(?3, method), message = ?4, found = ?5, checked_at = ?6,
             verified_at = COALESCE(verified_at, ?7) WHERE id = ?1",
        params![id, status.as_str(), method, message, found, at.to_rfc3339(), verified],
    )?;
    Ok(())
}

pub fn set_https_redirect(conn: &Connection, id: &str, on: bool) -> Result<(), StoreError> {
    conn.execute("UPDATE domains SET https_redirect = ?2 WHERE id = ?1", params![id, on])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM domains WHERE id = ?1", [id])?;
    Ok(())
}

/// Verified domains with the default host of their project (`<project>.<workspace>`, without the base domain):
/// what the route table adds.
pub fn routable(conn: &Connection) -> Result<Vec<(String, String, bool)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT d.domain, p.slug || '.' || w.slug, d.https_redirect FROM domains d
             JOIN projects p ON p.id = d.project_id JOIN workspaces w ON w.id = d.workspace_id
             WHERE d.status = 'verified' ORDER BY d.domain",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?)
}
