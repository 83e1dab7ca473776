//! Configuration: defaults, then a TOML file, then `BERTH_*` environment variables, then flags.
//! Validated once at startup into [`Config`]; an error names the key and the layer it came from.

pub mod s3;

pub use s3::{Addressing, S3Settings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

/// The default `acme_directory`: Let's Encrypt's production CA.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// The default `cloudflare_api_url`.
pub const CLOUDFLARE_API_URL: &str = "https://api.cloudflare.com/client/v4";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Where the HTTPS listener's certificates come from (`tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// From an ACME CA (`acme_directory`, Let's Encrypt by default).
    Acme,
    /// From Berth's own CA, for LAN names and IPs no public CA can validate.
    Internal,
    /// No HTTPS listener.
    Off,
}

/// Which DNS provider publishes DNS-01 records (`dns_provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsProviderKind {
    /// None: certificates that ask for dns01 fail, saying so.
    None,
    /// `dns_hook_command present|cleanup <fqdn> <value>`.
    Hook,
    /// Cloudflare's API with `cloudflare_api_token`.
    Cloudflare,
}

/// A secret configuration value: `Debug` never prints it, so logging the config cannot leak it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// A key that takes one text or a list of texts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A notification webhook's URL. Chat services put the token in the path, so `Debug` and [`WebhookUrl::origin`]
/// show only the scheme and host: logging the config or a delivery failure cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(pub String);

impl WebhookUrl {
    /// `https://host:port`, without path, query or credentials: what logs may show.
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let end = self.0[after_scheme..].find(['/', '?', '#']).map_or(self.0.len(), |i| after_scheme + i);
        &self.0[..end]
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}/…\"", self.origin())
    }
}

/// The validated configuration every part of Berth is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `berth.db` and, in later versions, keys, certificates and backups.
    pub data_dir: PathBuf,
    /// API and dashboard listener.
    pub listen: SocketAddr,
    /// The reverse proxy's plain-HTTP listener.
    pub http_listen: SocketAddr,
    /// The reverse proxy's TLS listener.
    pub https_listen: SocketAddr,
    /// Where HTTPS certificates come from: ACME (default), the internal CA, or off (no HTTPS listener).
    pub tls: TlsMode,
    /// How ACME proves a (non-wildcard) domain: HTTP-01 on port 80 (default) or TLS-ALPN-01 on port 443.
    pub acme_challenge: crate::tls::Challenge,
    /// The ACME CA's directory URL.
    pub acme_directory: String,
    /// A PEM root trusted for the ACME directory's HTTPS instead of the system roots (private or test CAs).
    pub acme_ca_root: Option<PathBuf>,
    /// Contact address given to the ACME CA for expiry notices.
    pub acme_email: Option<String>,
    /// Who publishes DNS-01 TXT records (needed for wildcard certificates).
    pub dns_provider: DnsProviderKind,
    /// The `hook` provider's command, run as `<command> present|cleanup <fqdn> <value>`.
    pub dns_hook_command: String,
    /// The `cloudflare` provider's API token (Zone:DNS:Edit); best given as BERTH_CLOUDFLARE_API_TOKEN.
    pub cloudflare_api_token: Secret,
    /// The Cloudflare API base URL (changed only for tests or proxies).
    pub cloudflare_api_url: String,
    /// Docker Engine address: `unix:///path`, `tcp://host:port` or `http://host:port`.
    pub docker_host: String,
    /// The URL people reach the dashboard at; invitation links are built on it.
    pub public_url: String,
    pub log_format: LogFormat,
    /// Requests per API key per minute; 0 turns the limit off.
    pub api_requests_per_minute: u32,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Failed logins allowed per email per minute.
    pub login_attempts_per_minute: u32,
    pub invitation_ttl_days: u32,
    pub session_ttl_hours: u32,
    /// The key that encrypts secret values at rest (32 random bytes, hex); created with mode 0600 at first run.
    pub secret_key_file: PathBuf,
    /// Most replicas a project may ask for.
    pub max_replicas: u32,
    /// Whether `repo_url` may be a path on this machine (`/srv/git/app` or `file://…`).
    pub allow_local_repos: bool,
    /// How long one git operation (ls-remote, fetch) may take.
    pub git_timeout_secs: u32,
    /// Projects get `<project>.<workspace>.<base_domain>` as their default domain.
    pub base_domain: String,
    /// A domain the proxy serves the dashboard and API on (with its own certificate); `None`: only `listen`.
    pub console_domain: Option<String>,
    /// This server's public addresses: a custom domain is verified when its A/AAAA records point at one of them.
    /// Empty: the host's own non-loopback interface addresses are used.
    pub public_ips: Vec<std::net::IpAddr>,
    /// The DNS server used to verify domains (`ip` or `ip:port`); `None` uses the system's resolver.
    pub dns_resolver: Option<SocketAddr>,
    /// Longest a build may run.
    pub build_timeout_secs: u32,
    /// Memory a build may use, in MiB.
    pub build_memory_mb: u32,
    /// How many builds may run at once (deployments of one project always run one after another).
    pub concurrent_builds: u32,
    /// How long new replicas have to become healthy.
    pub health_timeout_secs: u32,
    /// How long old replicas keep running after traffic moved away, for in-flight requests.
    pub drain_secs: u32,
    /// Proxy: how long connecting to a replica may take before it counts as down.
    pub proxy_connect_timeout_secs: u32,
    /// Proxy: how long a replica may take to send response headers (then 504).
    pub proxy_response_timeout_secs: u32,
    /// Proxy: how long idle client and upstream connections are kept.
    pub proxy_idle_timeout_secs: u32,
    /// Proxy: threads serving client connections, per listener; 0: one per core.
    pub proxy_workers: u32,
    /// `Strict-Transport-Security: max-age=<n>` on HTTPS answers of domains with an active certificate; 0: off.
    pub hsts_max_age: u32,
    /// Runtime log lines older than this many days are deleted.
    pub log_retention_days: u32,
    /// Most runtime log lines kept per project; the oldest beyond it are deleted.
    pub log_retention_lines: u32,
    /// Access logs keep every 4xx/5xx and non-GET/HEAD request, and one in this many of the others (0: none).
    pub access_log_sample: u32,
    /// Where notifications (failed backups, failing or expiring certificates) are POSTed as JSON.
    pub notify_webhooks: Vec<WebhookUrl>,
    /// Signs notification webhooks (Standard Webhooks headers) when not empty.
    pub notify_webhook_secret: Secret,
    /// Managed databases' images per engine; `{version}` is replaced by the database's version.
    pub database_image_postgresql: String,
    pub database_image_mysql: String,
    pub database_image_redis: String,
    pub database_image_mongo: String,
    /// CPU limit of each database container, in cores.
    pub database_cpus: u32,
    /// Memory limit of each database container, in MiB.
    pub database_memory_mb: u32,
    /// Longest one backup or restore may run.
    pub backup_timeout_secs: u32,
    /// The S3-compatible bucket every finished backup is also uploaded to (`s3_*` keys); `None`: backups stay only
    /// under the data dir.
    pub s3: Option<S3Settings>,
    /// The `auto` builder's image for Node.js apps (needs node, npm and corepack).
    pub auto_image_node: String,
    /// The `auto` builder's image for Python apps (`python` and `pip` on PATH, `pip install` allowed).
    pub auto_image_python: String,
    /// The `auto` builder's image that compiles Go apps.
    pub auto_image_go: String,
    /// The `auto` builder's image that compiles Rust apps.
    pub auto_image_rust: String,
    /// The image compiled Go/Rust binaries and Procfile-only apps run in (sh, a C library matching the builders).
    pub auto_image_runtime: String,
    /// The image that serves static sites (sh and nginx reading /etc/nginx/conf.d/*.conf).
    pub auto_image_static: String,
}

