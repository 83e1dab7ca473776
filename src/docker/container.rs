//! Containers: run (create + start), inspect, stop, remove, list by label, and read logs.
//!
//! Every container Berth runs has an init process as PID 1 (so stop signals reach the app and stops are fast),
//! is never privileged and never gets the Docker socket. Apps never publish host ports (Berth's proxy reaches them
//! through their bridge network address); only a database the user made `public` publishes its one port.

use super::{DockerClient, DockerError, is_status, labels};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// What to run. Construct with [`ContainerSpec::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The container's name; must not be taken (an existing container is a [`DockerError::Conflict`]).
    pub name: String,
    /// The image (tag or id); it must exist locally (nothing is pulled).
    pub image: String,
    /// Environment as `KEY=VALUE`.
    pub env: Vec<String>,
    /// Replaces the image's `CMD` when given.
    pub cmd: Option<Vec<String>>,
    /// Labels on the container, in addition to `berth.managed=true`.
    pub labels: labels::Labels,
    /// The network to attach to (instead of the default bridge).
    pub network: Option<String>,
    /// DNS names the container answers to on `network`.
    pub network_aliases: Vec<String>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// `(volume name, mount path)` pairs; each volume must exist already (see [`DockerClient::ensure_volume`]).
    pub volumes: Vec<(String, String)>,
    /// Have the engine restart the container whenever it exits with a non-zero code.
    pub restart_on_failure: bool,
    /// Have the engine restart the container whenever it exits and when the engine starts, until it is stopped
    /// on purpose (databases). Wins over `restart_on_failure`.
    pub restart_unless_stopped: bool,
    /// `(container port, host port)`: publish that TCP port on every host address (public databases only).
    pub publish: Option<(u16, u16)>,
}

impl ContainerSpec {
    /// A spec running `image` as `name` with the image's command, no limits, volumes or network.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            env: Vec::new(),
            cmd: None,
            labels: labels::Labels::new(),
            network: None,
            network_aliases: Vec::new(),
            nano_cpus: None,
            memory_bytes: None,
            volumes: Vec::new(),
            restart_on_failure: false,
            restart_unless_stopped: false,
            publish: None,
        }
    }
}

/// A container as the engine reports it at the moment of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The engine's full container id.
    pub id: String,
    /// The name without the engine's leading `/`.
    pub name: String,
    /// True while its process runs.
    pub running: bool,
    /// The engine's status word: `created`, `running`, `restarting`, `exited`, `dead`, …
    pub status: String,
    /// The exit code, once the container has exited (`None` while created or running).
    pub exit_code: Option<i64>,
    /// How often the engine restarted it under its restart policy.
    pub restart_count: i64,
    /// When it last started (RFC 3339), if ever.
    pub started_at: Option<String>,
    /// Its address on its first network (by name); for a Berth app that is the network it was run on.
    pub ip: Option<IpAddr>,
    /// Its address on each network it is attached to.
    pub networks: BTreeMap<String, IpAddr>,
    /// All its labels, including `berth.managed`.
    pub labels: labels::Labels,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output (also a TTY's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line a container wrote, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: LogStream,
    /// The line's text (invalid UTF-8 replaced), without the engine's timestamp.
    pub text: String,
    /// The engine's timestamp for the line (RFC 3339 with nanoseconds).
    pub time: Option<String>,
}

/// How much longer than the stop grace period the engine gets to answer a stop request.
const STOP_ANSWER_MARGIN: Duration = Duration::from_secs(30);

