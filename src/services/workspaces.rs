//! Workspaces: create, list, read, rename, delete.

use super::access::{Actor, Via, resolve};
use super::{DeletedWithVolumes, ServiceError, Services};
use crate::crypto;
use crate::docker::LABEL_WORKSPACE;
use crate::domain::{PageRequest, Paged, Role, Slug, Workspace, derive_slug, new_id, now, validate_name};
use crate::store;
use rusqlite::Connection;

/// The changes `PATCH /workspaces/:ws` may make.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// Checks a given slug, or derives one from the name.
fn slug_for(name: &str, slug: Option<&str>) -> Result<Slug, ServiceError> {
    match slug {
        Some(s) => Slug::parse(s).map_err(|m| ServiceError::invalid("slug", format!("'{s}' {m}"))),
        None => derive_slug(name).ok_or_else(|| {
            ServiceError::invalid("slug", "cannot be derived from the name (it has no letters or digits); pass a slug")
        }),
    }
}

fn slug_taken(slug: &str) -> ServiceError {
    ServiceError::conflict("slug_taken", format!("a workspace with slug '{slug}' already exists; choose another slug"))
}

/// Creates a workspace with `actor` as its owner and audits it, inside the caller's transaction.
pub(crate) fn insert_workspace(
    conn: &Connection,
    actor: &Actor,
    name: &str,
    slug: Option<&str>,
) -> Result<Workspace, ServiceError> {
    let name = validate_name("name", name)?;
    let slug = slug_for(&name, slug)?;
    let ws = Workspace {
        id: new_id(),
        namespace: format!(
            "{}-{}",
            slug.as_str().chars().take(24).collect::<String>(),
            hex::encode(crypto::random_bytes::<3>()?)
        ),
        name,
        slug: slug.to_string(),
        created_at: now(),
    };
    store::workspaces::insert(conn, &ws).map_err(|e| match e {
        store::StoreError::Unique(_) => slug_taken(&ws.slug),
        other => other.into(),
    })?;
    store::members::insert(conn, &ws.id, &actor.user.id, Role::Owner, ws.created_at)?;
    store::audit::insert(
        conn,
        &actor.audit(Some(&ws.id), "workspace.create", ws.slug.clone(), serde_json::json!({"name": ws.name})),
    )?;
    Ok(ws)
}

impl Services {
    /// `POST /workspaces`: the caller becomes its owner. (An API key stays scoped to its own workspace.)
    pub async fn create_workspace(
        &self,
        actor: &Actor,
        name: &str,
        slug: Option<&str>,
    ) -> Result<Workspace, ServiceError> {
        let (actor, name, slug) = (actor.clone(), name.to_owned(), slug.map(str::to_owned));
        self.store.write(move |tx| insert_workspace(tx, &actor, &name, slug.as_deref())).await
    }

    /// `GET /workspaces`: the caller's workspaces with their role; for an API key, only its workspace.
    pub async fn list_workspaces(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Paged<(Workspace, Role)>, ServiceError> {
        let user_id = actor.user.id.clone();
        let (only, cap) = match &actor.via {
            Via::ApiKey { workspace, role, .. } => (Some(workspace.id.clone()), Some(*role)),
            _ => (None, None),
        };
        // Membership lists are read on every dashboard page and by every script that starts with GET /workspaces;
        // they are reused until the next committed write (or 5 s, for changes made by `berth admin`).
        let cache_key = (user_id.clone(), only.clone(), page.page, page.limit);
        let generation = self.store.generation();
        if let Ok(cache) = self.workspace_lists.lock()
            && let Some((g, at, hit)) = cache.get(&cache_key)
            && *g == generation
            && at.elapsed() < std::time::Duration::from_secs(5)
        {
            let mut paged = hit.clone();
            if let Some(cap) = cap {
                paged.items.iter_mut().for_each(|(_, r)| *r = (*r).min(cap));
            }
            return Ok(paged);
        }
        let mut paged =
            self.store.read(move |c| store::workspaces::list_for_member(c, &user_id, only.as_deref(), page)).await?;
        if let Ok(mut cache) = self.workspace_lists.lock() {
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(cache_key, (generation, std::time::Instant::now(), paged.clone()));
        }
        if let Some(cap) = cap {
            paged.items.iter_mut().for_each(|(_, r)| *r = (*r).min(cap));
        }
        Ok(paged)
    }

    /// `PATCH /workspaces/:ws`: rename or change the slug (admin).
    pub async fn update_workspace(
        &self,
        actor: &Actor,
        slug: &str,
        patch: WorkspacePatch,
    ) -> Result<Workspace, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "updating a workspace")?;
                let mut ws = access.workspace;
                if let Some(name) = &patch.name {
                    ws.name = validate_name("name", name)?;
                }
                if let Some(new_slug) = &patch.slug {
                    ws.slug = slug_for(&ws.name, Some(new_slug))?.to_string();
                }
                store::workspaces::update(tx, &ws.id, &ws.name, &ws.slug).map_err(|e| match e {
                    store::StoreError::Unique(_) => slug_taken(&ws.slug),
                    other => other.into(),
                })?;
                let details = serde_json::json!({"name": patch.name, "slug": patch.slug});
                store::audit::insert(tx, &actor.audit(Some(&ws.id), "workspace.update", ws.slug.clone(), details))?;
                Ok(ws)
            })
            .await
    }

    /// `DELETE /workspaces/:ws` (owner): removes the workspace with its members, invitations, keys and projects,
    /// whose replicas are stopped and removed as when each project is deleted (volumes are kept). Refused (409)
    /// while it has databases. The audit trail is kept.
    pub async fn delete_workspace(&self, actor: &Actor, slug: &str) -> Result<DeletedWithVolumes, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        let (workspace, projects) = self
            .store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Owner, "deleting a workspace")?;
                Services::refuse_if_databases(tx, &access.workspace)?;
                let projects = store::projects::ids_in_workspace(tx, &access.workspace.id)?;
                store::workspaces::delete(tx, &access.workspace.id)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&access.workspace.id),
                        "workspace.delete",
                        slug.clone(),
                        serde_json::json!({"name": access.workspace.name}),
                    ),
                )?;
                Ok::<_, ServiceError>((access.workspace, projects))
            })
            .await?;
        // As for each deleted project: routes first, then the replicas (volumes stay); then the workspace's network.
        self.refresh_routes().await;
        for project in &projects {
            self.remove_project_containers(project).await;
        }
        if let Err(e) = self.docker.remove_network(&super::deployer::network_name(&workspace)).await {
            tracing::warn!(error = %e, workspace = %workspace.slug, "while removing a deleted workspace's network");
        }
        let volumes_kept = self.kept_volumes(LABEL_WORKSPACE, &workspace.id).await;
        Ok(DeletedWithVolumes { id: workspace.id, deleted: true, volumes_kept })
    }
}