/// A configuration value that cannot be used: which key, from where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} (from {source_name}): {message}")]
    Invalid { key: &'static str, source_name: String, message: String },
}

macro_rules! layer {
    ($($name:ident : $ty:ty),* $(,)?) => {
        /// One layer of configuration: every key optional, unknown keys refused.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Layer {
            $(pub $name: Option<$ty>,)*
        }

        impl Layer {
            /// Every key a layer may set, as written in the file.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($name)),*];

            fn merge(&mut self, other: Layer, source: &str, sources: &mut BTreeMap<&'static str, String>) {
                $(if let Some(v) = other.$name {
                    self.$name = Some(v);
                    sources.insert(stringify!($name), source.to_owned());
                })*
            }
        }
    };
}

layer! {
    data_dir: PathBuf,
    listen: String,
    http_listen: String,
    https_listen: String,
    tls: String,
    acme_challenge: String,
    acme_directory: String,
    acme_ca_root: PathBuf,
    acme_email: String,
    dns_provider: String,
    dns_hook_command: String,
    cloudflare_api_token: String,
    cloudflare_api_url: String,
    docker_host: String,
    public_url: String,
    log_format: String,
    api_requests_per_minute: u32,
    max_body_bytes: usize,
    login_attempts_per_minute: u32,
    invitation_ttl_days: u32,
    session_ttl_hours: u32,
    secret_key_file: PathBuf,
    max_replicas: u32,
    allow_local_repos: bool,
    git_timeout_secs: u32,
    base_domain: String,
    console_domain: String,
    public_ip: String,
    dns_resolver: String,
    build_timeout_secs: u32,
    build_memory_mb: u32,
    concurrent_builds: u32,
    health_timeout_secs: u32,
    drain_secs: u32,
    proxy_connect_timeout_secs: u32,
    proxy_response_timeout_secs: u32,
    proxy_idle_timeout_secs: u32,
    proxy_workers: u32,
    hsts_max_age: u32,
    log_retention_days: u32,
    log_retention_lines: u32,
    access_log_sample: u32,
    notify_webhook: OneOrMany,
    notify_webhook_secret: String,
    auto_image_node: String,
    auto_image_python: String,
    auto_image_go: String,
    auto_image_rust: String,
    auto_image_runtime: String,
    auto_image_static: String,
    database_image_postgresql: String,
    database_image_mysql: String,
    database_image_redis: String,
    database_image_mongo: String,
    database_cpus: u32,
    database_memory_mb: u32,
    backup_timeout_secs: u32,
    s3_endpoint: String,
    s3_region: String,
    s3_bucket: String,
    s3_prefix: String,
    s3_addressing: String,
    s3_access_key_id: String,
    s3_secret_access_key: String,
    s3_secret_access_key_file: PathBuf,
}

/// Keys whose values are secrets: an error about one never repeats its value.
const SECRET_KEYS: &[&str] = &["cloudflare_api_token", "s3_secret_access_key"];

/// The annotated example printed by `berth config print-default`; every value is the default.
pub const DEFAULT_TOML: &str = r#"# Berth configuration. Every key is optional; shown values are the defaults.
# Precedence: these defaults < this file < BERTH_<KEY> environment variables < command-line flags.

# Where Berth keeps its database (berth.db) and other state.
# Default: /var/lib/berth when run as root, else $XDG_DATA_HOME/berth (~/.local/share/berth).
# data_dir = "/var/lib/berth"

# API and dashboard listener. Keep it on loopback unless a firewall protects it.
listen = "127.0.0.1:7080"

# The reverse proxy's listeners for apps' HTTP and HTTPS traffic.
http_listen = "0.0.0.0:80"
https_listen = "0.0.0.0:443"

# Where HTTPS certificates come from: "acme" (an ACME CA such as Let's Encrypt; domains must point at this host),
# "internal" (Berth's own CA, for LAN names like app.lan / app.home.arpa and IP addresses; download its root from
# the API and trust it on your devices) or "off" (no HTTPS listener).
tls = "acme"

# How ACME proves a domain is ours: "http-01" (port 80 must be reachable from the internet) or "tls-alpn-01"
# (port 443). Wildcard domains always use DNS-01 through dns_provider.
acme_challenge = "http-01"

# The ACME CA. Let's Encrypt's staging directory, for trying things out without rate limits:
# https://acme-staging-v02.api.letsencrypt.org/directory
acme_directory = "https://acme-v02.api.letsencrypt.org/directory"

