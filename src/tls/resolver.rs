//! Choosing the certificate for a handshake by SNI, from an immutable snapshot.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::ACME_TLS_ALPN;

/// The key under which the certificate for handshakes without SNI (clients connecting by IP address) is published.
pub(crate) const NO_SNI: &str = "";

/// Picks the certificate for each TLS handshake.
///
/// Certificates live in an immutable snapshot, a map from name to certificate, swapped atomically by
/// [`CertResolver::publish`]: a handshake sees the old or the new set, never a mix, and a renewed certificate
/// takes effect for the next handshake without a restart. Keys are exact names (`app.example.com`) and wildcards
/// (`*.example.com`); a lookup is at most two hash probes whatever the number of certificates.
///
/// TLS-ALPN-01 challenge certificates (RFC 8737) are kept apart and served only when the ClientHello's ALPN list is
/// exactly `acme-tls/1`, so normal visitors never see them and validators never see the real certificate.
#[derive(Default)]
pub struct CertResolver {
    certs: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").field("names", &self.certs.load().len()).finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver with no certificates: every handshake fails until the first [`CertResolver::publish`].
    pub fn new() -> CertResolver {
        CertResolver::default()
    }

    /// Replaces the whole set of certificates at once. Names must be lowercase without a trailing dot; `*.parent`
    /// entries answer any single label under `parent`; the entry `""` answers handshakes without SNI.
    pub fn publish(&self, certs: HashMap<String, Arc<CertifiedKey>>) {
        self.certs.store(Arc::new(certs));
    }

    /// The certificate a handshake for `server_name` gets: the exact name, else the wildcard of its parent
    /// (`a.example.com` → `*.example.com`; a wildcard covers one label only, RFC 6125 §6.4.3), else none.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        let Some(name) = server_name else { return certs.get(NO_SNI).cloned() };
        let name = normalize(name);
        if let Some(cert) = certs.get(name.as_ref()) {
            return Some(cert.clone());
        }
        let (_, parent) = name.split_once('.')?;
        if parent.is_empty() {
            return None;
        }
        certs.get(&format!("*.{parent}")).cloned()
    }

    /// The names currently published (exact and wildcard), for status pages and tests.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.certs.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Serves `cert` to TLS-ALPN-01 validation handshakes for `name` until [`CertResolver::remove_challenge`].
    pub fn add_challenge(&self, name: &str, cert: Arc<CertifiedKey>) {
        if let Ok(mut challenges) = self.challenges.lock() {
            challenges.insert(normalize(name).into_owned(), cert);
        }
    }

    /// Stops serving the TLS-ALPN-01 challenge certificate for `name`.
    pub fn remove_challenge(&self, name: &str) {
        if let Ok(mut challenges) = self.challenges.lock() {
            challenges.remove(normalize(name).as_ref());
        }
    }

    fn challenge(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = normalize(server_name?);
        self.challenges.lock().ok()?.get(name.as_ref()).cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let server_name = hello.server_name();
        if is_acme_tls_alpn(hello.alpn()) {
            // A validation handshake must get the challenge certificate or nothing (RFC 8737 §3).
            return self.challenge(server_name);
        }
        self.lookup(server_name)
    }
}

/// Whether the offered ALPN list is exactly `["acme-tls/1"]`.
fn is_acme_tls_alpn<'a>(alpn: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    let Some(mut protocols) = alpn else { return false };
    protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
}

/// Lowercase without a trailing dot, borrowing when already so.
fn normalize(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&signing).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(signing.serialize_der().into());
        let provider = rustls::crypto::ring::default_provider();
        let signer = provider.key_provider.load_private_key(der).unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer))
    }

    #[test]
    fn exact_names_win_over_wildcards_and_wildcards_cover_one_label() {
        let resolver = CertResolver::new();
        let exact = key("app.example.com");
        let wild = key("*.example.com");
        resolver.publish(HashMap::from([
            ("app.example.com".to_owned(), exact.clone()),
            ("*.example.com".to_owned(), wild.clone()),
        ]));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("app.example.com")).unwrap(), &exact));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("APP.Example.com.")).unwrap(), &exact));
        assert!(Arc::ptr_eq(&resolver.lookup(Some("other.example.com")).unwrap(), &wild));
        assert!(resolver.lookup(Some("a.b.example.com")).is_none(), "a wildcard covers one label");
        assert!(resolver.lookup(Some("example.com")).is_none(), "a wildcard does not cover its parent");
        assert!(resolver.lookup(Some("unknown.test")).is_none());
        assert!(resolver.lookup(Some("com")).is_none());
        assert!(resolver.lookup(None).is_none());
    }

    #[test]
    fn publishing_replaces_the_whole_set_and_no_sni_has_its_own_entry() {
        let resolver = CertResolver::new();
        resolver.publish(HashMap::from([("a.test".to_owned(), key("a.test"))]));
        assert!(resolver.lookup(Some("a.test")).is_some());
        let ip = key("192.168.1.10");
        resolver.publish(HashMap::from([("b.test".to_owned(), key("b.test")), (NO_SNI.to_owned(), ip.clone())]));
        assert!(resolver.lookup(Some("a.test")).is_none());
        assert!(Arc::ptr_eq(&resolver.lookup(None).unwrap(), &ip));
        assert_eq!(resolver.names(), vec!["".to_owned(), "b.test".to_owned()]);
    }

    #[test]
    fn only_an_exact_acme_tls_alpn_list_selects_challenge_certificates() {
        let only: Vec<&[u8]> = vec![b"acme-tls/1"];
        assert!(is_acme_tls_alpn(Some(only.into_iter())));
        let mixed: Vec<&[u8]> = vec![b"acme-tls/1", b"http/1.1"];
        assert!(!is_acme_tls_alpn(Some(mixed.into_iter())));
        let normal: Vec<&[u8]> = vec![b"h2", b"http/1.1"];
        assert!(!is_acme_tls_alpn(Some(normal.into_iter())));
        assert!(!is_acme_tls_alpn(None::<std::vec::IntoIter<&[u8]>>));

        let resolver = CertResolver::new();
        let challenge = key("a.test");
        resolver.add_challenge("A.test", challenge.clone());
        assert!(Arc::ptr_eq(&resolver.challenge(Some("a.test")).unwrap(), &challenge));
        assert!(resolver.lookup(Some("a.test")).is_none(), "challenge certs are not served to normal handshakes");
        resolver.remove_challenge("a.test");
        assert!(resolver.challenge(Some("a.test")).is_none());
    }
}
