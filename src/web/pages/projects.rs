//! Creating a project (from a git repository, with the detection result shown first, or from an image), a
//! project's overview with its replicas and resources, and its settings with the danger zone.

use super::{
    Chrome, FormErrors, PageError, PageResult, Posted, Viewer, builder_name, is_form_error, render, see_other, when,
    with_notice,
};
use crate::domain::{Builder, Project, Volume};
use crate::services::{
    BuildPatch, DeployInput, DetectResult, GitConnection, GitInput, ProjectInput, ProjectStatus, RuntimePatch,
    ServiceError,
};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, State};
use serde::Deserialize;

/// The URL a project answers at through Berth's HTTP listener (with its port when it is not 80).
pub fn app_url(state: &AppState, ws: &str, project: &str) -> String {
    let base = &state.services.config().base_domain;
    let port = state.services.http_port.load(std::sync::atomic::Ordering::Relaxed);
    match port {
        0 | 80 => format!("http://{project}.{ws}.{base}/"),
        p => format!("http://{project}.{ws}.{base}:{p}/"),
    }
}

/// The detection's project type as the API spells it.
fn type_name(d: &DetectResult) -> String {
    serde_json::to_value(d.detection.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct NewProjectForm {
    /// `git` or `image`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub repo_url: String,
    #[serde(default)]
    pub branch: String,
    #[serde(default)]
    pub root_directory: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub port: String,
    /// `detect` (show what the repository is) or `create`.
    #[serde(default)]
    pub action: String,
}

/// Renders `templates/projects/new.html`.
#[derive(Template)]
#[template(path = "projects/new.html")]
pub struct NewProjectPage {
    pub chrome: Chrome,
    pub form: NewProjectForm,
    pub detected: Option<DetectResult>,
    pub detected_type: String,
    pub errors: FormErrors,
}

const NEW_FIELDS: &[&str] = &["name", "repo_url", "branch", "root_directory", "image", "port"];

/// `GET /w/:ws/new`.
pub async fn new_get(State(state): State<AppState>, viewer: Viewer, Path(ws): Path<String>) -> PageResult {
    let chrome = Chrome::in_ws(&state, &viewer, &ws, "New project").await?;
    let form = NewProjectForm { source: "git".into(), ..Default::default() };
    Ok(render(&NewProjectPage {
        chrome,
        form,
        detected: None,
        detected_type: String::new(),
        errors: FormErrors::default(),
    }))
}

/// Maps the API's `repo_url` field (and the detection's) to the form's.
fn git_field(e: ServiceError) -> ServiceError {
    match e {
        ServiceError::Invalid { field, message } if field == "root_directory" || field == "branch" => {
            ServiceError::Invalid { field, message }
        }
        ServiceError::Invalid { field, message } if field.contains("repo") => {
            ServiceError::Invalid { field: "repo_url".into(), message }
        }
        other => other,
    }
}

/// `POST /w/:ws/new`: `action=detect` inspects the repository and shows what it is; `action=create` creates the
/// project (admin), connects the repository and starts the first deployment, then shows its build log.
pub async fn new_post(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Posted { viewer, form }: Posted<NewProjectForm>,
) -> PageResult {
    let s = &state.services;
    let actor = &viewer.actor;
    let opt = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let git = form.source != "image";
    let mut detected = None;
    let outcome: Result<Option<String>, ServiceError> = async {
        if git {
            let d = s
                .detect_repo(
                    actor,
                    &ws,
                    form.repo_url.trim(),
                    opt(&form.branch).as_deref(),
                    opt(&form.root_directory).as_deref(),
                    None,
                )
                .await
                .map_err(git_field)?;
            detected = Some(d);
        }
        if form.action != "create" {
            return Ok(None);
        }
        let port = match opt(&form.port) {
            Some(p) => Some(
                p.parse::<u32>().map_err(|_| ServiceError::invalid("port", format!("'{p}' is not a port number")))?,
            ),
            None => detected.as_ref().and_then(|d| d.detection.port).map(u32::from),
        };
        let builder = match &detected {
            Some(d) if type_name(d) == "dockerfile" => Builder::Dockerfile,
            Some(_) => Builder::Auto,
            None => Builder::Image,
        };
        let input = ProjectInput {
            name: Some(form.name.clone()),
            port,
            image: (!git).then(|| form.image.trim().to_owned()),
            build: Some(BuildPatch { builder: Some(builder), ..Default::default() }),
            ..Default::default()
        };
        let project = s.create_project(actor, &ws, input).await?;
        if git {
            let git_input = GitInput {
                repo_url: Some(form.repo_url.trim().to_owned()),
                branch: opt(&form.branch),
                root_directory: opt(&form.root_directory),
                ..Default::default()
            };
            if let Err(e) = s.put_git(actor, &ws, &project.slug, git_input).await {
                // Keep create-and-connect all or nothing, so the form can be sent again as it is.
                let _ = s.delete_project(actor, &ws, &project.slug).await;
                return Err(git_field(e));
            }
        }
        let d = s.create_deployment(actor, &ws, &project.slug, None, DeployInput::default()).await?;
        Ok(Some(format!("/w/{ws}/d/{}", d.id)))
    }
    .await;
    match outcome {
        Ok(Some(to)) => Ok(see_other(&to)),
        Ok(None) => {
            let chrome = Chrome::in_ws(&state, &viewer, &ws, "New project").await?;
            let detected_type = detected.as_ref().map(type_name).unwrap_or_default();
            let mut form = form;
            if form.port.is_empty() {
                form.port = detected.as_ref().and_then(|d| d.detection.port).map(|p| p.to_string()).unwrap_or_default();
            }
            Ok(render(&NewProjectPage { chrome, form, detected, detected_type, errors: FormErrors::default() }))
        }
        Err(e) if is_form_error(&e) => {
            let chrome = Chrome::in_ws(&state, &viewer, &ws, "New project").await?;
            let detected_type = detected.as_ref().map(type_name).unwrap_or_default();
            let errors = FormErrors::from_error(&e, NEW_FIELDS);
            Ok(render(&NewProjectPage { chrome, form, detected, detected_type, errors }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/projects/overview.html`.
#[derive(Template)]
#[template(path = "projects/overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub project: Project,
    pub status: ProjectStatus,
    pub url: String,
    pub latest_when: String,
    pub error: Option<String>,
}

async fn overview(state: &AppState, viewer: &Viewer, ws: &str, p: &str, error: Option<String>) -> PageResult {
    let chrome = Chrome::in_project(state, viewer, ws, p, "overview").await?;
    let (_, project) = state.services.get_project(&viewer.actor, ws, p).await?;
    let status = state.services.project_status(&viewer.actor, ws, p, None).await?;
    let latest_when = status.latest_deployment.as_ref().map(|d| when(&d.created_at)).unwrap_or_default();
    let url = app_url(state, ws, &project.slug);
    Ok(render(&OverviewPage { chrome, project, status, url, latest_when, error }))
}

/// `GET /w/:ws/p/:p`: status, replicas, CPU and memory against the limits, the URL and the latest deployment.
pub async fn overview_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
) -> PageResult {
    overview(&state, &viewer, &ws, &p, None).await
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize)]
pub struct ControlForm {
    /// `deploy`, `redeploy`, `restart`, `start` or `stop`.
    pub action: String,
}

/// `POST /w/:ws/p/:p`: deploy from git, redeploy, restart, start or stop (the API's routes of the same names).
pub async fn overview_post(
    State(state): State<AppState>,
    Path((ws, p)): Path<(String, String)>,
    Posted { viewer, form }: Posted<ControlForm>,
) -> PageResult {
    use crate::domain::DeploymentKind::{Redeploy, Restart};
    let (s, a) = (&state.services, &viewer.actor);
    let r = match form.action.as_str() {
        "deploy" => s.create_deployment(a, &ws, &p, None, DeployInput::default()).await,
        "redeploy" | "start" => s.redeploy_project(a, &ws, &p, None, Redeploy).await,
        "restart" => s.redeploy_project(a, &ws, &p, None, Restart).await,
        "stop" => s.stop_project(a, &ws, &p, None).await,
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(d) => Ok(see_other(&format!("/w/{ws}/d/{}", d.id))),
        Err(e @ (ServiceError::Conflict { .. } | ServiceError::Invalid { .. })) => {
            overview(&state, &viewer, &ws, &p, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Renders `templates/projects/settings.html`.
#[derive(Template)]
#[template(path = "projects/settings.html")]
pub struct SettingsPage {
    pub chrome: Chrome,
    pub project: Project,
    pub git: Option<GitConnection>,
    pub builder: &'static str,
    pub volumes: String,
    pub errors: FormErrors,
    pub saved: bool,
}

/// The first 7 characters of a commit id.
pub fn short_commit(c: &str) -> &str {
    c.get(..7).unwrap_or(c)
}

impl SettingsPage {
    pub fn opt<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }
}

async fn settings_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    p: &str,
    errors: FormErrors,
    saved: bool,
) -> PageResult {
    let chrome = Chrome::in_project(state, viewer, ws, p, "settings").await?;
    let (_, project) = state.services.get_project(&viewer.actor, ws, p).await?;
    let git = match state.services.get_git(&viewer.actor, ws, p, false).await {
        Ok(g) => Some(g),
        Err(ServiceError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let volumes = project.volumes.iter().map(|v| format!("{}:{}", v.name, v.mount_path)).collect::<Vec<_>>().join("\n");
    let builder = builder_name(project.build.builder);
    Ok(render(&SettingsPage { chrome, project, git, builder, volumes, errors, saved }))
}

/// `GET /w/:ws/p/:p/settings`.
pub async fn settings_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, p)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<SavedQuery>,
) -> PageResult {
    let saved = q.saved.is_some();
    settings_page(&state, &viewer, &ws, &p, FormErrors::default(), saved).await
}

/// The page's query string.
#[derive(Deserialize)]
pub struct SavedQuery {
    pub saved: Option<String>,
}

/// What the form posts; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct SettingsForm {
    /// `git`, `build`, `runtime`, `resources`, `volumes` or `delete`.
    pub section: String,
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    pub auto_deploy: Option<String>,
    pub root_directory: Option<String>,
    pub builder: Option<String>,
    pub dockerfile_path: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
    pub health_check_path: Option<String>,
    pub image: Option<String>,
    pub port: Option<String>,
    pub replicas: Option<String>,
    pub cpu: Option<String>,
    pub ram: Option<String>,
    pub volumes: Option<String>,
    pub confirm: Option<String>,
}

fn number(field: &'static str, v: Option<String>) -> Result<Option<u32>, ServiceError> {
    match v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.parse().map(Some).map_err(|_| ServiceError::invalid(field, format!("'{v}' is not a whole number")))
        }
    }
}

/// `name:/mount/path` lines into volumes.
fn parse_volumes(text: &str) -> Result<Vec<Volume>, ServiceError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((name, path)) => Ok(Volume { name: name.trim().to_owned(), mount_path: path.trim().to_owned() }),
            None => Err(ServiceError::invalid("volumes", format!("'{l}' should be name:/mount/path"))),
        })
        .collect()
}

/// The project fields of the API's `PATCH` that a settings section changes.
fn patch_of(form: SettingsForm) -> Result<ProjectInput, ServiceError> {
    Ok(match form.section.as_str() {
        "build" => ProjectInput {
            build: Some(BuildPatch {
                builder: match form.builder.as_deref() {
                    Some("dockerfile") => Some(Builder::Dockerfile),
                    Some("image") => Some(Builder::Image),
                    Some("auto") => Some(Builder::Auto),
                    _ => None,
                },
                root_directory: form.root_directory,
                dockerfile_path: form.dockerfile_path,
                install_command: form.install_command,
                build_command: form.build_command,
                start_command: None,
            }),
            image: form.image,
            ..Default::default()
        },
        "runtime" => ProjectInput {
            runtime: Some(RuntimePatch {
                health_check_path: form.health_check_path,
                start_command: form.start_command,
            }),
            ..Default::default()
        },
        "resources" => ProjectInput {
            port: number("port", form.port)?,
            replicas: number("replicas", form.replicas)?,
            cpu: form.cpu.filter(|c| !c.trim().is_empty()),
            ram: form.ram.filter(|r| !r.trim().is_empty()),
            ..Default::default()
        },
        "volumes" => {
            ProjectInput { volumes: Some(parse_volumes(form.volumes.as_deref().unwrap_or(""))?), ..Default::default() }
        }
        other => return Err(ServiceError::invalid("section", format!("'{other}' is not a settings section"))),
    })
}

/// `POST /w/:ws/p/:p/settings`: one section at a time, through the same use cases as `PATCH …/projects/:p`,
/// `PUT …/git` and `DELETE …/projects/:p` (admin). Deleting needs the project's slug typed to confirm.
pub async fn settings_post(
    State(state): State<AppState>,
    Path((ws, p)): Path<(String, String)>,
    Posted { viewer, form }: Posted<SettingsForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let section = form.section.clone();
    let r: Result<(), ServiceError> = match section.as_str() {
        "delete" => {
            if form.confirm.as_deref().map(str::trim) != Some(p.as_str()) {
                Err(ServiceError::invalid("confirm", format!("type the project's slug '{p}' to confirm")))
            } else {
                match s.delete_project(a, &ws, &p).await {
                    Ok(deleted) => {
                        let notice = match deleted.volumes_kept.as_deref() {
                            Some([]) => format!("Deleted {p}."),
                            Some(names) => format!(
                                "Deleted {p}. Its volumes are kept with their data: {} (docker volume rm deletes one).",
                                names.join(", ")
                            ),
                            None => format!("Deleted {p}. Its volumes are kept (Docker could not be asked which)."),
                        };
                        return Ok(see_other(&with_notice(&format!("/w/{ws}"), &notice)));
                    }
                    Err(e) => Err(e),
                }
            }
        }
        "git" => {
            let input = GitInput {
                repo_url: form.repo_url,
                branch: form.branch,
                auto_deploy: Some(form.auto_deploy.is_some()),
                root_directory: form.root_directory,
                ..Default::default()
            };
            s.put_git(a, &ws, &p, input).await.map(|_| ()).map_err(git_field)
        }
        _ => match patch_of(form) {
            Ok(input) => s.update_project(a, &ws, &p, input).await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    match r {
        Ok(()) => Ok(see_other(&format!("/w/{ws}/p/{p}/settings?saved={section}"))),
        Err(e) if is_form_error(&e) => {
            let fields = [
                "repo_url",
                "branch",
                "root_directory",
                "build.root_directory",
                "build.dockerfile_path",
                "build.install_command",
                "build.build_command",
                "runtime.start_command",
                "health_check_path",
                "image",
                "port",
                "replicas",
                "cpu",
                "ram",
                "volumes",
                "confirm",
            ];
            let errors = FormErrors::from_error(&e, &fields);
            settings_page(&state, &viewer, &ws, &p, errors, false).await
        }
        Err(e) => Err(PageError::from(e)),
    }
}
