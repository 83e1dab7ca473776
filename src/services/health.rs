//! `GET /health`: whether the database and the Docker engine answer.

use super::Services;
use std::time::Duration;

/// The engine's reachability as health reports it.
#[derive(Debug, Clone)]
pub struct DockerHealth {
    pub reachable: bool,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub error: Option<String>,
}

/// The instance's health. `ok` needs the database; a down Docker engine makes it `degraded`.
#[derive(Debug, Clone)]
pub struct Health {
    pub database: bool,
    pub docker: DockerHealth,
}

impl Services {
    pub async fn health(&self) -> Health {
        let (database, docker) = tokio::join!(self.store.ping(), self.docker.info(Duration::from_secs(2)));
        let docker = match docker {
            Ok(info) => DockerHealth {
                reachable: true,
                version: Some(info.version),
                api_version: Some(info.api_version),
                error: None,
            },
            Err(e) => DockerHealth { reachable: false, version: None, api_version: None, error: Some(e.to_string()) },
        };
        Health { database, docker }
    }
}
