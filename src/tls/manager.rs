//! The certificate manager: the wanted set, the issue/renew/retry loop, per-name status and events.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::acme::{AcmeIssuer, AcmeSettings};
use super::resolver::NO_SNI;
use super::schedule::{backoff, renew_at, warn_expiry_at};
use super::store::{CertMeta, CertStore, LoadedCert};
use super::{CertResolver, DnsProvider, Http01Tokens, InternalCa, TlsError};

/// How a certificate's names are proven to the ACME CA. Ignored by the internal CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Challenge {
    /// A file under `/.well-known/acme-challenge/` on port 80, answered by the proxy. Needs port 80 reachable.
    Http01,
    /// A special certificate on port 443 for ALPN `acme-tls/1`, answered by the TLS listener. Needs port 443.
    TlsAlpn01,
    /// A TXT record at `_acme-challenge.<name>` through the configured DNS provider. The only one for wildcards.
    Dns01,
}

impl Challenge {
    pub(crate) fn acme_type(self) -> instant_acme::ChallengeType {
        match self {
            Challenge::Http01 => instant_acme::ChallengeType::Http01,
            Challenge::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
            Challenge::Dns01 => instant_acme::ChallengeType::Dns01,
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Challenge::Http01 => "http01",
            Challenge::TlsAlpn01 => "tls_alpn01",
            Challenge::Dns01 => "dns01",
        })
    }
}

/// One certificate Berth should hold: `names[0]` is the primary name (the storage key and the name
/// [`CertManager::status`] reports under, with every other name); names may include `*.example.com` and IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedCert {
    pub names: Vec<String>,
    pub challenge: Challenge,
}

/// Where a name's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No certificate and no attempt yet.
    None,
    /// Being issued (no usable certificate yet), or waiting to be re-issued for changed names.
    Pending,
    /// A valid certificate is served; it renews at `next_attempt`.
    Active,
    /// The last attempt failed and no valid certificate is served: HTTPS fails for this name. See `last_error`.
    Failing,
    /// Renewal failed but the current certificate is still valid until `not_after`; retried at `next_attempt`.
    Expiring,
}

/// What `GET …/domains` shows under `tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertStatus {
    pub status: Status,
    /// The issuing CA's name (e.g. `R11`, `Pebble Intermediate CA …`, `Berth internal CA …`).
    pub issuer: Option<String>,
    pub not_after: Option<DateTime<Utc>>,
    /// The last failure, in the CA's or DNS provider's words; cleared by a success.
    pub last_error: Option<String>,
    /// When the next issuance, renewal or retry is planned.
    pub next_attempt: Option<DateTime<Utc>>,
}

/// What happened to a certificate, for notifications. `name` is the primary name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertEvent {
    Issued {
        name: String,
        not_after: DateTime<Utc>,
    },
    Renewed {
        name: String,
        not_after: DateTime<Utc>,
    },
    Failed {
        name: String,
        /// Every name of the certificate (`name` first).
        names: Vec<String>,
        error: String,
        next_attempt: DateTime<Utc>,
    },
    /// Renewal keeps failing and the certificate, still served, expires soon (see [`super::schedule::warn_expiry_at`]).
    /// Emitted once per certificate (per expiry date) while the manager runs.
    ExpiringSoon {
        name: String,
        not_after: DateTime<Utc>,
    },
}

/// Where certificates come from.
#[derive(Debug, Clone)]
pub enum IssuerSettings {
    Acme(AcmeSettings),
    /// Berth's own CA under `<tls_dir>/internal-ca/`.
    Internal,
}

/// Everything the manager is built from; [`TlsSettings::new`] has the production timings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// `<data_dir>/tls`: account, certificates, internal CA.
    pub tls_dir: PathBuf,
    pub issuer: IssuerSettings,
    /// Publishes DNS-01 records; `None` makes dns01 certificates fail with a message saying so.
    pub dns: Option<Arc<dyn DnsProvider>>,
    /// How often renewals are checked when nothing else wakes the loop. Default 10 minutes.
    pub check_interval: Duration,
    /// The first retry delay after a failure; it doubles per consecutive failure. Default 1 minute.
    pub retry_base: Duration,
    /// The longest retry delay. Default 6 hours.
    pub retry_max: Duration,
}

