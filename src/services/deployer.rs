//! The deploy worker: takes queued deployments one at a time and turns them into running replicas with zero
//! downtime, and the route table that sends each project's default domain to its healthy replicas.
//!
//! A deployment runs: fetch the commit → build the image (or take the project's image) → start the new replicas
//! beside the old ones → wait until each accepts connections on the project's port (and answers 2xx/3xx on
//! `health_check_path` when set) → publish routes to the new replicas → mark the old deployment superseded →
//! let the old replicas drain, then stop them. Any failure before the route switch removes the new containers and
//! leaves the running release serving.

use super::git::git_error;
use super::secrets::variable_aad;
use super::{ServiceError, Services};
use crate::build::git::{self as gitops, GitAuth};
use crate::docker::{
    ContainerSpec, ImageBuild, LABEL_DEPLOYMENT, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROJECT, LABEL_WORKSPACE,
};
use crate::domain::deployment::{Deployment, DeploymentKind, DeploymentStatus};
use crate::domain::{Builder, Project, Workspace, new_id, now};
use crate::store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Everything one deployment needs, read in one go.
struct Job {
    deployment: Deployment,
    project: Project,
    workspace: Workspace,
}

/// Why a deployment stopped early.
enum Stop {
    Cancelled,
    Failed(String),
}

impl From<ServiceError> for Stop {
    fn from(e: ServiceError) -> Self {
        Stop::Failed(e.to_string())
    }
}

impl From<store::StoreError> for Stop {
    fn from(e: store::StoreError) -> Self {
        Stop::Failed(e.to_string())
    }
}

impl From<crate::docker::DockerError> for Stop {
    fn from(e: crate::docker::DockerError) -> Self {
        match e {
            crate::docker::DockerError::Cancelled => Stop::Cancelled,
            other => Stop::Failed(other.to_string()),
        }
    }
}

fn container_name(ws: &Workspace, p: &Project, d: &Deployment, i: u32) -> String {
    format!("berth-{}-{}-{}-{i}", ws.namespace, p.slug, d.number)
}

/// The network every container of a workspace joins (stable across slug changes).
pub(crate) fn network_name(ws: &Workspace) -> String {
    format!("berth-{}", ws.namespace)
}

fn volume_name(p: &Project, name: &str) -> String {
    format!("berth-{}-{name}", p.id)
}

/// A deployment the worker is working on.
pub(crate) struct RunningJob {
    cancel: CancellationToken,
    project_id: String,
}

impl Services {
    /// Stops the build or rollout of a deployment that is being worked on (after `cancel` marked it).
    pub(crate) fn cancel_running_job(&self, id: &str) {
        if let Ok(jobs) = self.jobs.lock()
            && let Some(job) = jobs.get(id)
        {
            job.cancel.cancel();
        }
    }

    /// Claims a queued deployment for the worker unless its project already has one in the works (deployments of a
    /// project run in order). Returns its cancellation token.
    fn claim(&self, d: &Deployment, shutdown: &CancellationToken) -> Option<CancellationToken> {
        let mut jobs = self.jobs.lock().ok()?;
        if jobs.contains_key(&d.id) || jobs.values().any(|j| j.project_id == d.project_id) {
            return None;
        }
        let cancel = shutdown.child_token();
        jobs.insert(d.id.clone(), RunningJob { cancel: cancel.clone(), project_id: d.project_id.clone() });
        Some(cancel)
    }

