//! Berth's own certificate authority, for hosts no public CA can validate (LAN names, `.home.arpa`, `.test`, IPs).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::Utc;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::TlsError;
use super::store::{create_private_dir, write_private_atomic};

/// How long leaf certificates from the internal CA are valid; they renew like ACME ones, with a third left.
pub const INTERNAL_LEAF_DAYS: i64 = 90;
/// How long the internal root is valid. Clients trust it once, so it is long-lived.
const ROOT_YEARS: i64 = 10;

/// A root CA created once under `<data_dir>/tls/internal-ca/` (`ca.pem`, and `ca.key` with mode 0600) and reused
/// afterwards, so browsers and devices that trusted its root keep trusting every later leaf certificate.
pub struct InternalCa {
    root_pem: String,
    key: KeyPair,
    dir: PathBuf,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl InternalCa {
    /// Loads the CA from `dir`, or creates it there when absent. Never replaces an existing key.
    pub fn load_or_create(dir: &Path) -> Result<InternalCa, TlsError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if key_path.exists() {
            let read = |p: &Path| std::fs::read_to_string(p).map_err(TlsError::io(format!("reading {}", p.display())));
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            let root_pem = read(&cert_path)?;
            // Checks now that the pair can sign, rather than at the first issuance.
            Issuer::from_ca_cert_pem(&root_pem, &key)?;
            return Ok(InternalCa { root_pem, key, dir: dir.to_path_buf() });
        }
        create_private_dir(dir)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Berth");
        dn.push(DnType::CommonName, format!("Berth internal CA {host}").trim_end());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365 * ROOT_YEARS);
        let root_pem = params.self_signed(&key)?.pem();
        // The key first: a CA certificate without its key would be useless, a key without a certificate is redone.
        write_private_atomic(&key_path, key.serialize_pem().as_bytes())?;
        write_private_atomic(&cert_path, root_pem.as_bytes())?;
        tracing::info!(dir = %dir.display(), "created the internal certificate authority");
        Ok(InternalCa { root_pem, key, dir: dir.to_path_buf() })
    }

    /// The root certificate in PEM, for users to install as trusted (the API offers it for download).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Issues a leaf certificate for `names` (DNS names, `*.` wildcards or IP addresses), valid for
    /// [`INTERNAL_LEAF_DAYS`] days, with a fresh P-256 key. Returns the chain (leaf, then root) and key in PEM.
    pub fn issue(&self, names: &[String]) -> Result<(String, String), TlsError> {
        let issuer = Issuer::from_ca_cert_pem(&self.root_pem, &self.key)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut dn = DistinguishedName::new();
        if let Some(primary) = names.first().filter(|n| n.len() <= 64) {
            dn.push(DnType::CommonName, primary.clone());
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(INTERNAL_LEAF_DAYS);
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| TlsError::BadCertificate(format!("random serial: {e}")))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let leaf = params.signed_by(&key, &issuer)?;
        tracing::debug!(names = ?names, at = %Utc::now(), "internal CA issued a certificate");
        Ok((format!("{}{}", leaf.pem(), self.root_pem), key.serialize_pem()))
    }
}