# A PEM root certificate trusted for the ACME directory's HTTPS instead of the system roots (a private CA).
# acme_ca_root = "/etc/berth/acme-root.pem"

# Contact address the CA may send expiry notices to. Optional.
# acme_email = "ops@example.com"

# DNS-01 challenges (required for wildcard certificates): "" (none), "hook" or "cloudflare".
dns_provider = ""

# The hook provider's command, run through sh as `<command> present|cleanup <fqdn> <value>`, where fqdn is
# "_acme-challenge.<domain>." (trailing dot). Exit 0 once the TXT record is published / removed; killed after 60 s.
# dns_hook_command = "/usr/local/bin/berth-dns"

# The cloudflare provider's API token (Zone:DNS:Edit). Better set it as BERTH_CLOUDFLARE_API_TOKEN in the
# environment (systemd EnvironmentFile with mode 0600) than in this file.
# cloudflare_api_token = ""
cloudflare_api_url = "https://api.cloudflare.com/client/v4"

# Docker Engine address. Default: $DOCKER_HOST, else the local socket.
# docker_host = "unix:///var/run/docker.sock"

# The URL people use to reach the dashboard; invitation links are built on it.
# Default: http://<listen>
# public_url = "https://berth.example.com"

# "human" or "json".
log_format = "human"

# Requests per API key per minute (429 with Retry-After beyond it). 0 turns the limit off.
api_requests_per_minute = 600

# Largest request body accepted, in bytes (413 beyond it).
max_body_bytes = 1048576

# Failed logins allowed per email address per minute (429 beyond it).
login_attempts_per_minute = 10

# How long an invitation can be accepted, in days.
invitation_ttl_days = 7

# How long a dashboard session lasts, in hours.
session_ttl_hours = 168

# The key that encrypts secret env vars, git tokens and deploy keys at rest: 32 random bytes in hex, created
# with mode 0600 at first run. Back it up with the database: without it secret values cannot be read.
# Default: <data_dir>/secret.key
# secret_key_file = "/var/lib/berth/secret.key"

# Most replicas one project may run.
max_replicas = 10

# Whether a project's repo_url may be a path on this machine (/srv/git/app.git or file:///srv/git/app.git).
# Off by default: anyone who can create a project could otherwise read any repository this host can.
allow_local_repos = false

# How long one git operation (listing branches, fetching a commit) may take, in seconds.
git_timeout_secs = 120

# Projects are reachable at <project>.<workspace>.<base_domain>.
base_domain = "localhost"

# Serve the dashboard and API through the proxy at this domain too, over HTTPS with its own certificate (point its
# DNS here; it needs no verification step since the operator sets it). Default: only on `listen`.
# console_domain = "berth.example.com"

# This server's public IP addresses, comma-separated: a custom domain is verified when its A/AAAA records point at
# one of them (or when Berth can fetch a token through its own HTTP listener at that domain).
# Default: the host's own non-loopback interface addresses.
# public_ip = "203.0.113.7,2001:db8::7"

# The DNS server Berth asks when verifying domains ("ip" or "ip:port"). Default: the system's resolver.
# dns_resolver = "1.1.1.1"

# Longest a build may run, in seconds, and the memory it may use, in MiB.
build_timeout_secs = 900
build_memory_mb = 2048

# How many builds may run at once. Builds are heavy; on a small server one at a time keeps running apps fast.
# Deployments of the same project always run one after another; a newer one supersedes a queued one.
concurrent_builds = 1

# How long new replicas have to accept connections (and pass health_check_path) before a deploy fails.
health_timeout_secs = 30

# How long old replicas keep running after traffic switched to the new ones.
drain_secs = 5

# The proxy's timeouts, in seconds: connecting to a replica (a failure ejects it for 10 s and the next is tried),
# waiting for a replica's response headers (then 504), and keeping idle connections open.
proxy_connect_timeout_secs = 5
proxy_response_timeout_secs = 60
proxy_idle_timeout_secs = 90

# Threads serving the proxy's client connections (each with its own event loop and upstream connection pool, like
# nginx's worker processes), per listener; 0 means one per CPU core.
proxy_workers = 0

# HSTS: with a value above 0, HTTPS answers for domains with an active certificate carry
# Strict-Transport-Security: max-age=<value>. Browsers then refuse plain HTTP for that long: turn it on only once
# HTTPS works for every domain (31536000 is a year).
hsts_max_age = 0

# Runtime logs (what apps write to stdout/stderr) are kept this many days, and at most this many lines per
# project; older lines are deleted every few minutes.
log_retention_days = 7
log_retention_lines = 100000

# The proxy's access log keeps every 4xx/5xx answer and every request that is not GET/HEAD; of the other requests
# it keeps one in access_log_sample (0: none, 1: all). Retention follows log_retention_days / log_retention_lines.
access_log_sample = 0

# Notifications (a failed backup, a certificate that cannot be issued or renewed, one that expires soon) are POSTed
# as JSON to each of these URLs. A string or a list; BERTH_NOTIFY_WEBHOOK takes several separated by spaces or
# commas. The URLs are treated as secrets (chat webhooks carry their token): the log shows only their host.
# notify_webhook = ["https://hooks.example.com/berth"]

# Signs each webhook with the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature).
# "whsec_" + base64 (e.g. "whsec_$(openssl rand -base64 32)") works with that spec's libraries; any other text of
# 16 characters or more is used as it is. Better set as BERTH_NOTIFY_WEBHOOK_SECRET than in this file.
# notify_webhook_secret = ""

# Base images of the `auto` builder's generated Dockerfiles (used when a repository has no Dockerfile). Point them
# at a mirror or at local images when the host cannot pull. Node needs node, npm and corepack; Python needs
# `python` and `pip` on PATH with `pip install` allowed; Go and Rust build images need go/cargo and
# /etc/ssl/certs/ca-certificates.crt; the runtime image runs compiled binaries and Procfile-only apps (sh and a C
# library matching the build images); the static image needs sh and nginx reading /etc/nginx/conf.d/*.conf.
auto_image_node = "node:20-slim"
auto_image_python = "python:3.12-slim"
auto_image_go = "golang:1.22"
auto_image_rust = "rust:1-slim"
auto_image_runtime = "debian:bookworm-slim"
auto_image_static = "nginx:alpine"

