//! Projects as described before they run: resources, build and runtime settings, volumes. Pure rules only.

use super::{Invalid, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A project: one app of a workspace, built from git or run from an image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub name: String,
    pub slug: String,
    /// `pending` until its first deployment; later `building`, `running`, `stopped`, `failed`.
    pub status: String,
    pub port: u16,
    pub replicas: u32,
    /// Cores, as a decimal string ("0.5").
    pub cpu: String,
    /// GiB, as a decimal string ("0.5").
    pub ram: String,
    /// A prebuilt image to run instead of building from git.
    pub image: Option<String>,
    pub template_name: Option<String>,
    pub build: BuildConfig,
    pub runtime: RuntimeConfig,
    pub volumes: Vec<Volume>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a project's image is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// Detect the stack and generate a Dockerfile.
    #[default]
    Auto,
    /// Build the repository's Dockerfile.
    Dockerfile,
    /// Run `image`; nothing is built.
    Image,
}

/// Build settings (`PATCH …/projects/:p {build: {…}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildConfig {
    pub builder: Builder,
    /// Directory inside the repository to build from (relative, no `..`); empty is the repository root.
    pub root_directory: String,
    /// Dockerfile path relative to `root_directory` (default `Dockerfile`).
    pub dockerfile_path: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
}

/// Runtime settings (`PATCH …/projects/:p {runtime: {…}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuntimeConfig {
    /// When set, a new replica must answer 2xx/3xx here before it gets traffic.
    pub health_check_path: Option<String>,
    /// Overrides the image's command.
    pub start_command: Option<String>,
}

/// A named volume mounted into every replica; it survives redeploys, restarts and rollbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub mount_path: String,
}

/// An environment of a project: `production` always exists; others (`staging`, …) have their own branch and
/// variable overrides.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Environment {
    pub id: String,
    pub name: String,
    /// The branch this environment deploys; `null` means the git connection's branch.
    pub branch: Option<String>,
    pub created_at: Timestamp,
}

/// The environment every un-scoped route means.
pub const PRODUCTION: &str = "production";

/// Limits a project's resources are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_replicas: u32,
    /// The Docker host's cores.
    pub host_cpus: f64,
    /// The Docker host's memory in GiB.
    pub host_ram_gib: f64,
}

pub fn validate_port(port: u32) -> Result<u16, Invalid> {
    u16::try_from(port).ok().filter(|p| *p >= 1).ok_or_else(|| {
        Invalid::new("port", format!("{port} is not a TCP port; use 1 to 65535 (the port your app listens on)"))
    })
}

pub fn validate_replicas(replicas: u32, limits: &Limits) -> Result<u32, Invalid> {
    if replicas > limits.max_replicas {
        return Err(Invalid::new(
            "replicas",
            format!("{replicas} is more than the maximum of {} (config max_replicas)", limits.max_replicas),
        ));
    }
    Ok(replicas)
}

/// Parses a decimal amount such as `0.5` or `2` (at most 3 decimals) into thousandths.
fn parse_milli(field: &'static str, s: &str, unit: &str) -> Result<u64, Invalid> {
    let bad = || Invalid::new(field, format!("'{s}' is not a decimal number of {unit} like \"0.5\" or \"2\""));
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() || int.len() > 6 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) || (t.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let int: u64 = int.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    Ok(int * 1000 + frac)
}

/// Formats thousandths without trailing zeros: 500 → "0.5", 2000 → "2".
fn format_milli(m: u64) -> String {
    let (int, frac) = (m / 1000, m % 1000);
    if frac == 0 { int.to_string() } else { format!("{int}.{}", format!("{frac:03}").trim_end_matches('0')) }
}

/// CPU cores: from 0.1 up to the host's cores. Returns the normalised decimal string.
pub fn validate_cpu(s: &str, limits: &Limits) -> Result<String, Invalid> {
    let m = parse_milli("cpu", s, "cores")?;
    let max = (limits.host_cpus * 1000.0).floor() as u64;
    if m < 100 {
        return Err(Invalid::new("cpu", format!("{s} is below the minimum of 0.1 cores")));
    }
    if m > max {
        return Err(Invalid::new("cpu", format!("{s} is more than this host's {} cores", format_milli(max))));
    }
    Ok(format_milli(m))
}

