//! The `projects` and `environments` tables.

use super::{StoreError, ts};
use crate::domain::{Environment, PageRequest, Paged, Project};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, col: &str) -> rusqlite::Result<T> {
    let s: String = row.get(col)?;
    serde_json::from_str(&s)
        .map_err(|e| rusqlite::Error::InvalidColumnType(0, format!("{col}: {e}"), rusqlite::types::Type::Text))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: row.get("id")?,
        workspace_id: row.get("workspace_id")?,
        name: row.get("name")?,
        slug: row.get("slug")?,
        status: row.get("status")?,
        port: row.get("port")?,
        replicas: row.get("replicas")?,
        cpu: row.get("cpu")?,
        ram: row.get("ram")?,
        image: row.get("image")?,
        template_name: row.get("template_name")?,
        build: json_col(row, "build")?,
        runtime: json_col(row, "runtime")?,
        volumes: json_col(row, "volumes")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inserts a project; a taken slug in the workspace is [`StoreError::Unique`].
pub fn insert(conn: &Connection, p: &Project) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO projects (id, workspace_id, name, slug, status, port, replicas, cpu, ram, image, template_name,
                               build, runtime, volumes, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            p.id,
            p.workspace_id,
            p.name,
            p.slug,
            p.status,
            p.port,
            p.replicas,
            p.cpu,
            p.ram,
            p.image,
            p.template_name,
            to_json(&p.build)?,
            to_json(&p.runtime)?,
            to_json(&p.volumes)?,
            p.created_at.to_rfc3339(),
            p.updated_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

/// Writes every field of an existing project (by id).
pub fn update(conn: &Connection, p: &Project) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE projects SET name = ?2, slug = ?3, status = ?4, port = ?5, replicas = ?6, cpu = ?7, ram = ?8,
                image = ?9, build = ?10, runtime = ?11, volumes = ?12, updated_at = ?13 WHERE id = ?1",
        params![
            p.id,
            p.name,
            p.slug,
            p.status,
            p.port,
            p.replicas,
            p.cpu,
            p.ram,
            p.image,
            to_json(&p.build)?,
            to_json(&p.runtime)?,
            to_json(&p.volumes)?,
            p.updated_at.to_rfc3339()
        ],
    )?;
    Ok(())
}

pub fn by_slug(conn: &Connection, workspace_id: &str, slug: &str) -> Result<Option<Project>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM projects WHERE workspace_id = ?1 AND slug = ?2")?
        .query_row(params![workspace_id, slug], from_row)
        .optional()?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Project>, StoreError> {
    Ok(conn.prepare_cached("SELECT * FROM projects WHERE id = ?1")?.query_row([id], from_row).optional()?)
}

/// Sets the project's status word (`running`, `stopped`, …).
pub fn set_status(conn: &Connection, id: &str, status: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE projects SET status = ?2 WHERE id = ?1")?.execute(params![id, status])?;
    Ok(())
}

/// A workspace's projects, oldest first.
pub fn list(conn: &Connection, workspace_id: &str, page: PageRequest) -> Result<Paged<Project>, StoreError> {
    let total = conn
        .prepare_cached("SELECT COUNT(*) FROM projects WHERE workspace_id = ?1")?
        .query_row([workspace_id], |r| r.get(0))?;
    let items = conn
        .prepare_cached("SELECT * FROM projects WHERE workspace_id = ?1 ORDER BY created_at, id LIMIT ?2 OFFSET ?3")?
        .query_map(params![workspace_id, page.limit, page.offset()], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

/// The ids of a workspace's projects.
pub fn ids_in_workspace(conn: &Connection, workspace_id: &str) -> Result<Vec<String>, StoreError> {
    let ids = conn
        .prepare_cached("SELECT id FROM projects WHERE workspace_id = ?1 ORDER BY created_at, id")?
        .query_map([workspace_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Deletes a project; its environments, variables and git connection go with it.
pub fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM projects WHERE id = ?1", [id])?;
    Ok(())
}

fn env_from_row(row: &Row<'_>) -> rusqlite::Result<Environment> {
    Ok(Environment {
        id: row.get("id")?,
        name: row.get("name")?,
        branch: row.get("branch")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Inserts an environment; a taken name in the project is [`StoreError::Unique`].
pub fn insert_environment(conn: &Connection, project_id: &str, e: &Environment) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO environments (id, project_id, name, branch, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.id, project_id, e.name, e.branch, e.created_at.to_rfc3339()],
    )?;
    Ok(())
}

/// A project's environments, `production` first, then by name.
pub fn environments(conn: &Connection, project_id: &str) -> Result<Vec<Environment>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM environments WHERE project_id = ?1 ORDER BY name <> 'production', name")?
        .query_map([project_id], env_from_row)?
        .collect::<Result<_, _>>()?)
}

pub fn environment(conn: &Connection, project_id: &str, name: &str) -> Result<Option<Environment>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT * FROM environments WHERE project_id = ?1 AND name = ?2")?
        .query_row(params![project_id, name], env_from_row)
        .optional()?)
}

pub fn set_environment_branch(conn: &Connection, id: &str, branch: Option<&str>) -> Result<(), StoreError> {
    conn.execute("UPDATE environments SET branch = ?2 WHERE id = ?1", params![id, branch])?;
    Ok(())
}

/// Deletes an environment and its variable overrides.
pub fn delete_environment(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM environments WHERE id = ?1", [id])?;
    Ok(())
}
