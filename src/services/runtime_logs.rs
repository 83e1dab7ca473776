//! Runtime logs: the follower that copies what every running Berth-managed container writes into the store
//! (secret values masked, one write per batch, resumable per container), retention, and the use cases the API
//! reads them through (query, follow, usage, analysis).
//!
//! The follower finds containers by label at start and every [`RESYNC`], and at once through the engine's
//! container-start events. Each container's progress is a cursor (newest engine timestamp stored and how many
//! lines had exactly it), written in the same transaction as the lines, so after a restart the follower asks the
//! engine for the log from that second on and skips what it already has: nothing lost, nothing twice.

use super::access::{Actor, resolve};
use super::projects::{resolve_environment, resolve_project};
use super::{ServiceError, Services};
use crate::docker::{LABEL_DEPLOYMENT, LABEL_ENVIRONMENT, LABEL_PROJECT, LogLine};
use crate::domain::deployment::Deployment;
use crate::domain::runtime_logs::{self as rules, Finding, LogQuery, RuntimeLogLine, format_ts, mask_secrets};
use crate::store::{self, runtime_logs::NewLine};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// How often the follower lists running containers, in case an engine event was missed.
const RESYNC: Duration = Duration::from_secs(30);
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// Most lines written in one transaction.
const BATCH_MAX: usize = 2000;
/// How long a new container's deployment may take to make its secret values known before the follower gives
/// up on it until the next resync (it never stores a line it could not mask).
const SECRETS_WAIT: Duration = Duration::from_secs(10);
/// Lines analysed when the request brings none.
const ANALYZE_RECENT: u32 = 1000;

/// What the follower tells readers: the newest stored `seq`, and that it stopped (so open streams end).
pub(crate) struct Hub {
    tail: watch::Sender<i64>,
    closed: CancellationToken,
}

impl Hub {
    pub(crate) fn new() -> Hub {
        Hub { tail: watch::Sender::new(0), closed: CancellationToken::new() }
    }
}

/// Per-project log volume of a workspace, with the retention that bounds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogUsage {
    pub projects: Vec<ProjectLogUsage>,
    pub total_lines: i64,
    pub total_bytes: i64,
    pub retention: LogRetention,
}

/// One project's stored runtime log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectLogUsage {
    pub project: String,
    pub project_id: String,
    pub lines: i64,
    /// Bytes of line text (UTF-8).
    pub bytes: i64,
    /// Timestamp of the oldest line kept.
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// The instance's retention (config keys `log_retention_days`, `log_retention_lines`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogRetention {
    pub days: u32,
    pub lines_per_project: u32,
}

/// The findings of `POST …/logs/analyze`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogAnalysis {
    /// Most severe first; empty when no rule matched.
    pub findings: Vec<Finding>,
    pub lines_analyzed: usize,
    /// `request` (the body's logs) or `stored` (the project's recent lines).
    pub source: String,
}

/// How a container's follower ended.
enum Followed {
    /// Its log ended (it stopped) or the engine failed; a later start or resync follows it again.
    Ended,
    /// Not one of this Berth's deployments (another instance's, or deleted): ignored from now on.
    Foreign,
}

/// What reaches the writer: lines, or a request to say when everything sent before it is stored.
enum Msg {
    Line(NewLine),
    Flush(oneshot::Sender<()>),
}