    /// The worker loop until `shutdown`: starts every queued deployment whose project is idle. Builds wait for one
    /// of `concurrent_builds` slots; rollouts, restarts and rollbacks do not.
    pub async fn deploy_worker(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            match self.store.read(store::deployments::in_progress).await {
                Ok(list) => {
                    for d in list.into_iter().filter(|d| d.status == DeploymentStatus::Queued) {
                        let Some(cancel) = self.claim(&d, &shutdown) else { continue };
                        let me = self.clone();
                        running.spawn(async move {
                            let id = d.id.clone();
                            me.run_deployment(d, cancel).await;
                            if let Ok(mut jobs) = me.jobs.lock() {
                                jobs.remove(&id);
                            }
                            // The project may have another deployment waiting.
                            me.deploy_wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "while reading the deploy queue"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.deploy_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
        // Shutting down: the jobs' tokens are children of `shutdown`; let them wind down.
        while running.join_next().await.is_some() {}
    }

    async fn load_job(&self, d: Deployment) -> Result<Job, ServiceError> {
        self.store
            .read(move |c| {
                let gone = |what: &str| ServiceError::Internal(format!("the deployment's {what} no longer exists"));
                let project = store::projects::by_id(c, &d.project_id)?.ok_or_else(|| gone("project"))?;
                let workspace = store::workspaces::by_id(c, &project.workspace_id)?.ok_or_else(|| gone("workspace"))?;
                Ok(Job { deployment: d, project, workspace })
            })
            .await
    }

    async fn transition(&self, id: &str, next: DeploymentStatus, message: &str, error: Option<&str>) -> bool {
        let (id, message, error) = (id.to_owned(), message.to_owned(), error.map(str::to_owned));
        self.store
            .write(move |tx| store::deployments::set_status(tx, &id, next, &message, error.as_deref(), now()))
            .await
            .unwrap_or(false)
    }

    async fn log(&self, id: &str, stream: &str, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let lines: Vec<String> = lines.into_iter().map(|l| self.redact(id, l)).collect();
        let (id, stream) = (id.to_owned(), stream.to_owned());
        if let Err(e) =
            self.store.write(move |tx| store::deployments::append_logs(tx, &id, &stream, &lines, now())).await
        {
            tracing::warn!(error = %e, "while writing a deployment log");
        }
    }

    /// Secret values never reach a log: any line containing one has it replaced by the mask.
    fn redact(&self, id: &str, line: String) -> String {
        match self.secret_values.lock() {
            Ok(map) => match map.get(id) {
                Some(values) => crate::domain::runtime_logs::mask_secrets(values, line),
                None => line,
            },
            Err(_) => line,
        }
    }

    async fn run_deployment(self: &Arc<Self>, d: Deployment, cancel: CancellationToken) {
        let id = d.id.clone();
        let job = match self.load_job(d).await {
            Ok(j) => j,
            Err(e) => {
                self.transition(&id, DeploymentStatus::Failed, "could not load the project", Some(&e.to_string()))
                    .await;
                return;
            }
        };
        let result = self.pipeline(&job, &cancel).await;
        match result {
            Ok(()) => {}
            Err(Stop::Cancelled) => {
                self.log(&id, "deploy", vec!["cancelled".into()]).await;
                self.transition(&id, DeploymentStatus::Cancelled, "cancelled", None).await;
            }
            Err(Stop::Failed(reason)) => {
                let reason = self.redact(&id, reason);
                self.log(&id, "error", vec![format!("[ERROR] {reason}")]).await;
                self.transition(&id, DeploymentStatus::Failed, "failed", Some(&reason)).await;
            }
        }
        if let Ok(mut m) = self.secret_values.lock() {
            m.remove(&id);
        }
        self.refresh_routes().await;
    }

    async fn pipeline(self: &Arc<Self>, job: &Job, cancel: &CancellationToken) -> Result<(), Stop> {
        let (d, p) = (&job.deployment, &job.project);
        let env = match (&d.release_id, d.kind) {
            (Some(release), DeploymentKind::Rollback | DeploymentKind::Restart) => self.release_env(release).await?,
            _ => self.resolved_env_plain(&p.workspace_id, &p.id, &d.environment_id).await?,
        };
        if let Ok(mut m) = self.secret_values.lock() {
            m.insert(d.id.clone(), env.iter().filter(|(_, _, secret)| *secret).map(|(_, v, _)| v.clone()).collect());
        }
        let image = match (&d.image, p.build.builder) {
            (Some(image), _) => {
                if !self.transition(&d.id, DeploymentStatus::Deploying, &format!("running image {image}"), None).await {
                    return Err(Stop::Cancelled);
                }
                image.clone()
            }
            (None, Builder::Image) => {
                return Err(Stop::Failed("the project uses the image builder but has no image".into()));
            }
            (None, _) => {
                let slot = match self.build_slots.try_acquire() {
                    Ok(permit) => permit,
                    Err(_) => {
                        self.log(&d.id, "build", vec!["waiting for a build slot (concurrent_builds)".into()]).await;
                        tokio::select! {
                            permit = self.build_slots.acquire() => permit.map_err(|_| Stop::Cancelled)?,
                            _ = cancel.cancelled() => return Err(Stop::Cancelled),
                        }
                    }
                };
                if !self.transition(&d.id, DeploymentStatus::Building, "fetching the commit", None).await {
                    return Err(Stop::Cancelled);
                }
                let image = self.build(job, cancel).await?;
                drop(slot);
                if !self.transition(&d.id, DeploymentStatus::Deploying, "starting replicas", None).await {
                    return Err(Stop::Cancelled);
                }
                image
            }
        };
        let id = d.id.clone();
        let image2 = image.clone();
        self.store
            .write(move |tx| store::deployments::set_outputs(tx, &id, Some(&image2), None, None))
            .await
            .map_err(Stop::from)?;
        if d.reset {
            self.reset_volumes(job).await?;
        }
        self.roll_out(job, &image, env, cancel).await
    }

    /// Fetches and builds; returns the image tag.
    async fn build(self: &Arc<Self>, job: &Job, cancel: &CancellationToken) -> Result<String, Stop> {
        let (d, p) = (&job.deployment, &job.project);
        let row = {
            let pid = p.id.clone();
            self.store.read(move |c| store::git::get(c, &pid)).await.map_err(ServiceError::from)?
        }
        .ok_or_else(|| Stop::Failed("the project has no git connection".into()))?;
        let url = gitops::parse_repo_url(&row.repo_url, self.config.allow_local_repos)
            .map_err(|e| Stop::Failed(format!("repo_url: {}", e.message)))?;
        let auth = GitAuth {
            ssh_private_key: Some(self.secrets.open(&row.deploy_key_private, &format!("deploy-key:{}", p.id))?),
            token: match &row.access_token {
                Some(t) => Some(self.secrets.open(t, &format!("git-token:{}", p.id))?),
                None => None,
            },
        };
        let dest = self.config.data_dir.join("repos").join(&p.id);
        let opts = self.git_options();
        let fetch_started = Instant::now();
        let fetched = tokio::select! {
            r = async {
                match &d.requested_commit {
                    Some(c) => gitops::fetch_commit(&url, d.branch.as_deref(), c, &auth, &opts, &dest).await,
                    None => gitops::fetch_shallow(&url, d.branch.as_deref(), &auth, &opts, &dest).await,
                }
            } => r.map_err(|e| Stop::Failed(git_error(e).to_string()))?,
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
        };
        let fetch_ms = fetch_started.elapsed().as_millis();
        self.log(&d.id, "build", vec![format!("fetched {} ({}) in {fetch_ms} ms", fetched.branch, &fetched.sha)]).await;
        let (id, sha) = (d.id.clone(), fetched.sha.clone());
        self.store
            .write(move |tx| store::deployments::set_outputs(tx, &id, None, Some(&sha), None))
            .await
            .map_err(Stop::from)?;

        let build_args = self.build_args(d, p).await?;
        let context = if p.build.root_directory.is_empty() { dest.clone() } else { dest.join(&p.build.root_directory) };
        // Identified by repository rather than labels (a label costs the classic builder an extra step).
        let tag = format!("berth/{}/{}:dep-{}", job.workspace.id, p.id, d.number);
        let labels = BTreeMap::new();
        let mut dockerfile = p.build.dockerfile_path.clone().unwrap_or_else(|| "Dockerfile".into());
        let mut dockerfile_contents = None;
        if p.build.builder == Builder::Auto {
            // The repository's Dockerfile wins; without one, detection picks a generated Dockerfile.
            use crate::build::dockerfile::{self as auto, AutoPlan};
            let (dir, build, port) = (context.clone(), p.build.clone(), p.port);
            let images = auto::BaseImages::from_config(&self.config);
            let plan = tokio::task::spawn_blocking(move || auto::plan(&dir, &build, port, &images))
                .await
                .map_err(|e| Stop::Failed(format!("detection stopped: {e}")))?
                .map_err(|e| Stop::Failed(e.to_string()))?;
            self.log(&d.id, "build", plan.log_lines(p.port)).await;
            match plan {
                AutoPlan::Repository { dockerfile: path } => dockerfile = path,
                AutoPlan::Generated { dockerfile: text, .. } => dockerfile_contents = Some(text),
            }
        }
        let req = ImageBuild {
            context_dir: context,
            dockerfile,
            dockerfile_contents,
            tag: tag.clone(),
            build_args,
            labels,
            no_cache: d.no_cache,
            memory_bytes: Some(i64::from(self.config.build_memory_mb) * 1024 * 1024),
            timeout: Duration::from_secs(u64::from(self.config.build_timeout_secs)),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let writer = {
            let me = self.clone();
            let id = d.id.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while let Some(line) = rx.recv().await {
                    batch.push(line);
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    me.log(&id, "build", std::mem::take(&mut batch)).await;
                }
            })
        };
        let mut on_line = move |line: String| {
            let _ = tx.send(line);
        };
        let build_started = Instant::now();
        let built = self.docker.build_image(req, &mut on_line, cancel).await;
        drop(on_line);
        let _ = writer.await;
        built?;
        self.log(&d.id, "build", vec![format!("image {tag} built in {} ms", build_started.elapsed().as_millis())])
            .await;
        Ok(tag)
    }

    /// `reset`: the project's replicas (every environment: they share the volumes) are stopped and its volumes
    /// deleted, so the rollout that follows starts with empty ones. Asked for explicitly and confirmed by slug.
    async fn reset_volumes(&self, job: &Job) -> Result<(), Stop> {
        let (d, p) = (&job.deployment, &job.project);
        let (pid, reference) = (p.id.clone(), d.reference.clone());
        self.store
            .write(move |tx| {
                for r in store::deployments::running_in_project(tx, &pid)? {
                    let why = format!("stopped for the volume reset of {reference}");
                    store::deployments::set_status(tx, &r.id, DeploymentStatus::Stopped, &why, None, now())?;
                }
                Ok::<_, store::StoreError>(())
            })
            .await?;
        self.refresh_routes().await;
        let mut removed = 0;
        for c in self.docker.list_containers(&[(LABEL_PROJECT, p.id.as_str())], true).await? {
            let _ = self.docker.stop_container(&c.id, Duration::from_secs(10)).await;
            self.docker.remove_container(&c.id).await?;
            removed += 1;
        }
        let mut lines = vec![format!("reset: stopped {removed} replica(s) of {}", p.slug)];
        for v in &p.volumes {
            self.docker.remove_volume(&volume_name(p, &v.name)).await?;
            lines.push(format!("reset: deleted volume {} ({}); it is recreated empty", v.name, v.mount_path));
        }
        self.log(&d.id, "deploy", lines).await;
        Ok(())
    }

    /// Starts the new replicas, waits for health, switches traffic, retires the old replicas.
    async fn roll_out(
        self: &Arc<Self>,
        job: &Job,
        image: &str,
        env: Vec<(String, String, bool)>,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        let (d, p, ws) = (&job.deployment, &job.project, &job.workspace);
        let network = network_name(ws);
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
        labels.insert(LABEL_WORKSPACE.to_owned(), ws.id.clone());
        self.docker.ensure_network(&network, &labels).await?;
        let mut volumes = Vec::new();
        for v in &p.volumes {
            let name = volume_name(p, &v.name);
            let mut l = labels.clone();
            l.insert(LABEL_PROJECT.to_owned(), p.id.clone());
            self.docker.ensure_volume(&name, &l).await?;
            volumes.push((name, v.mount_path.clone()));
        }
        labels.insert(LABEL_PROJECT.to_owned(), p.id.clone());
        labels.insert(LABEL_DEPLOYMENT.to_owned(), d.id.clone());
        labels.insert(LABEL_ENVIRONMENT.to_owned(), d.environment_id.clone());
        let env_list: Vec<String> = env.iter().map(|(k, v, _)| format!("{k}={v}")).collect();
        let cmd = p
            .runtime
            .start_command
            .clone()
            .or_else(|| p.build.start_command.clone())
            .map(|c| vec!["/bin/sh".to_owned(), "-c".to_owned(), c]);
        let cpu: f64 = p.cpu.parse().unwrap_or(0.5);
        let ram: f64 = p.ram.parse().unwrap_or(0.5);
        let mut started: Vec<String> = Vec::new();
        let rollout_started = Instant::now();
        let result = async {
            for i in 0..p.replicas {
                let spec = ContainerSpec {
                    name: container_name(ws, p, d, i),
                    image: image.to_owned(),
                    env: env_list.clone(),
                    cmd: cmd.clone(),
                    labels: labels.clone(),
                    network: Some(network.clone()),
                    network_aliases: vec![p.slug.clone()],
                    nano_cpus: Some((cpu * 1e9) as i64),
                    memory_bytes: Some((ram * 1024.0 * 1024.0 * 1024.0) as i64),
                    volumes: volumes.clone(),
                    restart_on_failure: true,
                    ..ContainerSpec::new("", "")
                };
                started.push(self.docker.run_container(spec).await?);
            }
            let started_ms = rollout_started.elapsed().as_millis();
            let mut upstreams = Vec::new();
            for c in &started {
                upstreams.push(self.wait_healthy(c, &network, p, cancel).await?);
            }
            let healthy_ms = rollout_started.elapsed().as_millis();
            self.log(
                &d.id,
                "deploy",
                vec![format!("{} replica(s) started in {started_ms} ms, healthy after {healthy_ms} ms", started.len())],
            )
            .await;
            Ok::<_, Stop>(upstreams)
        }
        .await;
        let upstreams = match result {
            Ok(u) => u,
            Err(stop) => {
                for c in &started {
                    let _ = self.docker.remove_container(c).await;
                }
                return Err(stop);
            }
        };
        let _ = upstreams;
        // The release, then the switch: mark running (the route table follows the running deployments).
        let release_id = new_id();
        let config = serde_json::json!({
            "image": image, "env": env.iter().map(|(k, v, s)| serde_json::json!({"key": k, "value": v, "is_secret": s})).collect::<Vec<_>>(),
            "port": p.port, "replicas": p.replicas, "cpu": p.cpu, "ram": p.ram, "volumes": p.volumes,
            "start_command": cmd, "health_check_path": p.runtime.health_check_path,
        });
        let sealed = self.secrets.seal(&config.to_string(), &format!("release:{release_id}"))?;
        let healthy_at = Instant::now();
        if d.environment == crate::domain::PRODUCTION {
            self.route_pending(&d.id, &p.slug, &ws.slug, p.port).await;
        }
        let (dep, img) = (d.clone(), image.to_owned());
        let previous = self
            .store
            .write(move |tx| {
                let previous = store::deployments::running(tx, &dep.project_id, &dep.environment_id)?;
                if !store::deployments::set_status(tx, &dep.id, DeploymentStatus::Running, "serving", None, now())? {
                    return Ok::<_, ServiceError>(Err(()));
                }
                store::deployments::insert_release(tx, &release_id, &dep, &img, &sealed, now())?;
                store::deployments::set_outputs(tx, &dep.id, None, None, Some(&release_id))?;
                if let Some(prev) = &previous {
                    store::deployments::set_status(
                        tx,
                        &prev.id,
                        DeploymentStatus::Superseded,
                        &format!("{} took over", dep.reference),
                        None,
                        now(),
                    )?;
                }
                store::projects::set_status(tx, &dep.project_id, "running")?;
                Ok(Ok(previous))
            })
            .await
            .map_err(Stop::from);
        // Committed or not, the table follows the database again from here.
        self.settle_route(&d.id).await;
        let previous = match previous {
            Ok(p) => p,
            Err(stop) => {
                for c in &started {
                    let _ = self.docker.remove_container(c).await;
                }
                return Err(stop);
            }
        };
        let previous = match previous {
            Ok(p) => p,
            Err(()) => {
                for c in &started {
                    let _ = self.docker.remove_container(c).await;
                }
                return Err(Stop::Cancelled);
            }
        };
        let switch_ms = healthy_at.elapsed().as_secs_f64() * 1000.0;
        self.log(
            &d.id,
            "deploy",
            vec![format!("{} replica(s) healthy; traffic switched {switch_ms:.1} ms later", started.len())],
        )
        .await;
        if let Some(prev) = previous {
            let me = self.clone();
            let grace = Duration::from_secs(u64::from(self.config.drain_secs));
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                me.remove_deployment_containers(&prev.id).await;
            });
        }
        Ok(())
    }

    /// At start: a deployment that was building or deploying when Berth stopped is marked failed with the reason
    /// and its half-created containers are removed; queued ones stay queued and run; running ones keep serving
    /// (their containers are found again by label) and the route table is rebuilt.
    pub async fn recover_deployments(&self) -> Result<(), ServiceError> {
        let interrupted: Vec<Deployment> = self
            .store
            .read(store::deployments::in_progress)
            .await?
            .into_iter()
            .filter(|d| d.status != DeploymentStatus::Queued)
            .collect();
        for d in interrupted {
            let reason = format!("interrupted: Berth stopped while the deployment was {}; deploy again", d.status);
            self.transition(&d.id, DeploymentStatus::Failed, "interrupted by a restart", Some(&reason)).await;
            self.remove_deployment_containers(&d.id).await;
            tracing::warn!(deployment = %d.id, "{reason}");
        }
        self.refresh_routes().await;
        Ok(())
    }

    /// After a project was deleted: stops the deployment of it in the works, if any, and stops and removes every
    /// container it has (never its volumes, which outlive the project like a deleted database's). A Docker engine
    /// that cannot be reached is logged (the containers are then left to the operator: they carry the
    /// `berth.project` label).
    pub(crate) async fn remove_project_containers(&self, project_id: &str) {
        if let Ok(jobs) = self.jobs.lock() {
            for job in jobs.values().filter(|j| j.project_id == project_id) {
                job.cancel.cancel();
            }
        }
        self.remove_labelled_containers(LABEL_PROJECT, project_id).await;
    }

    /// Removes every container of a deployment (never its volumes).
    pub(crate) async fn remove_deployment_containers(&self, deployment_id: &str) {
        self.remove_labelled_containers(LABEL_DEPLOYMENT, deployment_id).await;
    }

    /// Stops (10 s grace) and removes every container, running or not, whose `label` is `value`; failures are
    /// logged, never returned (what is left carries the label for the operator).
    async fn remove_labelled_containers(&self, label: &str, value: &str) {
        match self.docker.list_containers(&[(label, value)], true).await {
            Ok(list) => {
                for c in list {
                    let _ = self.docker.stop_container(&c.id, Duration::from_secs(10)).await;
                    if let Err(e) = self.docker.remove_container(&c.id).await {
                        tracing::warn!(error = %e, container = %c.name, label, value, "while removing a replica");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, label, value, "while removing replicas"),
        }
    }

    /// Waits until a new replica accepts connections on the project's port and, when set, answers 2xx/3xx on the
    /// health check path. Fails with what went wrong.
    async fn wait_healthy(
        &self,
        container: &str,
        network: &str,
        p: &Project,
        cancel: &CancellationToken,
    ) -> Result<SocketAddr, Stop> {
        let deadline = Instant::now() + Duration::from_secs(u64::from(self.config.health_timeout_secs));
        let mut last = String::from("no answer yet");
        loop {
            if cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let state = self.docker.inspect_container(container).await?;
            let Some(state) = state else { return Err(Stop::Failed("the new replica disappeared".into())) };
            // Exited, or already restarted by the engine: the app crashes on start.
            if state.restart_count > 0 || (!state.running && state.exit_code.is_some()) {
                let logs = self.docker.container_logs(container, Some(20), None).await.unwrap_or_default();
                let tail: Vec<String> = logs.into_iter().map(|l| l.text).collect();
                let code = state.exit_code.map_or_else(|| "an error".to_owned(), |c| format!("code {c}"));
                return Err(Stop::Failed(format!(
                    "the app exited with {code} on start; last output: {}",
                    tail.join(" | ")
                )));
            }
            if let Some(ip) = state.ip {
                let addr = SocketAddr::new(ip, p.port);
                match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => match &p.runtime.health_check_path {
                        None => return Ok(addr),
                        Some(path) => match http_status(stream, path).await {
                            Some(s) if (200..400).contains(&s) => return Ok(addr),
                            Some(s) => last = format!("{path} answered {s}"),
                            None => last = format!("{path} gave no HTTP answer"),
                        },
                    },
                    _ => last = format!("nothing listening on port {}", p.port),
                }
            }
            let _ = network;
            if Instant::now() >= deadline {
                return Err(Stop::Failed(format!(
                    "{last} after {} s — does the app bind 0.0.0.0:{}?",
                    self.config.health_timeout_secs, p.port
                )));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
        }
    }

    /// The variables a release ran with (rollbacks and restarts reuse them exactly).
    pub(crate) async fn release_env(&self, release_id: &str) -> Result<Vec<(String, String, bool)>, ServiceError> {
        let id = release_id.to_owned();
        let (_, sealed) = self
            .store
            .read(move |c| store::deployments::release(c, &id))
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("release {release_id} not found")))?;
        let config: serde_json::Value =
            serde_json::from_str(&self.secrets.open(&sealed, &format!("release:{release_id}"))?)
                .map_err(|e| ServiceError::Internal(format!("release {release_id}: {e}")))?;
        Ok(config["env"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(|v| {
                        Some((
                            v["key"].as_str()?.to_owned(),
                            v["value"].as_str()?.to_owned(),
                            v["is_secret"].as_bool()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The effective variables of a project environment (the most specific scope wins), still sealed.
    async fn effective_variables(
        &self,
        ws_id: &str,
        project_id: &str,
        env_id: &str,
    ) -> Result<Vec<store::variables::StoredVariable>, ServiceError> {
        let (w, p, e) = (ws_id.to_owned(), project_id.to_owned(), env_id.to_owned());
        let rows = self.store.read(move |c| store::variables::applicable(c, &w, &p, &e)).await?;
        let mut by_key: BTreeMap<String, store::variables::StoredVariable> = BTreeMap::new();
        for r in rows {
            match by_key.get(&r.key) {
                Some(existing) if existing.scope >= r.scope => {}
                _ => {
                    by_key.insert(r.key.clone(), r);
                }
            }
        }
        Ok(by_key.into_values().collect())
    }

    fn open_variable(&self, v: store::variables::StoredVariable) -> Result<(String, String, bool), ServiceError> {
        let value = if v.is_secret { self.secrets.open(&v.value, &variable_aad(&v.id))? } else { v.value };
        Ok((v.key, value, v.is_secret))
    }

    /// The effective variables of a project environment, secrets opened: what the container gets.
    async fn resolved_env_plain(
        &self,
        ws_id: &str,
        project_id: &str,
        env_id: &str,
    ) -> Result<Vec<(String, String, bool)>, ServiceError> {
        let rows = self.effective_variables(ws_id, project_id, env_id).await?;
        rows.into_iter().map(|v| self.open_variable(v)).collect()
    }

    /// What a build receives as build arguments: every plain variable, and the secrets marked `build_secret`.
    /// Other secrets never reach a build (build arguments are kept in the image's history).
    async fn build_args(&self, d: &Deployment, p: &Project) -> Result<Vec<(String, String)>, ServiceError> {
        let rows = self.effective_variables(&p.workspace_id, &p.id, &d.environment_id).await?;
        rows.into_iter()
            .filter(|v| !v.is_secret || v.build_secret)
            .map(|v| self.open_variable(v).map(|(k, value, _)| (k, value)))
            .collect()
    }
}

/// A minimal `GET path HTTP/1.0` on an open connection; the status code, or `None` when the answer is not HTTP.
async fn http_status(mut stream: tokio::net::TcpStream, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: berth-health\r\n\r\n");
    tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.ok()?;
        let head = std::str::from_utf8(&buf[..n]).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}