# Managed databases: the image of each engine ({version} becomes the database's version; the defaults are 16, 8.4,
# 7 and 7), the CPU cores and memory each database container may use, and how long one backup or restore may run.
# Images must honour the official images' environment (POSTGRES_*, MYSQL_*, MONGO_INITDB_*) and data directories.
database_image_postgresql = "postgres:{version}"
database_image_mysql = "mysql:{version}"
database_image_redis = "redis:{version}"
database_image_mongo = "mongo:{version}"
database_cpus = 1
database_memory_mb = 1024
backup_timeout_secs = 3600

# An S3-compatible bucket every finished backup is also uploaded to, as <s3_prefix>/<database id>/<file name>
# (AWS S3, MinIO, Backblaze B2, Cloudflare R2, Wasabi, Ceph, Garage…). Off while s3_bucket is unset. The local file
# is kept; a missing local file is fetched back from the bucket (checksum verified) to download or restore.
# A failed upload is retried (1 min, 5 min, 30 min, 2 h, then every 6 h; at most 16 attempts) and raises a
# backup.upload_failed notification.
# s3_bucket = "berth-backups"
# The service's URL without the bucket. Default: AWS, https://s3.<s3_region>.amazonaws.com. Examples:
# https://<account id>.r2.cloudflarestorage.com, https://s3.eu-central-003.backblazeb2.com,
# https://s3.eu-central-1.wasabisys.com, http://minio.lan:9000 (plain http only on a network you trust).
# s3_endpoint = "https://s3.eu-west-1.amazonaws.com"
# The signing region ("auto" for R2; B2 and Wasabi: the region in the endpoint's name).
# s3_region = "us-east-1"
# s3_prefix = "berth"
# "virtual-host" (https://<bucket>.<endpoint>/…) or "path" (https://<endpoint>/<bucket>/…).
# Default: virtual-host without s3_endpoint (AWS), path with one (what MinIO and most others expect).
# s3_addressing = "path"
# s3_access_key_id = "AKIA…"
# The secret key: better in the environment as BERTH_S3_SECRET_ACCESS_KEY (systemd EnvironmentFile with mode
# 0600), or in a file of its own named by s3_secret_access_key_file, than in this file.
# s3_secret_access_key_file = "/etc/berth/s3-secret"
"#;

