//! Detection against the committed fixture repositories in `tests/fixtures/detect/`, plus edge cases built in
//! temporary directories.

use super::*;
use std::fs;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect").join(name)
}

fn fixture(name: &str) -> Detection {
    detect(&fixture_path(name)).unwrap()
}

#[track_caller]
fn assert_evidence(d: &Detection, needle: &str) {
    assert!(d.evidence.iter().any(|e| e.contains(needle)), "no evidence mentions {needle:?}: {:#?}", d.evidence);
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[test]
fn dockerfile_wins_and_reports_the_last_expose() {
    let d = fixture("dockerfile");
    assert_eq!(d.kind, ProjectType::Dockerfile);
    assert_eq!(d.port, Some(4000));
    assert_eq!(d.confidence, 1.0);
    assert_eq!((d.install, d.build, d.start, d.framework, d.package_manager), (None, None, None, None, None));
    assert!(!d.static_site);
    assert_evidence(&fixture("dockerfile"), "Dockerfile present");
    assert_evidence(&fixture("dockerfile"), "package.json also present");
}

#[test]
fn next_with_pnpm() {
    let d = fixture("node-next-pnpm");
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.framework, s("nextjs"));
    assert_eq!(d.package_manager, s("pnpm"));
    assert_eq!(d.install, s("pnpm install --frozen-lockfile"));
    assert_eq!(d.build, s("pnpm run build"));
    assert_eq!(d.start, s("pnpm run start"));
    assert_eq!(d.port, Some(3000));
    assert_eq!(d.runtime_version, s(">=18.17"));
    assert!(!d.static_site);
    assert!(d.confidence >= 0.8);
    assert_evidence(&d, "package.json has dependency next 14.2.3");
    assert_evidence(&d, "pnpm-lock.yaml present");
}

#[test]
fn vite_react_with_npm_is_static() {
    let d = fixture("node-vite-react");
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.framework, s("vite"));
    assert_eq!(d.package_manager, s("npm"));
    assert_eq!(d.install, s("npm ci"));
    assert_eq!(d.build, s("npm run build"));
    assert_eq!(d.start, None);
    assert_eq!(d.port, Some(80));
    assert_eq!(d.output_dir, s("dist"));
    assert!(d.static_site);
    assert_evidence(&d, "package.json has dependency vite");
    assert_evidence(&d, "Vite app with react");
    assert_evidence(&d, "package-lock.json present");
    assert!(!d.evidence.iter().any(|e| e.contains("index.html also present")), "{:#?}", d.evidence);
}

#[test]
fn express_with_yarn_reads_the_port_from_the_source() {
    let d = fixture("node-express-yarn");
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.framework, s("express"));
    assert_eq!(d.package_manager, s("yarn"));
    assert_eq!(d.install, s("yarn install --frozen-lockfile"));
    assert_eq!(d.build, None);
    assert_eq!(d.start, s("node server.js"));
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.runtime_version, s("20.x"));
    assert!(!d.static_site);
    assert_evidence(&d, "package.json has dependency express ^4.19.2");
    assert_evidence(&d, "yarn.lock present");
    assert_evidence(&d, "server.js listens on port 8080");
}

#[test]
fn nestjs_runs_the_compiled_main() {
    let d = fixture("node-nestjs");
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.framework, s("nestjs"));
    assert_eq!(d.package_manager, s("npm"));
    assert_eq!(d.install, s("npm ci"));
    assert_eq!(d.build, s("npm run build"));
    assert_eq!(d.start, s("node dist/main"));
    assert_eq!(d.port, Some(3000));
    assert!(!d.static_site);
    assert_evidence(&d, "package.json has dependency @nestjs/core");
}

#[test]
fn astro_without_adapter_is_static_with_bun() {
    let d = fixture("node-astro");
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.framework, s("astro"));
    assert_eq!(d.package_manager, s("bun"));
    assert_eq!(d.install, s("bun install --frozen-lockfile"));
    assert_eq!(d.build, s("bun run build"));
    assert_eq!(d.start, None);
    assert_eq!(d.port, Some(80));
    assert_eq!(d.output_dir, s("dist"));
    assert_eq!(d.runtime_version, s("20.11.0"));
    assert!(d.static_site);
    assert_evidence(&d, "package.json has dependency astro");
    assert_evidence(&d, "bun.lockb present");
    assert_evidence(&d, ".nvmrc");
}

#[test]
fn django_finds_the_project_package() {
    let d = fixture("python-django");
    assert_eq!(d.kind, ProjectType::Python);
    assert_eq!(d.framework, s("django"));
    assert_eq!(d.package_manager, s("pip"));
    assert_eq!(d.install, s("pip install --no-cache-dir -r requirements.txt"));
    assert_eq!(d.build, None);
    assert_eq!(d.start, s("gunicorn mysite.wsgi:application --bind 0.0.0.0:8000"));
    assert_eq!(d.port, Some(8000));
    assert_eq!(d.runtime_version, s("3.12"));
    assert!(!d.static_site);
    assert_evidence(&d, "django is a dependency");
    assert_evidence(&d, "mysite/wsgi.py present");
    assert_evidence(&d, "gunicorn is a dependency");
}