impl Services {
    /// Lines of a project environment (`None` = production) matching `q` (any member).
    pub async fn runtime_logs(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
        q: LogQuery,
    ) -> Result<Vec<RuntimeLogLine>, ServiceError> {
        let (actor, ws, project, env) =
            (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        self.store
            .read(move |c| {
                let (_, p) = resolve_project(c, &actor, &ws, &project)?;
                let e = resolve_environment(c, &p, env.as_deref())?;
                Ok(store::runtime_logs::query(c, &p.id, &e.id, &q)?)
            })
            .await
    }

    /// The next lines after `q.after` (ascending), waiting until there are some. Moves `q.after` past what it
    /// returns. `Ok(None)` when Berth is shutting down. Lines are committed in `seq` order by one writer, so a
    /// reader that continues from the last `seq` it saw never misses one and never sees one twice.
    pub async fn next_runtime_logs(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
        q: &mut LogQuery,
    ) -> Result<Option<Vec<RuntimeLogLine>>, ServiceError> {
        let mut updates = self.log_hub.tail.subscribe();
        loop {
            updates.borrow_and_update();
            let lines = self.runtime_logs(actor, ws, project, environment, q.clone()).await?;
            if let Some(last) = lines.last() {
                q.after = Some(last.seq);
                return Ok(Some(lines));
            }
            tokio::select! {
                _ = self.log_hub.closed.cancelled() => return Ok(None),
                _ = updates.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }

    /// `GET /workspaces/:ws/logs/usage` (any member).
    pub async fn runtime_log_usage(&self, actor: &Actor, ws: &str) -> Result<LogUsage, ServiceError> {
        let (actor, ws) = (actor.clone(), ws.to_owned());
        let rows = self
            .store
            .read(move |c| {
                let access = resolve(c, &actor, &ws)?;
                Ok::<_, ServiceError>(store::runtime_logs::usage(c, &access.workspace.id)?)
            })
            .await?;
        let projects: Vec<ProjectLogUsage> = rows
            .into_iter()
            .map(|r| ProjectLogUsage {
                project: r.slug,
                project_id: r.project_id,
                lines: r.lines,
                bytes: r.bytes,
                oldest: r.oldest,
                newest: r.newest,
            })
            .collect();
        Ok(LogUsage {
            total_lines: projects.iter().map(|p| p.lines).sum(),
            total_bytes: projects.iter().map(|p| p.bytes).sum(),
            projects,
            retention: LogRetention {
                days: self.config.log_retention_days,
                lines_per_project: self.config.log_retention_lines,
            },
        })
    }

    /// `POST …/logs/analyze` (any member): the rules over `logs`, or over the environment's recent lines.
    pub async fn analyze_runtime_logs(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
        logs: Option<Vec<String>>,
    ) -> Result<LogAnalysis, ServiceError> {
        if logs.as_ref().is_some_and(|l| l.len() > rules::MAX_LIMIT as usize) {
            return Err(ServiceError::invalid("logs", format!("at most {} lines can be analysed", rules::MAX_LIMIT)));
        }
        let (a, w, p, env) = (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let given = logs.is_some();
        let (port, lines) = self
            .store
            .read(move |c| {
                let (_, p) = resolve_project(c, &a, &w, &p)?;
                let lines = match logs {
                    Some(lines) => lines,
                    None => {
                        let e = resolve_environment(c, &p, env.as_deref())?;
                        let q = LogQuery { limit: ANALYZE_RECENT, ..LogQuery::default() };
                        let mut recent = store::runtime_logs::query(c, &p.id, &e.id, &q)?;
                        recent.reverse();
                        recent.into_iter().map(|l| l.line).collect()
                    }
                };
                Ok::<_, ServiceError>((p.port, lines))
            })
            .await?;
        Ok(LogAnalysis {
            findings: rules::analyze(&lines, port),
            lines_analyzed: lines.len(),
            source: if given { "request" } else { "stored" }.to_owned(),
        })
    }

    /// Applies retention now: deletes lines older than `log_retention_days` and, per project, beyond
    /// `log_retention_lines`. Returns how many lines went.
    pub async fn prune_runtime_logs(&self) -> Result<usize, ServiceError> {
        let cutoff = self.retention_cutoff();
        let keep = self.config.log_retention_lines;
        Ok(self.store.write(move |tx| store::runtime_logs::prune(tx, &cutoff, keep)).await?)
    }

    fn retention_cutoff(&self) -> String {
        format_ts(chrono::Utc::now() - chrono::Duration::days(i64::from(self.config.log_retention_days)))
    }

    /// The background task: follows every running managed container's output into the store until `shutdown`,
    /// then stores what is in flight and ends every open log stream.
    pub async fn follow_runtime_logs(self: Arc<Self>, shutdown: CancellationToken) {
        match self.store.read(store::runtime_logs::last_seq).await {
            Ok(seq) => {
                self.log_hub.tail.send_replace(seq);
            }
            Err(e) => tracing::warn!(error = %e, "while reading the runtime log position"),
        }
        let (line_tx, line_rx) = mpsc::channel::<Msg>(8192);
        let writer = tokio::spawn(self.clone().write_runtime_logs(line_rx));
        let (start_tx, mut start_rx) = mpsc::channel::<String>(256);
        let mut watcher: Option<tokio::task::JoinHandle<()>> = None;
        let mut followers: JoinSet<(String, Followed)> = JoinSet::new();
        let mut following: HashSet<String> = HashSet::new();
        let mut foreign: HashSet<String> = HashSet::new();
        let mut resync = tokio::time::interval(RESYNC);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            let mut found: Vec<String> = Vec::new();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = resync.tick() => {
                    if watcher.as_ref().is_none_or(|w| w.is_finished()) {
                        let (me, tx, token) = (self.clone(), start_tx.clone(), shutdown.child_token());
                        watcher = Some(tokio::spawn(async move {
                            if let Err(e) = me.docker.watch_container_starts(tx, token).await {
                                tracing::debug!(error = %e, "the engine's event stream ended");
                            }
                        }));
                    }
                    match self.docker.list_containers(&[], false).await {
                        Ok(list) => found.extend(list.into_iter().map(|c| c.id)),
                        Err(e) => tracing::debug!(error = %e, "while listing containers to follow their logs"),
                    }
                }
                Some(id) = start_rx.recv() => found.push(id),
                Some(done) = followers.join_next() => {
                    if let Ok((id, outcome)) = done {
                        following.remove(&id);
                        if matches!(outcome, Followed::Foreign) {
                            foreign.insert(id);
                        }
                    }
                }
                _ = prune.tick() => match self.prune_runtime_logs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "runtime log lines past retention removed"),
                    Err(e) => tracing::warn!(error = %e, "while pruning runtime logs"),
                },
            }
            for id in found {
                if !foreign.contains(&id) && following.insert(id.clone()) {
                    let (me, tx, token) = (self.clone(), line_tx.clone(), shutdown.child_token());
                    followers.spawn(async move {
                        let outcome = me.follow_container(&id, tx, token).await;
                        (id, outcome)
                    });
                }
            }
        }
        while followers.join_next().await.is_some() {}
        if let Some(w) = watcher {
            w.abort();
        }
        drop(line_tx);
        let _ = writer.await;
        self.log_hub.closed.cancel();
    }

