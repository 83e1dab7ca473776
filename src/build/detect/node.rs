//! Node.js: the package manager from lockfiles, the framework from dependencies, commands from `scripts`.

use super::repo::Repo;
use super::{DetectError, Detection, ProjectType, port_in_source};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Lockfiles in the order they are trusted, with the package manager each implies.
const LOCKFILES: [(&str, &str); 6] = [
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
];

/// HTTP server libraries, with the framework name reported for each.
const SERVERS: [(&str, &str); 4] = [("express", "express"), ("fastify", "fastify"), ("koa", "koa"), ("hono", "hono")];

/// UI libraries worth naming next to Vite.
const VITE_FLAVOURS: [&str; 6] = ["react", "vue", "svelte", "solid-js", "preact", "lit"];

/// Files a plain Node server conventionally starts from.
const ENTRY_FILES: [&str; 5] = ["index.js", "server.js", "app.js", "main.js", "src/index.js"];

/// How dependencies get installed and scripts run.
struct Manager {
    /// `npm`, `pnpm`, `yarn` or `bun`.
    name: String,
    /// Whether a lockfile pins the dependencies.
    locked: bool,
    /// Yarn 2+ (`--immutable` instead of `--frozen-lockfile`).
    berry: bool,
}

impl Manager {
    /// The install command, with the frozen-lockfile flag when a lockfile exists.
    fn install(&self) -> String {
        let name = &self.name;
        match (name.as_str(), self.locked) {
            ("npm", true) => "npm ci".to_string(),
            ("yarn", true) if self.berry => "yarn install --immutable".to_string(),
            (_, true) => format!("{name} install --frozen-lockfile"),
            (_, false) => format!("{name} install"),
        }
    }

    /// `<pm> run <script>`.
    fn run(&self, script: &str) -> String {
        format!("{} run {script}", self.name)
    }

    /// Runs a binary from `node_modules/.bin`.
    fn exec(&self, command: &str) -> String {
        match self.name.as_str() {
            "pnpm" => format!("pnpm exec {command}"),
            "yarn" => format!("yarn {command}"),
            "bun" => format!("bunx {command}"),
            _ => format!("npx {command}"),
        }
    }
}

/// What `package.json` says, reduced to the parts detection uses.
struct Package {
    /// The parsed object (empty when the file is malformed).
    json: Map<String, Value>,
    /// `dependencies` and `devDependencies` merged, name → version range.
    deps: BTreeMap<String, String>,
}

impl Package {
    /// The command of `scripts.<name>`, if present.
    fn script(&self, name: &str) -> Option<&str> {
        self.json.get("scripts")?.get(name)?.as_str()
    }

    /// A top-level string field.
    fn field(&self, name: &str) -> Option<&str> {
        self.json.get(name)?.as_str()
    }

    /// Whether the dependency is present; records it as evidence when it is.
    fn has(&self, name: &str, evidence: &mut Vec<String>) -> bool {
        match self.deps.get(name) {
            Some(version) => {
                evidence.push(format!("package.json has dependency {name} {version}"));
                true
            }
            None => false,
        }
    }
}

/// Detects a Node project; the caller has checked that `package.json` exists.
pub(super) fn detect(repo: &Repo) -> Result<Detection, DetectError> {
    let mut d = Detection::empty(ProjectType::Node, 0.9);
    d.evidence.push("package.json present".to_string());
    let pkg = read_package(repo, &mut d)?;
    let pm = manager(repo, &pkg, &mut d);
    d.package_manager = Some(pm.name.clone());
    d.install = Some(pm.install());
    d.build = pkg.script("build").map(|_| pm.run("build"));
    d.runtime_version = runtime_version(repo, &pkg, &mut d)?;
    if pkg.json.contains_key("workspaces") || repo.is_top_file("pnpm-workspace.yaml") {
        d.evidence.push("this is a workspace root; pointing the root directory at one package is safer".to_string());
        d.confidence -= 0.3;
    }
    framework(repo, &pkg, &pm, &mut d)?;
    Ok(d)
}

/// Parses `package.json`; a malformed file yields an empty package and lowers the confidence.
fn read_package(repo: &Repo, d: &mut Detection) -> Result<Package, DetectError> {
    let text = repo.read("package.json")?.unwrap_or_default();
    let json = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            d.evidence.push("package.json is not a JSON object".to_string());
            d.confidence = 0.4;
            Map::new()
        }
        Err(e) => {
            d.evidence.push(format!("package.json is not valid JSON: {e}"));
            d.confidence = 0.4;
            Map::new()
        }
    };
    let mut deps = BTreeMap::new();
    for section in ["devDependencies", "dependencies"] {
        if let Some(Value::Object(map)) = json.get(section) {
            for (name, version) in map {
                deps.insert(name.clone(), version.as_str().unwrap_or("*").to_string());
            }
        }
    }
    Ok(Package { json, deps })
}

