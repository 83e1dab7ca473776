//! Detection: what a checked-out repository is and how to install, build and start it.
//!
//! Markers are checked in a fixed priority order — Dockerfile, Node (`package.json`), Python, Go, Rust, Procfile,
//! static `index.html` — and the first match decides; lower-priority markers that are also present are recorded as
//! evidence so the user can see why. Everything here is plain, bounded `std::fs` reading inside the chosen root:
//! no network, no process execution, symlinks leading outside the root are ignored and every file read is capped.

mod native;
mod node;
mod python;
mod repo;
#[cfg(test)]
mod tests;

use repo::Repo;
use serde::Serialize;
use std::path::Path;
use utoipa::ToSchema;

/// What a repository is, as far as Berth can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProjectType {
    /// A Dockerfile at the root: built as is, nothing else is inferred.
    Dockerfile,
    /// A `package.json` at the root.
    Node,
    /// `requirements.txt`, `pyproject.toml`, `Pipfile`, `setup.py` or `manage.py` at the root.
    Python,
    /// A `go.mod` at the root.
    Go,
    /// A `Cargo.toml` at the root.
    Rust,
    /// An `index.html` (at the root or in `public/`) and no language marker: served as files.
    Static,
    /// Only a `Procfile` with a `web:` process.
    Procfile,
    /// None of the known markers.
    Unknown,
}

/// The answer of `POST …/detect`: enough to generate a Dockerfile, plus the evidence a human needs to trust it.
///
/// Commands are shell command lines meant to run from the repository root inside the build image; `None` means
/// "nothing to run" (or "could not tell", which the evidence then says).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Detection {
    /// The kind of project; decides which Dockerfile template applies.
    #[serde(rename = "type")]
    pub kind: ProjectType,
    /// Framework identifier such as `nextjs`, `vite`, `react`, `express`, `nestjs`, `astro`, `django`, `flask`,
    /// `fastapi`, `gin`, `axum`.
    pub framework: Option<String>,
    /// Package manager: `npm`, `pnpm`, `yarn`, `bun`, `pip`, `poetry`, `pipenv`, `uv`, `cargo` or `go`.
    pub package_manager: Option<String>,
    /// Language runtime version as written by the project (e.g. `20.11.0`, `>=18`, `3.12`, `1.22`), if declared.
    pub runtime_version: Option<String>,
    /// Dependency installation command, e.g. `pnpm install --frozen-lockfile`.
    pub install: Option<String>,
    /// Build command, e.g. `pnpm run build`.
    pub build: Option<String>,
    /// Command that starts the web process; `None` for static sites.
    pub start: Option<String>,
    /// Port the app is expected to listen on (80 for static sites, which Berth serves itself).
    pub port: Option<u16>,
    /// Directory (relative to the root) holding the files to serve when `static_site` is true.
    pub output_dir: Option<String>,
    /// True when the result is served as static files and no server process of the app runs.
    pub static_site: bool,
    /// Human-readable reasons, e.g. `package.json has dependency next 14.2.3`, `pnpm-lock.yaml present`.
    pub evidence: Vec<String>,
    /// How sure the guess is, always within `0.0..=1.0`; 0 exactly when `kind` is `Unknown`.
    pub confidence: f32,
}

/// Detection failed for a reason other than "unknown": the root or a marker file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot inspect {path}: {message}")]
pub struct DetectError {
    /// The path (relative to the root when inside it) that could not be read.
    pub path: String,
    /// The operating system's reason.
    pub message: String,
}

/// Files whose presence decides the project type, in priority order, with the type they indicate.
const MARKERS: [(&str, ProjectType); 13] = [
    ("Dockerfile", ProjectType::Dockerfile),
    ("dockerfile", ProjectType::Dockerfile),
    ("Containerfile", ProjectType::Dockerfile),
    ("package.json", ProjectType::Node),
    ("requirements.txt", ProjectType::Python),
    ("pyproject.toml", ProjectType::Python),
    ("Pipfile", ProjectType::Python),
    ("setup.py", ProjectType::Python),
    ("manage.py", ProjectType::Python),
    ("go.mod", ProjectType::Go),
    ("Cargo.toml", ProjectType::Rust),
    ("Procfile", ProjectType::Procfile),
    ("index.html", ProjectType::Static),
];

/// How many top-level names an `Unknown` answer lists.
const LISTED_ENTRIES: usize = 20;

impl Detection {
    /// An empty answer of the given kind, to be filled in by a detector.
    fn empty(kind: ProjectType, confidence: f32) -> Self {
        Detection {
            kind,
            framework: None,
            package_manager: None,
            runtime_version: None,
            install: None,
            build: None,
            start: None,
            port: None,
            output_dir: None,
            static_site: false,
            evidence: Vec::new(),
            confidence,
        }
    }

