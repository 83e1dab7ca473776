//! Deployments: the state machine every deployment moves through, and the rules for what may be done to it.
//!
//! ```text
//! queued ──► building ──► deploying ──► running ──► stopped
//!   │           │             │            └──────► superseded   (a newer deployment took over)
//!   │           │             └──► failed
//!   ├──► superseded (a newer deploy of the same project replaced it while it waited)
//!   └──► cancelled ◄── building / deploying (cancel)
//! ```
//! `failed`, `cancelled`, `superseded` and `stopped` are final. Image deploys, redeploys, restarts and rollbacks
//! skip `building` (queued → deploying).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    Queued,
    Building,
    Deploying,
    Running,
    Failed,
    Cancelled,
    Superseded,
    Stopped,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 8] = [
        DeploymentStatus::Queued,
        DeploymentStatus::Building,
        DeploymentStatus::Deploying,
        DeploymentStatus::Running,
        DeploymentStatus::Failed,
        DeploymentStatus::Cancelled,
        DeploymentStatus::Superseded,
        DeploymentStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Queued => "queued",
            DeploymentStatus::Building => "building",
            DeploymentStatus::Deploying => "deploying",
            DeploymentStatus::Running => "running",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Cancelled => "cancelled",
            DeploymentStatus::Superseded => "superseded",
            DeploymentStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentStatus> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Final states never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Failed
                | DeploymentStatus::Cancelled
                | DeploymentStatus::Superseded
                | DeploymentStatus::Stopped
        )
    }

    /// Work in progress: a crash leaves these to be recovered at the next start.
    pub fn is_in_progress(self) -> bool {
        matches!(self, DeploymentStatus::Queued | DeploymentStatus::Building | DeploymentStatus::Deploying)
    }

    /// Whether the state machine allows `self → next`.
    pub fn can_become(self, next: DeploymentStatus) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, next),
            (Queued, Building | Deploying | Cancelled | Superseded | Failed)
                | (Building, Deploying | Failed | Cancelled)
                | (Deploying, Running | Failed | Cancelled)
                | (Running, Stopped | Superseded | Failed)
        )
    }

    /// `cancel` applies while the deployment has not finished rolling out.
    pub fn can_cancel(self) -> bool {
        self.is_in_progress()
    }

    /// `retry` starts a new deployment like a failed or cancelled one.
    pub fn can_retry(self) -> bool {
        matches!(self, DeploymentStatus::Failed | DeploymentStatus::Cancelled)
    }

    /// `stop` releases the compute of the deployment that is serving.
    pub fn can_stop(self) -> bool {
        self == DeploymentStatus::Running
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentKind {
    /// Fetch the commit and build an image (or use the project's image), then roll out.
    Build,
    /// Roll out the current release's image again with the current configuration (no build).
    Redeploy,
    /// Replace the replicas of the current release, same image and configuration.
    Restart,
    /// Activate an earlier release: its image and its configuration (no build).
    Rollback,
}

impl DeploymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Build => "build",
            DeploymentKind::Redeploy => "redeploy",
            DeploymentKind::Restart => "restart",
            DeploymentKind::Rollback => "rollback",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentKind> {
        [DeploymentKind::Build, DeploymentKind::Redeploy, DeploymentKind::Restart, DeploymentKind::Rollback]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Whether this kind goes through `building`.
    pub fn builds(self) -> bool {
        self == DeploymentKind::Build
    }
}

/// A deployment as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deployment {
    pub id: String,
    /// `DEP-0001`, per project.
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(skip)]
    pub number: i64,
    #[serde(skip)]
    pub project_id: String,
    #[serde(skip)]
    pub environment_id: String,
    /// The environment's name.
    pub environment: String,
    pub kind: DeploymentKind,
    pub status: DeploymentStatus,
    /// `api`, `dashboard`, `webhook`, `retry`, `rollback`.
    pub trigger: String,
    pub triggered_by: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    /// The image this deployment runs (built or given).
    pub image: Option<String>,
    /// For rollbacks, the release activated; for successful deployments, the release they made.
    pub release_id: Option<String>,
    pub retry_of: Option<String>,
    pub no_cache: bool,
    /// The commit asked for (`POST …/deployments {commit}`); `commit` is what was built.
    pub requested_commit: Option<String>,
    /// Whether this deployment recreates the project's volumes (`reset`, confirmed by the project slug).
    pub reset: bool,
    pub note: Option<String>,
    /// Why it failed, in words that say what to do.
    pub error: Option<String>,
    pub created_at: super::Timestamp,
    pub started_at: Option<super::Timestamp>,
    pub finished_at: Option<super::Timestamp>,
}

/// A timed step of a deployment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploymentEvent {
    pub status: DeploymentStatus,
    pub message: String,
    pub at: super::Timestamp,
}

/// One line of a build or deploy log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    pub seq: i64,
    /// `build`, `deploy` or `error`.
    pub stream: String,
    pub line: String,
    pub at: super::Timestamp,
}

/// A successful deployment's image and configuration: a rollback target.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Release {
    pub id: String,
    /// `v1`, `v2`, … per project environment.
    pub version: String,
    #[serde(skip)]
    pub number: i64,
    pub deployment_id: String,
    pub environment: String,
    pub image: String,
    pub created_at: super::Timestamp,
}

/// `DEP-0001` for number 1; more digits when needed.
pub fn deployment_ref(number: i64) -> String {
    format!("DEP-{number:04}")
}

#[cfg(test)]
mod tests {
    use super::DeploymentStatus::*;
    use super::*;

    #[test]
    fn the_happy_path_and_its_exits() {
        for (a, b) in [(Queued, Building), (Building, Deploying), (Deploying, Running), (Running, Superseded)] {
            assert!(a.can_become(b), "{a} → {b}");
        }
        assert!(Queued.can_become(Deploying), "image deploys skip building");
        assert!(Queued.can_become(Superseded));
        for s in [Failed, Cancelled, Superseded, Stopped] {
            assert!(s.is_final());
            for n in DeploymentStatus::ALL {
                assert!(!s.can_become(n), "{s} is final but may become {n}");
            }
        }
        assert!(!Running.can_become(Building));
        assert!(!Building.can_become(Queued));
        assert!(!Running.can_become(Cancelled), "a running deployment is stopped, not cancelled");
    }

    #[test]
    fn actions_follow_the_states() {
        assert!(Queued.can_cancel() && Building.can_cancel() && Deploying.can_cancel());
        assert!(!Running.can_cancel() && !Failed.can_cancel());
        assert!(Failed.can_retry() && Cancelled.can_retry() && !Running.can_retry());
        assert!(Running.can_stop() && !Stopped.can_stop());
        for s in DeploymentStatus::ALL {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(deployment_ref(1), "DEP-0001");
        assert_eq!(deployment_ref(12345), "DEP-12345");
        assert_eq!(DeploymentKind::parse("rollback"), Some(DeploymentKind::Rollback));
        assert!(DeploymentKind::Build.builds() && !DeploymentKind::Rollback.builds());
    }
}