/// The package manager: a lockfile first, then the `packageManager` field, else npm (with less confidence).
fn manager(repo: &Repo, pkg: &Package, d: &mut Detection) -> Manager {
    let declared = pkg.field("packageManager").map(|spec| {
        let (name, version) = spec.split_once('@').unwrap_or((spec, ""));
        (name.to_string(), version.split('.').next().and_then(|major| major.parse::<u32>().ok()))
    });
    let berry_by_version = matches!(&declared, Some((name, Some(major))) if name == "yarn" && *major >= 2);
    let berry = berry_by_version || repo.is_top_file(".yarnrc.yml");
    let locks: Vec<_> = LOCKFILES.iter().filter(|(file, _)| repo.is_top_file(file)).collect();
    if let Some((file, name)) = locks.first() {
        d.evidence.push(format!("{file} present"));
        if locks.len() > 1 {
            let all = locks.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ");
            d.evidence.push(format!("several lockfiles ({all}); using {file}"));
            d.confidence -= 0.1;
        }
        return Manager { name: (*name).to_string(), locked: true, berry };
    }
    if let Some((name, _)) = declared.filter(|(name, _)| ["npm", "pnpm", "yarn", "bun"].contains(&name.as_str())) {
        d.evidence.push(format!("package.json declares packageManager {name}; no lockfile"));
        return Manager { name, locked: false, berry };
    }
    d.evidence.push("no lockfile; assuming npm".to_string());
    d.confidence -= 0.1;
    Manager { name: "npm".to_string(), locked: false, berry: false }
}

/// `engines.node`, else `.nvmrc`, else `.node-version`.
fn runtime_version(repo: &Repo, pkg: &Package, d: &mut Detection) -> Result<Option<String>, DetectError> {
    if let Some(version) = pkg.json.get("engines").and_then(|e| e.get("node")).and_then(Value::as_str) {
        d.evidence.push(format!("package.json engines.node is {version}"));
        return Ok(Some(version.to_string()));
    }
    for file in [".nvmrc", ".node-version"] {
        if let Some(text) = repo.read(file)? {
            let version = text.trim();
            if !version.is_empty() {
                d.evidence.push(format!("{file} asks for Node {version}"));
                return Ok(Some(version.trim_start_matches('v').to_string()));
            }
        }
    }
    Ok(None)
}

/// Fills framework, build, start, port and static output from the dependencies.
fn framework(repo: &Repo, pkg: &Package, pm: &Manager, d: &mut Detection) -> Result<(), DetectError> {
    let build_or = |fallback: &str| Some(pkg.script("build").map_or_else(|| pm.exec(fallback), |_| pm.run("build")));
    let mut ev = Vec::new();
    let server = SERVERS.iter().find(|(dep, _)| pkg.deps.contains_key(*dep));
    let custom_start = pkg.script("start").is_some_and(|s| !s.contains("vite"));
    if pkg.has("next", &mut ev) {
        d.framework = Some("nextjs".to_string());
        d.build = build_or("next build");
        if next_static_export(repo)? {
            ev.push("next.config sets output: 'export'; serving the static export".to_string());
            set_static(d, "out");
        } else {
            d.start = Some(pkg.script("start").map_or_else(|| pm.exec("next start"), |_| pm.run("start")));
            d.port = Some(3000);
        }
    } else if pkg.has("@nestjs/core", &mut ev) {
        d.framework = Some("nestjs".to_string());
        d.build = build_or("nest build");
        d.start = Some("node dist/main".to_string());
        d.port = Some(source_port(repo, "src/main.ts", 3000, &mut ev)?);
    } else if pkg.has("astro", &mut ev) {
        d.framework = Some("astro".to_string());
        d.build = build_or("astro build");
        astro(pkg, d, &mut ev);
    } else if pkg.has("nuxt", &mut ev) {
        d.framework = Some("nuxt".to_string());
        d.build = build_or("nuxt build");
        d.start = Some("node .output/server/index.mjs".to_string());
        d.port = Some(3000);
    } else if let Some((dep, name)) = server.filter(|_| custom_start || !pkg.deps.contains_key("vite")) {
        pkg.has(dep, &mut ev);
        d.framework = Some((*name).to_string());
        server_start(repo, pkg, pm, d, &mut ev)?;
    } else if pkg.has("vite", &mut ev) {
        d.framework = Some("vite".to_string());
        d.build = build_or("vite build");
        let flavours: Vec<_> = VITE_FLAVOURS.iter().filter(|f| pkg.deps.contains_key(**f)).copied().collect();
        if !flavours.is_empty() {
            ev.push(format!("Vite app with {}", flavours.join(", ")));
        }
        let out = vite_out_dir(repo)?;
        set_static(d, &out);
    } else if pkg.has("react-scripts", &mut ev) {
        d.framework = Some("react".to_string());
        d.build = build_or("react-scripts build");
        ev.push("Create React App builds static files into build/".to_string());
        set_static(d, "build");
    } else {
        d.confidence -= 0.15;
        server_start(repo, pkg, pm, d, &mut ev)?;
    }
    d.evidence.append(&mut ev);
    Ok(())
}

