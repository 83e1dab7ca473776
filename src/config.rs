//! Configuration: defaults, then a TOML file, then `BERTH_*` environment variables, then flags.
//! Validated once at startup into [`Config`]; an error names the key and the layer it came from.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
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
    /// Longest a build may run.
    pub build_timeout_secs: u32,
    /// Memory a build may use, in MiB.
    pub build_memory_mb: u32,
    /// How long new replicas have to become healthy.
    pub health_timeout_secs: u32,
    /// How long old replicas keep running after traffic moved away, for in-flight requests.
    pub drain_secs: u32,
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
    build_timeout_secs: u32,
    build_memory_mb: u32,
    health_timeout_secs: u32,
    drain_secs: u32,
}

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

# Longest a build may run, in seconds, and the memory it may use, in MiB.
build_timeout_secs = 900
build_memory_mb = 2048

# How long new replicas have to accept connections (and pass health_check_path) before a deploy fails.
health_timeout_secs = 30

# How long old replicas keep running after traffic switched to the new ones.
drain_secs = 5
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
            build_timeout_secs: 900,
            build_memory_mb: 2048,
            health_timeout_secs: 30,
            drain_secs: 5,
            data_dir,
        }
    }

    /// The database file inside the data dir.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("berth.db")
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
        if base_domain.len() > 200 || !base_domain.split('.').all(label_ok) {
            return Err(invalid("base_domain", format!("'{base_domain}' is not a domain name like apps.example.com")));
        }
        let max_replicas = l.max_replicas.unwrap_or(10);
        if max_replicas > 1000 {
            return Err(invalid("max_replicas", "must be at most 1000".into()));
        }

        Ok(Config {
            listen,
            http_listen,
            https_listen,
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
            build_timeout_secs: positive("build_timeout_secs", l.build_timeout_secs, 900)?,
            build_memory_mb: positive("build_memory_mb", l.build_memory_mb, 2048)?,
            health_timeout_secs: positive("health_timeout_secs", l.health_timeout_secs, 30)?,
            drain_secs: l.drain_secs.unwrap_or(5),
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
        let table = toml::Table::from_iter([((*key).to_owned(), v)]);
        let one = Layer::deserialize(table).map_err(|e| ConfigError::Invalid {
            key,
            source_name: var.clone(),
            message: format!("'{value}': {}", e.message()),
        })?;
        merged.merge(one, "environment", &mut sources);
    }
    Ok(merged)
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
