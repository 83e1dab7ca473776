//! Projects and their environments: create, list, read, change, delete.

use super::access::{Access, Actor, resolve};
use super::{ServiceError, Services};
use crate::docker::LABEL_PROJECT;
use crate::domain::project::{
    validate_branch, validate_command, validate_cpu, validate_environment_name, validate_health_path, validate_image,
    validate_port, validate_ram, validate_replicas, validate_repo_path, validate_volumes,
};
use crate::domain::{
    BuildConfig, Builder, Environment, Limits, PRODUCTION, PageRequest, Paged, Project, Role, RuntimeConfig, Slug,
    Volume, derive_slug, new_id, now, validate_name,
};
use crate::store;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// What `DELETE …/projects/:p` or `DELETE /workspaces/:ws` did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeletedWithVolumes {
    pub id: String,
    pub deleted: bool,
    /// The Docker volumes of the project (or of the workspace's projects and deleted databases), which outlive it
    /// with their data (`docker volume rm` deletes one); `null` when the Docker engine could not be asked.
    pub volumes_kept: Option<Vec<String>>,
}

/// Build settings a create or `PATCH` may change; absent fields stay, `""` clears a command.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildPatch {
    pub builder: Option<Builder>,
    /// Relative directory inside the repository (no `..`).
    pub root_directory: Option<String>,
    pub dockerfile_path: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
}

/// Runtime settings a create or `PATCH` may change; absent fields stay, `""` clears.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimePatch {
    pub health_check_path: Option<String>,
    pub start_command: Option<String>,
}

/// The body of `POST …/projects` and `PATCH …/projects/:p`. On create only `name` is required; port 3000,
/// 1 replica, 0.5 cores and 0.5 GiB are the defaults.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    pub name: Option<String>,
    /// `^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`; derived from the name when omitted.
    pub slug: Option<String>,
    /// The port the app listens on (1–65535).
    pub port: Option<u32>,
    /// 0 to the configured maximum (default 10).
    pub replicas: Option<u32>,
    /// Cores, `"0.5"` or `0.5` (0.1 up to the host's cores).
    #[serde(default, deserialize_with = "decimal")]
    #[schema(value_type = Option<String>)]
    pub cpu: Option<String>,
    /// GiB, `"0.5"` or `0.5` (0.064 up to the host's memory).
    #[serde(default, deserialize_with = "decimal")]
    #[schema(value_type = Option<String>)]
    pub ram: Option<String>,
    /// A prebuilt image to run (`""` clears).
    pub image: Option<String>,
    pub template_name: Option<String>,
    pub build: Option<BuildPatch>,
    pub runtime: Option<RuntimePatch>,
    /// Replaces the list of volumes.
    pub volumes: Option<Vec<Volume>>,
}

/// Accepts `"0.5"` or `0.5` as the decimal string the rules check.
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a decimal number as a string (\"0.5\") or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }
    d.deserialize_any(V)
}

fn project_not_found(ws: &str, slug: &str) -> ServiceError {
    ServiceError::NotFound(format!("project '{slug}' not found in workspace '{ws}'"))
}

/// Resolves a workspace and a project in it for `actor`; both missing and foreign look like 404.
pub(crate) fn resolve_project(
    conn: &Connection,
    actor: &Actor,
    ws: &str,
    project: &str,
) -> Result<(Access, Project), ServiceError> {
    let access = resolve(conn, actor, ws)?;
    let p =
        store::projects::by_slug(conn, &access.workspace.id, project)?.ok_or_else(|| project_not_found(ws, project))?;
    Ok((access, p))
}

/// The named environment of a project (`None` = production), or 404 listing the ones that exist.
pub(crate) fn resolve_environment(
    conn: &Connection,
    project: &Project,
    name: Option<&str>,
) -> Result<Environment, ServiceError> {
    let name = name.unwrap_or(PRODUCTION);
    if let Some(e) = store::projects::environment(conn, &project.id, name)? {
        return Ok(e);
    }
    let names: Vec<String> = store::projects::environments(conn, &project.id)?.into_iter().map(|e| e.name).collect();
    Err(ServiceError::NotFound(format!(
        "environment '{name}' not found in project '{}'; it has: {}",
        project.slug,
        names.join(", ")
    )))
}