impl TlsSettings {
    /// Settings with the production timings.
    pub fn new(tls_dir: PathBuf, issuer: IssuerSettings, dns: Option<Arc<dyn DnsProvider>>) -> TlsSettings {
        TlsSettings {
            tls_dir,
            issuer,
            dns,
            check_interval: Duration::from_secs(600),
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
        }
    }
}

enum Issuer {
    Acme(AcmeIssuer),
    Internal(InternalCa),
}

struct Entry {
    wanted: WantedCert,
    cert: Option<LoadedCert>,
    last_error: Option<String>,
    failures: u32,
    next_attempt: DateTime<Utc>,
    in_flight: bool,
    /// The expiry of the certificate already announced as expiring soon.
    warned_expiry: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    /// Wanted certificates by primary name.
    entries: BTreeMap<String, Entry>,
    /// Every wanted name → its primary name.
    names: HashMap<String, String>,
    /// Every certificate on disk by primary name, wanted or not (a re-added domain reuses its certificate).
    stored: HashMap<String, LoadedCert>,
    /// Until the first `set_wanted`, every stored certificate is served, so a restart serves at once.
    wanted_known: bool,
}

/// Keeps the wanted certificates issued, renewed and published to the [`CertResolver`].
///
/// Build it with [`CertManager::new`] (which loads and publishes stored certificates at once), spawn
/// [`CertManager::run`], and call [`CertManager::set_wanted`] whenever domains change. Never issues for names
/// outside the wanted set.
pub struct CertManager {
    settings: TlsSettings,
    source: String,
    issuer: Issuer,
    resolver: Arc<CertResolver>,
    store: CertStore,
    state: Mutex<State>,
    wake: Notify,
    events: broadcast::Sender<CertEvent>,
}

impl fmt::Debug for CertManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertManager").field("source", &self.source).finish_non_exhaustive()
    }
}

impl CertManager {
    /// Builds the manager, loads every stored certificate and publishes it to `resolver`. HTTP-01 answers go to
    /// `tokens` (the proxy's), TLS-ALPN-01 certificates to `resolver`. The internal CA is created here when missing;
    /// the ACME account at the first issuance.
    pub async fn new(
        settings: TlsSettings,
        resolver: Arc<CertResolver>,
        tokens: Http01Tokens,
    ) -> Result<Arc<CertManager>, TlsError> {
        super::store::create_private_dir(&settings.tls_dir)?;
        let (issuer, source) = match &settings.issuer {
            IssuerSettings::Acme(acme) => {
                let source = format!("acme {}", acme.directory);
                let issuer =
                    AcmeIssuer::new(acme.clone(), &settings.tls_dir, tokens, resolver.clone(), settings.dns.clone());
                (Issuer::Acme(issuer), source)
            }
            IssuerSettings::Internal => {
                let ca = InternalCa::load_or_create(&settings.tls_dir.join("internal-ca"))?;
                (Issuer::Internal(ca), "internal".to_owned())
            }
        };
        let store = CertStore::new(&settings.tls_dir);
        let stored = store.load_all().await;
        let state = State {
            stored: stored.into_iter().filter_map(|c| Some((c.meta.names.first()?.clone(), c))).collect(),
            ..State::default()
        };
        let manager = CertManager {
            settings,
            source,
            issuer,
            resolver,
            store,
            state: Mutex::new(state),
            wake: Notify::new(),
            events: broadcast::channel(64).0,
        };
        manager.publish();
        Ok(Arc::new(manager))
    }

