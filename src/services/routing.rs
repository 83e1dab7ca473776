//! The route table: each running production deployment's default domain (`<project>.<workspace>.<base_domain>`)
//! to its running replicas. Rebuilt from the database and the containers found by label, then published to the
//! proxy as one immutable snapshot; on any read failure the current table stays.

use super::Services;
use crate::docker::LABEL_DEPLOYMENT;
use crate::proxy::{Backend, RouteTable};
use crate::store;
use std::net::SocketAddr;
use std::sync::Arc;

impl Services {
    /// Rebuilds the route table from the running deployments and their containers, then publishes it.
    pub async fn refresh_routes(&self) {
        self.publish_routes(None).await;
    }

    /// Like [`Services::refresh_routes`], with `pending` — a deployment about to be marked running, as
    /// (deployment id, project slug, workspace slug, port) — routed instead of whatever serves its host now. The
    /// worker publishes this before it commits `running`, so a client that sees `running` is already routed.
    pub(crate) async fn publish_routes(&self, pending: Option<(String, String, String, u16)>) {
        let rows = self.store.read(store::deployments::production_routes).await;
        let rows = match rows {
            Ok(mut r) => {
                // Last wins for a host: the pending deployment replaces the one it is about to supersede.
                r.extend(pending);
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "while reading routes; keeping the current table");
                return;
            }
        };
        let current = self.edge.routes();
        let mut table = RouteTable::new();
        for (dep, project, ws, port) in rows {
            let containers = match self.docker.list_containers(&[(LABEL_DEPLOYMENT, dep.as_str())], false).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "while listing replicas; keeping the current table");
                    return;
                }
            };
            let upstreams: Vec<SocketAddr> = containers
                .iter()
                .filter(|c| c.running)
                .filter_map(|c| c.ip.map(|ip| SocketAddr::new(ip, port)))
                .collect();
            let host = format!("{project}.{ws}.{}", self.config.base_domain);
            // Keep the backend (and its record of failing replicas) when the replicas did not change.
            let backend = match current.get(&host) {
                Some(b) if b.upstreams() == upstreams.as_slice() => b.clone(),
                _ => Arc::new(Backend::new(upstreams)),
            };
            table.insert(&host, backend);
        }
        self.edge.publish(table);
    }
}
