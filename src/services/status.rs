//! `GET …/projects/:p/status`: the project, its replicas as the engine sees them, its resource limits, and the
//! latest deployment (the TOSE shape).

use super::projects::{resolve_environment, resolve_project};
use super::{Actor, ServiceError, Services};
use crate::docker::{LABEL_DEPLOYMENT, ResourceUse};
use crate::domain::{PageRequest, now};
use crate::store;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusProject {
    pub slug: String,
    pub status: String,
}

/// One replica.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pod {
    pub name: String,
    /// `Running`, `CrashLoopBackOff` (it keeps exiting and the engine restarts it with a growing delay),
    /// `Exited`, `Created`, …
    pub status: String,
    /// Running, and not crash-looping.
    pub ready: bool,
    pub restarts: i64,
    /// Time since it started, e.g. `2h`, `5m`, `30s`.
    pub age: Option<String>,
    /// Measured CPU, e.g. `12m` (millicores); `null` when it is not running.
    pub cpu: Option<String>,
    /// Measured memory, e.g. `24Mi`; `null` when it is not running.
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pods {
    pub ready: usize,
    pub total: usize,
    pub items: Vec<Pod>,
}

/// A resource's use across the replicas (`120m` cores, `48Mi`) against the project's limit per replica
/// (`500m`, `512Mi`). `used` is `null` when nothing runs or the engine could not be sampled.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    pub used: Option<String>,
    pub limit: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Resources {
    pub cpu: Usage,
    pub memory: Usage,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LatestDeployment {
    pub id: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub status: String,
    pub created_at: crate::domain::Timestamp,
}

/// The answer of `GET …/projects/:p/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectStatus {
    pub project: StatusProject,
    pub pods: Pods,
    pub resources: Resources,
    #[serde(rename = "latestDeployment")]
    pub latest_deployment: Option<LatestDeployment>,
}

/// A replica that was restarted less than this long ago is still considered crash-looping.
const CRASH_WINDOW_SECS: i64 = 60;

fn uptime_secs(started: &str) -> Option<i64> {
    let t = crate::domain::Timestamp::parse(started)?;
    Some((now().0 - t.0).num_seconds().max(0))
}

/// The pod status word: the engine's, capitalized, except that a replica the engine keeps restarting (restarting
/// now, or restarted within the last minute) is `CrashLoopBackOff`.
fn pod_status(c: &crate::docker::ContainerState) -> String {
    let recently_restarted =
        c.restart_count > 0 && c.started_at.as_deref().and_then(uptime_secs).is_some_and(|s| s < CRASH_WINDOW_SECS);
    if c.status == "restarting" || (c.running && recently_restarted) {
        return "CrashLoopBackOff".to_owned();
    }
    let mut chars = c.status.chars();
    chars.next().map(|f| f.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn age(started: &str) -> Option<String> {
    let secs = uptime_secs(started)?;
    Some(match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
}

/// Longest the status call waits for the engine's resource sample of one replica.
const STATS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

fn millicores(m: f64) -> String {
    format!("{}m", m.round() as i64)
}

fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", (bytes as f64 / (1024.0 * 1024.0)).round() as i64)
}

impl Services {
    /// Any member. The replicas are those of the deployment running in the environment (default production).
    pub async fn project_status(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
    ) -> Result<ProjectStatus, ServiceError> {
        let (a, w, p, e) = (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let (project, running, latest) = self
            .store
            .read(move |c| {
                let (_, project) = resolve_project(c, &a, &w, &p)?;
                let env = resolve_environment(c, &project, e.as_deref())?;
                let running = store::deployments::running(c, &project.id, &env.id)?;
                let latest =
                    store::deployments::list(c, &project.id, None, Some(&env.id), PageRequest { page: 1, limit: 1 })?
                        .items
                        .into_iter()
                        .next();
                Ok::<_, ServiceError>((project, running, latest))
            })
            .await?;
        let containers = match &running {
            Some(d) => self.docker.list_containers(&[(LABEL_DEPLOYMENT, d.id.as_str())], true).await?,
            None => Vec::new(),
        };
        // Sampled side by side: each takes the engine about a second.
        let samples = futures_util::future::join_all(containers.iter().map(|c| async {
            if !c.running {
                return None;
            }
            let sample = tokio::time::timeout(STATS_TIMEOUT, self.docker.container_stats(&c.id)).await;
            sample.ok().and_then(Result::ok).flatten()
        }))
        .await;
        let mut items = Vec::new();
        for (c, sample) in containers.into_iter().zip(&samples) {
            let status = pod_status(&c);
            items.push(Pod {
                ready: c.running && status != "CrashLoopBackOff",
                status,
                name: c.name,
                restarts: c.restart_count,
                age: c.started_at.as_deref().and_then(age),
                cpu: sample.map(|s| millicores(s.cpu_millicores)),
                memory: sample.map(|s| mebibytes(s.memory_bytes)),
            });
        }
        let measured: Vec<&ResourceUse> = samples.iter().flatten().collect();
        let (cpu_used, mem_used) = if measured.is_empty() {
            (None, None)
        } else {
            (
                Some(millicores(measured.iter().map(|s| s.cpu_millicores).sum())),
                Some(mebibytes(measured.iter().map(|s| s.memory_bytes).sum())),
            )
        };
        let ready = items.iter().filter(|p| p.ready).count();
        let crash_looping = items.iter().any(|p| p.status == "CrashLoopBackOff");
        let cpu_m = (project.cpu.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as i64;
        let mem_mi = (project.ram.parse::<f64>().unwrap_or(0.0) * 1024.0).round() as i64;
        let status = if crash_looping { "crash_looping".to_owned() } else { project.status.clone() };
        Ok(ProjectStatus {
            project: StatusProject { slug: project.slug.clone(), status },
            pods: Pods { ready, total: items.len(), items },
            resources: Resources {
                cpu: Usage { used: cpu_used, limit: format!("{cpu_m}m") },
                memory: Usage { used: mem_used, limit: format!("{mem_mi}Mi") },
            },
            latest_deployment: latest.map(|d| LatestDeployment {
                id: d.id,
                reference: d.reference,
                status: d.status.to_string(),
                created_at: d.created_at,
            }),
        })
    }
}
