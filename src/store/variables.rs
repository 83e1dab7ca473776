//! The `variables` table: one row per key and scope. Secret values arrive here already sealed.

use super::{StoreError, ts};
use crate::domain::{Scope, Timestamp};
use rusqlite::{Connection, Row, params};

/// Which rows a call works on: a workspace's shared variables, a project's, or one environment's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRef {
    pub workspace_id: String,
    pub project_id: Option<String>,
    pub environment_id: Option<String>,
}

/// A stored variable; `value` is sealed when `is_secret`.
#[derive(Debug, Clone)]
pub struct StoredVariable {
    pub id: String,
    pub key: String,
    pub value: String,
    pub is_secret: bool,
    /// A secret that builds also receive (as a build argument).
    pub build_secret: bool,
    pub scope: Scope,
    /// Environment name, for environment-scoped rows.
    pub environment: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredVariable> {
    let project: Option<String> = row.get("project_id")?;
    let env: Option<String> = row.get("environment_id")?;
    Ok(StoredVariable {
        id: row.get("id")?,
        key: row.get("key")?,
        value: row.get("value")?,
        is_secret: row.get("is_secret")?,
        build_secret: row.get("build_secret")?,
        scope: match (project, env) {
            (None, _) => Scope::Workspace,
            (Some(_), None) => Scope::Project,
            (Some(_), Some(_)) => Scope::Environment,
        },
        environment: row.get("env_name")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

const SELECT: &str =
    "SELECT v.*, e.name AS env_name FROM variables v LEFT JOIN environments e ON e.id = v.environment_id";

/// The rows of exactly one scope, by key.
pub fn list(conn: &Connection, scope: &ScopeRef) -> Result<Vec<StoredVariable>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SELECT} WHERE v.workspace_id = ?1 AND v.project_id IS ?2 AND v.environment_id IS ?3 ORDER BY v.key"
        ))?
        .query_map(params![scope.workspace_id, scope.project_id, scope.environment_id], from_row)?
        .collect::<Result<_, _>>()?)
}

/// Every row that applies to a project's environment: workspace, project and that environment's, by key.
pub fn applicable(
    conn: &Connection,
    workspace_id: &str,
    project_id: &str,
    environment_id: &str,
) -> Result<Vec<StoredVariable>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SELECT} WHERE v.workspace_id = ?1 AND (v.project_id IS NULL OR (v.project_id = ?2
               AND (v.environment_id IS NULL OR v.environment_id = ?3))) ORDER BY v.key"
        ))?
        .query_map(params![workspace_id, project_id, environment_id], from_row)?
        .collect::<Result<_, _>>()?)
}

pub fn insert(conn: &Connection, scope: &ScopeRef, v: &StoredVariable) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO variables (id, workspace_id, project_id, environment_id, key, value, is_secret, build_secret,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            v.id,
            scope.workspace_id,
            scope.project_id,
            scope.environment_id,
            v.key,
            v.value,
            v.is_secret,
            v.build_secret,
            v.created_at.to_rfc3339(),
            v.updated_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

/// Replaces a row's value and secrecy (by id). Only a secret can be a build secret.
pub fn update(
    conn: &Connection,
    id: &str,
    value: &str,
    is_secret: bool,
    build_secret: bool,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE variables SET value = ?2, is_secret = ?3, build_secret = ?4, updated_at = ?5 WHERE id = ?1",
        params![id, value, is_secret, build_secret && is_secret, at.to_rfc3339()],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM variables WHERE id = ?1", [id])?;
    Ok(())
}

/// Every secret row of the instance as (id, sealed value): what key rotation re-encrypts.
pub fn all_secrets(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(conn
        .prepare("SELECT id, value FROM variables WHERE is_secret = 1")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// Writes a re-sealed value without touching `updated_at` (key rotation changes no value).
pub fn reseal(conn: &Connection, id: &str, sealed: &str) -> Result<(), StoreError> {
    conn.execute("UPDATE variables SET value = ?2 WHERE id = ?1", params![id, sealed])?;
    Ok(())
}