impl Config {
    /// Loads the layers in order and validates the result.
    ///
    /// `config_path` is the `--config` flag: when given, the file must exist; when absent,
    /// [`DEFAULT_CONFIG_PATH`] is read if it exists. `env` is the process environment (passed in for tests).
    pub fn load(
        config_path: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: Layer,
    ) -> Result<Config, ConfigError> {
        let mut merged = Layer::default();
        let mut sources = BTreeMap::new();

        let path = config_path.map(Path::to_path_buf).or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            default.exists().then_some(default)
        });
        if let Some(path) = path {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let file: Layer = toml::from_str(&text)
                .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string().trim_end().to_owned() })?;
            merged.merge(file, &path.display().to_string(), &mut sources);
        }

        merged.merge(env_layer(env)?, "environment", &mut sources);
        merged.merge(flags, "command line", &mut sources);
        Config::validate(merged, &sources, env)
    }

    /// Defaults only, with the given data dir and every listener on `127.0.0.1:0` (tests and tools).
    pub fn for_data_dir(data_dir: PathBuf) -> Config {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            listen: any,
            http_listen: any,
            https_listen: any,
            tls: TlsMode::Acme,
            acme_challenge: crate::tls::Challenge::Http01,
            acme_directory: LETS_ENCRYPT_DIRECTORY.into(),
            acme_ca_root: None,
            acme_email: None,
            dns_provider: DnsProviderKind::None,
            dns_hook_command: String::new(),
            cloudflare_api_token: Secret::default(),
            cloudflare_api_url: CLOUDFLARE_API_URL.into(),
            docker_host: default_docker_host(&BTreeMap::new()),
            public_url: "http://127.0.0.1:7080".into(),
            log_format: LogFormat::Human,
            api_requests_per_minute: 600,
            max_body_bytes: 1 << 20,
            login_attempts_per_minute: 10,
            invitation_ttl_days: 7,
            session_ttl_hours: 168,
            secret_key_file: data_dir.join("secret.key"),
            max_replicas: 10,
            allow_local_repos: false,
            git_timeout_secs: 120,
            base_domain: "localhost".into(),
            console_domain: None,
            public_ips: Vec::new(),
            dns_resolver: None,
            build_timeout_secs: 900,
            build_memory_mb: 2048,
            concurrent_builds: 1,
            health_timeout_secs: 30,
            drain_secs: 5,
            proxy_connect_timeout_secs: 5,
            proxy_response_timeout_secs: 60,
            proxy_idle_timeout_secs: 90,
            proxy_workers: 0,
            hsts_max_age: 0,
            log_retention_days: 7,
            log_retention_lines: 100_000,
            access_log_sample: 0,
            notify_webhooks: Vec::new(),
            notify_webhook_secret: Secret::default(),
            auto_image_node: "node:20-slim".into(),
            auto_image_python: "python:3.12-slim".into(),
            auto_image_go: "golang:1.22".into(),
            auto_image_rust: "rust:1-slim".into(),
            auto_image_runtime: "debian:bookworm-slim".into(),
            auto_image_static: "nginx:alpine".into(),
            database_image_postgresql: "postgres:{version}".into(),
            database_image_mysql: "mysql:{version}".into(),
            database_image_redis: "redis:{version}".into(),
            database_image_mongo: "mongo:{version}".into(),
            database_cpus: 1,
            database_memory_mb: 1024,
            backup_timeout_secs: 3600,
            s3: None,
            data_dir,
        }
    }

    /// The database file inside the data dir.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("berth.db")
    }

    /// Where managed databases' backups are kept: `<data_dir>/backups/<database id>/`.
    pub fn backups_dir(&self) -> PathBuf {
        self.data_dir.join("backups")
    }

    /// The image template configured for a database engine.
    pub fn database_image(&self, kind: crate::domain::database::DatabaseKind) -> &str {
        use crate::domain::database::DatabaseKind;
        match kind {
            DatabaseKind::Postgresql => &self.database_image_postgresql,
            DatabaseKind::Mysql => &self.database_image_mysql,
            DatabaseKind::Redis => &self.database_image_redis,
            DatabaseKind::Mongo => &self.database_image_mongo,
        }
    }

    fn validate(
        l: Layer,
        sources: &BTreeMap<&'static str, String>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            key,
            source_name: sources.get(key).cloned().unwrap_or_else(|| "defaults".into()),
            message,
        };
        let addr = |key: &'static str, value: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
            let v = value.unwrap_or_else(|| default.to_owned());
            v.parse().map_err(|_| invalid(key, format!("'{v}' is not an address like 127.0.0.1:7080")))
        };
        let listen = addr("listen", l.listen, "127.0.0.1:7080")?;
        let http_listen = addr("http_listen", l.http_listen, "0.0.0.0:80")?;
        let https_listen = addr("https_listen", l.https_listen, "0.0.0.0:443")?;

        let tls = match l.tls.as_deref().unwrap_or("acme") {
            "acme" => TlsMode::Acme,
            "internal" => TlsMode::Internal,
            "off" => TlsMode::Off,
            other => return Err(invalid("tls", format!("'{other}' must be \"acme\", \"internal\" or \"off\""))),
        };
        let acme_challenge = match l.acme_challenge.as_deref().unwrap_or("http-01") {
            "http-01" => crate::tls::Challenge::Http01,
            "tls-alpn-01" => crate::tls::Challenge::TlsAlpn01,
            other => {
                return Err(invalid(
                    "acme_challenge",
                    format!("'{other}' must be \"http-01\" or \"tls-alpn-01\" (wildcards always use DNS-01)"),
                ));
            }
        };
        let url = |key: &'static str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
            let v = v.unwrap_or_else(|| default.to_owned());
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v)
            } else {
                Err(invalid(key, format!("'{v}' must be a URL starting with https://")))
            }
        };
        let acme_directory = url("acme_directory", l.acme_directory, LETS_ENCRYPT_DIRECTORY)?;
        let cloudflare_api_url =
            url("cloudflare_api_url", l.cloudflare_api_url, CLOUDFLARE_API_URL)?.trim_end_matches('/').to_owned();
        if let Some(root) = &l.acme_ca_root
            && !root.is_file()
        {
            return Err(invalid("acme_ca_root", format!("{} is not a readable file", root.display())));
        }
        let acme_email = l.acme_email.filter(|e| !e.is_empty());
        if let Some(email) = &acme_email
            && (!email.contains('@') || email.contains(char::is_whitespace))
        {
            return Err(invalid("acme_email", format!("'{email}' is not an email address")));
        }
        let dns_hook_command = l.dns_hook_command.unwrap_or_default();
        let cloudflare_api_token = Secret(l.cloudflare_api_token.unwrap_or_default());
        let dns_provider = match l.dns_provider.as_deref().unwrap_or("") {
            "" | "none" => DnsProviderKind::None,
            "hook" if dns_hook_command.trim().is_empty() => {
                return Err(invalid("dns_provider", "\"hook\" needs dns_hook_command".into()));
            }
            "hook" => DnsProviderKind::Hook,
            "cloudflare" if cloudflare_api_token.0.trim().is_empty() => {
                return Err(invalid(
                    "dns_provider",
                    "\"cloudflare\" needs cloudflare_api_token (or BERTH_CLOUDFLARE_API_TOKEN)".into(),
                ));
            }
            "cloudflare" => DnsProviderKind::Cloudflare,
            other => {
                return Err(invalid("dns_provider", format!("'{other}' must be \"\", \"hook\" or \"cloudflare\"")));
            }
        };

        let data_dir = l.data_dir.unwrap_or_else(default_data_dir);
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }

        let docker_host = l.docker_host.unwrap_or_else(|| default_docker_host(env));
        if !["unix://", "tcp://", "http://", "https://"].iter().any(|p| docker_host.starts_with(p)) {
            return Err(invalid(
                "docker_host",
                format!("'{docker_host}' must start with unix://, tcp://, http:// or https://"),
            ));
        }

        let public_url = match l.public_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => u.trim_end_matches('/').to_owned(),
            Some(u) => {
                return Err(invalid("public_url", format!("'{u}' must start with http:// or https://")));
            }
            None => {
                let host = if listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { listen.ip().to_string() };
                let host = if listen.is_ipv6() && !listen.ip().is_unspecified() { format!("[{host}]") } else { host };
                format!("http://{host}:{}", listen.port())
            }
        };

        let log_format = match l.log_format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid("log_format", format!("'{other}' must be \"human\" or \"json\"")));
            }
        };

        let max_body_bytes = l.max_body_bytes.unwrap_or(1 << 20);
        if max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "must be at least 1024".into()));
        }
        let positive = |key: &'static str, v: Option<u32>, default: u32| -> Result<u32, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(invalid(key, "must be at least 1".into())),
                n => Ok(n),
            }
        };

        let secret_key_file = l.secret_key_file.unwrap_or_else(|| data_dir.join("secret.key"));
        let base_domain =
            l.base_domain.unwrap_or_else(|| "localhost".into()).trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && !p.starts_with('-')
                && !p.ends_with('-')
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let console_domain = match l.console_domain.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
                    return Err(invalid(
                        "console_domain",
                        format!("'{d}' is not a domain name like berth.example.com"),
                    ));
                }
                Some(d)
            }
        };
        if base_domain.len() > 200 || !base_domain.split('.').all(label_ok) {
            return Err(invalid("base_domain", format!("'{base_domain}' is not a domain name like apps.example.com")));
        }
        let max_replicas = l.max_replicas.unwrap_or(10);
        if max_replicas > 1000 {
            return Err(invalid("max_replicas", "must be at most 1000".into()));
        }
        let image = |key: &'static str, v: Option<String>, default: &str| -> Result<String, ConfigError> {
            let v = v.unwrap_or_else(|| default.to_owned());
            crate::domain::project::validate_image(&v).map_err(|_| {
                invalid(key, format!("'{v}' is not an image reference like node:20-slim or registry.local/node:20"))
            })
        };

        let db_image = |key: &'static str, v: Option<String>, name: &str| -> Result<String, ConfigError> {
            let v = v.unwrap_or_else(|| format!("{name}:{{version}}"));
            crate::domain::project::validate_image(&v.replace("{version}", "1")).map(|_| v.clone()).map_err(|_| {
                invalid(
                    key,
                    format!("'{v}' is not an image reference like {name}:{{version}} or registry.local/{name}:16"),
                )
            })
        };

        let s3 = s3::validate(s3::RawS3 {
            endpoint: l.s3_endpoint,
            region: l.s3_region,
            bucket: l.s3_bucket,
            prefix: l.s3_prefix,
            addressing: l.s3_addressing,
            access_key_id: l.s3_access_key_id,
            secret_access_key: l.s3_secret_access_key,
            secret_access_key_file: l.s3_secret_access_key_file,
        })
        .map_err(|(key, message)| invalid(key, message))?;

        Ok(Config {
            listen,
            http_listen,
            https_listen,
            tls,
            acme_challenge,
            acme_directory,
            acme_ca_root: l.acme_ca_root,
            acme_email,
            dns_provider,
            dns_hook_command,
            cloudflare_api_token,
            cloudflare_api_url,
            docker_host,
            public_url,
            log_format,
            api_requests_per_minute: l.api_requests_per_minute.unwrap_or(600),
            max_body_bytes,
            login_attempts_per_minute: positive("login_attempts_per_minute", l.login_attempts_per_minute, 10)?,
            invitation_ttl_days: positive("invitation_ttl_days", l.invitation_ttl_days, 7)?,
            session_ttl_hours: positive("session_ttl_hours", l.session_ttl_hours, 168)?,
            secret_key_file,
            max_replicas,
            allow_local_repos: l.allow_local_repos.unwrap_or(false),
            git_timeout_secs: positive("git_timeout_secs", l.git_timeout_secs, 120)?,
            base_domain,
            console_domain,
            public_ips: parse_ips(l.public_ip.as_deref()).map_err(|m| invalid("public_ip", m))?,
            dns_resolver: match l.dns_resolver.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(parse_resolver(s).map_err(|m| invalid("dns_resolver", m))?),
            },
            build_timeout_secs: positive("build_timeout_secs", l.build_timeout_secs, 900)?,
            build_memory_mb: positive("build_memory_mb", l.build_memory_mb, 2048)?,
            concurrent_builds: positive("concurrent_builds", l.concurrent_builds, 1)?,
            health_timeout_secs: positive("health_timeout_secs", l.health_timeout_secs, 30)?,
            drain_secs: l.drain_secs.unwrap_or(5),
            proxy_connect_timeout_secs: positive("proxy_connect_timeout_secs", l.proxy_connect_timeout_secs, 5)?,
            proxy_response_timeout_secs: positive("proxy_response_timeout_secs", l.proxy_response_timeout_secs, 60)?,
            proxy_idle_timeout_secs: positive("proxy_idle_timeout_secs", l.proxy_idle_timeout_secs, 90)?,
            proxy_workers: match l.proxy_workers.unwrap_or(0) {
                n @ 0..=1024 => n,
                n => {
                    return Err(invalid(
                        "proxy_workers",
                        format!("{n} threads is more than 1024; 0 means one per core"),
                    ));
                }
            },
            hsts_max_age: l.hsts_max_age.unwrap_or(0),
            log_retention_days: positive("log_retention_days", l.log_retention_days, 7)?,
            log_retention_lines: positive("log_retention_lines", l.log_retention_lines, 100_000)?,
            access_log_sample: l.access_log_sample.unwrap_or(0),
            notify_webhooks: parse_webhooks(l.notify_webhook).map_err(|m| invalid("notify_webhook", m))?,
            notify_webhook_secret: match l.notify_webhook_secret.filter(|s| !s.is_empty()) {
                None => Secret::default(),
                Some(s) => match crate::domain::notification::signing_key(&s) {
                    Ok(_) => Secret(s),
                    Err(m) => return Err(invalid("notify_webhook_secret", m)),
                },
            },
            auto_image_node: image("auto_image_node", l.auto_image_node, "node:20-slim")?,
            auto_image_python: image("auto_image_python", l.auto_image_python, "python:3.12-slim")?,
            auto_image_go: image("auto_image_go", l.auto_image_go, "golang:1.22")?,
            auto_image_rust: image("auto_image_rust", l.auto_image_rust, "rust:1-slim")?,
            auto_image_runtime: image("auto_image_runtime", l.auto_image_runtime, "debian:bookworm-slim")?,
            auto_image_static: image("auto_image_static", l.auto_image_static, "nginx:alpine")?,
            database_image_postgresql: db_image("database_image_postgresql", l.database_image_postgresql, "postgres")?,
            database_image_mysql: db_image("database_image_mysql", l.database_image_mysql, "mysql")?,
            database_image_redis: db_image("database_image_redis", l.database_image_redis, "redis")?,
            database_image_mongo: db_image("database_image_mongo", l.database_image_mongo, "mongo")?,
            database_cpus: positive("database_cpus", l.database_cpus, 1)?,
            database_memory_mb: positive("database_memory_mb", l.database_memory_mb, 1024)?,
            backup_timeout_secs: positive("backup_timeout_secs", l.backup_timeout_secs, 3600)?,
            s3,
            data_dir,
        })
    }
}