#[test]
fn flask_without_gunicorn_says_so() {
    let d = fixture("python-flask");
    assert_eq!(d.kind, ProjectType::Python);
    assert_eq!(d.framework, s("flask"));
    assert_eq!(d.package_manager, s("pip"));
    assert_eq!(d.install, s("pip install --no-cache-dir -r requirements.txt"));
    assert_eq!(d.start, s("gunicorn app:app --bind 0.0.0.0:8000"));
    assert_eq!(d.port, Some(8000));
    assert_eq!(d.runtime_version, s("3.11.9"));
    assert!(!d.static_site);
    assert_evidence(&d, "flask is a dependency");
    assert_evidence(&d, "app.py creates the app");
    assert_evidence(&d, "gunicorn is not a dependency");
}

#[test]
fn fastapi_with_poetry_uses_the_app_variable() {
    let d = fixture("python-fastapi-poetry");
    assert_eq!(d.kind, ProjectType::Python);
    assert_eq!(d.framework, s("fastapi"));
    assert_eq!(d.package_manager, s("poetry"));
    assert_eq!(d.install, s("poetry install --no-root --only main"));
    assert_eq!(d.start, s("uvicorn main:api --host 0.0.0.0 --port 8000"));
    assert_eq!(d.port, Some(8000));
    assert_eq!(d.runtime_version, s("^3.11"));
    assert!(!d.static_site);
    assert_evidence(&d, "[tool.poetry]");
    assert_evidence(&d, "uvicorn is a dependency");
}

#[test]
fn pipenv_flask_reads_the_pipfile() {
    let d = fixture("python-pipenv-flask");
    assert_eq!(d.kind, ProjectType::Python);
    assert_eq!(d.framework, s("flask"));
    assert_eq!(d.package_manager, s("pipenv"));
    assert_eq!(d.install, s("pipenv install --system --skip-lock"));
    assert_eq!(d.start, s("gunicorn wsgi:server --bind 0.0.0.0:8000"));
    assert_eq!(d.port, Some(8000));
    assert_eq!(d.runtime_version, s("3.12"));
    assert_evidence(&d, "Pipfile present");
    assert_evidence(&d, "gunicorn is a dependency");
}

#[test]
fn go_module() {
    let d = fixture("go");
    assert_eq!(d.kind, ProjectType::Go);
    assert_eq!(d.framework, s("chi"));
    assert_eq!(d.package_manager, s("go"));
    assert_eq!(d.install, s("go mod download"));
    assert_eq!(d.build, s("go build -o /app/server ."));
    assert_eq!(d.start, s("/app/server"));
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.runtime_version, s("1.22"));
    assert!(!d.static_site);
    assert_evidence(&d, "go.mod declares module github.com/example/hello");
}

#[test]
fn rust_crate() {
    let d = fixture("rust");
    assert_eq!(d.kind, ProjectType::Rust);
    assert_eq!(d.framework, s("axum"));
    assert_eq!(d.package_manager, s("cargo"));
    assert_eq!(d.build, s("cargo build --release"));
    assert_eq!(d.start, s("./target/release/hello-web"));
    assert_eq!(d.port, Some(3000));
    assert_eq!(d.runtime_version, s("1.79.0"));
    assert!(!d.static_site);
    assert_evidence(&d, "Cargo.toml declares package hello-web");
    assert_evidence(&d, "src/main.rs listens on port 3000");
}

#[test]
fn static_site() {
    let d = fixture("static");
    assert_eq!(d.kind, ProjectType::Static);
    assert_eq!((d.framework.clone(), d.package_manager.clone()), (None, None));
    assert_eq!((d.install.clone(), d.build.clone(), d.start.clone()), (None, None, None));
    assert_eq!(d.port, Some(80));
    assert_eq!(d.output_dir, s("."));
    assert!(d.static_site);
    assert_evidence(&d, "index.html present");
}

#[test]
fn procfile_alone() {
    let d = fixture("procfile");
    assert_eq!(d.kind, ProjectType::Procfile);
    assert_eq!(d.start, s("./serve.sh --port $PORT"));
    assert_eq!((d.install.clone(), d.build.clone(), d.port), (None, None, None));
    assert!(!d.static_site);
    assert_evidence(&d, "Procfile web process");
}

#[test]
fn unknown_lists_what_it_saw() {
    let d = fixture("unknown");
    assert_eq!(d.kind, ProjectType::Unknown);
    assert_eq!(d.confidence, 0.0);
    assert_eq!((d.start.clone(), d.port), (None, None));
    assert_evidence(&d, "top-level entries: README.md, notes.txt");
    assert_evidence(&d, "none of the known markers was found (Dockerfile,");
    assert!(d.summary().contains("Could not tell"));
}