impl DockerClient {
    /// Creates and starts a container from `spec` and returns its id. The container always runs with an init
    /// process, unprivileged, without published ports. A container that already has `spec.name` is never
    /// replaced: [`DockerError::Conflict`]. A missing image or volume is [`DockerError::NotFound`]. If the start
    /// fails, the just-created container is removed again, so a failed run leaves nothing behind.
    pub async fn run_container(&self, spec: ContainerSpec) -> Result<String, DockerError> {
        let docker = self.client().await?;
        for (volume, _) in &spec.volumes {
            match docker.inspect_volume(volume).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => return Err(DockerError::NotFound { what: format!("volume {volume}") }),
                Err(e) => return Err(e.into()),
            }
        }
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = match docker.create_container(Some(options), create_body(&spec)).await {
            Ok(created) => created,
            Err(e) if is_status(&e, 409) => {
                return Err(DockerError::Conflict {
                    message: format!("a container named {} exists already", spec.name),
                });
            }
            Err(e) if is_status(&e, 404) => {
                return Err(DockerError::NotFound { what: format!("image {} (or network)", spec.image) });
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = docker.start_container(&created.id, None).await {
            if let Err(cleanup) = self.remove_container(&created.id).await {
                tracing::warn!(container = %created.id, error = %cleanup, "removing a container that failed to start");
            }
            return Err(e.into());
        }
        Ok(created.id)
    }

    /// The container's current state, or `None` when no container has that id or name.
    pub async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>, DockerError> {
        let docker = self.client().await?;
        match docker.inspect_container(id_or_name, None).await {
            Ok(inspected) => Ok(Some(state_of(inspected))),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts an existing, stopped container. Starting a running one succeeds; a missing one is
    /// [`DockerError::NotFound`].
    pub async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        match docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 304) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(DockerError::NotFound { what: format!("container {id}") }),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the container to stop (SIGTERM to its init, which forwards it), killing it after `grace`. Stopping
    /// a stopped or missing container succeeds.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), DockerError> {
        let docker = self.client().await?.with_timeout(grace + STOP_ANSWER_MARGIN);
        let secs = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(secs).build();
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 304) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the container, killing it if it runs. Named volumes are always kept. Removing a missing container
    /// (or one already being removed) succeeds.
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).v(false).build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) if is_status(&e, 409) && e.to_string().contains("already in progress") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Berth-managed containers carrying every `key=value` label in `filters`, sorted by name; stopped ones only
    /// when `include_stopped`. Containers removed while listing are left out.
    pub async fn list_containers(
        &self,
        filters: &[(&str, &str)],
        include_stopped: bool,
    ) -> Result<Vec<ContainerState>, DockerError> {
        let docker = self.client().await?;
        let options = ListContainersOptionsBuilder::default()
            .all(include_stopped)
            .filters(&labels::label_filter(filters))
            .build();
        let summaries = docker.list_containers(Some(options)).await?;
        let mut states = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|s| s.id) {
            if let Some(state) = self.inspect_container(&id).await? {
                states.push(state);
            }
        }
        states.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(states)
    }

    /// The container's output so far (stdout and stderr, with the engine's timestamps): the last `tail` lines
    /// when given, only lines since the Unix time `since` when given. A missing container is
    /// [`DockerError::NotFound`].
    pub async fn container_logs(
        &self,
        id: &str,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> Result<Vec<LogLine>, DockerError> {
        let docker = self.client().await?;
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let mut options =
            LogsOptionsBuilder::default().follow(false).stdout(true).stderr(true).timestamps(true).tail(&tail);
        if let Some(since) = since {
            options = options.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        let mut stream = docker.logs(id, Some(options.build()));
        let mut lines = Vec::new();
        while let Some(item) = stream.next().await {
            let (stream, bytes) = match item {
                Ok(bollard::container::LogOutput::StdOut { message }) => (LogStream::Stdout, message),
                Ok(bollard::container::LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(bollard::container::LogOutput::Console { message }) => (LogStream::Stdout, message),
                Ok(bollard::container::LogOutput::StdIn { .. }) => continue,
                Err(e) if is_status(&e, 404) => return Err(DockerError::NotFound { what: format!("container {id}") }),
                Err(e) => return Err(e.into()),
            };
            for raw in String::from_utf8_lossy(&bytes).split('\n') {
                let raw = raw.trim_end_matches('\r');
                if raw.is_empty() {
                    continue;
                }
                lines.push(split_timestamp(stream, raw));
            }
        }
        Ok(lines)
    }
}

/// Splits the engine's `2024-01-01T00:00:00.000000000Z text` into time and text.
pub(super) fn split_timestamp(stream: LogStream, raw: &str) -> LogLine {
    match raw.split_once(' ') {
        Some((time, text)) if looks_like_timestamp(time) => {
            LogLine { stream, text: text.to_owned(), time: Some(time.to_owned()) }
        }
        _ if looks_like_timestamp(raw) => LogLine { stream, text: String::new(), time: Some(raw.to_owned()) },
        _ => LogLine { stream, text: raw.to_owned(), time: None },
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.as_bytes().get(10) == Some(&b'T') && s.ends_with('Z')
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mounts = spec
        .volumes
        .iter()
        .map(|(volume, path)| Mount {
            typ: Some(MountType::VOLUME),
            source: Some(volume.clone()),
            target: Some(path.clone()),
            read_only: Some(false),
            ..Default::default()
        })
        .collect();
    let restart = if spec.restart_unless_stopped {
        RestartPolicyNameEnum::UNLESS_STOPPED
    } else if spec.restart_on_failure {
        RestartPolicyNameEnum::ON_FAILURE
    } else {
        RestartPolicyNameEnum::NO
    };
    let port_bindings = spec.publish.map(|(container, host)| {
        HashMap::from([(
            format!("{container}/tcp"),
            Some(vec![PortBinding { host_ip: Some("0.0.0.0".to_owned()), host_port: Some(host.to_string()) }]),
        )])
    });
    let host_config = HostConfig {
        init: Some(true),
        privileged: Some(false),
        nano_cpus: spec.nano_cpus,
        memory: spec.memory_bytes,
        mounts: Some(mounts),
        restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: None }),
        network_mode: spec.network.clone(),
        port_bindings,
        ..Default::default()
    };
    let networking_config = spec.network.as_ref().map(|network| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.clone(),
            EndpointSettings { aliases: Some(spec.network_aliases.clone()), ..Default::default() },
        )])),
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.clone()),
        cmd: spec.cmd.clone(),
        labels: Some(labels::to_engine(&spec.labels)),
        exposed_ports: spec.publish.map(|(container, _)| vec![format!("{container}/tcp")]),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

