//! Issuing certificates from an ACME CA (RFC 8555) with instant-acme: one persisted account, one order per
//! certificate, challenges answered by the proxy (HTTP-01), the TLS listener (TLS-ALPN-01) or a DNS provider
//! (DNS-01).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, KeyAuthorization, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::store::write_private_atomic;
use super::{CertResolver, Challenge, DnsProvider, Http01Tokens, TlsError};

/// How long an order may take to become ready after its challenges were submitted, and then to be issued.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// What `acme-account.json` holds: the directory the account belongs to, and its credentials (id and key).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Where and how to reach the ACME CA.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The directory URL, e.g. [`crate::config::LETS_ENCRYPT_DIRECTORY`].
    pub directory: String,
    /// A PEM root to trust for the directory's HTTPS instead of the system roots (a private or test CA).
    pub ca_root: Option<PathBuf>,
    /// Contact address given to the CA for expiry notices; optional.
    pub email: Option<String>,
}

/// Obtains certificates from one ACME directory. The account is created at the first issuance and stored in
/// `<tls dir>/acme-account.json` (mode 0600); later starts reuse it, so a restart never registers again.
pub struct AcmeIssuer {
    settings: AcmeSettings,
    account_path: PathBuf,
    account: tokio::sync::Mutex<Option<Account>>,
    tokens: Http01Tokens,
    resolver: Arc<CertResolver>,
    dns: Option<Arc<dyn DnsProvider>>,
}

impl std::fmt::Debug for AcmeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeIssuer").field("directory", &self.settings.directory).finish_non_exhaustive()
    }
}

impl AcmeIssuer {
    /// An issuer that answers HTTP-01 through `tokens`, TLS-ALPN-01 through `resolver` and DNS-01 through `dns`.
    pub fn new(
        settings: AcmeSettings,
        tls_dir: &Path,
        tokens: Http01Tokens,
        resolver: Arc<CertResolver>,
        dns: Option<Arc<dyn DnsProvider>>,
    ) -> AcmeIssuer {
        AcmeIssuer {
            settings,
            account_path: tls_dir.join("acme-account.json"),
            account: tokio::sync::Mutex::new(None),
            tokens,
            resolver,
            dns,
        }
    }

    /// The account: loaded from the credentials file when it belongs to this directory, else created and saved.
    pub async fn account(&self) -> Result<Account, TlsError> {
        let mut cached = self.account.lock().await;
        if let Some(account) = cached.as_ref() {
            return Ok(account.clone());
        }
        let builder = || match &self.settings.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let stored = std::fs::read(&self.account_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<StoredAccount>(&bytes).ok())
            .filter(|stored| stored.directory == self.settings.directory);
        let account = match stored {
            Some(stored) => builder()?.from_credentials(stored.credentials).await?,
            None => {
                let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
                let (account, credentials) = builder()?.create(&new, self.settings.directory.clone(), None).await?;
                let stored = StoredAccount { directory: self.settings.directory.clone(), credentials };
                let json = serde_json::to_vec_pretty(&stored)
                    .map_err(|e| TlsError::BadCertificate(format!("encoding the account: {e}")))?;
                write_private_atomic(&self.account_path, &json)?;
                tracing::info!(directory = %self.settings.directory, id = account.id(), "ACME account registered");
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// Runs one order for `names` with `challenge` and returns the PEM chain and a fresh P-256 key in PEM.
    /// Authorizations the CA already holds as `valid` are skipped. Whatever was published for the challenges is
    /// removed again, on success and on failure.
    pub async fn issue(&self, names: &[String], challenge: Challenge) -> Result<(String, String), TlsError> {
        check_names(names, challenge)?;
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(n.clone()),
            })
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut presented = Presented::new(self);
        let result = self.complete(&mut order, names, challenge, &mut presented).await;
        presented.clean().await;
        result
    }

    async fn complete(
        &self,
        order: &mut Order,
        names: &[String],
        challenge: Challenge,
        presented: &mut Presented,
    ) -> Result<(String, String), TlsError> {
        let kind = challenge.acme_type();
        let mut waiting = false;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    let id = authz.identifier().to_string();
                    return Err(TlsError::Validation(format!("{id}: authorization is {status:?}")));
                }
            }
            let id = authz.identifier().to_string();
            let handle = authz
                .challenge(kind.clone())
                .ok_or_else(|| TlsError::Unsupported(format!("{id}: the CA offers no {} challenge", challenge)))?;
            let base = match handle.identifier().identifier {
                Identifier::Dns(name) => name.clone(),
                other => format!("{other:?}"),
            };
            let key_auth = handle.key_authorization();
            match challenge {
                Challenge::Http01 => presented.http01(&handle.token, &key_auth),
                Challenge::TlsAlpn01 => presented.tls_alpn01(&base, &key_auth)?,
                Challenge::Dns01 => presented.dns01(&format!("_acme-challenge.{base}."), &key_auth).await?,
            }
            waiting = true;
        }
        if waiting {
            if let Some(dns) = self.dns.as_ref().filter(|_| challenge == Challenge::Dns01) {
                tokio::time::sleep(dns.propagation_delay()).await;
            }
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz?;
                if authz.status != AuthorizationStatus::Pending {
                    continue;
                }
                if let Some(mut handle) = authz.challenge(kind.clone()) {
                    handle.set_ready().await?;
                }
            }
        }
        let retry = RetryPolicy::new().initial_delay(Duration::from_millis(300)).backoff(1.5).timeout(ORDER_TIMEOUT);
        let status = match order.poll_ready(&retry).await {
            Ok(status) => status,
            Err(error) => return Err(failure(order, error.to_string()).await),
        };
        if status != OrderStatus::Ready {
            return Err(failure(order, format!("order is {status:?}")).await);
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&retry).await?;
        Ok((chain, key.serialize_pem()))
    }
}