/// Astro is static unless the Node SSR adapter is present.
fn astro(pkg: &Package, d: &mut Detection, ev: &mut Vec<String>) {
    if pkg.has("@astrojs/node", ev) {
        ev.push("the @astrojs/node adapter makes it a server (SSR) app".to_string());
        d.start = Some("node ./dist/server/entry.mjs".to_string());
        d.port = Some(4321);
        ev.push("port 4321 is the Astro Node adapter's default".to_string());
        return;
    }
    if let Some(adapter) = pkg.deps.keys().find(|k| k.starts_with("@astrojs/") && is_host_adapter(k)) {
        ev.push(format!("{adapter} targets another hosting platform; building as a static site instead"));
        d.confidence -= 0.3;
    } else {
        ev.push("no SSR adapter; Astro builds static files into dist/".to_string());
    }
    set_static(d, "dist");
}

/// Astro adapters for other hosting platforms.
fn is_host_adapter(name: &str) -> bool {
    ["vercel", "netlify", "cloudflare", "deno"].iter().any(|host| name.ends_with(host))
}

/// Marks the result as static files served from `dir` by Berth on port 80.
fn set_static(d: &mut Detection, dir: &str) {
    d.static_site = true;
    d.output_dir = Some(dir.to_string());
    d.start = None;
    d.port = Some(80);
}

/// The start command of a server app: `scripts.start`, else `main`, else a conventional entry file; the port from
/// a literal in the entry file, else the 3000 convention.
fn server_start(
    repo: &Repo,
    pkg: &Package,
    pm: &Manager,
    d: &mut Detection,
    ev: &mut Vec<String>,
) -> Result<(), DetectError> {
    let mut entry = pkg.field("main").map(str::to_string);
    if let Some(script) = pkg.script("start") {
        ev.push(format!("scripts.start is `{script}`"));
        match simple_node_command(script) {
            Some(file) => {
                d.start = Some(script.to_string());
                entry = Some(file.to_string());
            }
            None => d.start = Some(pm.run("start")),
        }
    } else if let Some(main) = &entry {
        ev.push(format!("package.json main is {main}"));
        d.start = Some(format!("node {main}"));
    } else if let Some(file) = ENTRY_FILES.iter().find(|f| repo.is_file(f)) {
        ev.push(format!("no start script or main; {file} present"));
        d.start = Some(format!("node {file}"));
        entry = Some((*file).to_string());
    } else {
        ev.push("no start script, main field or index.js; a start command must be set by hand".to_string());
        d.confidence = d.confidence.min(0.5);
    }
    let port = match &entry {
        Some(file) => source_port(repo, file, 3000, ev)?,
        None => 3000,
    };
    if d.start.is_some() {
        d.port = Some(port);
    }
    Ok(())
}

/// The file run by a start script of the exact form `node <file>` (no shell operators), if it is that.
fn simple_node_command(script: &str) -> Option<&str> {
    let rest = script.strip_prefix("node ")?.trim();
    let plain = !rest.is_empty() && !rest.contains(['&', '|', ';', '$', '>', '<', ' ', '`']);
    plain.then_some(rest)
}

/// The port literal in `file`, or `default` (saying which in the evidence).
fn source_port(repo: &Repo, file: &str, default: u16, ev: &mut Vec<String>) -> Result<u16, DetectError> {
    match repo.read(file)?.as_deref().and_then(port_in_source) {
        Some(port) => {
            ev.push(format!("{file} listens on port {port}"));
            Ok(port)
        }
        None => {
            ev.push(format!("no port literal seen in {file}; assuming {default}"));
            Ok(default)
        }
    }
}

/// Whether a `next.config.*` asks for a static export.
fn next_static_export(repo: &Repo) -> Result<bool, DetectError> {
    for file in ["next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs"] {
        if let Some(text) = repo.read(file)? {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("output:'export'") || compact.contains("output:\"export\"") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Vite's `build.outDir` when a config sets it to a string literal, else `dist`.
fn vite_out_dir(repo: &Repo) -> Result<String, DetectError> {
    for file in ["vite.config.ts", "vite.config.js", "vite.config.mjs", "vite.config.mts"] {
        let Some(text) = repo.read(file)? else { continue };
        let Some((_, rest)) = text.split_once("outDir") else { continue };
        let rest = rest.trim_start().trim_start_matches(':').trim_start();
        let Some(quote) = rest.chars().next().filter(|c| ['\'', '"', '`'].contains(c)) else { continue };
        if let Some(dir) = rest[1..].split(quote).next().filter(|d| !d.is_empty() && !d.contains('$')) {
            return Ok(dir.trim_start_matches("./").to_string());
        }
    }
    Ok("dist".to_string())
}
