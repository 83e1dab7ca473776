//! The command line: `serve`, `healthcheck`, `config print-default`, and `admin` tools that work on the data
//! dir directly (also while the server runs).

use crate::app::{self, Listeners};
use crate::config::{Config, DEFAULT_TOML, Layer, LogFormat};
use crate::domain::Role;
use crate::services::{NewKey, Services};
use crate::store::Store;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "A self-hosted PaaS in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: API and dashboard, and (in later versions) the proxy and deploy workers.
    Serve(ConfigArgs),
    /// Exit 0 when the configured server answers /api/health, 1 otherwise.
    Healthcheck(ConfigArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Administration on the data dir directly.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print an annotated example config file with every default.
    PrintDefault,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a user (the first one becomes instance administrator), optionally as owner of a workspace.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// Workspace slug: joined as owner, created when missing.
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Create an API key for a user in a workspace; prints the key as the last line of stdout.
    CreateKey {
        #[arg(long)]
        email: String,
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        name: String,
        /// owner, admin or member; defaults to the user's role.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Re-encrypt every secret (env var secrets, git tokens, deploy keys, webhook secrets) under a new key.
    /// The previous key is kept as <key file>.old (still read, never written); restart a running server so new
    /// values are sealed under the new key.
    RotateSecretKey {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Flags shared by every command that reads the configuration.
#[derive(Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// Config file (default /etc/berth/berth.toml when it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (default /var/lib/berth as root, else the XDG data dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// API and dashboard listener (default 127.0.0.1:7080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Proxy HTTP listener (default 0.0.0.0:80).
    #[arg(long)]
    pub http_listen: Option<String>,
    /// Proxy HTTPS listener (default 0.0.0.0:443).
    #[arg(long)]
    pub https_listen: Option<String>,
    /// Where HTTPS certificates come from: acme (default), internal or off.
    #[arg(long)]
    pub tls: Option<String>,
    /// ACME directory URL (default Let's Encrypt production).
    #[arg(long)]
    pub acme_directory: Option<String>,
    /// PEM root certificate trusted for the ACME directory's HTTPS (private or test CAs).
    #[arg(long)]
    pub acme_ca_root: Option<PathBuf>,
    /// Contact email given to the ACME CA.
    #[arg(long)]
    pub acme_email: Option<String>,
    /// Docker Engine address (default $DOCKER_HOST or unix:///var/run/docker.sock).
    #[arg(long)]
    pub docker_host: Option<String>,
    /// human or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// This server's public IP address (repeatable); custom domains must point at one. Detected when absent.
    #[arg(long = "public-ip")]
    pub public_ip: Vec<String>,
    /// The DNS server used to verify domains, `ip` or `ip:port` (default: the system's resolver).
    #[arg(long)]
    pub dns_resolver: Option<String>,
    /// A URL notifications are POSTed to (repeatable): failed backups, failing or expiring certificates.
    #[arg(long = "notify-webhook")]
    pub notify_webhook: Vec<String>,
    /// S3-compatible bucket every finished backup is also uploaded to (default: none, backups stay local).
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// The S3 service's URL without the bucket (default: AWS for --s3-region).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// The S3 signing region (default us-east-1; "auto" for R2).
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Object keys are <prefix>/<database id>/<file> (default berth).
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// path or virtual-host (default: virtual-host for AWS, path with --s3-endpoint).
    #[arg(long)]
    pub s3_addressing: Option<String>,
    /// The S3 access key's id.
    #[arg(long)]
    pub s3_access_key_id: Option<String>,
    /// A file holding the S3 secret access key (or set BERTH_S3_SECRET_ACCESS_KEY; there is no flag for the
    /// secret itself, since flags show in `ps`).
    #[arg(long)]
    pub s3_secret_access_key_file: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let flags = Layer {
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            http_listen: self.http_listen.clone(),
            https_listen: self.https_listen.clone(),
            tls: self.tls.clone(),
            acme_directory: self.acme_directory.clone(),
            acme_ca_root: self.acme_ca_root.clone(),
            acme_email: self.acme_email.clone(),
            docker_host: self.docker_host.clone(),
            log_format: self.log_format.clone(),
            public_ip: (!self.public_ip.is_empty()).then(|| self.public_ip.join(",")),
            dns_resolver: self.dns_resolver.clone(),
            notify_webhook: (!self.notify_webhook.is_empty())
                .then(|| crate::config::OneOrMany::Many(self.notify_webhook.clone())),
            s3_bucket: self.s3_bucket.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_region: self.s3_region.clone(),
            s3_prefix: self.s3_prefix.clone(),
            s3_addressing: self.s3_addressing.clone(),
            s3_access_key_id: self.s3_access_key_id.clone(),
            s3_secret_access_key_file: self.s3_secret_access_key_file.clone(),
            ..Layer::default()
        };
        Ok(Config::load(self.config.as_deref(), &env, flags)?)
    }
}

/// Runs a parsed command line; the exit code says whether it worked.
pub fn run(cli: Cli) -> ExitCode {
    abort_on_panic();
    let result = match cli.command {
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{DEFAULT_TOML}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => args.load().and_then(|c| runtime()?.block_on(serve(c))),
        Command::Healthcheck(args) => args.load().and_then(|c| runtime()?.block_on(healthcheck(c))),
        Command::Admin(cmd) => runtime().and_then(|rt| rt.block_on(admin(cmd))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes a panic anywhere end the process, as `panic = "abort"` would: the default hook prints the message and
/// where it happened, then the process aborts and systemd (`Restart=on-failure`) starts it again. Without this a
/// panic in a spawned task would end that task alone, and a background loop (renewals, backups, health checks)
/// could stop quietly while the server went on looking healthy. The release profile aborts anyway; this makes the
/// builds that unwind (tests, and the benchmarks' build, see `Cargo.toml`) behave the same.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("while starting the async runtime")
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    init_logging(config.log_format, "info");
    let config = Arc::new(config);
    let listeners = Listeners::bind(&config).await?;
    let handle = app::start(config, listeners).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("while installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
    handle.shutdown().await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(config: Config) -> anyhow::Result<ExitCode> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let url = format!("http://{addr}/api/health");
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            println!("healthy: {}", body["data"]["status"].as_str().unwrap_or("ok"));
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let args = match &cmd {
        AdminCommand::CreateUser { config, .. }
        | AdminCommand::CreateKey { config, .. }
        | AdminCommand::RotateSecretKey { config } => config.clone(),
    };
    let config = Arc::new(args.load()?);
    init_logging(config.log_format, "warn");
    let db_path = config.database_path();
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path)).await??;
    if let AdminCommand::RotateSecretKey { .. } = cmd {
        let r = crate::services::secrets::rotate(&store, &config.secret_key_file).await?;
        println!(
            "re-encrypted {} secret variables, {} git connections and {} databases' passwords: key {} → {}",
            r.variables, r.git_connections, r.databases, r.old_key_id, r.new_key_id
        );
        println!(
            "the previous key is kept as {}; restart berth serve, and back up the new key file with the database",
            crate::crypto::keyring::sibling(&config.secret_key_file, "old").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let docker = Arc::new(crate::docker::DockerClient::new(&config.docker_host));
    let secrets = crate::services::Secrets::load(&config.secret_key_file)
        .with_context(|| format!("while loading the secret key {}", config.secret_key_file.display()))?;
    let edge = crate::proxy::Proxy::new(crate::proxy::ProxyConfig::default());
    let services = Services::new(config, store, docker, secrets, edge);
    match cmd {
        AdminCommand::CreateUser { email, password, workspace, .. } => {
            let (user, ws) = services.create_user(&email, &password, workspace.as_deref()).await?;
            println!(
                "created user {} (id {}){}",
                user.email,
                user.id,
                if user.is_instance_admin { ", instance administrator" } else { "" }
            );
            if let Some(ws) = ws {
                println!("owner of workspace {}", ws.slug);
            }
        }
        AdminCommand::CreateKey { email, workspace, name, role, expires_in_days, .. } => {
            let role = match role.as_deref() {
                None => None,
                Some(r) => {
                    Some(Role::parse(r).ok_or_else(|| anyhow::anyhow!("--role '{r}' must be owner, admin or member"))?)
                }
            };
            let actor = services.cli_actor(&email).await?;
            let created = services.create_api_key(&actor, &workspace, NewKey { name, expires_in_days, role }).await?;
            eprintln!(
                "created API key '{}' ({}, role {}); it is shown only now:",
                created.api_key.name, created.api_key.id, created.api_key.role
            );
            println!("{}", created.key);
        }
        AdminCommand::RotateSecretKey { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::os::unix::process::ExitStatusExt;

    /// The child's part of [`a_panic_in_a_spawned_task_ends_the_process`]: with the hook installed, a panic in a
    /// task on the runtime `serve` uses. Exits 0 only if the process outlived the panic.
    fn panic_in_a_task() -> ! {
        super::abort_on_panic();
        let runtime = super::runtime().unwrap();
        runtime.block_on(async {
            let _ = tokio::spawn(async { panic!("a bug in a background loop") }).await;
        });
        std::process::exit(0)
    }

    #[test]
    fn a_panic_in_a_spawned_task_ends_the_process() {
        if std::env::var_os("BERTH_TEST_PANIC_CHILD").is_some() {
            panic_in_a_task();
        }
        // This test binary again, running only this test, as the child.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "cli::tests::a_panic_in_a_spawned_task_ends_the_process", "--nocapture"])
            .env("BERTH_TEST_PANIC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(nix::libc::SIGABRT), "the process went on after the panic: {stderr}");
        assert!(stderr.contains("a bug in a background loop"), "the panic was not reported: {stderr}");
    }
}
