//! `GET …/projects/:p/status`: the project, its replicas as the engine sees them, its resource limits, and the
//! latest deployment (the TOSE shape).

use super::projects::{resolve_environment, resolve_project};
use super::{Actor, ServiceError, Services};
use crate::docker::LABEL_DEPLOYMENT;
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
    /// `Running`, `Restarting` (crash-looping), `Exited`, …
    pub status: String,
    pub restarts: i64,
    /// Time since it started, e.g. `2h`, `5m`, `30s`.
    pub age: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pods {
    pub ready: usize,
    pub total: usize,
    pub items: Vec<Pod>,
}

/// A resource's limit (`500m` cores, `512Mi`); `used` is not measured yet and is `null`.
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

fn age(started: &str) -> Option<String> {
    let t = crate::domain::Timestamp::parse(started)?;
    let secs = (now().0 - t.0).num_seconds().max(0);
    Some(match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
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
        let mut items = Vec::new();
        if let Some(d) = &running {
            for c in self.docker.list_containers(&[(LABEL_DEPLOYMENT, d.id.as_str())], true).await? {
                let mut status = c.status.clone();
                if let Some(first) = status.get(..1) {
                    status = format!("{}{}", first.to_uppercase(), &status[1..]);
                }
                items.push(Pod {
                    name: c.name,
                    status,
                    restarts: c.restart_count,
                    age: c.started_at.as_deref().and_then(age),
                });
            }
        }
        let ready = items.iter().filter(|p| p.status == "Running").count();
        let cpu_m = (project.cpu.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as i64;
        let mem_mi = (project.ram.parse::<f64>().unwrap_or(0.0) * 1024.0).round() as i64;
        Ok(ProjectStatus {
            project: StatusProject { slug: project.slug.clone(), status: project.status.clone() },
            pods: Pods { ready, total: items.len(), items },
            resources: Resources {
                cpu: Usage { used: None, limit: format!("{cpu_m}m") },
                memory: Usage { used: None, limit: format!("{mem_mi}Mi") },
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
