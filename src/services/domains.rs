//! Custom domains: add, list, verify, delete, and the background check of pending ones.
//!
//! A domain is verified when its A/AAAA records point at one of this server's public addresses, or — for setups
//! behind NAT or a load balancer — when fetching `/.well-known/berth-verification/<token>` from the addresses it
//! resolves to reaches Berth's own HTTP listener. Only verified domains are routed and only they get certificates.

use super::projects::resolve_project;
use super::{Actor, ServiceError, Services};
use crate::domain::custom_domain::{DomainStatus, validate_domain};
use crate::domain::{Role, Timestamp, new_id, now};
use crate::store::{self, domains::DomainRow};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// How long one DNS lookup or HTTP fetch of a verification may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often pending domains are checked again in the background.
const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// The path prefix Berth's HTTP listener answers verification tokens on.
pub const VERIFICATION_PREFIX: &str = "/.well-known/berth-verification/";

/// How a domain is being (or was) verified.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    /// `dns` (its records point here) or `http` (the token was fetched through Berth's listener); `null` while
    /// pending.
    pub method: Option<String>,
    /// What to do, while pending: the records to create.
    pub instructions: String,
    /// The addresses the domain should resolve to (this server's public addresses).
    pub expected: Vec<String>,
    /// What it resolved to at the last check.
    pub found: Vec<String>,
    /// Why it is still pending, from the last check.
    pub message: Option<String>,
    /// The alternative check: `http://<domain><http_path>` must reach this server and answer `token`.
    pub http_path: String,
    pub token: String,
    pub checked_at: Option<Timestamp>,
}

/// The certificate side of a domain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainTls {
    /// `none` (no certificate yet: domain pending, or `tls = "off"`), `pending` (being issued), `active`,
    /// `expiring` (renewal due and not yet done), `failing` (the last attempt failed; see `last_error`).
    pub status: String,
    pub issuer: Option<String>,
    pub not_after: Option<String>,
    pub last_error: Option<String>,
}

/// A custom domain as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainView {
    pub id: String,
    pub domain: String,
    /// The project's slug.
    pub project: String,
    /// `pending_dns` → `verified` (routed) → `active` (a valid certificate is served; with `tls = "off"`, at once).
    pub status: DomainStatus,
    /// Plain-HTTP requests are redirected (308) to HTTPS once the certificate is active.
    pub https_redirect: bool,
    pub verification: Verification,
    pub tls: DomainTls,
    pub created_at: Timestamp,
    pub verified_at: Option<Timestamp>,
}

/// The outcome of one check.
struct Checked {
    status: DomainStatus,
    method: Option<&'static str>,
    message: Option<String>,
    found: Vec<String>,
}

fn domain_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("domain '{id}' not found"))
}

/// The host's own addresses that others could reach: not loopback, not link-local.
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    let mut ips: Vec<IpAddr> = addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

impl Services {
    /// This server's public addresses: `public_ip` from the config, else the host's interface addresses.
    pub(crate) fn public_ips(&self) -> Vec<IpAddr> {
        if self.config.public_ips.is_empty() { interface_addresses() } else { self.config.public_ips.clone() }
    }

    fn domain_view(&self, row: DomainRow, project_slug: String) -> DomainView {
        let expected: Vec<String> = self.public_ips().iter().map(IpAddr::to_string).collect();
        let records: Vec<String> = self
            .public_ips()
            .iter()
            .map(|ip| format!("{} {} {ip}", if ip.is_ipv4() { "A" } else { "AAAA" }, row.domain))
            .collect();
        let instructions = if records.is_empty() {
            format!("point {} at this server's public address (set public_ip in the config)", row.domain)
        } else {
            format!("create the DNS record(s) {}", records.join(", "))
        };
        let tls = self.domain_tls(&row);
        let status = match (row.status, tls.status.as_str()) {
            (DomainStatus::Verified, "active" | "expiring") => DomainStatus::Active,
            (DomainStatus::Verified, _) if self.tls_off() => DomainStatus::Active,
            (s, _) => s,
        };
        DomainView {
            id: row.id,
            project: project_slug,
            status,
            https_redirect: row.https_redirect,
            verification: Verification {
                method: row.method,
                instructions,
                expected,
                found: row.found,
                message: row.message,
                http_path: format!("{VERIFICATION_PREFIX}{}", row.token),
                token: row.token,
                checked_at: row.checked_at,
            },
            tls,
            created_at: row.created_at,
            verified_at: row.verified_at,
            domain: row.domain,
        }
    }

