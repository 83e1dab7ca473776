//! A real Pebble (Let's Encrypt's test CA) and pebble-challtestsrv (its DNS) per test, on free ports, killed on drop.
//!
//! Every name resolves to 127.0.0.1; Pebble validates HTTP-01 on the port of `http` and TLS-ALPN-01 on the port of
//! `https`, the listeners handed to the test (bound before Pebble starts, so the ports are the test's).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;
use tokio::net::TcpListener;

pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The throwaway CA that signed Pebble's own HTTPS certificate (for `acme_ca_root`).
    pub ca_root: PathBuf,
    /// challtestsrv's management API (`/set-txt`, `/clear-txt`).
    pub challtest: String,
    /// challtestsrv's DNS server (`127.0.0.1:<port>`), where every name resolves to 127.0.0.1.
    pub dns: String,
    /// Berth's HTTP listener: Pebble's `httpPort`.
    pub http: Option<TcpListener>,
    /// Berth's HTTPS listener: Pebble's `tlsPort`.
    pub https: Option<TcpListener>,
    pub http_port: u16,
    pub https_port: u16,
    management: String,
    pub dir: TempDir,
    children: Vec<Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)], log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} could not start ({e}): install it with `apt-get install -y pebble`"))
}

impl Pebble {
    /// Starts challtestsrv and Pebble; `validity_secs` is the lifetime of issued certificates, `authz_reuse` the
    /// percentage of authorizations Pebble reuses.
    pub async fn start(validity_secs: u64, authz_reuse: u32) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_port, https_port) = (http.local_addr().unwrap().port(), https.local_addr().unwrap().port());
        let [listen, management, dns, challtest] = crate::support::free_ports();

        // A throwaway CA and a certificate for Pebble's own HTTPS listener.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        ca.distinguished_name.push(DnType::CommonName, "berth test pebble CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let ca_root = dir.path().join("ca.pem");
        std::fs::write(&ca_root, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": https_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let dns_addr = format!("127.0.0.1:{dns}");
        let challtest_addr = format!("127.0.0.1:{challtest}");
        let mut children = vec![spawn(
            "pebble-challtestsrv",
            &[
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns_addr,
                "-management",
                &challtest_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ],
            &[],
            &dir.path().join("challtestsrv.log"),
        )];
        let reuse = authz_reuse.to_string();
        children.push(spawn(
            "pebble",
            &["-config", config_path.to_str().unwrap(), "-dnsserver", &dns_addr],
            &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0"), ("PEBBLE_AUTHZREUSE", &reuse)],
            &dir.path().join("pebble.log"),
        ));
        let pebble = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_root,
            challtest: format!("http://{challtest_addr}"),
            dns: dns_addr.clone(),
            http: Some(http),
            https: Some(https),
            http_port,
            https_port,
            management: format!("127.0.0.1:{management}"),
            dir,
            children,
        };
        let client = pebble.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pebble_up = client.get(&pebble.directory).send().await.is_ok_and(|r| r.status().is_success());
            let challtest_up = tokio::net::TcpStream::connect(&challtest_addr).await.is_ok();
            if pebble_up && challtest_up {
                break;
            }
            assert!(Instant::now() < deadline, "pebble did not start; log:\n{}", pebble.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pebble
    }

    /// A client trusting Pebble's HTTPS.
    pub fn client(&self) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(&std::fs::read(&self.ca_root).unwrap()).unwrap();
        reqwest::Client::builder().add_root_certificate(root).build().unwrap()
    }

    /// The root that issued this Pebble's certificates (it changes at every start).
    pub async fn issuing_root(&self) -> String {
        let url = format!("https://{}/roots/0", self.management);
        self.client().get(url).send().await.unwrap().error_for_status().unwrap().text().await.unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

/// A rustls client config trusting only `root_pem`, offering HTTP/1.1.
pub fn client_config(root_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every handshake must show the certificate served now, not one remembered from a resumed session.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// What a TLS client saw: the leaf's serial and expiry, or why the handshake failed.
#[derive(Debug)]
pub struct Seen {
    pub serial: String,
    pub not_after: i64,
}

/// Connects to `port` with `server_name` as SNI (or, for an IP, no SNI), verifying against `config`'s roots, and
/// sends one HTTP/1.1 request so the proxy behind the handshake is exercised too.
pub async fn handshake(config: &Arc<rustls::ClientConfig>, port: u16, server_name: &str) -> Result<Seen, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first().cloned()).ok_or("no certificate")?;
    let (_, x509) = x509_parser::parse_x509_certificate(&leaf).map_err(|e| e.to_string())?;
    let seen =
        Seen { serial: x509.tbs_certificate.raw_serial_as_string(), not_after: x509.validity().not_after.timestamp() };
    let request = format!("GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    if !response.starts_with(b"HTTP/1.1 ") {
        return Err(format!("no HTTP response over TLS: {:?}", String::from_utf8_lossy(&response)));
    }
    Ok(seen)
}

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
