//! Deployments as the API sees them: queue one, list, read with events and logs, cancel, retry, releases.
//! The work itself is done by the deploy worker (`services::deployer`).

use super::access::{Actor, resolve};
use super::projects::{resolve_environment, resolve_project};
use super::{ServiceError, Services};
use crate::domain::deployment::{Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, LogLine, Release};
use crate::domain::project::validate_branch;
use crate::domain::{Builder, PageRequest, Paged, Role, deployment_ref, new_id, now};
use crate::store;
use rusqlite::Connection;
use serde::Deserialize;
use utoipa::ToSchema;

/// The body of `POST …/projects/:p/deployments`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployInput {
    /// Default: the environment's branch, else the git connection's, else the repository's default.
    pub branch: Option<String>,
    /// A commit of that branch to build (full or abbreviated SHA, at least 7 hex digits). Default: the branch's head.
    pub commit: Option<String>,
    /// Build from scratch, ignoring the image cache.
    #[serde(default)]
    pub no_cache: bool,
    /// Also delete and recreate the project's volumes (their data is lost). Needs `confirm`; implies `no_cache`.
    /// The project's replicas are stopped before the new ones start, so a reset is not zero-downtime.
    #[serde(default)]
    pub reset: bool,
    /// The project's slug, to confirm a `reset`.
    pub confirm: Option<String>,
    /// Free text shown with the deployment.
    pub note: Option<String>,
}

/// A deployment with its timed events.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub events: Vec<DeploymentEvent>,
}

fn deployment_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("deployment '{id}' not found"))
}

/// A deployment of a project in the caller's workspace `ws`; anything else is 404.
fn resolve_deployment(
    conn: &Connection,
    actor: &Actor,
    ws: &str,
    id: &str,
) -> Result<(super::Access, Deployment), ServiceError> {
    let access = resolve(conn, actor, ws)?;
    let d = store::deployments::get(conn, id)?.ok_or_else(|| deployment_not_found(id))?;
    let in_ws = store::projects::by_id(conn, &d.project_id)?.is_some_and(|p| p.workspace_id == access.workspace.id);
    if !in_ws {
        return Err(deployment_not_found(id));
    }
    Ok((access, d))
}

/// A commit as `POST …/deployments {commit}` takes it: 7 to 40 hex digits, lowercased.
fn validate_commit(c: &str) -> Result<String, ServiceError> {
    let c = c.trim();
    if (7..=40).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(c.to_ascii_lowercase())
    } else {
        Err(ServiceError::invalid("commit", format!("'{c}' is not a commit SHA (7 to 40 hex digits)")))
    }
}

/// Queues a deployment in an open transaction: supersedes older queued ones of the same environment.
pub(crate) fn queue(conn: &Connection, mut d: Deployment) -> Result<Deployment, ServiceError> {
    d.number = store::deployments::next_number(conn, &d.project_id)?;
    d.reference = deployment_ref(d.number);
    for older in store::deployments::in_progress(conn)? {
        if older.project_id == d.project_id
            && older.environment_id == d.environment_id
            && older.status == DeploymentStatus::Queued
        {
            store::deployments::set_status(
                conn,
                &older.id,
                DeploymentStatus::Superseded,
                &format!("superseded by {} before it started", d.reference),
                None,
                d.created_at,
            )?;
        }
    }
    store::deployments::insert(conn, &d)?;
    Ok(d)
}