    /// Replaces the wanted set. Names are lowercased and a trailing dot dropped. Certificates no longer wanted stop
    /// being served at once (their files stay, for reuse); new ones are issued right away by the run loop. Refuses
    /// the whole set, changing nothing, when a name is not a host name, `*.` wildcard or IP address.
    pub fn set_wanted(&self, wanted: Vec<WantedCert>) -> Result<(), TlsError> {
        let mut normalized = Vec::with_capacity(wanted.len());
        for w in wanted {
            let names: Vec<String> = w.names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
            if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
                return Err(TlsError::Unsupported(format!("'{bad}' is not a host name, wildcard or IP address")));
            }
            if names.is_empty() {
                continue;
            }
            let mut deduped = Vec::with_capacity(names.len());
            for n in names {
                if !deduped.contains(&n) {
                    deduped.push(n);
                }
            }
            normalized.push(WantedCert { names: deduped, challenge: w.challenge });
        }
        let now = Utc::now();
        {
            let Ok(mut state) = self.state.lock() else { return Ok(()) };
            let mut old = std::mem::take(&mut state.entries);
            state.names.clear();
            state.wanted_known = true;
            for w in normalized {
                let primary = w.names[0].clone();
                let entry = match old.remove(&primary) {
                    Some(entry) if entry.wanted == w => entry,
                    // New, or changed names or challenge: start over from the stored certificate, due now.
                    previous => {
                        let cert = previous.and_then(|e| e.cert).or_else(|| state.stored.get(&primary).cloned());
                        let mut entry = Entry {
                            wanted: w.clone(),
                            cert,
                            last_error: None,
                            failures: 0,
                            next_attempt: now,
                            in_flight: false,
                            warned_expiry: None,
                        };
                        entry.next_attempt = self.next_planned(&entry, now);
                        entry
                    }
                };
                for name in &w.names {
                    state.names.insert(name.clone(), primary.clone());
                }
                state.entries.insert(primary, entry);
            }
        }
        self.publish();
        self.wake.notify_one();
        Ok(())
    }

    /// The status of the certificate covering `name` (any of a wanted certificate's names, as given to
    /// [`CertManager::set_wanted`]); `None` when no wanted certificate has that name.
    pub fn status(&self, name: &str) -> Option<CertStatus> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let state = self.state.lock().ok()?;
        let entry = state.entries.get(state.names.get(&name)?)?;
        Some(self.status_of(entry, Utc::now()))
    }

    /// Makes the certificate covering `name` due now, skipping the rest of a failure backoff (for an operator who
    /// fixed DNS and asks again). Returns whether such a certificate is wanted. An attempt already running is left
    /// to finish.
    pub fn retry_now(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let found = self.state.lock().is_ok_and(|mut state| {
            let Some(primary) = state.names.get(&name).cloned() else { return false };
            if let Some(entry) = state.entries.get_mut(&primary).filter(|e| e.failures > 0) {
                entry.next_attempt = Utc::now();
            }
            true
        });
        self.wake.notify_one();
        found
    }

    /// Every wanted certificate's status by primary name.
    pub fn statuses(&self) -> Vec<(String, CertStatus)> {
        let now = Utc::now();
        let Ok(state) = self.state.lock() else { return Vec::new() };
        state.entries.iter().map(|(p, e)| (p.clone(), self.status_of(e, now))).collect()
    }

    /// Events from now on: issued, renewed, failed, expiring soon. A slow receiver loses the oldest events.
    pub fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }

    /// The internal CA's root certificate in PEM, when certificates come from the internal CA.
    pub fn internal_root_pem(&self) -> Option<String> {
        match &self.issuer {
            Issuer::Internal(ca) => Some(ca.root_pem().to_owned()),
            Issuer::Acme(_) => None,
        }
    }

    /// The resolver certificates are published to.
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// Issues, renews and retries until `shutdown`: wakes when an attempt is due, after [`CertManager::set_wanted`],
    /// when an attempt ends, and at least every `check_interval`. Attempts run concurrently as tasks; at shutdown
    /// they are abandoned (their challenge answers are withdrawn) and will start over at the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut attempts = JoinSet::new();
        loop {
            let now = Utc::now();
            for event in self.take_expiry_warnings(now) {
                let _ = self.events.send(event);
            }
            for (primary, wanted) in self.take_due(now) {
                attempts.spawn(self.clone().attempt(primary, wanted));
            }
            let next = self
                .next_due()
                .map_or(now + self.settings.check_interval, |due| due.min(now + self.settings.check_interval));
            let sleep = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            }
        }
        attempts.shutdown().await;
    }

    fn take_due(&self, now: DateTime<Utc>) -> Vec<(String, WantedCert)> {
        let Ok(mut state) = self.state.lock() else { return Vec::new() };
        let mut due = Vec::new();
        for (primary, entry) in state.entries.iter_mut() {
            if !entry.in_flight && entry.next_attempt <= now {
                entry.in_flight = true;
                due.push((primary.clone(), entry.wanted.clone()));
            }
        }
        due
    }

    /// The "expiring soon" events due now, each marked as sent (see [`expiry_warning_due`]).
    fn take_expiry_warnings(&self, now: DateTime<Utc>) -> Vec<CertEvent> {
        let Ok(mut state) = self.state.lock() else { return Vec::new() };
        let mut due = Vec::new();
        for (primary, entry) in state.entries.iter_mut() {
            let status = self.status_of(entry, now).status;
            let Some(cert) = &entry.cert else { continue };
            if expiry_warning_due(status, cert.not_before, cert.not_after, entry.warned_expiry, now) {
                entry.warned_expiry = Some(cert.not_after);
                tracing::warn!(name = %primary, not_after = %cert.not_after, "certificate expires soon and renewal keeps failing");
                due.push(CertEvent::ExpiringSoon { name: primary.clone(), not_after: cert.not_after });
            }
        }
        due
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        let state = self.state.lock().ok()?;
        state.entries.values().filter(|e| !e.in_flight).map(|e| e.next_attempt).min()
    }

    async fn attempt(self: Arc<Self>, primary: String, wanted: WantedCert) {
        tracing::info!(name = %primary, names = ?wanted.names, challenge = %wanted.challenge, "requesting a certificate");
        let issued = match &self.issuer {
            Issuer::Acme(acme) => acme.issue(&wanted.names, wanted.challenge).await,
            Issuer::Internal(ca) => ca.issue(&wanted.names),
        };
        let saved = match issued {
            Ok((chain, key)) => {
                let meta = CertMeta { names: wanted.names.clone(), source: self.source.clone(), issued_at: Utc::now() };
                self.store.save(chain, key, meta).await
            }
            Err(error) => Err(error),
        };
        self.record(&primary, &wanted, saved);
    }

    /// Applies an attempt's outcome, emits its event and republishes.
    fn record(&self, primary: &str, wanted: &WantedCert, outcome: Result<LoadedCert, TlsError>) {
        let now = Utc::now();
        let event = {
            let Ok(mut state) = self.state.lock() else { return };
            if let Ok(cert) = &outcome {
                state.stored.insert(primary.to_owned(), cert.clone());
            }
            let Some(entry) = state.entries.get_mut(primary).filter(|e| e.wanted == *wanted) else {
                // No longer wanted as asked: the set changed meanwhile, and the new entry has its own attempts.
                return;
            };
            entry.in_flight = false;
            match outcome {
                Ok(cert) => {
                    let renewed = entry.cert.is_some();
                    let not_after = cert.not_after;
                    tracing::info!(name = %primary, %not_after, serial = %cert.serial, renewed, "certificate issued");
                    entry.cert = Some(cert);
                    entry.failures = 0;
                    entry.last_error = None;
                    entry.next_attempt = self.next_planned(entry, now);
                    let name = primary.to_owned();
                    Some(if renewed {
                        CertEvent::Renewed { name, not_after }
                    } else {
                        CertEvent::Issued { name, not_after }
                    })
                }
                Err(error) => {
                    entry.failures += 1;
                    let wait = backoff(self.settings.retry_base, self.settings.retry_max, entry.failures);
                    entry.next_attempt = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(6));
                    let message = error.to_string();
                    tracing::warn!(name = %primary, error = %message, failures = entry.failures, next_attempt = %entry.next_attempt, "certificate request failed");
                    entry.last_error = Some(message.clone());
                    let next_attempt = entry.next_attempt;
                    Some(CertEvent::Failed {
                        name: primary.to_owned(),
                        names: wanted.names.clone(),
                        error: message,
                        next_attempt,
                    })
                }
            }
        };
        self.publish();
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
        for event in self.take_expiry_warnings(now) {
            let _ = self.events.send(event);
        }
    }

    /// When an entry should next be attempted: now when it has no certificate from this issuer for exactly its
    /// names, else when its certificate enters the renewal window.
    fn next_planned(&self, entry: &Entry, now: DateTime<Utc>) -> DateTime<Utc> {
        match &entry.cert {
            Some(cert) if self.covers(cert, &entry.wanted) => renew_at(cert.not_before, cert.not_after),
            _ => now,
        }
    }

    fn covers(&self, cert: &LoadedCert, wanted: &WantedCert) -> bool {
        let mut have = cert.meta.names.clone();
        let mut want = wanted.names.clone();
        have.sort();
        want.sort();
        have == want && cert.meta.source == self.source
    }

    fn status_of(&self, entry: &Entry, now: DateTime<Utc>) -> CertStatus {
        let usable = entry.cert.as_ref().filter(|c| c.not_after > now);
        let matching = usable.is_some_and(|c| self.covers(c, &entry.wanted));
        let status = match (entry.failures > 0, matching, usable.is_some(), entry.in_flight) {
            (true, true, _, _) => Status::Expiring,
            (true, false, _, _) => Status::Failing,
            (false, true, _, _) => Status::Active,
            (false, false, true, _) | (false, false, false, true) => Status::Pending,
            (false, false, false, false) => Status::None,
        };
        CertStatus {
            status,
            issuer: entry.cert.as_ref().map(|c| c.issuer.clone()),
            not_after: entry.cert.as_ref().map(|c| c.not_after),
            last_error: entry.last_error.clone(),
            next_attempt: Some(entry.next_attempt),
        }
    }

    /// Builds the resolver's snapshot from the wanted certificates (or, before the first `set_wanted`, from every
    /// stored one) and swaps it in. Each certificate answers for the names it was issued for; the first one with an
    /// IP address also answers handshakes without SNI.
    fn publish(&self) {
        let Ok(state) = self.state.lock() else { return };
        let certs: Vec<&LoadedCert> = if state.wanted_known {
            state.entries.values().filter_map(|e| e.cert.as_ref()).collect()
        } else {
            let mut all: Vec<&LoadedCert> = state.stored.values().collect();
            all.sort_by(|a, b| a.meta.names.cmp(&b.meta.names));
            all
        };
        let mut snapshot = HashMap::new();
        for cert in certs {
            for name in &cert.meta.names {
                snapshot.entry(name.clone()).or_insert_with(|| cert.key.clone());
                if name.parse::<IpAddr>().is_ok() {
                    snapshot.entry(NO_SNI.to_owned()).or_insert_with(|| cert.key.clone());
                }
            }
        }
        self.resolver.publish(snapshot);
    }
}

