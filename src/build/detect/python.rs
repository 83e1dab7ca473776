//! Python: the package manager from manifests and lockfiles, the framework from dependency names, the start
//! command from the module that creates the app.

use super::repo::{Repo, join};
use super::{DetectError, Detection, ProjectType};
use std::collections::BTreeSet;
use toml::{Table, Value};

/// Root files that make a repository a Python project.
pub(super) const MARKERS: [&str; 5] = ["requirements.txt", "pyproject.toml", "Pipfile", "setup.py", "manage.py"];

/// Where a Flask app conventionally lives.
const FLASK_FILES: [&str; 6] = ["app.py", "main.py", "wsgi.py", "server.py", "application.py", "app/__init__.py"];

/// Where a FastAPI app conventionally lives.
const FASTAPI_FILES: [&str; 6] = ["main.py", "app.py", "app/main.py", "src/main.py", "api.py", "server.py"];

/// Everything the manifests say, merged.
#[derive(Default)]
struct Manifests {
    /// Normalised dependency names (lowercase, `_` and `.` as `-`).
    deps: BTreeSet<String>,
    /// `[tool.poetry]` present in pyproject.toml.
    poetry: bool,
    /// The Python version the manifests ask for, with where it came from.
    python: Option<(String, &'static str)>,
}

/// Detects a Python project; the caller has checked that one of [`MARKERS`] exists.
pub(super) fn detect(repo: &Repo) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Python, 0.9);
    for marker in MARKERS.iter().filter(|m| repo.is_top_file(m)) {
        d.evidence.push(format!("{marker} present"));
    }
    let manifests = read_manifests(repo, &mut d)?;
    manager(repo, &manifests, &mut d);
    d.runtime_version = runtime_version(repo, &manifests, &mut d)?;
    let deps = &manifests.deps;
    let mut ev = Vec::new();
    if deps.contains("django") || repo.is_top_file("manage.py") {
        ev.push(if deps.contains("django") { "django is a dependency" } else { "manage.py present" }.to_string());
        d.framework = Some("django".to_string());
        django(repo, &mut d, &mut ev)?;
        require_server(deps, "gunicorn", &mut ev);
    } else if deps.contains("flask") {
        ev.push("flask is a dependency".to_string());
        d.framework = Some("flask".to_string());
        let target = match find_app(repo, &FLASK_FILES, "Flask(", &mut ev)? {
            Some(target) => target,
            None => match flask_factory(repo, &mut ev)? {
                Some(target) => target,
                None => guess_target(repo, &["app.py", "main.py"], &mut d, &mut ev),
            },
        };
        d.start = Some(format!("gunicorn {target} --bind 0.0.0.0:8000"));
        require_server(deps, "gunicorn", &mut ev);
    } else if deps.contains("fastapi") {
        ev.push("fastapi is a dependency".to_string());
        d.framework = Some("fastapi".to_string());
        let target = match find_app(repo, &FASTAPI_FILES, "FastAPI(", &mut ev)? {
            Some(target) => target,
            None => guess_target(repo, &["main.py", "app.py"], &mut d, &mut ev),
        };
        d.start = Some(format!("uvicorn {target} --host 0.0.0.0 --port 8000"));
        require_server(deps, "uvicorn", &mut ev);
    } else if let Some(file) = ["main.py", "app.py"].into_iter().find(|f| repo.is_top_file(f)) {
        ev.push(format!("no known web framework; running {file} and assuming port 8000"));
        d.start = Some(format!("python {file}"));
        d.confidence -= 0.3;
    } else {
        ev.push("no known web framework and no main.py or app.py; a start command must be set by hand".to_string());
        d.confidence = d.confidence.min(0.4);
    }
    if d.start.is_some() {
        d.port = Some(8000);
    }
    d.evidence.append(&mut ev);
    Ok(d)
}

/// Reads requirements.txt, pyproject.toml and Pipfile; malformed TOML is reported and lowers the confidence.
fn read_manifests(repo: &Repo, d: &mut Detection) -> Result<Manifests, DetectError> {
    let mut m = Manifests::default();
    if let Some(text) = repo.read("requirements.txt")? {
        m.deps.extend(parse_requirements(&text));
    }
    if let Some(table) = read_toml(repo, "pyproject.toml", d)? {
        if let Some(project) = table.get("project").and_then(Value::as_table) {
            let specs = project.get("dependencies").and_then(Value::as_array).into_iter().flatten();
            m.deps.extend(specs.filter_map(Value::as_str).filter_map(requirement_name));
            if let Some(version) = project.get("requires-python").and_then(Value::as_str) {
                m.python = Some((version.to_string(), "pyproject.toml requires-python"));
            }
        }
        if let Some(poetry) = table.get("tool").and_then(|t| t.get("poetry")) {
            m.poetry = true;
            if let Some(deps) = poetry.get("dependencies").and_then(Value::as_table) {
                m.deps.extend(deps.keys().filter(|k| *k != "python").map(|k| normalise(k)));
                if let (None, Some(version)) = (&m.python, deps.get("python").and_then(Value::as_str)) {
                    m.python = Some((version.to_string(), "pyproject.toml [tool.poetry.dependencies] python"));
                }
            }
        }
    }
    if let Some(table) = read_toml(repo, "Pipfile", d)? {
        if let Some(packages) = table.get("packages").and_then(Value::as_table) {
            m.deps.extend(packages.keys().map(|k| normalise(k)));
        }
        let requires = table.get("requires");
        let version = requires.and_then(|r| r.get("python_full_version").or_else(|| r.get("python_version")));
        if let (None, Some(version)) = (&m.python, version.and_then(Value::as_str)) {
            m.python = Some((version.to_string(), "Pipfile [requires]"));
        }
    }
    Ok(m)
}