/// Memory in GiB: from 0.064 up to the host's memory. Returns the normalised decimal string.
pub fn validate_ram(s: &str, limits: &Limits) -> Result<String, Invalid> {
    let m = parse_milli("ram", s, "GiB")?;
    let max = (limits.host_ram_gib * 1000.0).floor() as u64;
    if m < 64 {
        return Err(Invalid::new("ram", format!("{s} is below the minimum of 0.064 GiB (64 MiB)")));
    }
    if m > max {
        return Err(Invalid::new("ram", format!("{s} GiB is more than this host's {} GiB", format_milli(max))));
    }
    Ok(format_milli(m))
}

/// A Docker image reference such as `nginx:1.27`, `ghcr.io/acme/app@sha256:…`. Checked loosely: no spaces,
/// lowercase repository, at most 255 characters.
pub fn validate_image(s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    let repo = t.split(['@']).next().unwrap_or("");
    let repo_no_tag = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    let ok = !t.is_empty()
        && t.len() <= 255
        && !t.starts_with('-')
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && !repo_no_tag.is_empty()
        && repo_no_tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Invalid::new("image", format!("'{s}' is not an image reference like nginx:1.27 or ghcr.io/acme/app:v2")))
    }
}

/// A path inside the repository: relative, `/`-separated, without `..`, `.` segments or empty parts. Returns it
/// normalised (no leading `./`, no trailing `/`); empty means the repository root.
pub fn validate_repo_path(field: &'static str, s: &str) -> Result<String, Invalid> {
    let t = s.trim().trim_start_matches("./").trim_end_matches('/');
    if t.is_empty() || t == "." {
        return Ok(String::new());
    }
    if t.starts_with('/') {
        return Err(Invalid::new(field, format!("'{s}' must be relative to the repository root, e.g. apps/web")));
    }
    if t.len() > 255 || t.chars().any(|c| c.is_control() || c == '\\') {
        return Err(Invalid::new(field, format!("'{s}' is not a usable path")));
    }
    for part in t.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(Invalid::new(field, format!("'{s}' must not contain '..', '.' or empty segments")));
        }
    }
    Ok(t.to_owned())
}

/// A command line (install, build, start): at most 4096 characters, no NUL or newlines. Empty means unset.
pub fn validate_command(field: &'static str, s: &str) -> Result<Option<String>, Invalid> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() > 4096 {
        return Err(Invalid::new(field, "must be at most 4096 characters long"));
    }
    if t.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Invalid::new(field, "must be one line without control characters"));
    }
    Ok(Some(t.to_owned()))
}

/// An HTTP path that starts with `/`. Empty means unset.
pub fn validate_health_path(s: &str) -> Result<Option<String>, Invalid> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if !t.starts_with('/') || t.len() > 1024 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new("runtime.health_check_path", format!("'{s}' must be a path like /healthz")));
    }
    Ok(Some(t.to_owned()))
}

/// Volumes: names `^[a-z0-9][a-z0-9_.-]{0,62}$`, absolute mount paths without `..`, neither repeated, at most 20.
pub fn validate_volumes(volumes: &[Volume]) -> Result<Vec<Volume>, Invalid> {
    if volumes.len() > 20 {
        return Err(Invalid::new("volumes", "at most 20 volumes per project"));
    }
    let mut out: Vec<Volume> = Vec::with_capacity(volumes.len());
    for v in volumes {
        let name = v.name.trim();
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !name_ok {
            return Err(Invalid::new(
                "volumes.name",
                format!(
                    "'{name}' must be 1–63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit"
                ),
            ));
        }
        let path = v.mount_path.trim().trim_end_matches('/');
        if !v.mount_path.trim().starts_with('/') {
            return Err(Invalid::new(
                "volumes.mount_path",
                format!("'{}' must be an absolute path like /data", v.mount_path),
            ));
        }
        if path.is_empty() {
            return Err(Invalid::new("volumes.mount_path", "'/' cannot be a mount path; use a directory like /data"));
        }
        if path.len() > 1024
            || path.chars().any(|c| c.is_control() || c == ':' || c == ',')
            || path.split('/').skip(1).any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Invalid::new(
                "volumes.mount_path",
                format!("'{}' must be a clean absolute path without '..', '//', ':' or ','", v.mount_path),
            ));
        }
        if out.iter().any(|o| o.mount_path == path) {
            return Err(Invalid::new(
                "volumes.mount_path",
                format!("'{path}' is mounted twice; each volume needs its own path"),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(Invalid::new("volumes.name", format!("'{name}' is used twice; volume names must be unique")));
        }
        out.push(Volume { name: name.to_owned(), mount_path: path.to_owned() });
    }
    Ok(out)
}