/// Refuses orders the CA would refuse anyway, with a message saying what to change.
fn check_names(names: &[String], challenge: Challenge) -> Result<(), TlsError> {
    if names.is_empty() {
        return Err(TlsError::Unsupported("a certificate needs at least one name".into()));
    }
    if challenge != Challenge::Dns01 && names.iter().any(|n| n.starts_with("*.")) {
        return Err(TlsError::Unsupported(format!(
            "wildcard names need the dns01 challenge (RFC 8555 §7.1.3); {challenge} was asked"
        )));
    }
    if challenge == Challenge::TlsAlpn01 && names.iter().any(|n| n.parse::<IpAddr>().is_ok()) {
        return Err(TlsError::Unsupported("IP addresses need the http01 challenge".into()));
    }
    Ok(())
}

/// Builds the CA's error message for a failed order from the authorizations' challenge errors, falling back to
/// `fallback` when the CA gave none.
async fn failure(order: &mut Order, fallback: String) -> TlsError {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else { continue };
        if state.status == AuthorizationStatus::Valid {
            continue;
        }
        let id = state.identifier().to_string();
        for ch in &state.challenges {
            if let Some(problem) = &ch.error {
                let detail = problem.detail.clone().unwrap_or_else(|| problem.to_string());
                reasons.push(format!("{id}: {}: {detail}", challenge_name(&ch.r#type)));
            }
        }
    }
    TlsError::Validation(if reasons.is_empty() { fallback } else { reasons.join("; ") })
}

fn challenge_name(kind: &ChallengeType) -> &'static str {
    match kind {
        ChallengeType::Http01 => "http-01",
        ChallengeType::Dns01 => "dns-01",
        ChallengeType::TlsAlpn01 => "tls-alpn-01",
        _ => "challenge",
    }
}

/// A self-signed certificate for `name` carrying the critical acmeIdentifier extension with the SHA-256 of the
/// key authorization (RFC 8737 §3). Built with `CertifiedKey::new`: `from_der` would reject the unknown critical
/// extension while checking the key.
pub(crate) fn tls_alpn_certificate(name: &str, key_auth: &KeyAuthorization) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(key_auth.digest().as_ref())];
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadCertificate(format!("challenge key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer)))
}

/// What an order published for its challenges, removed by [`Presented::clean`] (or, for the in-memory parts, on
/// drop if the order was abandoned midway, e.g. at shutdown).
struct Presented {
    tokens: Http01Tokens,
    resolver: Arc<CertResolver>,
    dns: Option<Arc<dyn DnsProvider>>,
    http01: Vec<String>,
    alpn: Vec<String>,
    records: Vec<(String, String)>,
}

impl Presented {
    fn new(issuer: &AcmeIssuer) -> Presented {
        Presented {
            tokens: issuer.tokens.clone(),
            resolver: issuer.resolver.clone(),
            dns: issuer.dns.clone(),
            http01: Vec::new(),
            alpn: Vec::new(),
            records: Vec::new(),
        }
    }

    fn http01(&mut self, token: &str, key_auth: &KeyAuthorization) {
        self.tokens.insert(token, key_auth.as_str());
        self.http01.push(token.to_owned());
    }

    fn tls_alpn01(&mut self, name: &str, key_auth: &KeyAuthorization) -> Result<(), TlsError> {
        self.resolver.add_challenge(name, tls_alpn_certificate(name, key_auth)?);
        self.alpn.push(name.to_owned());
        Ok(())
    }

    async fn dns01(&mut self, fqdn: &str, key_auth: &KeyAuthorization) -> Result<(), TlsError> {
        let dns = self.dns.clone().ok_or_else(|| {
            TlsError::Unsupported("dns01 needs a DNS provider: set dns_provider to hook or cloudflare".into())
        })?;
        let value = key_auth.dns_value();
        dns.present(fqdn, &value).await.map_err(TlsError::Dns)?;
        self.records.push((fqdn.to_owned(), value));
        Ok(())
    }

    async fn clean(&mut self) {
        self.clean_memory();
        if let Some(dns) = &self.dns {
            for (fqdn, value) in self.records.drain(..) {
                if let Err(error) = dns.cleanup(&fqdn, &value).await {
                    tracing::warn!(%fqdn, %error, "could not remove a DNS-01 record; remove it by hand");
                }
            }
        }
    }

    fn clean_memory(&mut self) {
        for token in self.http01.drain(..) {
            self.tokens.remove(&token);
        }
        for name in self.alpn.drain(..) {
            self.resolver.remove_challenge(&name);
        }
    }
}

impl Drop for Presented {
    fn drop(&mut self) {
        self.clean_memory();
        if let (Some(dns), false) = (self.dns.clone(), self.records.is_empty()) {
            let records = std::mem::take(&mut self.records);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    for (fqdn, value) in records {
                        let _ = dns.cleanup(&fqdn, &value).await;
                    }
                });
            }
        }
    }
}