impl Services {
    /// `POST …/projects/:p/deployments` (member): queues a build of the project's git branch (or a run of its image).
    pub async fn create_deployment(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
        input: DeployInput,
    ) -> Result<Deployment, ServiceError> {
        let branch = input.branch.as_deref().map(|b| validate_branch("branch", b)).transpose()?;
        let commit = input.commit.as_deref().map(validate_commit).transpose()?;
        let (actor, ws, project, env) =
            (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let d = self
            .store
            .write(move |tx| {
                let (access, p) = resolve_project(tx, &actor, &ws, &project)?;
                access.require(Role::Member, "deploying")?;
                if input.reset {
                    access.require(Role::Admin, "resetting a project's volumes")?;
                    if input.confirm.as_deref() != Some(p.slug.as_str()) {
                        return Err(ServiceError::invalid(
                            "confirm",
                            format!(
                                "reset deletes the data in project '{}'s volumes: send \"confirm\": \"{}\" to go ahead",
                                p.slug, p.slug
                            ),
                        ));
                    }
                }
                if commit.is_some() && p.build.builder == Builder::Image {
                    return Err(ServiceError::invalid(
                        "commit",
                        format!("project '{}' runs a prebuilt image; there is no commit to build", p.slug),
                    ));
                }
                let e = resolve_environment(tx, &p, env.as_deref())?;
                let git = store::git::get(tx, &p.id)?;
                if p.build.builder != Builder::Image && git.is_none() {
                    return Err(ServiceError::conflict(
                        "nothing_to_deploy",
                        format!(
                            "project '{}' has no git connection and no image; PUT …/git or set an image first",
                            p.slug
                        ),
                    ));
                }
                let branch = branch.or(e.branch.clone()).or(git.and_then(|g| g.branch));
                let d = Deployment {
                    id: new_id(),
                    reference: String::new(),
                    number: 0,
                    project_id: p.id.clone(),
                    environment_id: e.id.clone(),
                    environment: e.name.clone(),
                    kind: DeploymentKind::Build,
                    status: DeploymentStatus::Queued,
                    trigger: "api".into(),
                    triggered_by: Some(actor.user.email.clone()),
                    branch,
                    commit: None,
                    image: if p.build.builder == Builder::Image { p.image.clone() } else { None },
                    release_id: None,
                    retry_of: None,
                    no_cache: input.no_cache || input.reset,
                    requested_commit: commit.clone(),
                    reset: input.reset,
                    note: input.note.clone(),
                    error: None,
                    created_at: now(),
                    started_at: None,
                    finished_at: None,
                };
                let d = queue(tx, d)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&access.workspace.id),
                        "deployment.create",
                        format!("{}/{}", p.slug, d.reference),
                        serde_json::json!({"branch": d.branch, "environment": d.environment}),
                    ),
                )?;
                Ok(d)
            })
            .await?;
        self.deploy_wake.notify_one();
        Ok(d)
    }

    /// `GET …/projects/:p/deployments` (member).
    pub async fn list_deployments(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        status: Option<DeploymentStatus>,
        environment: Option<&str>,
        page: PageRequest,
    ) -> Result<Paged<Deployment>, ServiceError> {
        let (actor, ws, project, env) =
            (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        self.store
            .read(move |c| {
                let (_, p) = resolve_project(c, &actor, &ws, &project)?;
                let env_id = match env {
                    Some(name) => Some(resolve_environment(c, &p, Some(&name))?.id),
                    None => None,
                };
                Ok(store::deployments::list(c, &p.id, status, env_id.as_deref(), page)?)
            })
            .await
    }

    /// `GET /workspaces/:ws/deployments/:id` (member): with its events.
    pub async fn get_deployment(&self, actor: &Actor, ws: &str, id: &str) -> Result<DeploymentDetail, ServiceError> {
        let (actor, ws, id) = (actor.clone(), ws.to_owned(), id.to_owned());
        self.store
            .read(move |c| {
                let (_, d) = resolve_deployment(c, &actor, &ws, &id)?;
                let events = store::deployments::events(c, &d.id)?;
                Ok(DeploymentDetail { deployment: d, events })
            })
            .await
    }

    /// The slug of the project a deployment of workspace `ws` belongs to (member; the dashboard's deployment page
    /// links back to its project).
    pub async fn deployment_project_slug(&self, actor: &Actor, ws: &str, id: &str) -> Result<String, ServiceError> {
        let (actor, ws, id) = (actor.clone(), ws.to_owned(), id.to_owned());
        self.store
            .read(move |c| {
                let (_, d) = resolve_deployment(c, &actor, &ws, &id)?;
                let p = store::projects::by_id(c, &d.project_id)?.ok_or_else(|| deployment_not_found(&id))?;
                Ok(p.slug)
            })
            .await
    }

    /// `GET …/deployments/:id/logs?after=&limit=` (member).
    pub async fn deployment_logs(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, ServiceError> {
        let (actor, ws, id) = (actor.clone(), ws.to_owned(), id.to_owned());
        self.store
            .read(move |c| {
                let (_, d) = resolve_deployment(c, &actor, &ws, &id)?;
                Ok(store::deployments::logs_after(c, &d.id, after, limit)?)
            })
            .await
    }

    /// `POST …/deployments/:id/cancel` (member): a queued one is cancelled at once; a building or deploying one is
    /// stopped by the worker (its build is interrupted, its new containers removed). 409 once it has finished.
    pub async fn cancel_deployment(&self, actor: &Actor, ws: &str, id: &str) -> Result<Deployment, ServiceError> {
        let (a, w, i) = (actor.clone(), ws.to_owned(), id.to_owned());
        let d = self
            .store
            .write(move |tx| {
                let (access, d) = resolve_deployment(tx, &a, &w, &i)?;
                access.require(Role::Member, "cancelling a deployment")?;
                if !d.status.can_cancel() {
                    return Err(ServiceError::conflict(
                        "not_cancellable",
                        format!(
                            "{} is {}; only queued, building or deploying deployments can be cancelled",
                            d.reference, d.status
                        ),
                    ));
                }
                store::deployments::set_status(
                    tx,
                    &d.id,
                    DeploymentStatus::Cancelled,
                    &format!("cancelled by {}", a.user.email),
                    None,
                    now(),
                )?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "deployment.cancel",
                        d.reference.clone(),
                        serde_json::json!({"id": d.id}),
                    ),
                )?;
                Ok(store::deployments::get(tx, &d.id)?.unwrap_or(d))
            })
            .await?;
        self.cancel_running_job(&d.id);
        Ok(d)
    }

    /// `POST …/deployments/:id/retry` (member): queues a new deployment like a failed or cancelled one.
    pub async fn retry_deployment(&self, actor: &Actor, ws: &str, id: &str) -> Result<Deployment, ServiceError> {
        let (a, w, i) = (actor.clone(), ws.to_owned(), id.to_owned());
        let d = self
            .store
            .write(move |tx| {
                let (access, old) = resolve_deployment(tx, &a, &w, &i)?;
                access.require(Role::Member, "retrying a deployment")?;
                if !old.status.can_retry() {
                    return Err(ServiceError::conflict(
                        "not_retryable",
                        format!(
                            "{} is {}; only failed or cancelled deployments can be retried",
                            old.reference, old.status
                        ),
                    ));
                }
                let d = Deployment {
                    id: new_id(),
                    status: DeploymentStatus::Queued,
                    trigger: "retry".into(),
                    triggered_by: Some(a.user.email.clone()),
                    retry_of: Some(old.id.clone()),
                    error: None,
                    created_at: now(),
                    started_at: None,
                    finished_at: None,
                    release_id: if old.kind == DeploymentKind::Rollback { old.release_id.clone() } else { None },
                    commit: if old.kind.builds() { None } else { old.commit.clone() },
                    ..old.clone()
                };
                let d = queue(tx, d)?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "deployment.retry",
                        d.reference.clone(),
                        serde_json::json!({"retry_of": old.reference}),
                    ),
                )?;
                Ok(d)
            })
            .await?;
        self.deploy_wake.notify_one();
        Ok(d)
    }

    /// Queues a deployment of an earlier release (no build) in an open transaction.
    fn queue_from_release(
        tx: &Connection,
        actor: &Actor,
        base: &Deployment,
        kind: DeploymentKind,
        release: &Release,
        trigger: &str,
    ) -> Result<Deployment, ServiceError> {
        // A redeploy runs the release's image with today's variables: the worker resolves them when the
        // deployment names no release to copy them from.
        let copy_release = kind != DeploymentKind::Redeploy;
        let d = Deployment {
            id: new_id(),
            kind,
            status: DeploymentStatus::Queued,
            trigger: trigger.to_owned(),
            triggered_by: Some(actor.user.email.clone()),
            image: Some(release.image.clone()),
            release_id: copy_release.then(|| release.id.clone()),
            retry_of: None,
            no_cache: false,
            requested_commit: None,
            reset: false,
            note: None,
            error: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
            ..base.clone()
        };
        queue(tx, d)
    }

    /// `POST …/projects/:p/redeploy|restart|start` (member). `redeploy` and `start` roll out the current release's
    /// image with today's variables; `restart` replaces the replicas with the same image and variables. No build.
    /// 409 when the project has never deployed successfully.
    pub async fn redeploy_project(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
        kind: DeploymentKind,
    ) -> Result<Deployment, ServiceError> {
        let (a, w, p, env) = (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let d = self
            .store
            .write(move |tx| {
                let (access, project) = resolve_project(tx, &a, &w, &p)?;
                access.require(Role::Member, "deploying")?;
                let e = resolve_environment(tx, &project, env.as_deref())?;
                let latest = store::deployments::releases(tx, &project.id, PageRequest { page: 1, limit: 50 })?
                    .items
                    .into_iter()
                    .find(|r| r.environment == e.name)
                    .ok_or_else(|| {
                        ServiceError::conflict(
                            "no_release",
                            format!(
                                "project '{}' has no successful deployment in {} yet; POST …/deployments first",
                                project.slug, e.name
                            ),
                        )
                    })?;
                let base = store::deployments::get(tx, &latest.deployment_id)?
                    .ok_or_else(|| ServiceError::Internal("release without deployment".into()))?;
                let d = Self::queue_from_release(tx, &a, &base, kind, &latest, "api")?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "deployment.create",
                        format!("{}/{}", project.slug, d.reference),
                        serde_json::json!({"kind": kind.as_str(), "release": latest.version}),
                    ),
                )?;
                Ok::<_, ServiceError>(d)
            })
            .await?;
        self.deploy_wake.notify_one();
        Ok(d)
    }

    /// `POST …/deployments/:id/rollback` (member): activates the release that deployment made — its image and its
    /// variables — without a build. 409 when that deployment never succeeded.
    pub async fn rollback_deployment(&self, actor: &Actor, ws: &str, id: &str) -> Result<Deployment, ServiceError> {
        let (a, w, i) = (actor.clone(), ws.to_owned(), id.to_owned());
        let d = self
            .store
            .write(move |tx| {
                let (access, target) = resolve_deployment(tx, &a, &w, &i)?;
                access.require(Role::Member, "rolling back")?;
                let release = target
                    .release_id
                    .as_deref()
                    .map(|r| store::deployments::release(tx, r))
                    .transpose()?
                    .flatten()
                    .map(|(r, _)| r)
                    .ok_or_else(|| {
                        ServiceError::conflict(
                            "no_release",
                            format!("{} never ran successfully, so there is nothing to roll back to", target.reference),
                        )
                    })?;
                let d = Self::queue_from_release(tx, &a, &target, DeploymentKind::Rollback, &release, "rollback")?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "deployment.rollback",
                        d.reference.clone(),
                        serde_json::json!({"to": target.reference, "release": release.version}),
                    ),
                )?;
                Ok::<_, ServiceError>(d)
            })
            .await?;
        self.deploy_wake.notify_one();
        Ok(d)
    }

    /// `POST …/deployments/:id/stop` (member): stops the running deployment; its replicas are removed, env and
    /// volumes stay. 409 unless it is running.
    pub async fn stop_deployment(&self, actor: &Actor, ws: &str, id: &str) -> Result<Deployment, ServiceError> {
        let (a, w, i) = (actor.clone(), ws.to_owned(), id.to_owned());
        let d = self
            .store
            .write(move |tx| {
                let (access, d) = resolve_deployment(tx, &a, &w, &i)?;
                access.require(Role::Member, "stopping a deployment")?;
                if !d.status.can_stop() {
                    return Err(ServiceError::conflict(
                        "not_running",
                        format!("{} is {}; only a running deployment can be stopped", d.reference, d.status),
                    ));
                }
                store::deployments::set_status(
                    tx,
                    &d.id,
                    DeploymentStatus::Stopped,
                    &format!("stopped by {}", a.user.email),
                    None,
                    now(),
                )?;
                store::projects::set_status(tx, &d.project_id, "stopped")?;
                store::audit::insert(
                    tx,
                    &a.audit(Some(&access.workspace.id), "deployment.stop", d.reference.clone(), serde_json::json!({})),
                )?;
                Ok::<_, ServiceError>(store::deployments::get(tx, &d.id)?.unwrap_or(d))
            })
            .await?;
        self.refresh_routes().await;
        self.remove_deployment_containers(&d.id).await;
        Ok(d)
    }

    /// `POST …/projects/:p/stop` (member): stops whatever runs in the environment (default production).
    pub async fn stop_project(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
    ) -> Result<Deployment, ServiceError> {
        let (a, w, p, env) = (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let running = self
            .store
            .read(move |c| {
                let (_, project) = resolve_project(c, &a, &w, &p)?;
                let e = resolve_environment(c, &project, env.as_deref())?;
                store::deployments::running(c, &project.id, &e.id)?.ok_or_else(|| {
                    ServiceError::conflict(
                        "not_running",
                        format!("project '{}' is not running in {}", project.slug, e.name),
                    )
                })
            })
            .await?;
        self.stop_deployment(actor, ws, &running.id).await
    }

    /// `GET …/projects/:p/releases` (member): every successful deployment, newest first.
    pub async fn list_releases(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        page: PageRequest,
    ) -> Result<Paged<Release>, ServiceError> {
        let (actor, ws, project) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .read(move |c| {
                let (_, p) = resolve_project(c, &actor, &ws, &project)?;
                Ok(store::deployments::releases(c, &p.id, page)?)
            })
            .await
    }
}