/// Reads `BERTH_<KEY>` variables into a layer. Numbers are parsed as numbers, everything else is text.
fn env_layer(env: &BTreeMap<String, String>) -> Result<Layer, ConfigError> {
    let mut merged = Layer::default();
    let mut sources = BTreeMap::new();
    for key in Layer::KEYS {
        let var = format!("BERTH_{}", key.to_uppercase());
        let Some(value) = env.get(&var) else { continue };
        let v = match (value.parse::<i64>(), value.as_str()) {
            (Ok(n), _) => toml::Value::Integer(n),
            (_, "true") => toml::Value::Boolean(true),
            (_, "false") => toml::Value::Boolean(false),
            _ => toml::Value::String(value.clone()),
        };
        // A value that looks like a number or a boolean may still be meant as text (a numeric token, say).
        let typed = Layer::deserialize(toml::Table::from_iter([((*key).to_owned(), v)]));
        let as_text =
            || Layer::deserialize(toml::Table::from_iter([((*key).to_owned(), toml::Value::String(value.clone()))]));
        let one = typed.or_else(|e| as_text().map_err(|_| e)).map_err(|e| ConfigError::Invalid {
            key,
            source_name: var.clone(),
            message: if SECRET_KEYS.contains(key) {
                format!("(value not shown): {}", e.message())
            } else {
                format!("'{value}': {}", e.message())
            },
        })?;
        merged.merge(one, "environment", &mut sources);
    }
    Ok(merged)
}