fn apply(p: &mut Project, input: ProjectInput, limits: &Limits) -> Result<(), ServiceError> {
    if let Some(name) = &input.name {
        p.name = validate_name("name", name)?;
    }
    if let Some(port) = input.port {
        p.port = validate_port(port)?;
    }
    if let Some(r) = input.replicas {
        p.replicas = validate_replicas(r, limits)?;
    }
    if let Some(cpu) = &input.cpu {
        p.cpu = validate_cpu(cpu, limits)?;
    }
    if let Some(ram) = &input.ram {
        p.ram = validate_ram(ram, limits)?;
    }
    let image_given = input.image.as_deref().is_some_and(|i| !i.trim().is_empty());
    if let Some(image) = &input.image {
        p.image = if image.trim().is_empty() { None } else { Some(validate_image(image)?) };
    }
    if let Some(b) = input.build {
        let c = &mut p.build;
        if let Some(builder) = b.builder {
            c.builder = builder;
        }
        if let Some(dir) = &b.root_directory {
            c.root_directory = validate_repo_path("build.root_directory", dir)?;
        }
        if let Some(path) = &b.dockerfile_path {
            let v = validate_repo_path("build.dockerfile_path", path)?;
            c.dockerfile_path = (!v.is_empty()).then_some(v);
        }
        if let Some(cmd) = &b.install_command {
            c.install_command = validate_command("build.install_command", cmd)?;
        }
        if let Some(cmd) = &b.build_command {
            c.build_command = validate_command("build.build_command", cmd)?;
        }
        if let Some(cmd) = &b.start_command {
            c.start_command = validate_command("build.start_command", cmd)?;
        }
    } else if image_given {
        // An image without build settings means: run this image.
        p.build.builder = Builder::Image;
    }
    if let Some(r) = input.runtime {
        if let Some(path) = &r.health_check_path {
            p.runtime.health_check_path = validate_health_path(path)?;
        }
        if let Some(cmd) = &r.start_command {
            p.runtime.start_command = validate_command("runtime.start_command", cmd)?;
        }
    }
    if let Some(v) = &input.volumes {
        p.volumes = validate_volumes(v)?;
    }
    if p.build.builder == Builder::Image && p.image.is_none() {
        return Err(ServiceError::invalid(
            "image",
            "the image builder needs an image to run, e.g. \"image\": \"nginx:1.27\" (or choose builder auto or dockerfile)",
        ));
    }
    Ok(())
}

fn slug_taken(ws: &str, slug: &str) -> ServiceError {
    ServiceError::conflict(
        "slug_taken",
        format!("a project with slug '{slug}' already exists in workspace '{ws}'; choose another slug"),
    )
}

impl Services {
    /// The host's limits for resource validation: the Docker engine's cores and memory when it answers, else
    /// this machine's.
    pub(crate) async fn limits(&self) -> Limits {
        let (cpus, mem) = match self.docker.capacity(Duration::from_secs(2)).await {
            Ok((c, m)) if m > 0 => (c, m),
            _ => local_capacity(),
        };
        Limits { max_replicas: self.config.max_replicas, host_cpus: f64::from(cpus), host_ram_gib: mem as f64 / GIB }
    }

