//! The `auto` builder: a repository's own Dockerfile wins; without one, detection decides and a Dockerfile is
//! generated from one template per project kind.
//!
//! [`generate`] is pure (detection, base images, the project's overrides and port in; Dockerfile text out), so
//! every template is unit tested. [`plan`] is the only part that touches the file system: it looks for a
//! Dockerfile in the checked-out context (already at the project's root directory) and runs detection there.
//!
//! Generated Dockerfiles never contain secrets: they hold only base images from the config, commands from
//! detection or the project's build settings, and the port. Variables are not build arguments here.

use super::detect::{self, Detection, ProjectType};
use crate::config::Config;
use crate::domain::BuildConfig;
use std::fmt::Write as _;
use std::path::Path;

#[cfg(test)]
mod tests;

/// The images the generated Dockerfiles start from (config keys `auto_image_*`), so operators and tests can point
/// them at local or mirrored images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImages {
    /// Builds and runs Node.js apps; must have `node`, `npm` and `corepack` (`yarn` for yarn 1 projects).
    pub node: String,
    /// Builds and runs Python apps; `python` and `pip` on PATH, `pip install` allowed (a virtualenv or the official
    /// images).
    pub python: String,
    /// Builds Go apps: `go` on PATH and `/etc/ssl/certs/ca-certificates.crt`.
    pub go: String,
    /// Builds Rust apps: `cargo` on PATH and `/etc/ssl/certs/ca-certificates.crt`.
    pub rust: String,
    /// Runs compiled Go and Rust binaries and Procfile-only apps: needs `sh` and a C library compatible with the
    /// Go and Rust images (Debian-based images for Debian-based builders).
    pub runtime: String,
    /// Serves static sites: needs `sh` and `nginx` reading `/etc/nginx/conf.d/*.conf` (as `nginx:alpine` does).
    pub static_files: String,
}

impl BaseImages {
    /// The images named by the config.
    pub fn from_config(config: &Config) -> BaseImages {
        BaseImages {
            node: config.auto_image_node.clone(),
            python: config.auto_image_python.clone(),
            go: config.auto_image_go.clone(),
            rust: config.auto_image_rust.clone(),
            runtime: config.auto_image_runtime.clone(),
            static_files: config.auto_image_static.clone(),
        }
    }
}

/// The project's own build commands, which replace the detected ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    pub install: Option<&'a str>,
    pub build: Option<&'a str>,
    pub start: Option<&'a str>,
}

impl<'a> Overrides<'a> {
    /// `install_command`, `build_command` and `start_command` of the project's build settings.
    pub fn from_build(build: &'a BuildConfig) -> Overrides<'a> {
        Overrides {
            install: build.install_command.as_deref(),
            build: build.build_command.as_deref(),
            start: build.start_command.as_deref(),
        }
    }
}

/// Why no Dockerfile could be generated; each message says what the user can add or set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "the auto builder could not tell how to build this repository: add a Dockerfile, or one of package.json \
         (Node.js), requirements.txt, pyproject.toml or Pipfile (Python), go.mod (Go), Cargo.toml (Rust), \
         index.html (static site) or a Procfile with a `web:` process to the root directory, or set the builder \
         to image. Detection found: {}",
        .evidence.join("; ")
    )]
    Unknown { evidence: Vec<String> },
    #[error(
        "the auto builder detected a {kind} project but not how to start it: set the project's build.start_command. \
         Detection found: {}",
        .evidence.join("; ")
    )]
    NoStart { kind: String, evidence: Vec<String> },
    #[error("the repository has its own Dockerfile; it is built as is and nothing is generated")]
    HasDockerfile,
    #[error(
        "build.dockerfile_path is {path}, which does not exist, but the root directory has {found}: set \
         dockerfile_path to it, or clear it"
    )]
    MissingDockerfile { path: String, found: String },
    #[error("cannot inspect the repository: {0}")]
    Inspect(String),
}

/// What the `auto` builder will build.
#[derive(Debug, Clone)]
pub enum AutoPlan {
    /// The repository's own Dockerfile, at this path inside the context.
    Repository { dockerfile: String },
    /// A Dockerfile generated from detection.
    Generated { detection: Box<Detection>, dockerfile: String },
}