#[test]
fn monorepo_answers_per_directory() {
    let root = fixture("monorepo");
    assert_eq!(root.kind, ProjectType::Unknown);
    assert_evidence(&root, "apps/web contains package.json");
    assert_evidence(&root, "services/api contains requirements.txt");

    let web = detect(&fixture_path("monorepo").join("apps/web")).unwrap();
    assert_eq!(web.kind, ProjectType::Node);
    assert_eq!(web.framework, s("nextjs"));
    assert_eq!(web.install, s("npm ci"));
    assert_eq!(web.start, s("npm run start"));

    let api = detect(&fixture_path("monorepo").join("services/api")).unwrap();
    assert_eq!(api.kind, ProjectType::Python);
    assert_eq!(api.framework, s("fastapi"));
    assert_eq!(api.start, s("uvicorn app.main:app --host 0.0.0.0 --port 8000"));
    assert_eq!(api.port, Some(8000));
}

#[test]
fn malformed_package_json_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("package.json"), "{ \"name\": \"broken\", ").unwrap();
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Node);
    assert_eq!(d.install, s("npm install"));
    assert_eq!(d.framework, None);
    assert!(d.confidence <= 0.4, "{}", d.confidence);
    assert_evidence(&d, "package.json is not valid JSON: ");
}

#[test]
fn malformed_pyproject_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("pyproject.toml"), "[project\nname = ").unwrap();
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Python);
    assert!(d.confidence <= 0.5);
    assert_evidence(&d, "pyproject.toml is not valid TOML");
}

#[test]
fn procfile_overrides_the_language_start_command() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("requirements.txt"), "flask\ngunicorn\n").unwrap();
    fs::write(dir.path().join("app.py"), "from flask import Flask\napp = Flask(__name__)\n").unwrap();
    fs::write(dir.path().join("Procfile"), "web: gunicorn app:app -b 0.0.0.0:$PORT -w 4\n").unwrap();
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Python);
    assert_eq!(d.framework, s("flask"));
    assert_eq!(d.start, s("gunicorn app:app -b 0.0.0.0:$PORT -w 4"));
    assert_evidence(&d, "Procfile web command `gunicorn app:app -b 0.0.0.0:$PORT -w 4` replaces `gunicorn app:app");
}

#[test]
fn procfile_parsing_takes_only_the_web_line() {
    assert_eq!(parse_procfile_web("worker: celery\nweb:  node a.js \n"), s("node a.js"));
    assert_eq!(parse_procfile_web("worker: celery\n"), None);
    assert_eq!(parse_procfile_web("web:\n"), None);
}

#[test]
fn unknown_listing_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..25 {
        fs::write(dir.path().join(format!("file{i:02}.txt")), "x").unwrap();
    }
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Unknown);
    assert_evidence(&d, "file00.txt, file01.txt");
    assert_evidence(&d, "file19.txt and 5 more");
    assert!(!d.evidence.iter().any(|e| e.contains("file20.txt")));
}

#[test]
fn empty_directory_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Unknown);
    assert_evidence(&d, "the directory is empty");
}

#[cfg(unix)]
#[test]
fn symlinks_outside_the_root_are_ignored() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("package.json"), "{\"dependencies\":{\"next\":\"14\"}}").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("package.json"), dir.path().join("package.json")).unwrap();
    let d = detect(dir.path()).unwrap();
    assert_eq!(d.kind, ProjectType::Unknown);
    assert_evidence(&d, "package.json points outside the repository; ignored");
}

#[test]
fn missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = detect(&dir.path().join("nope")).unwrap_err();
    assert!(err.path.ends_with("nope"));
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    assert_eq!(detect(&file).unwrap_err().message, "not a directory");
}

#[test]
fn ports_are_found_in_common_source_shapes() {
    assert_eq!(port_in_source("app.listen(8081, () => {})"), Some(8081));
    assert_eq!(port_in_source("const port = process.env.PORT || 5000;"), Some(5000));
    assert_eq!(port_in_source("http.ListenAndServe(\":9090\", nil)"), Some(9090));
    assert_eq!(port_in_source("TcpListener::bind(\"0.0.0.0:7000\")"), Some(7000));
    assert_eq!(port_in_source("listen(port)"), None);
    assert_eq!(port_in_source("x = \":22\""), None);
}

#[test]
fn summary_is_one_sentence() {
    let next = fixture("node-next-pnpm");
    assert_eq!(
        next.summary(),
        "Detected a Node.js project using nextjs with pnpm, started with `pnpm run start` on port 3000 (confidence 90%)."
    );
    assert!(fixture("node-vite-react").summary().contains("served as static files from dist"));
    assert_eq!(fixture("dockerfile").summary(), "Found a Dockerfile, exposing port 4000; it will be built as is.");
}

#[test]
fn serialises_with_type_and_lowercase_kind() {
    let json = serde_json::to_value(fixture("go")).unwrap();
    assert_eq!(json["type"], "go");
    assert_eq!(json["package_manager"], "go");
    assert_eq!(json["static_site"], false);
}
