//! A workspace's managed databases and their backups: the list with the create form, one database's page
//! (connection details, start/stop/restart, attach, backups, schedule, restore, delete) and backup downloads.
//! Every action calls the same use case as the API, so the same roles apply: members see the connection details
//! masked and may back up; everything else is for admins.

use super::{Chrome, FormErrors, PageResult, Posted, Viewer, is_form_error, render, see_other, when, with_notice};
use crate::domain::PageRequest;
use crate::domain::database::{BackupStatus, DatabaseStatus, KINDS};
use crate::services::{BackupView, DatabaseInput, DatabaseView, RestoreInput, ServiceError};
use crate::web::AppState;
use crate::web::api::databases::backup_file_response;
use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

/// One database as a line of the list.
pub struct DatabaseLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub version: String,
    pub status: &'static str,
    /// "succeeded 2026-11-24 14:16 UTC", or "never".
    pub last_backup: String,
    pub last_backup_failed: bool,
}

impl From<&DatabaseView> for DatabaseLine {
    fn from(d: &DatabaseView) -> Self {
        let (last_backup, last_backup_failed) = match &d.last_backup {
            Some(b) => (format!("{} {}", b.status.as_str(), when(&b.started_at)), b.status == BackupStatus::Failed),
            None => ("never".to_owned(), false),
        };
        DatabaseLine {
            id: d.id.clone(),
            name: d.name.clone(),
            kind: d.kind.as_str(),
            version: d.version.clone(),
            status: d.status.as_str(),
            last_backup,
            last_backup_failed,
        }
    }
}

/// Renders `templates/databases/list.html`.
#[derive(Template)]
#[template(path = "databases/list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub databases: Vec<DatabaseLine>,
    pub kinds: Vec<&'static str>,
    pub form: CreateForm,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

/// The create form's fields; fields it does not name (`_csrf`) are ignored here and checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub version: String,
    pub public: Option<String>,
}

/// A page's `?notice=` after a redirect.
#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

async fn list_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    form: CreateForm,
    errors: FormErrors,
    notice: Option<String>,
) -> PageResult {
    let mut chrome = Chrome::in_ws(state, viewer, ws, "Databases").await?;
    chrome.tab = "databases";
    let databases = state.services.list_databases(&viewer.actor, ws).await?;
    let databases = databases.iter().map(DatabaseLine::from).collect();
    let kinds = KINDS.iter().map(|k| k.as_str()).collect();
    Ok(render(&ListPage { chrome, databases, kinds, form, errors, notice }))
}

/// `GET /w/:ws/databases`.
pub async fn list_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let form = CreateForm { kind: "postgresql".into(), ..CreateForm::default() };
    list_page(&state, &viewer, &ws, form, FormErrors::default(), q.notice).await
}