impl AutoPlan {
    /// Lines for the deployment's build log: the choice, what was detected and why, and the generated text.
    pub fn log_lines(&self, port: u16) -> Vec<String> {
        match self {
            AutoPlan::Repository { dockerfile } => {
                vec![format!("builder auto: the repository has {dockerfile}; building it as is")]
            }
            AutoPlan::Generated { detection: d, dockerfile } => {
                let none = || "none".to_owned();
                let mut lines = vec![format!(
                    "builder auto: no Dockerfile; detected {} (framework {}, package manager {})",
                    kind_name(d.kind),
                    d.framework.clone().unwrap_or_else(none),
                    d.package_manager.clone().unwrap_or_else(none),
                )];
                lines.push(d.summary());
                lines.extend(d.evidence.iter().map(|e| format!("evidence: {e}")));
                if let Some(detected) = d.port.filter(|p| *p != port && !d.static_site) {
                    lines.push(format!(
                        "note: the app looks like it listens on port {detected} but the project's port is {port}; \
                         the image sets PORT={port}, so an app that does not read $PORT needs the project's port \
                         set to {detected}"
                    ));
                }
                lines.push("generated Dockerfile:".to_owned());
                lines.extend(dockerfile.lines().map(|l| format!("  {l}")));
                lines
            }
        }
    }
}

/// Decides how an `auto` project is built from its checked-out context (the root directory): the Dockerfile at
/// `dockerfile_path` (or, when that is not set, a root `Dockerfile`, `dockerfile` or `Containerfile`) if there
/// is one, else a Dockerfile generated from detection. Blocking file-system reads: run it off the async threads.
pub fn plan(context: &Path, build: &BuildConfig, port: u16, images: &BaseImages) -> Result<AutoPlan, GenerateError> {
    let candidates = match &build.dockerfile_path {
        Some(path) => vec![path.as_str()],
        None => vec!["Dockerfile", "dockerfile", "Containerfile"],
    };
    // Like the context packer: a symlink is not followed, so only a regular file counts.
    let present = |name: &&str| std::fs::symlink_metadata(context.join(name)).is_ok_and(|m| m.is_file());
    if let Some(found) = candidates.into_iter().find(present) {
        return Ok(AutoPlan::Repository { dockerfile: found.to_owned() });
    }
    let detection = detect::detect(context).map_err(|e| GenerateError::Inspect(e.to_string()))?;
    if detection.kind == ProjectType::Dockerfile {
        // A root Dockerfile that the configured `dockerfile_path` does not name: the path was meant, and is missing.
        let found = detection.evidence.first().and_then(|e| e.split_whitespace().next()).unwrap_or("a Dockerfile");
        return Err(GenerateError::MissingDockerfile {
            path: build.dockerfile_path.clone().unwrap_or_default(),
            found: found.to_owned(),
        });
    }
    let dockerfile = generate(&detection, images, &Overrides::from_build(build), port)?;
    Ok(AutoPlan::Generated { detection: Box::new(detection), dockerfile })
}