    /// One sentence saying what was found and how it will run, for messages and logs.
    pub fn summary(&self) -> String {
        let percent = (self.confidence * 100.0).round();
        let label = match self.kind {
            ProjectType::Unknown => {
                return "Could not tell what this repository is: none of the known markers was found.".to_string();
            }
            ProjectType::Dockerfile => {
                let port = self.port.map(|p| format!(", exposing port {p}")).unwrap_or_default();
                return format!("Found a Dockerfile{port}; it will be built as is.");
            }
            ProjectType::Node => "Node.js project",
            ProjectType::Python => "Python project",
            ProjectType::Go => "Go project",
            ProjectType::Rust => "Rust project",
            ProjectType::Static => "static site",
            ProjectType::Procfile => "Procfile project",
        };
        let mut text = format!("Detected a {label}");
        if let Some(framework) = &self.framework {
            text.push_str(&format!(" using {framework}"));
        }
        if let Some(pm) = &self.package_manager {
            text.push_str(&format!(" with {pm}"));
        }
        if self.static_site {
            let dir = self.output_dir.as_deref().unwrap_or(".");
            text.push_str(&format!(", served as static files from {dir}"));
        } else if let Some(start) = &self.start {
            text.push_str(&format!(", started with `{start}`"));
            if let Some(port) = self.port {
                text.push_str(&format!(" on port {port}"));
            }
        } else {
            text.push_str(", but no start command was found");
        }
        text.push_str(&format!(" (confidence {percent}%)."));
        text
    }
}

/// Inspects a checked-out directory (already at the root directory the user chose).
///
/// Never fails because of the repository's content (malformed manifests lower the confidence and are reported in
/// the evidence); fails only when the root or a marker file cannot be read.
pub fn detect(root: &Path) -> Result<Detection, DetectError> {
    let repo = Repo::open(root)?;
    let dockerfile = ["Dockerfile", "dockerfile", "Containerfile"].into_iter().find(|name| repo.is_top_file(name));
    let mut found = if let Some(name) = dockerfile {
        Some(detect_dockerfile(&repo, name)?)
    } else if repo.is_top_file("package.json") {
        Some(node::detect(&repo)?)
    } else if python::MARKERS.iter().any(|m| repo.is_top_file(m)) {
        Some(python::detect(&repo)?)
    } else if repo.is_top_file("go.mod") {
        Some(native::detect_go(&repo)?)
    } else if repo.is_top_file("Cargo.toml") {
        Some(native::detect_rust(&repo)?)
    } else {
        None
    };
    match procfile_web(&repo)? {
        None if repo.is_top_file("Procfile") => {
            repo.note("Procfile present but it has no `web:` process; ignored".to_string());
        }
        None => {}
        Some(web) => match found.as_mut() {
            Some(d) if d.kind == ProjectType::Dockerfile => {
                d.evidence.push("Procfile present but ignored: the Dockerfile decides how to start".to_string());
            }
            Some(d) => {
                match &d.start {
                    Some(old) => d.evidence.push(format!("Procfile web command `{web}` replaces `{old}` as start")),
                    None => d.evidence.push(format!("Procfile web command `{web}` is the start command")),
                }
                d.start = Some(web);
                d.static_site = false;
                d.output_dir = None;
            }
            None => found = Some(procfile_only(web)),
        },
    }
    let mut d = match found {
        Some(d) => d,
        None => match detect_static(&repo) {
            Some(d) => d,
            None => detect_unknown(&repo)?,
        },
    };
    note_other_markers(&repo, &mut d);
    for note in repo.take_notes() {
        if !d.evidence.contains(&note) {
            d.evidence.push(note);
        }
    }
    d.confidence = if d.kind == ProjectType::Unknown { 0.0 } else { d.confidence.clamp(0.0, 1.0) };
    Ok(d)
}

/// A Dockerfile wins outright; the port comes from its last `EXPOSE`.
fn detect_dockerfile(repo: &Repo, name: &str) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Dockerfile, 1.0);
    d.evidence.push(format!("{name} present at the root; it is used as is"));
    let text = repo.read(name)?.unwrap_or_default();
    let exposed = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let instruction = words.next()?;
            instruction.eq_ignore_ascii_case("EXPOSE").then(|| words.next()).flatten()
        })
        .next_back();
    match exposed {
        Some(spec) => match spec.split('/').next().and_then(|p| p.parse::<u16>().ok()) {
            Some(port) => {
                d.port = Some(port);
                d.evidence.push(format!("{name} exposes port {port}"));
            }
            None => d.evidence.push(format!("{name} has `EXPOSE {spec}`, which is not a literal port")),
        },
        None => d.evidence.push(format!("{name} has no EXPOSE; the port must be set by hand")),
    }
    Ok(d)
}