/// An environment name: like a slug, 1–40 characters.
pub fn validate_environment_name(s: &str) -> Result<String, Invalid> {
    super::Slug::parse(s.trim())
        .map(|s| s.to_string())
        .map_err(|m| Invalid::new("name", format!("environment name '{s}' {m}")))
}

/// A git branch name, checked against git's rules that matter here (no spaces, `..`, leading `-`, control
/// characters, `~^:?*[\`).
pub fn validate_branch(field: &'static str, s: &str) -> Result<String, Invalid> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.len() <= 255
        && !t.starts_with('-')
        && !t.starts_with('/')
        && !t.ends_with('/')
        && !t.ends_with(".lock")
        && !t.contains("..")
        && !t.contains("//")
        && !t.contains("@{")
        && !t.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if ok { Ok(t.to_owned()) } else { Err(Invalid::new(field, format!("'{s}' is not a valid branch name"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits { max_replicas: 10, host_cpus: 2.0, host_ram_gib: 4.0 };

    #[test]
    fn resources() {
        assert_eq!(validate_cpu("0.5", &L).unwrap(), "0.5");
        assert_eq!(validate_cpu("2", &L).unwrap(), "2");
        assert_eq!(validate_cpu("0.250", &L).unwrap(), "0.25");
        assert!(validate_cpu("0.05", &L).unwrap_err().message.contains("0.1"));
        assert!(validate_cpu("3", &L).unwrap_err().message.contains("2 cores"));
        for bad in ["", "abc", "-1", "1.", ".5", "1.2345", "1e3"] {
            assert!(validate_cpu(bad, &L).is_err(), "{bad}");
        }
        assert_eq!(validate_ram("0.064", &L).unwrap(), "0.064");
        assert!(validate_ram("0.063", &L).is_err());
        assert!(validate_ram("5", &L).unwrap_err().message.contains("4 GiB"));
        assert!(validate_replicas(11, &L).is_err());
        assert_eq!(validate_replicas(0, &L).unwrap(), 0);
        assert!(validate_port(0).is_err());
        assert!(validate_port(65536).is_err());
        assert_eq!(validate_port(3000).unwrap(), 3000);
    }

    #[test]
    fn paths_and_volumes() {
        assert_eq!(validate_repo_path("root_directory", "./apps/web/").unwrap(), "apps/web");
        assert_eq!(validate_repo_path("root_directory", "").unwrap(), "");
        for bad in ["/abs", "a/../b", "..", "a//b", "a/./b"] {
            assert!(validate_repo_path("root_directory", bad).is_err(), "{bad}");
        }
        let v = |n: &str, p: &str| Volume { name: n.into(), mount_path: p.into() };
        assert_eq!(validate_volumes(&[v("data", "/data/")]).unwrap(), vec![v("data", "/data")]);
        assert!(validate_volumes(&[v("data", "data")]).unwrap_err().message.contains("absolute"));
        assert!(validate_volumes(&[v("Data", "/data")]).is_err());
        assert!(validate_volumes(&[v("a", "/x"), v("b", "/x")]).unwrap_err().message.contains("twice"));
        assert!(validate_volumes(&[v("a", "/x"), v("a", "/y")]).is_err());
        assert!(validate_volumes(&[v("a", "/x/../etc")]).is_err());
        assert!(validate_volumes(&[v("a", "/")]).is_err());
    }

    #[test]
    fn images_branches_commands() {
        assert!(validate_image("nginx:1.27").is_ok());
        assert!(validate_image("localhost:5000/acme/app:v2").is_ok());
        assert!(validate_image("ghcr.io/acme/app@sha256:abc").is_ok());
        assert!(validate_image("Nginx").is_err());
        assert!(validate_image("a b").is_err());
        assert!(validate_image("-x").is_err());
        assert!(validate_branch("branch", "feature/x-1").is_ok());
        for bad in ["-x", "a..b", "a b", "x.lock", "a:b", ""] {
            assert!(validate_branch("branch", bad).is_err(), "{bad}");
        }
        assert_eq!(validate_command("start_command", "  ").unwrap(), None);
        assert!(validate_command("start_command", "a\nb").is_err());
        assert!(validate_health_path("healthz").is_err());
        assert_eq!(validate_health_path("/healthz").unwrap().as_deref(), Some("/healthz"));
    }
}
