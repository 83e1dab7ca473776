//! The `git_connections` table: one per project. `access_token`, `deploy_key_private` and `webhook_secret`
//! are stored sealed.

use super::{StoreError, ts};
use crate::domain::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A project's git connection as stored.
#[derive(Debug, Clone)]
pub struct GitRow {
    pub project_id: String,
    pub repo_url: String,
    pub branch: Option<String>,
    pub auto_deploy: bool,
    pub access_token: Option<String>,
    pub deploy_key_public: String,
    pub deploy_key_private: String,
    pub deploy_key_fingerprint: String,
    pub webhook_id: String,
    pub webhook_secret: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<GitRow> {
    Ok(GitRow {
        project_id: row.get("project_id")?,
        repo_url: row.get("repo_url")?,
        branch: row.get("branch")?,
        auto_deploy: row.get("auto_deploy")?,
        access_token: row.get("access_token")?,
        deploy_key_public: row.get("deploy_key_public")?,
        deploy_key_private: row.get("deploy_key_private")?,
        deploy_key_fingerprint: row.get("deploy_key_fingerprint")?,
        webhook_id: row.get("webhook_id")?,
        webhook_secret: row.get("webhook_secret")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub fn get(conn: &Connection, project_id: &str) -> Result<Option<GitRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM git_connections WHERE project_id = ?1")?
        .query_row([project_id], from_row)
        .optional()?)
}

/// Inserts or replaces a project's connection.
pub fn upsert(conn: &Connection, g: &GitRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO git_connections (project_id, repo_url, branch, auto_deploy, access_token, deploy_key_public,
             deploy_key_private, deploy_key_fingerprint, webhook_id, webhook_secret, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (project_id) DO UPDATE SET repo_url = excluded.repo_url, branch = excluded.branch,
             auto_deploy = excluded.auto_deploy, access_token = excluded.access_token,
             deploy_key_public = excluded.deploy_key_public, deploy_key_private = excluded.deploy_key_private,
             deploy_key_fingerprint = excluded.deploy_key_fingerprint, webhook_id = excluded.webhook_id,
             webhook_secret = excluded.webhook_secret, updated_at = excluded.updated_at",
        params![
            g.project_id,
            g.repo_url,
            g.branch,
            g.auto_deploy,
            g.access_token,
            g.deploy_key_public,
            g.deploy_key_private,
            g.deploy_key_fingerprint,
            g.webhook_id,
            g.webhook_secret,
            g.created_at.to_rfc3339(),
            g.updated_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, project_id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM git_connections WHERE project_id = ?1", [project_id])? > 0)
}

/// Every connection (key rotation re-seals their secrets).
pub fn all(conn: &Connection) -> Result<Vec<GitRow>, StoreError> {
    Ok(conn.prepare("SELECT * FROM git_connections")?.query_map([], from_row)?.collect::<Result<_, _>>()?)
}

/// The connection whose webhook id this is.
pub fn by_webhook(conn: &Connection, webhook_id: &str) -> Result<Option<GitRow>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM git_connections WHERE webhook_id = ?1")?
        .query_row([webhook_id], from_row)
        .optional()?)
}

/// Records that a pushed commit was acted on; `false` when it already was (a redelivery).
pub fn record_delivery(
    conn: &Connection,
    project_id: &str,
    commit: &str,
    provider: &str,
    delivery_id: Option<&str>,
    at: Timestamp,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_deliveries (project_id, commit_sha, provider, delivery_id, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![project_id, commit, provider, delivery_id, at.to_rfc3339()])?
        > 0)
}