/// `POST /w/:ws/databases`: the API's create use case (admin); waits until the database accepts connections,
/// then shows its page.
pub async fn list_post(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Posted { viewer, form }: Posted<CreateForm>,
) -> PageResult {
    let version = Some(form.version.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
    let input = DatabaseInput {
        name: form.name.trim().to_owned(),
        kind: form.kind.clone(),
        version,
        public: form.public.is_some(),
    };
    match state.services.create_database(&viewer.actor, &ws, input).await {
        Ok(db) => {
            let notice = format!("Created {} ({}).", db.name, db.status.as_str());
            Ok(see_other(&with_notice(&format!("/w/{ws}/databases/{}", db.id), &notice)))
        }
        Err(e) if is_form_error(&e) => {
            let e = match e {
                ServiceError::Conflict { message, .. } => ServiceError::invalid("name", message),
                other => other,
            };
            let errors = FormErrors::from_error(&e, &["name", "type", "version"]);
            list_page(&state, &viewer, &ws, form, errors, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// One backup as a line of the database's page.
pub struct BackupLine {
    pub id: String,
    pub trigger: &'static str,
    pub status: &'static str,
    pub size: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// The checksum's first 12 digits, the whole one in a tooltip.
    pub sha_short: String,
    pub created: String,
    pub error: Option<String>,
    pub usable: bool,
    /// Whether the file is on this machine's disk.
    pub local_copy: bool,
    /// The S3 copy's status (`uploading`, `uploaded`, `failed`), its `s3://` location, why it failed and when it
    /// is tried again.
    pub remote: Option<(&'static str, String, Option<String>, Option<String>)>,
}

impl From<BackupView> for BackupLine {
    fn from(b: BackupView) -> Self {
        let size_bytes = b.size_bytes.unwrap_or(0);
        BackupLine {
            trigger: b.trigger.as_str(),
            status: b.status.as_str(),
            size: b.size_bytes.map(size_text).unwrap_or_default(),
            size_bytes,
            sha_short: b.sha256.as_deref().map(|h| h.chars().take(12).collect()).unwrap_or_default(),
            sha256: b.sha256.unwrap_or_default(),
            created: when(&b.started_at),
            error: b.error,
            usable: b.status == BackupStatus::Succeeded,
            local_copy: b.local_copy,
            remote: b.remote.map(|r| (r.status.as_str(), r.location, r.error, r.next_attempt_at.as_ref().map(when))),
            id: b.id,
        }
    }
}

/// `1234` as `1.2 KiB`, below 1 KiB as `512 bytes`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Renders `templates/databases/detail.html`.
#[derive(Template)]
#[template(path = "databases/detail.html")]
pub struct DetailPage {
    pub chrome: Chrome,
    pub db: DatabaseView,
    pub status: &'static str,
    pub backups: Vec<BackupLine>,
    /// Whether a backup is still running (the page refreshes itself then).
    pub running: bool,
    /// (slug, name) of the workspace's projects, for attaching (admins only).
    pub projects: Vec<(String, String)>,
    pub form: DetailForm,
    pub errors: FormErrors,
    pub notice: Option<String>,
}

impl DetailPage {
    /// The start/stop/restart buttons that apply to the database's status, as (action, label): Start for one that
    /// does not run (stopped or failed), Stop and Restart for one that runs or is coming up.
    pub fn controls(&self) -> &'static [(&'static str, &'static str)] {
        match self.db.status {
            DatabaseStatus::Stopped | DatabaseStatus::Failed => &[("start", "Start")],
            DatabaseStatus::Running | DatabaseStatus::Starting | DatabaseStatus::Restarting => {
                &[("stop", "Stop"), ("restart", "Restart")]
            }
        }
    }

    /// Whether some backup can be restored.
    pub fn any_usable(&self) -> bool {
        self.backups.iter().any(|b| b.usable)
    }

    /// When the schedule fires next, readable.
    pub fn next_run(&self) -> Option<String> {
        self.db.backup_schedule.as_ref().and_then(|s| s.next_run_at.as_ref()).map(when)
    }

    /// The schedule form's cron value: what was posted, else the current schedule.
    pub fn cron_value(&self) -> String {
        match (&self.form.cron, &self.db.backup_schedule) {
            (Some(c), _) => c.clone(),
            (None, Some(s)) => s.cron.clone(),
            (None, None) => String::new(),
        }
    }

    /// The schedule form's retain value.
    pub fn retain_value(&self) -> String {
        match (&self.form.retain, &self.db.backup_schedule) {
            (Some(r), _) => r.clone(),
            (None, Some(s)) => s.retain.to_string(),
            (None, None) => "7".to_owned(),
        }
    }
}

/// What the database page's forms post; fields a form does not name are absent. `_csrf` is checked by `Posted`.
#[derive(Deserialize, Default)]
pub struct DetailForm {
    /// `start`, `stop`, `restart`, `attach`, `backup`, `schedule`, `restore` or `delete`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub env_key: String,
    pub cron: Option<String>,
    pub retain: Option<String>,
    #[serde(default)]
    pub backup: String,
    #[serde(default)]
    pub restore_confirm: String,
    #[serde(default)]
    pub into: String,
    #[serde(default)]
    pub delete_confirm: String,
    pub purge: Option<String>,
}

/// The fields of the database page that show their own error.
const DETAIL_FIELDS: [&str; 6] = ["env_key", "cron", "retain", "restore_confirm", "into", "delete_confirm"];

async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    ws: &str,
    id: &str,
    form: DetailForm,
    errors: FormErrors,
    notice: Option<String>,
) -> PageResult {
    let s = &state.services;
    let db = s.get_database(&viewer.actor, ws, id).await?;
    let mut chrome = Chrome::in_ws(state, viewer, ws, format!("{} · Databases", db.name)).await?;
    chrome.tab = "databases";
    let backups: Vec<BackupLine> =
        s.list_backups(&viewer.actor, ws, id).await?.into_iter().map(BackupLine::from).collect();
    let projects = if chrome.is_admin() {
        let (_, list) = s.list_projects(&viewer.actor, ws, PageRequest { page: 1, limit: 100 }).await?;
        list.items.into_iter().map(|p| (p.slug, p.name)).collect()
    } else {
        Vec::new()
    };
    let running = backups.iter().any(|b| b.status == "running");
    let status = db.status.as_str();
    Ok(render(&DetailPage { chrome, db, status, backups, running, projects, form, errors, notice }))
}

/// `GET /w/:ws/databases/:id`.
pub async fn detail_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    detail_page(&state, &viewer, &ws, &id, DetailForm::default(), FormErrors::default(), q.notice).await
}

/// Where a successful action goes next, and what it says there.
enum Next {
    Here(String),
    Database(String, String),
    List(String),
}

/// `POST /w/:ws/databases/:id`: the API's control, attach, backup, schedule, restore and delete use cases.
pub async fn detail_post(
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    Posted { viewer, form }: Posted<DetailForm>,
) -> PageResult {
    let (s, a) = (&state.services, &viewer.actor);
    let r: Result<Next, ServiceError> = match form.action.as_str() {
        action @ ("start" | "stop" | "restart") => s
            .control_database(a, &ws, &id, action)
            .await
            .map(|d| Next::Here(format!("{} is {}.", d.name, d.status.as_str()))),
        "attach" => {
            let key = Some(form.env_key.trim()).filter(|k| !k.is_empty());
            s.attach_database(a, &ws, &id, &form.project, key).await.map(|r| {
                let restart = if r.restart_required { " Redeploy the project to apply." } else { "" };
                Next::Here(format!("{} of {} {}.{restart}", r.env_key, r.project, r.change))
            })
        }
        "backup" => s.create_backup(a, &ws, &id).await.map(|_| Next::Here("Backup started.".to_owned())),
        "schedule" => {
            let cron = form.cron.as_deref().unwrap_or("");
            match form.retain.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::parse::<u32>) {
                Some(Err(_)) => Err(ServiceError::invalid("retain", "must be a whole number from 1 to 1000")),
                Some(Ok(n)) => s.set_backup_schedule(a, &ws, &id, Some(cron), Some(n)).await,
                None => s.set_backup_schedule(a, &ws, &id, Some(cron), None).await,
            }
            .map(|d| {
                Next::Here(match d.backup_schedule {
                    Some(sc) => format!("Backups scheduled at {} (UTC), keeping {}.", sc.cron, sc.retain),
                    None => "Backup schedule removed.".to_owned(),
                })
            })
        }
        "restore" => {
            let into = Some(form.into.trim()).filter(|i| !i.is_empty()).map(str::to_owned);
            let input = RestoreInput { confirm: Some(form.restore_confirm.clone()), into };
            s.restore_backup(a, &ws, &id, &form.backup, input)
                .await
                .map_err(|e| match e {
                    ServiceError::Invalid { field, message } if field == "confirm" => {
                        ServiceError::invalid("restore_confirm", message)
                    }
                    ServiceError::Conflict { message, .. } if !form.into.trim().is_empty() => {
                        ServiceError::invalid("into", message)
                    }
                    other => other,
                })
                .map(|r| {
                    let notice = format!("Restored backup {} into {}.", r.backup_id, r.database.name);
                    if r.database.id == id { Next::Here(notice) } else { Next::Database(r.database.id, notice) }
                })
        }
        "delete" => s
            .delete_database(a, &ws, &id, Some(form.delete_confirm.trim()), form.purge.is_some())
            .await
            .map_err(|e| match e {
                ServiceError::Invalid { field, message } if field == "confirm" => {
                    ServiceError::invalid("delete_confirm", message)
                }
                other => other,
            })
            .map(|d| {
                Next::List(if d.volume_kept {
                    format!("Database deleted; its volume {} and backups were kept.", d.volume)
                } else {
                    "Database deleted with its volume and backups.".to_owned()
                })
            }),
        other => Err(ServiceError::invalid("action", format!("'{other}' is not an action"))),
    };
    match r {
        Ok(Next::Here(n)) => Ok(see_other(&with_notice(&format!("/w/{ws}/databases/{id}"), &n))),
        Ok(Next::Database(other, n)) => Ok(see_other(&with_notice(&format!("/w/{ws}/databases/{other}"), &n))),
        Ok(Next::List(n)) => Ok(see_other(&with_notice(&format!("/w/{ws}/databases"), &n))),
        Err(e) if is_form_error(&e) => {
            let errors = FormErrors::from_error(&e, &DETAIL_FIELDS);
            detail_page(&state, &viewer, &ws, &id, form, errors, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /w/:ws/databases/:id/backups/:b/download`: the backup's gzip file (admin; audited, as in the API).
pub async fn download_get(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ws, id, b)): Path<(String, String, String)>,
) -> PageResult {
    Ok(backup_file_response(state.services.download_backup(&viewer.actor, &ws, &id, &b).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_says_them() {
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(3 * 1024 * 1024), "3.0 MiB");
    }
}
