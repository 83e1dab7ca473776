//! The route table: each running production deployment's default domain (`<project>.<workspace>.<base_domain>`)
//! to its running replicas. Rebuilt from the database and the containers found by label, then published to the
//! proxy as one immutable snapshot; on any read failure the current table stays.

use super::Services;
use crate::docker::LABEL_DEPLOYMENT;
use crate::proxy::{Backend, RouteTable};
use crate::store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The deployments routed before they are marked running: deployment id → (project slug, workspace slug, port).
pub(crate) type Pending = HashMap<String, (String, String, u16)>;

impl Services {
    /// Rebuilds the route table from the running deployments and their containers, then publishes it.
    pub async fn refresh_routes(&self) {
        let pending = self.route_rebuilds.lock().await;
        self.rebuild_routes(&pending).await;
    }

    /// Routes deployment `dep` (project slug, workspace slug, port) instead of whatever serves its host now, until
    /// [`Services::settle_route`]. The worker calls this before it commits `running`, so a client that sees
    /// `running` is already routed, and no rebuild in between (another project's deploy, a deletion) takes it away.
    pub(crate) async fn route_pending(&self, dep: &str, project: &str, ws: &str, port: u16) {
        let mut pending = self.route_rebuilds.lock().await;
        pending.insert(dep.to_owned(), (project.to_owned(), ws.to_owned(), port));
        self.rebuild_routes(&pending).await;
    }

    /// Ends [`Services::route_pending`] for `dep` (its status is committed, whichever it is) and rebuilds the table
    /// from the database alone.
    pub(crate) async fn settle_route(&self, dep: &str) {
        let mut pending = self.route_rebuilds.lock().await;
        pending.remove(dep);
        self.rebuild_routes(&pending).await;
    }

    /// One rebuild, with the rebuild lock held (`pending` is behind it): rebuilds never overlap, so they publish in
    /// the order they read the database.
    async fn rebuild_routes(&self, pending: &Pending) {
        let rows = self
            .store
            .read(|c| {
                Ok::<_, store::StoreError>((store::deployments::production_routes(c)?, store::domains::routable(c)?))
            })
            .await;
        let (rows, domains) = match rows {
            Ok((mut r, d)) => {
                // Last wins for a host: a pending deployment replaces the one it is about to supersede.
                r.extend(
                    pending.iter().map(|(dep, (project, ws, port))| (dep.clone(), project.clone(), ws.clone(), *port)),
                );
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