    /// `POST /workspaces/:ws/projects` (admin): creates the project with its `production` environment.
    pub async fn create_project(&self, actor: &Actor, ws: &str, input: ProjectInput) -> Result<Project, ServiceError> {
        if input.template_name.is_some() {
            return Err(ServiceError::invalid(
                "template_name",
                "templates are not available in this version of Berth; create the project from git or an image",
            ));
        }
        let limits = self.limits().await;
        let (actor, ws) = (actor.clone(), ws.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &ws)?;
                access.require(Role::Admin, "creating a project")?;
                let name = validate_name("name", input.name.as_deref().unwrap_or(""))?;
                let slug = match input.slug.as_deref() {
                    Some(s) => Slug::parse(s).map_err(|m| ServiceError::invalid("slug", format!("'{s}' {m}")))?,
                    None => derive_slug(&name).ok_or_else(|| {
                        ServiceError::invalid(
                            "slug",
                            "cannot be derived from the name (it has no letters or digits); pass a slug",
                        )
                    })?,
                };
                if slug.as_str() == "detect" {
                    return Err(ServiceError::invalid(
                        "slug",
                        "'detect' is reserved (POST …/projects/detect); choose another slug",
                    ));
                }
                let t = now();
                let mut p = Project {
                    id: new_id(),
                    workspace_id: access.workspace.id.clone(),
                    name: name.clone(),
                    slug: slug.to_string(),
                    status: "pending".into(),
                    port: 3000,
                    replicas: 1,
                    cpu: "0.5".into(),
                    ram: "0.5".into(),
                    image: None,
                    template_name: None,
                    build: BuildConfig::default(),
                    runtime: RuntimeConfig::default(),
                    volumes: Vec::new(),
                    created_at: t,
                    updated_at: t,
                };
                if input.cpu.is_none() && limits.host_cpus < 0.5 {
                    p.cpu = "0.1".into();
                }
                apply(&mut p, ProjectInput { name: None, slug: None, ..input }, &limits)?;
                store::projects::insert(tx, &p).map_err(|e| match e {
                    store::StoreError::Unique(_) => slug_taken(&ws, &p.slug),
                    other => other.into(),
                })?;
                let production = Environment { id: new_id(), name: PRODUCTION.into(), branch: None, created_at: t };
                store::projects::insert_environment(tx, &p.id, &production)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&p.workspace_id),
                        "project.create",
                        p.slug.clone(),
                        serde_json::json!({"name": p.name}),
                    ),
                )?;
                Ok(p)
            })
            .await
    }

    /// `GET /workspaces/:ws/projects`: any member.
    pub async fn list_projects(
        &self,
        actor: &Actor,
        ws: &str,
        page: PageRequest,
    ) -> Result<(Access, Paged<Project>), ServiceError> {
        let (actor, ws) = (actor.clone(), ws.to_owned());
        self.store
            .read(move |c| {
                let access = resolve(c, &actor, &ws)?;
                let projects = store::projects::list(c, &access.workspace.id, page)?;
                Ok((access, projects))
            })
            .await
    }

    /// `GET /workspaces/:ws/projects/:p`: any member.
    pub async fn get_project(&self, actor: &Actor, ws: &str, project: &str) -> Result<(Access, Project), ServiceError> {
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store.read(move |c| resolve_project(c, &actor, &ws, &project)).await
    }

    /// `PATCH /workspaces/:ws/projects/:p` (admin).
    pub async fn update_project(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        input: ProjectInput,
    ) -> Result<(Access, Project), ServiceError> {
        if input.template_name.is_some() {
            return Err(ServiceError::invalid("template_name", "cannot be changed after creation"));
        }
        let limits = self.limits().await;
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .write(move |tx| {
                let (access, mut p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Admin, "changing a project")?;
                let details = serde_json::json!({
                    "name": input.name, "slug": input.slug, "port": input.port, "replicas": input.replicas,
                    "cpu": input.cpu, "ram": input.ram, "image": input.image,
                    "build": input.build.is_some(), "runtime": input.runtime.is_some(), "volumes": input.volumes.is_some(),
                });
                if let Some(s) = &input.slug {
                    p.slug = Slug::parse(s).map_err(|m| ServiceError::invalid("slug", format!("'{s}' {m}")))?.to_string();
                    if p.slug == "detect" {
                        return Err(ServiceError::invalid("slug", "'detect' is reserved; choose another slug"));
                    }
                }
                apply(&mut p, input, &limits)?;
                p.updated_at = now();
                store::projects::update(tx, &p).map_err(|e| match e {
                    store::StoreError::Unique(_) => slug_taken(&ws, &p.slug),
                    other => other.into(),
                })?;
                store::audit::insert(tx, &actor.audit(Some(&p.workspace_id), "project.update", p.slug.clone(), details))?;
                Ok((access, p))
            })
            .await
    }

    /// `DELETE /workspaces/:ws/projects/:p` (admin): removes the project with its environments, variables, git
    /// connection, deployments and domains; its replicas stop serving at once and are stopped and removed. Its
    /// volumes are kept (nothing holding data is deleted implicitly).
    pub async fn delete_project(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
    ) -> Result<DeletedWithVolumes, ServiceError> {
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        let deleted = self
            .store
            .write(move |tx| {
                let (access, p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Admin, "deleting a project")?;
                store::projects::delete(tx, &p.id)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&p.workspace_id),
                        "project.delete",
                        p.slug.clone(),
                        serde_json::json!({"name": p.name}),
                    ),
                )?;
                Ok::<_, ServiceError>(p)
            })
            .await?;
        // Its deployments went with it: the routes to its replicas go now, then the replicas.
        self.refresh_routes().await;
        self.remove_project_containers(&deleted.id).await;
        let volumes_kept = self.kept_volumes(LABEL_PROJECT, &deleted.id).await;
        Ok(DeletedWithVolumes { id: deleted.id, deleted: true, volumes_kept })
    }

    /// The volumes labelled `label` = `value` that a deletion left (they are never deleted implicitly); `None`, and a
    /// warning in the log, when the Docker engine cannot be asked.
    pub(crate) async fn kept_volumes(&self, label: &str, value: &str) -> Option<Vec<String>> {
        match self.docker.list_volumes(&[(label, value)]).await {
            Ok(names) => Some(names),
            Err(e) => {
                tracing::warn!(error = %e, label, value, "could not list the volumes a deletion kept");
                None
            }
        }
    }

    /// `GET …/projects/:p/environments`: any member.
    pub async fn list_environments(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
    ) -> Result<Vec<Environment>, ServiceError> {
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .read(move |c| {
                let (_, p) = resolve_project(c, &actor, &ws, &project)?;
                Ok(store::projects::environments(c, &p.id)?)
            })
            .await
    }

    /// `POST …/projects/:p/environments` (admin).
    pub async fn create_environment(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        name: &str,
        branch: Option<&str>,
    ) -> Result<Environment, ServiceError> {
        let name = validate_environment_name(name)?;
        let branch = branch.filter(|b| !b.trim().is_empty()).map(|b| validate_branch("branch", b)).transpose()?;
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .write(move |tx| {
                let (access, p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Admin, "adding an environment")?;
                let e = Environment { id: new_id(), name, branch, created_at: now() };
                store::projects::insert_environment(tx, &p.id, &e).map_err(|err| match err {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "environment_exists",
                        format!("project '{}' already has an environment '{}'", p.slug, e.name),
                    ),
                    other => other.into(),
                })?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&p.workspace_id),
                        "environment.create",
                        format!("{}/{}", p.slug, e.name),
                        serde_json::json!({"branch": e.branch}),
                    ),
                )?;
                Ok(e)
            })
            .await
    }

    /// `PATCH …/environments/:env` (admin): changes the branch (`""` = follow the git connection's branch).
    pub async fn update_environment(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        env: &str,
        branch: &str,
    ) -> Result<Environment, ServiceError> {
        let branch = (!branch.trim().is_empty()).then(|| validate_branch("branch", branch)).transpose()?;
        let (actor, ws, project, env) = (actor.clone(), ws.to_owned(), project.to_owned(), env.to_owned());
        self.store
            .write(move |tx| {
                let (access, p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Admin, "changing an environment")?;
                let mut e = resolve_environment(tx, &p, Some(&env))?;
                store::projects::set_environment_branch(tx, &e.id, branch.as_deref())?;
                e.branch = branch;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&p.workspace_id),
                        "environment.update",
                        format!("{}/{}", p.slug, e.name),
                        serde_json::json!({"branch": e.branch}),
                    ),
                )?;
                Ok(e)
            })
            .await
    }

    /// `DELETE …/environments/:env` (admin): removes a non-production environment and its overrides.
    pub async fn delete_environment(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        env: &str,
    ) -> Result<Environment, ServiceError> {
        let (actor, ws, project, env) = (actor.clone(), ws.to_owned(), project.to_owned(), env.to_owned());
        self.store
            .write(move |tx| {
                let (access, p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Admin, "deleting an environment")?;
                let e = resolve_environment(tx, &p, Some(&env))?;
                if e.name == PRODUCTION {
                    return Err(ServiceError::conflict(
                        "production_required",
                        "the production environment always exists and cannot be deleted",
                    ));
                }
                store::projects::delete_environment(tx, &e.id)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&p.workspace_id),
                        "environment.delete",
                        format!("{}/{}", p.slug, e.name),
                        serde_json::json!({}),
                    ),
                )?;
                Ok(e)
            })
            .await
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// This machine's cores and memory, used when the engine does not answer.
fn local_capacity() -> (u32, u64) {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(1024 * 1024);
    (u32::try_from(cpus).unwrap_or(1), mem_kib * 1024)
}
