//! TLS for the edge: which certificate a handshake gets, and where certificates come from.
//!
//! The parts, and who calls what:
//! - [`CertResolver`] picks the certificate for a ClientHello from an immutable snapshot (exact name, then the
//!   wildcard of the parent), and serves TLS-ALPN-01 challenge certificates to `acme-tls/1` handshakes. An unknown
//!   name gets no certificate: certificates are never issued on demand, only for names in the wanted set.
//! - [`server_config`] and [`accept`] turn the resolver into a rustls server config and a handshake for
//!   [`crate::proxy::Proxy::serve_with`].
//! - [`Http01Tokens`] holds HTTP-01 key authorizations; the proxy answers `/.well-known/acme-challenge/<token>`
//!   from it before routing.
//! - [`CertManager`] owns the wanted set ([`CertManager::set_wanted`]), stores certificates under
//!   `<data_dir>/tls/certs/`, issues and renews them from an ACME CA ([`acme`]) or Berth's own CA ([`InternalCa`]),
//!   publishes them to the resolver, and reports per-name [`CertStatus`] and [`CertEvent`]s.
//! - [`DnsProvider`] publishes DNS-01 TXT records: [`HookProvider`] (an operator's command) or
//!   [`CloudflareProvider`].

pub mod acme;
mod dns;
mod http01;
mod internal_ca;
mod manager;
mod resolver;
mod schedule;
mod store;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::{Config, DnsProviderKind, TlsMode};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use dns::{CloudflareProvider, DnsProvider, HookProvider};
pub use http01::Http01Tokens;
pub use internal_ca::InternalCa;
pub use manager::{CertEvent, CertManager, CertStatus, Challenge, IssuerSettings, Status, TlsSettings, WantedCert};
pub use resolver::CertResolver;
pub use schedule::{backoff, renew_at};

/// The ALPN protocol id of TLS-ALPN-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How long a client may take to complete the TLS handshake before the connection is dropped, so idle or slow
/// connections cannot pile up before a request is even read.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate could not be obtained, stored or loaded. The message is what `CertStatus::last_error` shows,
/// so it names the step and the CA's or provider's own words.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The ACME server refused or failed a request (account, order, challenge, finalize).
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// A challenge did not validate; the message carries the CA's reason per identifier.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The DNS provider could not publish or remove a TXT record.
    #[error("DNS provider: {0}")]
    Dns(String),
    /// A certificate, key or CSR could not be generated.
    #[error("generating a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored or issued certificate or key could not be parsed, or they do not match.
    #[error("bad certificate or key: {0}")]
    BadCertificate(String),
    /// The wanted certificate cannot be issued as asked (e.g. a wildcard without DNS-01).
    #[error("{0}")]
    Unsupported(String),
    /// Reading or writing under the data dir failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl TlsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> TlsError {
        let context = context.into();
        move |source| TlsError::Io { context, source }
    }
}

/// A rustls server config that takes every certificate from `resolver` and offers ALPN `h2`, `http/1.1` and
/// `acme-tls/1`. The last is needed so rustls accepts TLS-ALPN-01 validation handshakes (it refuses a ClientHello
/// whose ALPN list shares nothing with the server's); such connections are closed by [`accept`] right after the
/// handshake. A listener that only speaks HTTP/1.1 removes `h2` from `alpn_protocols`.
///
/// Uses the ring provider explicitly, so it works whatever other crates enabled as the process default.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::BadCertificate(format!("TLS settings: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(config)
}

/// How long the DNS hook may run per call before it is killed.
pub const DNS_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait after creating a Cloudflare record before asking the CA to validate it.
pub const CLOUDFLARE_PROPAGATION: Duration = Duration::from_secs(20);

impl TlsSettings {
    /// The settings `config` asks for, with production timings; `None` when `tls = "off"`.
    pub fn from_config(config: &Config) -> Result<Option<TlsSettings>, TlsError> {
        let issuer = match config.tls {
            TlsMode::Off => return Ok(None),
            TlsMode::Internal => IssuerSettings::Internal,
            TlsMode::Acme => IssuerSettings::Acme(acme::AcmeSettings {
                directory: config.acme_directory.clone(),
                ca_root: config.acme_ca_root.clone(),
                email: config.acme_email.clone(),
            }),
        };
        let dns: Option<Arc<dyn DnsProvider>> = match config.dns_provider {
            DnsProviderKind::None => None,
            DnsProviderKind::Hook => Some(Arc::new(HookProvider::new(&config.dns_hook_command, DNS_HOOK_TIMEOUT))),
            DnsProviderKind::Cloudflare => Some(Arc::new(
                CloudflareProvider::new(
                    &config.cloudflare_api_url,
                    &config.cloudflare_api_token.0,
                    CLOUDFLARE_PROPAGATION,
                )
                .map_err(TlsError::Dns)?,
            )),
        };
        Ok(Some(TlsSettings::new(config.data_dir.join("tls"), issuer, dns)))
    }
}

/// Completes the TLS handshake on `stream` within [`HANDSHAKE_TIMEOUT`]. A connection that negotiated
/// `acme-tls/1` was a TLS-ALPN-01 validation: the handshake itself was the answer (RFC 8737 §3), so it is closed
/// and reported as an error rather than served as HTTP.
pub async fn accept(acceptor: &TlsAcceptor, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
        return Err(io::Error::other("acme-tls/1 validation handshake done"));
    }
    Ok(tls)
}