/// Whether a certificate is announced as expiring soon at `now`: its renewal has failed while it is still served
/// (`expiring`), it is past [`warn_expiry_at`], and no warning was sent for this certificate yet (`warned_expiry` is
/// the expiry already announced; a renewed certificate has a new one). Checked after every attempt and at every
/// pass of the run loop, so it fires once, not on every check.
fn expiry_warning_due(
    status: Status,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    warned_expiry: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    status == Status::Expiring && now >= warn_expiry_at(not_before, not_after) && warned_expiry != Some(not_after)
}

/// A name a certificate can be asked for: an IP address, or a host name of letters, digits and hyphens (the first
/// label may be `*`). Also keeps names safe as directory names.
fn valid_name(name: &str) -> bool {
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Status, expiry_warning_due, valid_name};
    use chrono::{DateTime, TimeDelta, Utc};

    #[test]
    fn expiring_soon_fires_once_per_certificate_near_expiry_while_renewal_fails() {
        let issued = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let expires = issued + TimeDelta::days(90);
        let days_left = |d: i64| expires - TimeDelta::days(d);
        // Renewal starts at 30 days left; the first failures are "failed" events, not "expiring soon".
        assert!(!expiry_warning_due(Status::Expiring, issued, expires, None, days_left(30)));
        assert!(!expiry_warning_due(Status::Expiring, issued, expires, None, days_left(8)));
        // A week before expiry, still failing: once.
        assert!(expiry_warning_due(Status::Expiring, issued, expires, None, days_left(7)));
        assert!(expiry_warning_due(Status::Expiring, issued, expires, None, days_left(2)), "late is still due");
        assert!(!expiry_warning_due(Status::Expiring, issued, expires, Some(expires), days_left(2)), "only once");
        // Renewed meanwhile (active), or already expired (failing: the failure events say HTTPS is broken).
        assert!(!expiry_warning_due(Status::Active, issued, expires, None, days_left(2)));
        assert!(!expiry_warning_due(Status::Failing, issued, expires, None, expires + TimeDelta::hours(1)));
        // A later certificate whose renewal fails too is announced again.
        let (next_issued, next_expires) = (issued + TimeDelta::days(60), expires + TimeDelta::days(60));
        let now = next_expires - TimeDelta::days(3);
        assert!(expiry_warning_due(Status::Expiring, next_issued, next_expires, Some(expires), now));
    }

    #[test]
    fn names_are_host_names_wildcards_or_ips() {
        for ok in ["example.com", "*.example.com", "a-b.lan", "192.168.1.2", "::1", "localhost"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "*", "a..b", "-a.com", "a/b", "../x", "a.*.com", "*.*.com", "a b", "_acme.example.com"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