    /// Follows one container until its log ends; every line masked before it leaves this function.
    async fn follow_container(&self, id: &str, out: mpsc::Sender<Msg>, cancel: CancellationToken) -> Followed {
        let state = match self.docker.inspect_container(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Followed::Ended,
            Err(e) => {
                tracing::debug!(error = %e, container = id, "while inspecting a container to follow");
                return Followed::Ended;
            }
        };
        let label = |k: &str| state.labels.get(k).cloned();
        let (Some(deployment_id), Some(project_id), Some(environment_id)) =
            (label(LABEL_DEPLOYMENT), label(LABEL_PROJECT), label(LABEL_ENVIRONMENT))
        else {
            return Followed::Foreign;
        };
        let deadline = tokio::time::Instant::now() + SECRETS_WAIT;
        let secrets = loop {
            let dep = deployment_id.clone();
            let d = match self.store.read(move |c| store::deployments::get(c, &dep)).await {
                Ok(Some(d)) if d.project_id == project_id && d.environment_id == environment_id => d,
                Ok(_) => return Followed::Foreign,
                Err(e) => {
                    tracing::warn!(error = %e, "while reading a container's deployment");
                    return Followed::Ended;
                }
            };
            if let Some(values) = self.deployment_secret_values(&d).await {
                break values;
            }
            if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                tracing::debug!(container = %state.name, "secret values unknown yet; following at the next resync");
                return Followed::Ended;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let name = state.name.clone();
        let cursor = match self.store.read(move |c| store::runtime_logs::cursor(c, &name)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "while reading a container's log cursor");
                return Followed::Ended;
            }
        };
        let cutoff = self.retention_cutoff();
        let since = cursor
            .as_ref()
            .map_or(cutoff.as_str(), |c| c.ts.as_str())
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map_or(0, |t| t.timestamp());
        let (mut skip_ts, mut skip_n) = cursor.map_or((String::new(), 0), |c| (c.ts, c.at_ts));
        if skip_ts.is_empty() {
            skip_ts = cutoff;
        }
        let (tx, mut rx) = mpsc::channel::<LogLine>(1024);
        let follow = self.docker.follow_logs(id, since, tx, cancel);
        let copy = async {
            while let Some(l) = rx.recv().await {
                let Some(ts) = l.time.as_deref().and_then(rules::normalize_timestamp) else { continue };
                if ts < skip_ts {
                    continue;
                }
                if ts == skip_ts && skip_n > 0 {
                    skip_n -= 1;
                    continue;
                }
                let line = NewLine {
                    project_id: state.labels.get(LABEL_PROJECT).cloned().unwrap_or_default(),
                    environment_id: state.labels.get(LABEL_ENVIRONMENT).cloned().unwrap_or_default(),
                    deployment_id: deployment_id.clone(),
                    container: state.name.clone(),
                    stream: l.stream.as_str().to_owned(),
                    ts,
                    line: mask_secrets(&secrets, l.text),
                };
                if out.send(Msg::Line(line)).await.is_err() {
                    return;
                }
            }
        };
        let (followed, ()) = tokio::join!(follow, copy);
        if let Err(e) = followed {
            tracing::debug!(error = %e, container = %state.name, "a container's log stream ended");
        }
        // Report the end only once its lines are stored, so a restart's new follower starts from them.
        let (done_tx, done_rx) = oneshot::channel();
        if out.send(Msg::Flush(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
        Followed::Ended
    }

    /// The secret values a deployment's containers hold: from the running job while it rolls out, else from the
    /// release it made. `None` while neither is known.
    async fn deployment_secret_values(&self, d: &Deployment) -> Option<Vec<String>> {
        if let Ok(map) = self.secret_values.lock()
            && let Some(values) = map.get(&d.id)
        {
            return Some(values.clone());
        }
        let release = d.release_id.as_deref()?;
        match self.release_env(release).await {
            Ok(env) => Some(env.into_iter().filter(|(_, _, secret)| *secret).map(|(_, v, _)| v).collect()),
            Err(e) => {
                tracing::warn!(error = %e, release, "while reading a release's variables to mask its logs");
                None
            }
        }
    }

    /// Stores lines in batches (whatever has arrived while the previous batch was written, up to
    /// [`BATCH_MAX`]) and tells readers the new position. Ends when every sender is gone.
    async fn write_runtime_logs(self: Arc<Self>, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next {
                match m {
                    Msg::Line(l) => batch.push(l),
                    Msg::Flush(f) => flushes.push(f),
                }
                next = if batch.len() < BATCH_MAX { rx.try_recv().ok() } else { None };
            }
            if !batch.is_empty() {
                let at = format_ts(chrono::Utc::now());
                match self.store.write(move |tx| store::runtime_logs::append(tx, &batch, &at)).await {
                    Ok(seq) => {
                        self.log_hub.tail.send_replace(seq);
                    }
                    Err(e) => tracing::warn!(error = %e, "while storing runtime log lines"),
                }
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    }
}