/// `public_ip`: comma-separated IPv4/IPv6 addresses.
fn parse_ips(raw: Option<&str>) -> Result<Vec<std::net::IpAddr>, String> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("'{s}' is not an IP address like 203.0.113.7 or 2001:db8::7")))
        .collect()
}

/// `notify_webhook`: one URL or a list; one text may hold several separated by whitespace or commas (the
/// environment's form).
fn parse_webhooks(raw: Option<OneOrMany>) -> Result<Vec<WebhookUrl>, String> {
    let texts = match raw {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let mut urls = Vec::new();
    for url in texts.iter().flat_map(|t| t.split(|c: char| c == ',' || c.is_whitespace())).filter(|u| !u.is_empty()) {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        match host {
            Some(h) if !h.is_empty() && !h.contains('@') => urls.push(WebhookUrl(url.to_owned())),
            _ => {
                // Only the start: the rest of a webhook URL is often its token.
                let start: String = url.chars().take(12).collect();
                return Err(format!("'{start}…' is not a URL like https://hooks.example.com/berth"));
            }
        }
    }
    Ok(urls)
}

/// `dns_resolver`: `ip` (port 53) or `ip:port` (`[v6]:port`).
fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("'{s}' is not a DNS server address like 1.1.1.1 or 127.0.0.1:5353"))
}

fn default_data_dir() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        PathBuf::from("/var/lib/berth")
    } else {
        dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("berth")
    }
}

