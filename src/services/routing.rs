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
        let rows = self
            .store
            .read(|c| {
                Ok::<_, store::StoreError>((store::deployments::production_routes(c)?, store::domains::routable(c)?))
            })
            .await;
        let (rows, domains) = match rows {
            Ok((mut r, d)) => {
                // Last wins for a host: the pending deployment replaces the one it is about to supersede.
                r.extend(pending);
                (r, d)
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
                Some(b) if b.upstreams() == upstreams.as_slice() && b.tag().map(|t| &**t) == Some(dep.as_str()) => {
                    b.clone()
                }
                _ => Arc::new(Backend::new(upstreams).with_tag(&dep)),
            };
            table.insert(&host, backend);
        }
        // Verified custom domains share their project's backend (and its record of failing replicas).
        for (domain, project_host, https_redirect) in domains {
            let default_host = format!("{project_host}.{}", self.config.base_domain);
            if let Some(backend) = table.get(&default_host).cloned() {
                table.insert(&domain, backend);
                if https_redirect && self.certificate_active(&domain) {
                    table.set_https_only(&domain);
                }
            }
        }
        // The dashboard and API, when the config names a console domain.
        if let (Some(console), Some(api)) = (&self.config.console_domain, self.api_addr.get()) {
            let backend = match current.get(console) {
                Some(b) if b.upstreams() == [*api] => b.clone(),
                _ => Arc::new(Backend::new(vec![*api])),
            };
            table.insert(console, backend);
            if self.certificate_active(console) {
                table.set_https_only(console);
            }
        }
        self.edge.publish(table);
    }
}