/// The command of the `web:` process in a root `Procfile`, if there is one.
fn procfile_web(repo: &Repo) -> Result<Option<String>, DetectError> {
    if !repo.is_top_file("Procfile") {
        return Ok(None);
    }
    let text = repo.read("Procfile")?.unwrap_or_default();
    Ok(parse_procfile_web(&text))
}

/// Finds the `web:` line of a Procfile and returns its (trimmed, non-empty) command.
fn parse_procfile_web(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, command) = line.split_once(':')?;
        let command = command.trim();
        (name.trim() == "web" && !command.is_empty()).then(|| command.to_string())
    })
}

/// A repository with a Procfile and no language marker: the web command is all there is.
fn procfile_only(web: String) -> Detection {
    let mut d = Detection::empty(ProjectType::Procfile, 0.6);
    d.evidence.push(format!("Procfile web process: `{web}`"));
    if web.contains("$PORT") {
        d.evidence.push("the web command reads $PORT, so any port works".to_string());
    } else {
        d.evidence.push("no language marker found; the image must already provide what the command needs".to_string());
    }
    d.start = Some(web);
    d
}

/// An `index.html` at the root (or in `public/` without a `package.json`): served as is on port 80.
fn detect_static(repo: &Repo) -> Option<Detection> {
    let (dir, confidence) = if repo.is_top_file("index.html") {
        (".", 0.8)
    } else if repo.is_file("public/index.html") {
        ("public", 0.6)
    } else {
        return None;
    };
    let mut d = Detection::empty(ProjectType::Static, confidence);
    let shown = if dir == "." { "index.html".to_string() } else { format!("{dir}/index.html") };
    d.evidence.push(format!("{shown} present and no language marker; serving the files as they are"));
    d.output_dir = Some(dir.to_string());
    d.static_site = true;
    d.port = Some(80);
    Some(d)
}

/// Nothing matched: list what is there, which markers were looked for, and subdirectories that look deployable.
fn detect_unknown(repo: &Repo) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Unknown, 0.0);
    let entries = repo.entries();
    if entries.is_empty() {
        d.evidence.push("the directory is empty".to_string());
    } else {
        let mut listed = entries.iter().take(LISTED_ENTRIES).cloned().collect::<Vec<_>>().join(", ");
        if entries.len() > LISTED_ENTRIES {
            listed.push_str(&format!(" and {} more", entries.len() - LISTED_ENTRIES));
        }
        d.evidence.push(format!("top-level entries: {listed}"));
    }
    let markers = MARKERS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    d.evidence.push(format!("none of the known markers was found ({markers}, public/index.html)"));
    for (dir, marker) in repo.nested_markers(&MARKERS.map(|(name, _)| name))? {
        d.evidence.push(format!("{dir} contains {marker}; set the root directory to {dir} to deploy it"));
    }
    Ok(d)
}

/// Records markers of other project types that are present but lost to the winner, so the choice is explainable.
fn note_other_markers(repo: &Repo, d: &mut Detection) {
    if d.kind == ProjectType::Unknown {
        return;
    }
    for (name, kind) in MARKERS {
        // The Procfile reports itself; a Node app's index.html is its own (Vite, for one).
        let used = kind == d.kind
            || kind == ProjectType::Procfile
            || (kind == ProjectType::Static && d.kind == ProjectType::Node);
        if !used && repo.is_top_file(name) {
            d.evidence.push(format!("{name} also present, but the {} marker takes precedence", kind_name(d.kind)));
        }
    }
}

/// The lowercase name of a project type, as serialised.
fn kind_name(kind: ProjectType) -> &'static str {
    match kind {
        ProjectType::Dockerfile => "dockerfile",
        ProjectType::Node => "node",
        ProjectType::Python => "python",
        ProjectType::Go => "go",
        ProjectType::Rust => "rust",
        ProjectType::Static => "static",
        ProjectType::Procfile => "procfile",
        ProjectType::Unknown => "unknown",
    }
}

/// A port number visibly hard-coded in source text: `listen(8080`, `PORT || 8080`, `":8080"`, `0.0.0.0:8080`, …
///
/// Only a best-effort hint; ports below 80 are ignored as unlikely.
fn port_in_source(text: &str) -> Option<u16> {
    const PREFIXES: [&str; 12] = [
        "listen(",
        "listen( ",
        "PORT || ",
        "PORT ?? ",
        "PORT||",
        "\"PORT\", \"",
        "'PORT', '",
        "port=",
        "port = ",
        "0.0.0.0:",
        "localhost:",
        "\":",
    ];
    PREFIXES.iter().find_map(|prefix| {
        text.match_indices(prefix).find_map(|(at, _)| {
            let digits: String = text[at + prefix.len()..].chars().take(6).take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u16>().ok().filter(|p| *p >= 80)
        })
    })
}