/// The Dockerfile for a detected project: one template per kind, multi-stage where a build produces a binary or
/// static files. The project's overrides replace the detected commands; the app gets `PORT=<port>` and the port is
/// exposed; the start command runs through `sh -c` (so `$PORT` and other variables expand at run time).
///
/// Detected start commands that bind the detected port literally (`--bind 0.0.0.0:8000`, `--port 8000`) are
/// rewritten to use `$PORT`, so the app listens where the project expects it.
pub fn generate(d: &Detection, images: &BaseImages, o: &Overrides, port: u16) -> Result<String, GenerateError> {
    let install = o.install.or(d.install.as_deref()).map(one_line);
    let build = o.build.or(d.build.as_deref()).map(one_line);
    let start = match o.start {
        Some(start) => Some(one_line(start)),
        None => d.start.as_deref().map(|s| one_line(&bind_port_variable(s, d.port))),
    };
    let steps = Steps { install, build, start };
    let no_start = || GenerateError::NoStart { kind: kind_name(d.kind), evidence: d.evidence.clone() };
    let mut f = Dockerfile::new(d);
    match d.kind {
        ProjectType::Unknown => return Err(GenerateError::Unknown { evidence: d.evidence.clone() }),
        ProjectType::Dockerfile => return Err(GenerateError::HasDockerfile),
        ProjectType::Node if d.static_site && o.start.is_none() => {
            let out = d.output_dir.as_deref().unwrap_or("dist");
            f.from(&images.node, Some("build"));
            node_setup(&mut f, d);
            f.copy_and_build(&steps);
            f.from(&images.static_files, None);
            serve_static(&mut f, Some("build"), &format!("/app/{out}"), port, true);
        }
        ProjectType::Node => {
            let start = steps.start.clone().ok_or_else(no_start)?;
            f.from(&images.node, None);
            node_setup(&mut f, d);
            f.copy_and_build(&steps);
            f.line("ENV NODE_ENV=production HOST=0.0.0.0");
            f.run_app(&start, port);
        }
        ProjectType::Python => {
            let start = steps.start.clone().ok_or_else(no_start)?;
            f.from(&images.python, None);
            python_setup(&mut f, d);
            f.copy_and_build(&steps);
            python_server(&mut f, d, &start);
            f.run_app(&start, port);
        }
        ProjectType::Go | ProjectType::Rust => {
            let start = steps.start.clone().ok_or_else(no_start)?;
            let builder = if d.kind == ProjectType::Go { &images.go } else { &images.rust };
            // The binary the start command runs is copied into the runtime image. A custom build command makes
            // it unknown: then the app runs in the build image.
            let artifact = start.split_whitespace().next().unwrap_or_default().to_owned();
            let staged = o.build.is_none() && artifact.starts_with(['/', '.']) && !artifact.contains(['$', '`']);
            f.from(builder, staged.then_some("build"));
            f.copy_and_build(&steps);
            if staged {
                let source = match artifact.strip_prefix("./") {
                    Some(relative) => format!("/app/{relative}"),
                    None => artifact.clone(),
                };
                f.from(&images.runtime, None);
                f.line("WORKDIR /app");
                f.line("COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt");
                f.line(&format!("COPY --from=build {source} {source}"));
            }
            f.run_app(&start, port);
        }
        ProjectType::Procfile => {
            let start = steps.start.clone().ok_or_else(no_start)?;
            f.from(&images.runtime, None);
            f.copy_and_build(&steps);
            f.run_app(&start, port);
        }
        ProjectType::Static if o.start.is_some() => {
            let start = steps.start.clone().ok_or_else(no_start)?;
            f.from(&images.runtime, None);
            f.copy_and_build(&steps);
            f.run_app(&start, port);
        }
        ProjectType::Static if steps.install.is_some() || steps.build.is_some() => {
            // Commands set by hand for plain files (a site generator, say) run in the Node image.
            let dir = d.output_dir.as_deref().unwrap_or(".").trim_start_matches("./").trim_start_matches('.');
            f.from(&images.node, Some("build"));
            f.copy_and_build(&steps);
            f.from(&images.static_files, None);
            serve_static(&mut f, Some("build"), &format!("/app/{dir}"), port, false);
        }
        ProjectType::Static => {
            f.from(&images.static_files, None);
            serve_static(&mut f, None, d.output_dir.as_deref().unwrap_or("."), port, false);
        }
    }
    Ok(f.text)
}

/// The commands the build and the app run, after overrides.
struct Steps {
    install: Option<String>,
    build: Option<String>,
    start: Option<String>,
}

/// Dockerfile text under construction.
struct Dockerfile {
    text: String,
}

impl Dockerfile {
    /// Starts with a comment naming what was detected (and a runtime version the project asks for, which the
    /// configured base image may not match).
    fn new(d: &Detection) -> Dockerfile {
        let mut text = format!("# Generated by Berth's auto builder for a {} project", kind_name(d.kind));
        let details: Vec<String> = [("framework", &d.framework), ("package manager", &d.package_manager)]
            .into_iter()
            .filter_map(|(what, v)| v.as_ref().map(|v| format!("{what} {v}")))
            .collect();
        if !details.is_empty() {
            let _ = write!(text, " ({})", details.join(", "));
        }
        text.push_str(".\n");
        if let Some(version) = &d.runtime_version {
            let version = one_line(version);
            let _ = writeln!(
                text,
                "# The project asks for runtime version {version}; the base image comes from the config."
            );
        }
        Dockerfile { text }
    }

    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn from(&mut self, image: &str, stage: Option<&str>) {
        match stage {
            Some(stage) => self.line(&format!("FROM {image} AS {stage}")),
            None => self.line(&format!("FROM {image}")),
        }
    }

    /// The sources into `/app`, then install and build.
    fn copy_and_build(&mut self, steps: &Steps) {
        self.line("WORKDIR /app");
        self.line("COPY . .");
        for command in [&steps.install, &steps.build].into_iter().flatten() {
            self.line(&format!("RUN {command}"));
        }
    }