/// Parses a TOML manifest, or notes why it could not be parsed.
fn read_toml(repo: &Repo, file: &str, d: &mut Detection) -> Result<Option<Table>, DetectError> {
    let Some(text) = repo.read(file)? else { return Ok(None) };
    match text.parse::<Table>() {
        Ok(table) => Ok(Some(table)),
        Err(e) => {
            let reason = e.message().to_string();
            d.evidence.push(format!("{file} is not valid TOML: {reason}"));
            d.confidence = d.confidence.min(0.5);
            Ok(None)
        }
    }
}

/// Dependency names in a requirements file: comments, options (`-r`, `-e`, `--hash` …) and blank lines skipped.
fn parse_requirements(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split(" #").next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('-'))
        .filter_map(requirement_name)
        .collect()
}

/// The normalised name of one PEP 508 requirement (`Django[argon2]>=4.2; python_version>"3"` → `django`), or
/// `None` for URLs and other lines that do not start with a name.
fn requirement_name(spec: &str) -> Option<String> {
    let spec = spec.trim();
    let name: String = spec.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let rest = spec[name.len()..].trim_start();
    if name.is_empty() || rest.starts_with(':') || rest.starts_with('/') {
        return None;
    }
    Some(normalise(&name))
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_` and `.` become one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// poetry (`[tool.poetry]` or poetry.lock), else uv (uv.lock), else pipenv (Pipfile), else pip.
fn manager(repo: &Repo, m: &Manifests, d: &mut Detection) {
    let (name, install) = if m.poetry || repo.is_top_file("poetry.lock") {
        let why = if m.poetry { "pyproject.toml has [tool.poetry]" } else { "poetry.lock present" };
        d.evidence.push(format!("{why}; using poetry"));
        ("poetry", Some("poetry install --no-root --only main".to_string()))
    } else if repo.is_top_file("uv.lock") {
        d.evidence.push("uv.lock present; using uv".to_string());
        ("uv", Some("uv sync --frozen --no-dev".to_string()))
    } else if repo.is_top_file("Pipfile") {
        let install = if repo.is_top_file("Pipfile.lock") {
            d.evidence.push("Pipfile.lock present; using pipenv".to_string());
            "pipenv install --system --deploy"
        } else {
            d.evidence.push("Pipfile without Pipfile.lock; using pipenv without a lock".to_string());
            "pipenv install --system --skip-lock"
        };
        ("pipenv", Some(install.to_string()))
    } else if repo.is_top_file("requirements.txt") {
        ("pip", Some("pip install --no-cache-dir -r requirements.txt".to_string()))
    } else if repo.is_top_file("pyproject.toml") || repo.is_top_file("setup.py") {
        ("pip", Some("pip install --no-cache-dir .".to_string()))
    } else {
        d.evidence.push("no requirements.txt, pyproject.toml or Pipfile; nothing to install".to_string());
        d.confidence -= 0.2;
        ("pip", None)
    };
    d.package_manager = Some(name.to_string());
    d.install = install;
}

/// `.python-version`, else `runtime.txt`, else what the manifests ask for.
fn runtime_version(repo: &Repo, m: &Manifests, d: &mut Detection) -> Result<Option<String>, DetectError> {
    if let Some(text) = repo.read(".python-version")?
        && let Some(version) = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))
    {
        d.evidence.push(format!(".python-version asks for Python {version}"));
        return Ok(Some(version.to_string()));
    }
    if let Some(text) = repo.read("runtime.txt")? {
        let version = text.trim().trim_start_matches("python-");
        if !version.is_empty() {
            d.evidence.push(format!("runtime.txt asks for Python {version}"));
            return Ok(Some(version.to_string()));
        }
    }
    Ok(m.python.as_ref().map(|(version, source)| {
        d.evidence.push(format!("{source} is {version}"));
        version.clone()
    }))
}

/// Django: the project package is the directory holding `wsgi.py` (preferring the one manage.py names).
fn django(repo: &Repo, d: &mut Detection, ev: &mut Vec<String>) -> Result<(), DetectError> {
    let named = repo.read("manage.py")?.and_then(|text| settings_module(&text));
    let mut candidates = Vec::new();
    for dir in repo.subdirs("")? {
        if repo.is_file(&join(&dir, "wsgi.py")) {
            candidates.push(dir);
        }
    }
    let project = match named.filter(|n| candidates.contains(n)) {
        Some(name) => Some(name),
        None if candidates.len() > 1 => {
            ev.push(format!("several wsgi.py files ({}); using the first", candidates.join(", ")));
            d.confidence -= 0.2;
            candidates.first().cloned()
        }
        None => candidates.first().cloned(),
    };
    match project {
        Some(project) => {
            ev.push(format!("{project}/wsgi.py present"));
            d.start = Some(format!("gunicorn {project}.wsgi:application --bind 0.0.0.0:8000"));
        }
        None => {
            ev.push("no <project>/wsgi.py found; a start command must be set by hand".to_string());
            d.confidence = d.confidence.min(0.5);
        }
    }
    Ok(())
}

/// The package of `DJANGO_SETTINGS_MODULE` as manage.py sets it (`"mysite.settings"` → `mysite`).
fn settings_module(manage_py: &str) -> Option<String> {
    let (_, rest) = manage_py.split_once("DJANGO_SETTINGS_MODULE")?;
    let rest = rest.trim_start_matches(['"', '\'']);
    let start = rest.find(['"', '\''])? + 1;
    let rest = rest.get(start..)?;
    let (package, _) = rest.split_once(".settings")?;
    let valid = !package.is_empty() && package.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| package.to_string())
}

/// Finds `<name> = <constructor>` (also `module.<constructor>`) at the start of a line in the first of `files`
/// that has one, returning the ASGI/WSGI target `module:name`.
fn find_app(
    repo: &Repo,
    files: &[&str],
    constructor: &str,
    ev: &mut Vec<String>,
) -> Result<Option<String>, DetectError> {
    for file in files {
        let Some(text) = repo.read(file)? else { continue };
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else { continue };
            let name = name.trim_end();
            let value = value.trim_start();
            let is_ident = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let creates = value.starts_with(constructor)
                || value.split_once('.').is_some_and(|(_, v)| v.starts_with(constructor));
            if is_ident && creates {
                ev.push(format!("{file} creates the app as `{name} = {}…`", constructor.trim_end_matches('(')));
                return Ok(Some(format!("{}:{name}", module_of(file))));
            }
        }
    }
    Ok(None)
}

/// A Flask application factory (`def create_app(`) in a conventional file, as a gunicorn target.
fn flask_factory(repo: &Repo, ev: &mut Vec<String>) -> Result<Option<String>, DetectError> {
    for file in FLASK_FILES {
        if repo.read(file)?.is_some_and(|text| text.contains("def create_app(")) {
            ev.push(format!("{file} defines the application factory create_app()"));
            return Ok(Some(format!("'{}:create_app()'", module_of(file))));
        }
    }
    Ok(None)
}

/// `<module>:app` for the first of `files` that exists (else the first named), when the module creating the app
/// could not be found; lowers the confidence.
fn guess_target(repo: &Repo, files: &[&str], d: &mut Detection, ev: &mut Vec<String>) -> String {
    let file = files.iter().find(|f| repo.is_top_file(f)).or(files.first()).copied().unwrap_or("app.py");
    let module = module_of(file);
    ev.push(format!("the module creating the app was not found; guessing {module}:app"));
    d.confidence -= 0.3;
    format!("{module}:app")
}

/// The dotted module of a Python file (`app/main.py` → `app.main`, `app/__init__.py` → `app`).
fn module_of(file: &str) -> String {
    file.trim_end_matches(".py").trim_end_matches("/__init__").replace('/', ".")
}

/// Notes when the server the start command needs is not a declared dependency.
fn require_server(deps: &BTreeSet<String>, server: &str, ev: &mut Vec<String>) {
    if deps.contains(server) {
        ev.push(format!("{server} is a dependency"));
    } else {
        ev.push(format!("{server} is not a dependency; the image has to install it"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_names_ignore_versions_extras_markers_and_comments() {
        let text = "# web\nDjango[argon2]>=4.2,<5 ; python_version >= '3.10'\n\ngunicorn==22.0.0  # server\n\
                    -r base.txt\n--hash=sha256:abc\n-e git+https://x/y.git#egg=z\nPsycopg2_Binary~=2.9\n\
                    zope.interface\nhttps://example.com/pkg.whl\nrequests @ https://example.com/r.whl\n";
        assert_eq!(parse_requirements(text), ["django", "gunicorn", "psycopg2-binary", "zope-interface", "requests"]);
    }

    #[test]
    fn settings_module_is_read_from_manage_py() {
        let text = "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop_site.settings')";
        assert_eq!(settings_module(text).as_deref(), Some("shop_site"));
        let text = "os.environ[\"DJANGO_SETTINGS_MODULE\"] = \"core.settings.prod\"";
        assert_eq!(settings_module(text).as_deref(), Some("core"));
        assert_eq!(settings_module("print('hi')"), None);
    }

    #[test]
    fn module_paths_are_dotted() {
        assert_eq!(module_of("app/main.py"), "app.main");
        assert_eq!(module_of("app/__init__.py"), "app");
        assert_eq!(module_of("main.py"), "main");
    }
}