fn default_docker_host(env: &BTreeMap<String, String>) -> String {
    env.get("DOCKER_HOST").cloned().unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_printed_default_parses_to_the_defaults() {
        let layer: Layer = toml::from_str(DEFAULT_TOML).unwrap();
        let c = Config::validate(layer, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7080");
        assert_eq!(c.api_requests_per_minute, 600);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.public_url, "http://127.0.0.1:7080");
        assert_eq!(c.max_replicas, 10);
        assert!(!c.allow_local_repos);
        assert_eq!(c.base_domain, "localhost");
        assert_eq!(c.secret_key_file, c.data_dir.join("secret.key"));
    }

    #[test]
    fn booleans_and_paths_come_from_the_environment() {
        let c = Config::load(
            None,
            &env(&[("BERTH_ALLOW_LOCAL_REPOS", "true"), ("BERTH_SECRET_KEY_FILE", "/run/keys/berth.key")]),
            Layer::default(),
        )
        .unwrap();
        assert!(c.allow_local_repos);
        assert_eq!(c.secret_key_file, PathBuf::from("/run/keys/berth.key"));
        let e = Config::load(None, &env(&[("BERTH_BASE_DOMAIN", "not a domain")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("base_domain"), "{e}");
    }

    #[test]
    fn tls_keys_validate_and_the_token_is_never_printed() {
        let c = Config::load(None, &BTreeMap::new(), Layer::default()).unwrap();
        assert_eq!(c.tls, TlsMode::Acme);
        assert_eq!(c.acme_directory, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(c.dns_provider, DnsProviderKind::None);
        let vars = env(&[
            ("BERTH_TLS", "internal"),
            ("BERTH_DNS_PROVIDER", "cloudflare"),
            ("BERTH_CLOUDFLARE_API_TOKEN", "cf-secret-token"),
            ("BERTH_ACME_EMAIL", "ops@example.com"),
        ]);
        let flags = Layer { acme_directory: Some("https://acme.internal/dir".into()), ..Layer::default() };
        let c = Config::load(None, &vars, flags).unwrap();
        assert_eq!(c.tls, TlsMode::Internal);
        assert_eq!(c.dns_provider, DnsProviderKind::Cloudflare);
        assert_eq!(c.acme_directory, "https://acme.internal/dir");
        assert_eq!(c.acme_email.as_deref(), Some("ops@example.com"));
        assert!(!format!("{c:?}").contains("cf-secret-token"));

        let e = Config::load(None, &env(&[("BERTH_DNS_PROVIDER", "hook")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("dns_hook_command"), "{e}");
        let e = Config::load(None, &env(&[("BERTH_TLS", "maybe")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("tls (from environment)"), "{e}");
        let flags = Layer { acme_ca_root: Some(PathBuf::from("/nonexistent/root.pem")), ..Layer::default() };
        let e = Config::load(None, &BTreeMap::new(), flags).unwrap_err();
        assert!(e.to_string().contains("acme_ca_root (from command line)"), "{e}");
    }

    #[test]
    fn notification_webhooks_come_as_a_list_or_separated_text_and_stay_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "notify_webhook = [\"https://a.example.com/hook/tok1\", \"http://10.0.0.2:9000/x\"]\n")
            .unwrap();
        let c = Config::load(Some(&file), &BTreeMap::new(), Layer::default()).unwrap();
        let urls: Vec<&str> = c.notify_webhooks.iter().map(|u| u.0.as_str()).collect();
        assert_eq!(urls, ["https://a.example.com/hook/tok1", "http://10.0.0.2:9000/x"]);
        assert_eq!(c.notify_webhooks[1].origin(), "http://10.0.0.2:9000");
        let vars = env(&[
            ("BERTH_NOTIFY_WEBHOOK", "https://discord.com/api/webhooks/1/secret-token, https://b.example.com"),
            ("BERTH_NOTIFY_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ]);
        let c = Config::load(Some(&file), &vars, Layer::default()).unwrap();
        assert_eq!(c.notify_webhooks.len(), 2);
        assert_eq!(c.notify_webhooks[1].origin(), "https://b.example.com");
        let printed = format!("{c:?}");
        assert!(!printed.contains("secret-token") && !printed.contains("MfKQ9r8"), "{printed}");
        assert!(printed.contains("https://discord.com/…"), "{printed}");

        let e = Config::load(None, &env(&[("BERTH_NOTIFY_WEBHOOK", "ftp://x/secret-token")]), Layer::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify_webhook (from environment)") && !e.contains("secret-token"), "{e}");
        let e = Config::load(None, &env(&[("BERTH_NOTIFY_WEBHOOK_SECRET", "short")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("notify_webhook_secret"), "{e}");
        assert!(!e.to_string().contains("short'"), "the secret itself is not quoted: {e}");
        let c = Config::load(None, &BTreeMap::new(), Layer::default()).unwrap();
        assert!(c.notify_webhooks.is_empty() && c.notify_webhook_secret.0.is_empty());
    }

    #[test]
    fn the_s3_target_layers_like_other_keys_and_its_secret_is_never_printed() {
        assert_eq!(Config::load(None, &BTreeMap::new(), Layer::default()).unwrap().s3, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "s3_bucket = \"from-file\"\ns3_endpoint = \"http://127.0.0.1:9000\"\n").unwrap();
        // A secret of digits only is still text, and never shows in the config's Debug output.
        let vars = env(&[
            ("BERTH_S3_BUCKET", "from-env"),
            ("BERTH_S3_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("BERTH_S3_SECRET_ACCESS_KEY", "8675309123"),
        ]);
        let flags = Layer { s3_prefix: Some("flagged".into()), ..Layer::default() };
        let c = Config::load(Some(&file), &vars, flags).unwrap();
        let s3 = c.s3.clone().unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.endpoint.as_str(), s3.prefix.as_str(), s3.addressing),
            ("from-env", "http://127.0.0.1:9000", "flagged", Addressing::Path)
        );
        assert_eq!(s3.secret_access_key.0, "8675309123");
        assert!(!format!("{c:?}").contains("8675309123"));
        let e = Config::load(Some(&file), &BTreeMap::new(), Layer::default()).unwrap_err().to_string();
        assert!(e.starts_with("s3_access_key_id (from defaults): must be set"), "{e}");
        let e = Config::load(None, &env(&[("BERTH_S3_ENDPOINT", "https://s3.example.com")]), Layer::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3_bucket") && e.contains("s3_endpoint"), "{e}");
        let e = Config::load(Some(&file), &env(&[("BERTH_S3_ADDRESSING", "dns")]), Layer::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s3_addressing (from environment)"), "{e}");
    }

    #[test]
    fn proxy_workers_default_to_one_per_core_and_are_bounded() {
        assert_eq!(Config::load(None, &BTreeMap::new(), Layer::default()).unwrap().proxy_workers, 0);
        let c = Config::load(None, &env(&[("BERTH_PROXY_WORKERS", "3")]), Layer::default()).unwrap();
        assert_eq!(c.proxy_workers, 3);
        let e = Config::load(None, &env(&[("BERTH_PROXY_WORKERS", "5000")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("proxy_workers (from environment)"), "{e}");
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1000\"\napi_requests_per_minute = 5\nlog_format = \"json\"\n")
            .unwrap();
        let flags = Layer { listen: Some("127.0.0.1:3000".into()), ..Layer::default() };
        let c = Config::load(
            Some(&file),
            &env(&[("BERTH_LISTEN", "127.0.0.1:2000"), ("BERTH_API_REQUESTS_PER_MINUTE", "7")]),
            flags,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.api_requests_per_minute, 7);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.docker_host, "unix:///var/run/docker.sock");
        let c = Config::load(Some(&file), &env(&[("DOCKER_HOST", "tcp://10.0.0.1:2375")]), Layer::default()).unwrap();
        assert_eq!(c.listen.port(), 1000);
        assert_eq!(c.docker_host, "tcp://10.0.0.1:2375");
    }

    #[test]
    fn auto_builder_images_default_and_come_from_the_environment() {
        let c =
            Config::load(None, &env(&[("BERTH_AUTO_IMAGE_PYTHON", "registry.local/python:3.12")]), Layer::default())
                .unwrap();
        assert_eq!(c.auto_image_python, "registry.local/python:3.12");
        assert_eq!((c.auto_image_node.as_str(), c.auto_image_static.as_str()), ("node:20-slim", "nginx:alpine"));
        let defaults = Config::for_data_dir(PathBuf::from("/tmp/x"));
        assert_eq!((defaults.auto_image_go, defaults.auto_image_rust), (c.auto_image_go, c.auto_image_rust));
        assert_eq!(defaults.auto_image_runtime, c.auto_image_runtime);
        for bad in ["", "Not An Image"] {
            let e = Config::load(None, &env(&[("BERTH_AUTO_IMAGE_STATIC", bad)]), Layer::default()).unwrap_err();
            assert!(e.to_string().contains("auto_image_static (from environment)"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key_and_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
        let e = Config::load(Some(&file), &BTreeMap::new(), Layer::default()).unwrap_err().to_string();
        assert!(e.contains("listen") && e.contains("berth.toml") && e.contains("nowhere"), "{e}");

        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&file), &BTreeMap::new(), Layer::default()).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");

        let e =
            Config::load(None, &env(&[("BERTH_MAX_BODY_BYTES", "lots")]), Layer::default()).unwrap_err().to_string();
        assert!(e.contains("BERTH_MAX_BODY_BYTES"), "{e}");

        let e = Config::load(None, &env(&[("BERTH_LOG_FORMAT", "xml")]), Layer::default()).unwrap_err().to_string();
        assert!(e.contains("log_format (from environment)"), "{e}");

        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            Config::load(Some(&missing), &BTreeMap::new(), Layer::default()),
            Err(ConfigError::Read { .. })
        ));
    }
}