    /// `PORT`, `EXPOSE` and the start command through `sh -c`.
    fn run_app(&mut self, start: &str, port: u16) {
        self.line(&format!("ENV PORT={port}"));
        self.line(&format!("EXPOSE {port}"));
        self.line(&format!("CMD {}", exec_form(&["sh", "-c", start])));
    }
}

/// Package-manager setup for Node: pnpm and Yarn 2+ through corepack, bun through npm.
fn node_setup(f: &mut Dockerfile, d: &Detection) {
    let berry = d.install.as_deref().is_some_and(|i| i.contains("--immutable"));
    match d.package_manager.as_deref() {
        Some("pnpm") => f.line("RUN corepack enable pnpm"),
        Some("yarn") if berry => f.line("RUN corepack enable yarn"),
        Some("bun") => f.line("RUN npm install -g bun"),
        _ => {}
    }
}

/// Python settings, and the package manager when it is not pip.
fn python_setup(f: &mut Dockerfile, d: &Detection) {
    f.line("ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1");
    match d.package_manager.as_deref() {
        Some("poetry") => {
            f.line("ENV POETRY_VIRTUALENVS_CREATE=false");
            f.line("RUN pip install poetry");
        }
        Some("pipenv") => f.line("RUN pip install pipenv"),
        Some("uv") => {
            f.line("ENV UV_PROJECT_ENVIRONMENT=/app/.venv VIRTUAL_ENV=/app/.venv PATH=/app/.venv/bin:$PATH");
            f.line("RUN pip install uv");
        }
        _ => {}
    }
}

/// Installs the WSGI/ASGI server the start command needs when the project does not depend on it.
fn python_server(f: &mut Dockerfile, d: &Detection, start: &str) {
    let Some(server) = start.split_whitespace().next().filter(|s| ["gunicorn", "uvicorn"].contains(s)) else {
        return;
    };
    let pip = if d.package_manager.as_deref() == Some("uv") { "uv pip" } else { "pip" };
    f.line(&format!("RUN command -v {server} >/dev/null 2>&1 || {pip} install {server}"));
}

/// nginx serving `dir` (from the `from` stage, or the context) on `port`; dotfiles (`.git`, `.env`) are never
/// served; single-page apps fall back to `/index.html`.
fn serve_static(f: &mut Dockerfile, from: Option<&str>, dir: &str, port: u16, spa: bool) {
    let fallback = if spa { "/index.html" } else { "=404" };
    let config = [
        "server {".to_owned(),
        format!("    listen {port};"),
        "    root /usr/share/nginx/html;".to_owned(),
        "    index index.html;".to_owned(),
        "    location ~ /\\.(?!well-known) { deny all; }".to_owned(),
        format!("    location / {{ try_files $uri $uri/ $uri.html {fallback}; }}"),
        "}".to_owned(),
    ];
    let quoted: Vec<String> = config.iter().map(|l| format!("'{l}'")).collect();
    f.line(&format!("RUN printf '%s\\n' {} > /etc/nginx/conf.d/default.conf", quoted.join(" ")));
    let dir = one_line(dir.trim_end_matches('/'));
    let paths = exec_form(&[&format!("{}/", if dir.is_empty() { "." } else { &dir }), "/usr/share/nginx/html/"]);
    match from {
        Some(stage) => f.line(&format!("COPY --from={stage} {paths}")),
        None => f.line(&format!("COPY {paths}")),
    }
    f.line(&format!("EXPOSE {port}"));
    f.line(&format!("CMD {}", exec_form(&["sh", "-c", "exec nginx -g 'daemon off;'"])));
}

/// Rewrites a literal bind of the detected port to `$PORT`.
fn bind_port_variable(start: &str, detected: Option<u16>) -> String {
    let Some(port) = detected else { return start.to_owned() };
    start.replace(&format!("0.0.0.0:{port}"), "0.0.0.0:$PORT").replace(&format!("--port {port}"), "--port $PORT")
}

/// A JSON array: the exec form of `CMD`.
fn exec_form(words: &[&str]) -> String {
    serde_json::to_string(words).unwrap_or_else(|_| "[]".to_owned())
}

/// The lowercase name of a project type, as detection serialises it.
fn kind_name(kind: ProjectType) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Text from the repository as one Dockerfile line: control characters (a newline would start a new
/// instruction) become spaces.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