    /// `POST …/projects/:p/domains {domain}` (admin): adds the domain and checks it at once. 409 when any project
    /// of the instance has it already.
    pub async fn add_domain(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        domain: &str,
        https_redirect: Option<bool>,
    ) -> Result<DomainView, ServiceError> {
        let domain = validate_domain("domain", domain, &self.config.base_domain)?;
        let token = crate::crypto::random_token()?;
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (row, slug) = self
            .store
            .write(move |tx| {
                let (access, project) = resolve_project(tx, &a, &w, &p)?;
                access.require(Role::Admin, "adding domains")?;
                if let Some(existing) = store::domains::by_name(tx, &domain)? {
                    let whose = if existing.project_id == project.id {
                        format!("project '{}' has it already", project.slug)
                    } else {
                        "another project has it (a domain belongs to one project)".to_owned()
                    };
                    return Err(ServiceError::conflict("domain_taken", format!("{domain}: {whose}")));
                }
                let row = DomainRow {
                    id: new_id(),
                    workspace_id: access.workspace.id.clone(),
                    project_id: project.id.clone(),
                    domain: domain.clone(),
                    status: DomainStatus::PendingDns,
                    token,
                    method: None,
                    message: Some("not checked yet".into()),
                    found: Vec::new(),
                    https_redirect: https_redirect.unwrap_or(true),
                    checked_at: None,
                    verified_at: None,
                    created_at: now(),
                };
                store::domains::insert(tx, &row).map_err(|e| match e {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "domain_taken",
                        format!("{domain}: another project has it (a domain belongs to one project)"),
                    ),
                    other => other.into(),
                })?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "domain.create",
                        format!("{}:{domain}", project.slug),
                        serde_json::json!({"domain": domain}),
                    ),
                )?;
                Ok((row, project.slug))
            })
            .await?;
        self.publish_verification_tokens().await;
        let row = self.check_and_store(row).await?;
        Ok(self.domain_view(row, slug))
    }

    /// `GET …/projects/:p/domains` (member).
    pub async fn list_domains(&self, actor: &Actor, ws: &str, project: &str) -> Result<Vec<DomainView>, ServiceError> {
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (rows, slug) = self
            .store
            .read(move |c| {
                let (_, project) = resolve_project(c, &a, &w, &p)?;
                Ok::<_, ServiceError>((store::domains::for_project(c, &project.id)?, project.slug))
            })
            .await?;
        Ok(rows.into_iter().map(|r| self.domain_view(r, slug.clone())).collect())
    }

    /// A domain of a project of the caller's workspace; anything else is 404.
    async fn resolve_domain(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        id: &str,
        need: Role,
        doing: &'static str,
    ) -> Result<(DomainRow, String), ServiceError> {
        let (a, w, p, i) = (actor.clone(), ws.to_owned(), project.to_owned(), id.to_owned());
        self.store
            .read(move |c| {
                let (access, project) = resolve_project(c, &a, &w, &p)?;
                let row = store::domains::get(c, &i)?
                    .filter(|d| d.project_id == project.id)
                    .ok_or_else(|| domain_not_found(&i))?;
                access.require(need, doing)?;
                Ok::<_, ServiceError>((row, project.slug))
            })
            .await
    }

    /// `GET …/projects/:p/domains/:id` (member).
    pub async fn get_domain(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        id: &str,
    ) -> Result<DomainView, ServiceError> {
        let (row, slug) = self.resolve_domain(actor, ws, project, id, Role::Member, "reading domains").await?;
        Ok(self.domain_view(row, slug))
    }

    /// `POST …/domains/:id/verify` (member): checks DNS (and the HTTP token) now.
    pub async fn verify_domain(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        id: &str,
    ) -> Result<DomainView, ServiceError> {
        let (row, slug) = self.resolve_domain(actor, ws, project, id, Role::Member, "verifying domains").await?;
        let row = self.check_and_store(row).await?;
        if row.status == DomainStatus::Verified {
            self.retry_certificate(&row.domain);
        }
        Ok(self.domain_view(row, slug))
    }

    /// `PATCH …/domains/:id {https_redirect}` (admin).
    pub async fn update_domain(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        id: &str,
        https_redirect: bool,
    ) -> Result<DomainView, ServiceError> {
        let (row, slug) = self.resolve_domain(actor, ws, project, id, Role::Admin, "changing domains").await?;
        let (rid, a, wsid, name) = (row.id.clone(), actor.clone(), row.workspace_id.clone(), row.domain.clone());
        let row = self
            .store
            .write(move |tx| {
                store::domains::set_https_redirect(tx, &rid, https_redirect)?;
                store::audit::insert(
                    tx,
                    &a.audit(Some(&wsid), "domain.update", name, serde_json::json!({"https_redirect": https_redirect})),
                )?;
                store::domains::get(tx, &rid)?.ok_or_else(|| domain_not_found(&rid))
            })
            .await?;
        self.refresh_routes().await;
        Ok(self.domain_view(row, slug))
    }

    /// `DELETE …/domains/:id` (admin): stops routing it; its certificate is no longer renewed.
    pub async fn delete_domain(&self, actor: &Actor, ws: &str, project: &str, id: &str) -> Result<(), ServiceError> {
        let (row, slug) = self.resolve_domain(actor, ws, project, id, Role::Admin, "deleting domains").await?;
        let a = actor.clone();
        self.store
            .write(move |tx| {
                store::domains::delete(tx, &row.id)?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&row.workspace_id),
                        "domain.delete",
                        format!("{slug}:{}", row.domain),
                        serde_json::json!({"domain": row.domain}),
                    ),
                )?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        self.domains_changed().await;
        Ok(())
    }

    /// Checks a domain and stores the outcome; a newly verified domain is routed (and gets a certificate).
    async fn check_and_store(&self, row: DomainRow) -> Result<DomainRow, ServiceError> {
        let checked = self.check_domain(&row).await;
        // A verified domain stays verified when DNS is briefly unreachable: only the message changes.
        let status = if row.status == DomainStatus::Verified { DomainStatus::Verified } else { checked.status };
        let newly_verified = row.status != DomainStatus::Verified && status == DomainStatus::Verified;
        let id = row.id.clone();
        let updated = self
            .store
            .write(move |tx| {
                store::domains::set_checked(
                    tx,
                    &id,
                    status,
                    checked.method,
                    checked.message.as_deref(),
                    &checked.found,
                    now(),
                )?;
                store::domains::get(tx, &id)?.ok_or_else(|| domain_not_found(&id))
            })
            .await?;
        if newly_verified {
            tracing::info!(domain = %updated.domain, "domain verified");
            self.domains_changed().await;
        }
        Ok(updated)
    }

    /// What the domain resolves to, compared with this server's addresses; then the HTTP token as a fallback.
    async fn check_domain(&self, row: &DomainRow) -> Checked {
        let name = row.domain.strip_prefix("*.").map_or_else(|| row.domain.clone(), |p| format!("_berth-check.{p}"));
        let public = self.public_ips();
        let found = match self.lookup(&name).await {
            Ok(ips) => ips,
            Err(message) => {
                return Checked {
                    status: DomainStatus::PendingDns,
                    method: None,
                    message: Some(message),
                    found: vec![],
                };
            }
        };
        let found_text: Vec<String> = found.iter().map(IpAddr::to_string).collect();
        if found.iter().any(|ip| public.contains(ip)) {
            return Checked { status: DomainStatus::Verified, method: Some("dns"), message: None, found: found_text };
        }
        if self.fetch_token(&row.domain, &found, &row.token).await {
            return Checked { status: DomainStatus::Verified, method: Some("http"), message: None, found: found_text };
        }
        let want: Vec<String> = public.iter().map(IpAddr::to_string).collect();
        let message = if found.is_empty() {
            format!("{name} has no A or AAAA record yet; point it at {}", want.join(" or "))
        } else {
            format!(
                "{name} resolves to {}, not to this server ({}), and {VERIFICATION_PREFIX}… did not reach Berth \
                 there; update the record (DNS changes can take a while to spread)",
                found_text.join(", "),
                want.join(", ")
            )
        };
        Checked { status: DomainStatus::PendingDns, method: None, message: Some(message), found: found_text }
    }

    /// A/AAAA lookup through the configured resolver (`dns_resolver`), else the system's.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        use hickory_resolver::{Resolver, TokioResolver};
        let built = match self.config.dns_resolver {
            Some(addr) => {
                let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                udp.port = addr.port();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
                .build()
            }
            None => TokioResolver::builder_tokio().and_then(|b| b.build()),
        };
        let resolver = built.map_err(|e| format!("cannot set up DNS resolution: {e}"))?;
        let fqdn = format!("{name}.");
        match tokio::time::timeout(CHECK_TIMEOUT, resolver.lookup_ip(fqdn.as_str())).await {
            Err(_) => Err(format!("looking up {name} timed out after {} s", CHECK_TIMEOUT.as_secs())),
            Ok(Ok(lookup)) => Ok(lookup.iter().collect()),
            Ok(Err(e)) if e.is_no_records_found() => Ok(Vec::new()),
            Ok(Err(e)) => Err(format!("looking up {name} failed: {e}")),
        }
    }

    /// Whether `http://<domain>/.well-known/berth-verification/<token>`, fetched from the addresses the domain
    /// resolves to on Berth's HTTP port, answers the token: the domain reaches this server through NAT or a proxy.
    async fn fetch_token(&self, domain: &str, found: &[IpAddr], token: &str) -> bool {
        if domain.starts_with("*.") {
            return false;
        }
        let port = self.http_port();
        for ip in found.iter().take(3) {
            let client = match reqwest::Client::builder()
                .resolve(domain, SocketAddr::new(*ip, port))
                .timeout(CHECK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
            {
                Ok(c) => c,
                Err(_) => return false,
            };
            let url = format!("http://{domain}:{port}{VERIFICATION_PREFIX}{token}");
            if let Ok(r) = client.get(url).send().await
                && r.status().is_success()
                && r.text().await.is_ok_and(|body| body.trim() == token)
            {
                return true;
            }
        }
        false
    }

    /// The port of Berth's HTTP listener (80 unless configured otherwise).
    pub(crate) fn http_port(&self) -> u16 {
        match self.http_port.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.config.http_listen.port(),
            p => p,
        }
    }

    /// After domains were added, verified or deleted: the route table, the verification answers and the wanted
    /// certificates follow.
    pub(crate) async fn domains_changed(&self) {
        self.publish_verification_tokens().await;
        self.refresh_routes().await;
        self.sync_certificates().await;
    }

    /// Hands the proxy the tokens of every domain, so `/.well-known/berth-verification/<token>` answers them.
    pub(crate) async fn publish_verification_tokens(&self) {
        let _one_at_a_time = self.domain_syncs.lock().await;
        match self.store.read(store::domains::all).await {
            Ok(rows) => {
                let tokens: HashMap<String, String> = rows.into_iter().map(|r| (r.domain, r.token)).collect();
                self.edge.set_verification_tokens(tokens);
            }
            Err(e) => tracing::warn!(error = %e, "while reading domains for verification"),
        }
    }

    /// The background check (the app routes domains once at start): every minute, pending domains are checked again, so a DNS change is picked up
    /// without anyone pressing verify.
    pub async fn domain_verifier(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RECHECK_EVERY) => {}
            }
            let pending = match self.store.read(store::domains::all).await {
                Ok(rows) => rows.into_iter().filter(|r| r.status == DomainStatus::PendingDns).collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(error = %e, "while reading pending domains");
                    continue;
                }
            };
            for row in pending {
                if shutdown.is_cancelled() {
                    return;
                }
                if let Err(e) = self.check_and_store(row).await {
                    tracing::warn!(error = %e, "while checking a domain");
                }
            }
        }
    }
}
