//! The certificate side of custom domains: which names the certificate manager should hold certificates for
//! (only verified domains, never a name a client merely asked for), what each domain's certificate looks like, and
//! re-publishing routes when a certificate becomes active (the HTTP → HTTPS redirect depends on it).

use super::Services;
use super::domains::DomainTls;
use super::notifications::Link;
use crate::domain::custom_domain::DomainStatus;
use crate::domain::notification::{Event, certificate_streaks};
use crate::store::{self, domains::DomainRow};
use crate::tls::{CertEvent, Challenge, Status, WantedCert};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn status_word(s: Status) -> &'static str {
    match s {
        Status::None => "none",
        Status::Pending => "pending",
        Status::Active => "active",
        Status::Failing => "failing",
        Status::Expiring => "expiring",
    }
}

impl Services {
    /// Whether Berth serves no HTTPS (`tls = "off"`, or no HTTPS listener): verified domains are then active as
    /// plain-HTTP routes.
    pub(crate) fn tls_off(&self) -> bool {
        self.tls.get().is_none()
    }

    /// A domain's certificate as the API shows it (`none` until the domain is verified).
    pub(crate) fn domain_tls(&self, row: &DomainRow) -> DomainTls {
        let none = DomainTls { status: "none".into(), issuer: None, not_after: None, last_error: None };
        if row.status != DomainStatus::Verified {
            return none;
        }
        let Some(status) = self.tls.get().and_then(|m| m.status(&row.domain)) else { return none };
        DomainTls {
            status: status_word(status.status).into(),
            issuer: status.issuer,
            not_after: status.not_after.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            last_error: status.last_error,
        }
    }

    /// Whether a valid certificate for `domain` is being served (then plain HTTP can redirect to HTTPS).
    pub(crate) fn certificate_active(&self, domain: &str) -> bool {
        self.tls
            .get()
            .and_then(|m| m.status(domain))
            .is_some_and(|s| matches!(s.status, Status::Active | Status::Expiring))
    }

    /// The internal CA's root (PEM) when `tls = "internal"`.
    pub fn internal_ca_root(&self) -> Option<String> {
        self.tls.get().and_then(|m| m.internal_root_pem())
    }

    /// A certificate waiting out a failure backoff is tried again now (after the user fixed something).
    pub(crate) fn retry_certificate(&self, domain: &str) {
        if let Some(m) = self.tls.get() {
            m.retry_now(domain);
        }
    }

    /// Tells the certificate manager which names need certificates: every verified domain (wildcards through
    /// DNS-01, others through `acme_challenge`).
    pub(crate) async fn sync_certificates(&self) {
        let Some(manager) = self.tls.get() else { return };
        let _one_at_a_time = self.domain_syncs.lock().await;
        let rows = match self.store.read(store::domains::all).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "while reading domains for certificates");
                return;
            }
        };
        let console = self
            .config
            .console_domain
            .clone()
            .map(|d| WantedCert { names: vec![d], challenge: self.config.acme_challenge });
        let wanted: Vec<WantedCert> = rows
            .into_iter()
            .filter(|r| r.status == DomainStatus::Verified)
            .map(|r| {
                let challenge = if r.domain.starts_with("*.") { Challenge::Dns01 } else { self.config.acme_challenge };
                WantedCert { names: vec![r.domain], challenge }
            })
            .chain(console)
            .collect();
        if let Err(e) = manager.set_wanted(wanted) {
            tracing::warn!(error = %e, "while handing domains to the certificate manager");
        }
    }

    /// Until `shutdown`: when a certificate is issued or renewed (or fails), routes are published again, so the
    /// HTTP → HTTPS redirect follows the certificate; failures and near expiries are announced
    /// (`certificate.failed`, `certificate.expiring_soon`), and a success ends the certificate's failure streak.
    pub async fn follow_certificates(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(manager) = self.tls.get() else { return };
        let mut events = manager.subscribe();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                Ok(CertEvent::Issued { name, .. } | CertEvent::Renewed { name, .. }) => {
                    for streak in certificate_streaks(&name) {
                        self.notification_resolved(&streak);
                    }
                    self.refresh_routes().await;
                }
                Ok(CertEvent::Failed { name, names, error, next_attempt }) => {
                    tracing::warn!(%name, %error, "a certificate could not be issued or renewed");
                    let valid_until =
                        manager.status(&name).filter(|s| s.status == Status::Expiring).and_then(|s| s.not_after);
                    let (workspace, link) = self.certificate_owner(&name).await;
                    let event = Event::CertificateFailed { domains: names, error, next_attempt, valid_until };
                    self.notify(workspace.as_deref(), link, event);
                    self.refresh_routes().await;
                }
                Ok(CertEvent::ExpiringSoon { name, not_after }) => {
                    tracing::warn!(%name, %not_after, "a certificate expires soon and has not been renewed");
                    let error = manager.status(&name).and_then(|s| s.last_error);
                    let (workspace, link) = self.certificate_owner(&name).await;
                    self.notify(
                        workspace.as_deref(),
                        link,
                        Event::CertificateExpiringSoon { domain: name, not_after, error },
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.refresh_routes().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The workspace and domains page of the custom domain a certificate is for; none for the console domain.
    async fn certificate_owner(&self, name: &str) -> (Option<String>, Link) {
        let n = name.to_owned();
        match self.store.read(move |c| store::domains::by_name(c, &n)).await {
            Ok(Some(row)) => (Some(row.workspace_id), Link::ProjectDomains(row.project_id)),
            Ok(None) => (None, Link::None),
            Err(e) => {
                tracing::warn!(error = %e, "while looking up a certificate's domain");
                (None, Link::None)
            }
        }
    }
}
