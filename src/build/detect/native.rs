//! Compiled languages: Go (`go.mod`) and Rust (`Cargo.toml`), both built into one server binary.

use super::repo::{Repo, join};
use super::{DetectError, Detection, ProjectType, port_in_source};
use toml::{Table, Value};

/// Go web frameworks by module path prefix.
const GO_FRAMEWORKS: [(&str, &str); 5] = [
    ("github.com/gin-gonic/gin", "gin"),
    ("github.com/labstack/echo", "echo"),
    ("github.com/gofiber/fiber", "fiber"),
    ("github.com/go-chi/chi", "chi"),
    ("github.com/gorilla/mux", "gorilla"),
];

/// Rust web frameworks with the port each listens on in its own examples.
const RUST_FRAMEWORKS: [(&str, &str, u16); 4] =
    [("axum", "axum", 3000), ("actix-web", "actix-web", 8080), ("rocket", "rocket", 8000), ("warp", "warp", 3030)];

/// Detects a Go module; the caller has checked that `go.mod` exists.
pub(super) fn detect_go(repo: &Repo) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Go, 0.9);
    d.package_manager = Some("go".to_string());
    d.install = Some("go mod download".to_string());
    let text = repo.read("go.mod")?.unwrap_or_default();
    let directive = |name: &str| {
        text.lines().find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(' ').map(|v| v.trim().to_string()))
    };
    match directive("module") {
        Some(module) => d.evidence.push(format!("go.mod declares module {module}")),
        None => {
            d.evidence.push("go.mod present but declares no module".to_string());
            d.confidence -= 0.3;
        }
    }
    if let Some(version) = directive("go") {
        d.evidence.push(format!("go.mod asks for Go {version}"));
        d.runtime_version = Some(version);
    }
    if let Some((path, name)) = GO_FRAMEWORKS.iter().find(|(path, _)| text.contains(path)) {
        d.evidence.push(format!("go.mod requires {path}"));
        d.framework = Some((*name).to_string());
    }
    let package = go_main_package(repo, &mut d)?;
    d.build = Some(format!("go build -o /app/server {package}"));
    d.start = Some("/app/server".to_string());
    let main_file = join(package.trim_start_matches("./").trim_start_matches('.'), "main.go");
    d.port = Some(match repo.read(&main_file)?.as_deref().and_then(port_in_source) {
        Some(port) => {
            d.evidence.push(format!("{main_file} listens on port {port}"));
            port
        }
        None => {
            d.evidence.push("no port literal seen in main.go; assuming 8080".to_string());
            8080
        }
    });
    Ok(d)
}

/// The package to build: `.` when main.go is at the root, else the only directory under `cmd/`.
fn go_main_package(repo: &Repo, d: &mut Detection) -> Result<String, DetectError> {
    if repo.is_top_file("main.go") {
        d.evidence.push("main.go at the root".to_string());
        return Ok(".".to_string());
    }
    let commands = repo.subdirs("cmd")?;
    match commands.as_slice() {
        [only] => {
            d.evidence.push(format!("no root main.go; building the only command, cmd/{only}"));
            Ok(format!("./cmd/{only}"))
        }
        [] => {
            d.evidence.push("no main.go at the root and no cmd/ directory; building . anyway".to_string());
            d.confidence -= 0.3;
            Ok(".".to_string())
        }
        several => {
            d.evidence.push(format!("several commands under cmd/ ({}); building . — choose one", several.join(", ")));
            d.confidence -= 0.4;
            Ok(".".to_string())
        }
    }
}

/// Detects a Rust crate; the caller has checked that `Cargo.toml` exists.
pub(super) fn detect_rust(repo: &Repo) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Rust, 0.9);
    d.package_manager = Some("cargo".to_string());
    d.install = Some("cargo fetch".to_string());
    d.build = Some("cargo build --release".to_string());
    let text = repo.read("Cargo.toml")?.unwrap_or_default();
    let manifest = match text.parse::<Table>() {
        Ok(table) => table,
        Err(e) => {
            d.evidence.push(format!("Cargo.toml is not valid TOML: {}", e.message()));
            d.confidence = 0.4;
            Table::new()
        }
    };
    let package = manifest.get("package").and_then(Value::as_table);
    let bins: Vec<&str> = manifest
        .get("bin")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|bin| bin.get("name")?.as_str())
        .collect();
    let package_name = package.and_then(|p| p.get("name")).and_then(Value::as_str);
    let binary = match (bins.as_slice(), package_name) {
        ([only], _) => {
            d.evidence.push(format!("Cargo.toml declares binary {only}"));
            Some(*only)
        }
        ([first, ..], name) => {
            let chosen = name.filter(|n| bins.contains(n)).unwrap_or(first);
            d.evidence.push(format!("Cargo.toml declares binaries {}; using {chosen}", bins.join(", ")));
            d.confidence -= 0.2;
            Some(chosen)
        }
        ([], Some(name)) => {
            d.evidence.push(format!("Cargo.toml declares package {name}"));
            Some(name)
        }
        ([], None) => {
            if manifest.contains_key("workspace") {
                d.evidence.push("Cargo.toml is a workspace root; set the root directory to the binary crate".into());
            } else {
                d.evidence.push("Cargo.toml names no package or binary".to_string());
            }
            d.confidence = d.confidence.min(0.4);
            None
        }
    };
    d.start = binary.map(|name| format!("./target/release/{name}"));
    let deps = manifest.get("dependencies").and_then(Value::as_table);
    let framework = RUST_FRAMEWORKS.iter().find(|(dep, _, _)| deps.is_some_and(|t| t.contains_key(*dep)));
    let default_port = match framework {
        Some((dep, name, port)) => {
            d.evidence.push(format!("Cargo.toml depends on {dep}"));
            d.framework = Some((*name).to_string());
            *port
        }
        None => 8080,
    };
    let source = repo.read("src/main.rs")?;
    d.port = Some(match source.as_deref().and_then(port_in_source) {
        Some(port) => {
            d.evidence.push(format!("src/main.rs listens on port {port}"));
            port
        }
        None => {
            d.evidence.push(format!("no port literal seen in src/main.rs; guessing {default_port}"));
            default_port
        }
    });
    d.runtime_version = rust_toolchain(repo, package, &mut d)?;
    Ok(d)
}

/// The toolchain channel from `rust-toolchain.toml` / `rust-toolchain`, else `package.rust-version`.
fn rust_toolchain(repo: &Repo, package: Option<&Table>, d: &mut Detection) -> Result<Option<String>, DetectError> {
    for file in ["rust-toolchain.toml", "rust-toolchain"] {
        let Some(text) = repo.read(file)? else { continue };
        let channel = match text.parse::<Table>() {
            Ok(table) => {
                table.get("toolchain").and_then(|t| t.get("channel")).and_then(Value::as_str).map(str::to_string)
            }
            Err(_) => Some(text.trim().to_string()).filter(|t| !t.is_empty() && !t.contains('\n')),
        };
        if let Some(channel) = channel {
            d.evidence.push(format!("{file} pins the {channel} toolchain"));
            return Ok(Some(channel));
        }
    }
    Ok(package.and_then(|p| p.get("rust-version")).and_then(Value::as_str).map(|version| {
        d.evidence.push(format!("Cargo.toml rust-version is {version}"));
        version.to_string()
    }))
}