fn state_of(c: ContainerInspectResponse) -> ContainerState {
    let state = c.state.unwrap_or_default();
    let status = state.status.map(|s| s.to_string()).unwrap_or_default();
    let exited = matches!(status.as_str(), "exited" | "dead");
    let networks: BTreeMap<String, IpAddr> = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, endpoint)| Some((name, endpoint.ip_address?.parse().ok()?)))
        .collect();
    ContainerState {
        id: c.id.unwrap_or_default(),
        name: c.name.unwrap_or_default().trim_start_matches('/').to_owned(),
        running: state.running.unwrap_or(false),
        exit_code: if exited { state.exit_code } else { None },
        status,
        restart_count: c.restart_count.unwrap_or(0),
        started_at: state.started_at.filter(|t| !t.starts_with("0001-")),
        ip: networks.values().next().copied(),
        networks,
        labels: labels::from_engine(c.config.and_then(|cfg| cfg.labels)),
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn log_lines_split_off_the_engine_timestamp() {
        let l = split_timestamp(LogStream::Stdout, "2024-05-01T10:00:00.123456789Z hello world");
        assert_eq!(l.text, "hello world");
        assert_eq!(l.time.as_deref(), Some("2024-05-01T10:00:00.123456789Z"));
        let l = split_timestamp(LogStream::Stderr, "no timestamp here");
        assert_eq!((l.text.as_str(), l.time), ("no timestamp here", None));
    }

    #[test]
    fn created_containers_are_never_privileged_and_always_have_init() {
        let mut spec = ContainerSpec::new("n", "i");
        spec.network = Some("net".into());
        spec.network_aliases = vec!["web".into()];
        let body = create_body(&spec);
        let hc = body.host_config.unwrap();
        assert_eq!((hc.init, hc.privileged), (Some(true), Some(false)));
        assert!(hc.binds.is_none() && hc.port_bindings.is_none() && hc.publish_all_ports.is_none());
        assert_eq!(body.labels.unwrap()["berth.managed"], "true");
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(eps["net"].aliases.as_deref(), Some(&["web".to_owned()][..]));
    }
}
