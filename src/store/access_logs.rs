//! The `access_logs` table: what the proxy saw, per project.

use super::StoreError;
use rusqlite::{Connection, Row, params};
use serde::Serialize;
use utoipa::ToSchema;

/// One stored request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccessLogEntry {
    /// Increases with every entry; pass the last one as `after` to continue.
    pub seq: i64,
    /// RFC 3339 with milliseconds.
    pub at: String,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: u32,
    pub client_ip: String,
    pub request_id: String,
    pub https: bool,
    /// The deployment whose replicas answered (or would have).
    pub deployment_id: Option<String>,
}

/// An entry to store; `deployment_id` decides the project.
#[derive(Debug, Clone)]
pub struct NewAccessEntry {
    pub deployment_id: String,
    pub at: String,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: u32,
    pub client_ip: String,
    pub request_id: String,
    pub https: bool,
}

/// Which entries a query wants by status: one code (`404`) or a class (`4xx`, `5xx`), or every error (`error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
    Errors,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<AccessLogEntry> {
    Ok(AccessLogEntry {
        seq: row.get("seq")?,
        at: row.get("at")?,
        host: row.get("host")?,
        method: row.get("method")?,
        path: row.get("path")?,
        status: row.get("status")?,
        duration_ms: row.get("duration_ms")?,
        client_ip: row.get("client_ip")?,
        request_id: row.get("request_id")?,
        https: row.get("https")?,
        deployment_id: row.get("deployment_id")?,
    })
}

/// Stores entries; those whose deployment is unknown (deleted meanwhile) are skipped. Returns how many were stored.
pub fn append(conn: &Connection, entries: &[NewAccessEntry]) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO access_logs (project_id, deployment_id, at, host, method, path, status, duration_ms, client_ip,
             request_id, https)
         SELECT d.project_id, d.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM deployments d WHERE d.id = ?1",
    )?;
    let mut stored = 0;
    for e in entries {
        stored += stmt.execute(params![
            e.deployment_id,
            e.at,
            e.host,
            e.method,
            e.path,
            e.status,
            e.duration_ms,
            e.client_ip,
            e.request_id,
            e.https
        ])?;
    }
    Ok(stored)
}

/// A project's entries after `after` (oldest first), at most `limit`.
pub fn after(
    conn: &Connection,
    project_id: &str,
    after: i64,
    status: Option<StatusFilter>,
    limit: u32,
) -> Result<Vec<AccessLogEntry>, StoreError> {
    let (low, high) = match status {
        None => (0, 999),
        Some(StatusFilter::Exact(code)) => (code, code),
        Some(StatusFilter::Class(class)) => (class * 100, class * 100 + 99),
        Some(StatusFilter::Errors) => (400, 599),
    };
    Ok(conn
        .prepare_cached(
            "SELECT * FROM access_logs WHERE project_id = ?1 AND seq > ?2 AND status BETWEEN ?3 AND ?4
             ORDER BY seq LIMIT ?5",
        )?
        .query_map(params![project_id, after, low, high, limit], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Deletes entries older than `cutoff` (RFC 3339) and, per project, all but the newest `keep_per_project`.
pub fn prune(conn: &Connection, cutoff: &str, keep_per_project: u32) -> Result<usize, StoreError> {
    let old = conn.execute("DELETE FROM access_logs WHERE at < ?1", [cutoff])?;
    let excess = conn.execute(
        "DELETE FROM access_logs WHERE seq IN (
             SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (PARTITION BY project_id ORDER BY seq DESC) AS n
                              FROM access_logs) WHERE n > ?1)",
        [keep_per_project],
    )?;
    Ok(old + excess)
}
