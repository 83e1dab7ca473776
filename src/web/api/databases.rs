//! Managed databases of a workspace and their backups.

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth, OptionalJson};
use super::views::Deleted;
use super::{CommonErrors, Envelope, created, ok};
use crate::services::{
    Attached, BackupFile, BackupView, DatabaseInput, DatabaseView, DeletedDatabase, RestoreInput, RestoreView,
};
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST …/databases`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabaseRequest {
    /// Lowercase letters, digits and '-', 1–40 characters; apps reach it at `<name>.db`.
    pub name: String,
    /// `postgresql`, `mysql`, `redis` or `mongo`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The image tag's version (default: 16, 8.4, 7, 7).
    pub version: Option<String>,
    /// Also publish it on a host port (answered with a warning). Default false.
    #[serde(default)]
    pub public: bool,
}

/// `DELETE …/databases/:id` as a query string, for clients that send no DELETE body.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteDatabaseQuery {
    /// The database's name, typed again.
    pub confirm: Option<String>,
    /// Also delete the volume (all data) and the backup files.
    #[serde(default)]
    pub purge: bool,
}

/// `DELETE …/databases/:id` (the same fields may come as `?confirm=&purge=`).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteDatabaseRequest {
    /// The database's name, typed again.
    pub confirm: Option<String>,
    /// Also delete the volume (all data) and the backup files. Default false.
    #[serde(default)]
    pub purge: bool,
}

/// `POST …/databases/:id/attach`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The project's slug.
    pub project: String,
    /// Default `DATABASE_URL` (PostgreSQL, MySQL), `REDIS_URL` or `MONGO_URL`.
    pub env_key: Option<String>,
}

/// `POST …/backups/:b/restore`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The database's name, to replace its data with the backup.
    pub confirm: Option<String>,
    /// Instead: the name of a new database (same type and version) to restore into.
    pub into: Option<String>,
}

/// `PUT …/databases/:id/backup-schedule`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Cron expression in UTC: 5 fields (`0 3 * * *`), or 6 with seconds first. `null` or `""` removes it.
    pub cron: Option<String>,
    /// Scheduled backups to keep (1–1000, default 7).
    pub retain: Option<u32>,
}

/// A workspace's databases.
#[derive(Serialize, ToSchema)]
pub struct DatabaseList {
    pub databases: Vec<DatabaseView>,
}

/// A database's backups, newest first.
#[derive(Serialize, ToSchema)]
pub struct BackupList {
    pub backups: Vec<BackupView>,
}

/// The workspace's databases (member; credentials masked below admin).
#[utoipa::path(get, path = "/api/workspaces/{ws}/databases", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug")),
    responses((status = 200, description = "The databases", body = Envelope<DatabaseList>), CommonErrors))]
pub async fn list_databases(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(DatabaseList { databases: state.services.list_databases(&actor, &ws).await? }))
}

/// Creates a database (admin) and answers once it accepts connections (`status: running`; `starting` if it
/// took longer than 90 s). 409 when the name is taken in the workspace.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug")),
    request_body = CreateDatabaseRequest,
    responses((status = 201, description = "Created", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn create_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreateDatabaseRequest>,
) -> Result<Response, ApiError> {
    let input = DatabaseInput { name: body.name, kind: body.kind, version: body.version, public: body.public };
    Ok(created(state.services.create_database(&actor, &ws, input).await?))
}

/// One database (member; credentials masked below admin).
#[utoipa::path(get, path = "/api/workspaces/{ws}/databases/{id}", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 200, description = "The database", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn get_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.get_database(&actor, &ws, &id).await?))
}

/// Deletes a database (admin) with `{"confirm": "<name>"}`. Its volume and backup files are kept unless
/// `purge: true`.
#[utoipa::path(delete, path = "/api/workspaces/{ws}/databases/{id}", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id"),
        DeleteDatabaseQuery),
    request_body = DeleteDatabaseRequest,
    responses((status = 200, description = "Deleted", body = Envelope<DeletedDatabase>), CommonErrors))]
pub async fn delete_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteDatabaseQuery>,
    OptionalJson(body): OptionalJson<DeleteDatabaseRequest>,
) -> Result<Response, ApiError> {
    let confirm = body.confirm.or(query.confirm);
    let purge = body.purge || query.purge;
    Ok(ok(state.services.delete_database(&actor, &ws, &id, confirm.as_deref(), purge).await?))
}

/// Starts the database (admin), re-creating its container on the same volume if it is gone, and waits
/// until it accepts connections.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/start", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 200, description = "Done", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn start_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.control_database(&actor, &ws, &id, "start").await?))
}

/// Stops the database (admin); the volume keeps the data.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/stop", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 200, description = "Done", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn stop_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.control_database(&actor, &ws, &id, "stop").await?))
}

/// Restarts the database (admin) and waits until it accepts connections.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/restart", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 200, description = "Done", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn restart_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.control_database(&actor, &ws, &id, "restart").await?))
}

/// Adds the connection string to a project as a secret env var (admin) and says whether running replicas need
/// a restart to see it.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/attach", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    request_body = AttachRequest,
    responses((status = 200, description = "Attached", body = Envelope<Attached>), CommonErrors))]
pub async fn attach_database(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<AttachRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.attach_database(&actor, &ws, &id, &body.project, body.env_key.as_deref()).await?))
}

/// The database's backups (member), newest first, failed ones with their error.
#[utoipa::path(get, path = "/api/workspaces/{ws}/databases/{id}/backups", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 200, description = "The backups", body = Envelope<BackupList>), CommonErrors))]
pub async fn list_backups(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(BackupList { backups: state.services.list_backups(&actor, &ws, &id).await? }))
}

/// Starts a backup now (member) and answers 202 with it `running`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/backups", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    responses((status = 202, description = "Started", body = Envelope<BackupView>), CommonErrors))]
pub async fn create_backup(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let b = state.services.create_backup(&actor, &ws, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Envelope { success: true, data: b })).into_response())
}

/// Restores a backup (admin): into the same database with `{"confirm": "<name>"}` (after a safety backup), or
/// into a new database with `{"into": "<new name>"}`.
#[utoipa::path(post, path = "/api/workspaces/{ws}/databases/{id}/backups/{b}/restore", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id"),
        ("b" = String, Path, description = "Backup id")),
    request_body = RestoreRequest,
    responses((status = 200, description = "Restored", body = Envelope<RestoreView>), CommonErrors))]
pub async fn restore_backup(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id, b)): Path<(String, String, String)>,
    OptionalJson(body): OptionalJson<RestoreRequest>,
) -> Result<Response, ApiError> {
    let input = RestoreInput { confirm: body.confirm, into: body.into };
    Ok(ok(state.services.restore_backup(&actor, &ws, &id, &b, input).await?))
}

/// Deletes a finished backup and its file (admin; audited).
#[utoipa::path(delete, path = "/api/workspaces/{ws}/databases/{id}/backups/{b}", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id"),
        ("b" = String, Path, description = "Backup id")),
    responses((status = 200, description = "Deleted", body = Envelope<Deleted>), CommonErrors))]
pub async fn delete_backup(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id, b)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    state.services.delete_backup(&actor, &ws, &id, &b).await?;
    Ok(ok(Deleted { id: b, deleted: true }))
}

/// Downloads a backup's gzip file (admin; audited).
#[utoipa::path(get, path = "/api/workspaces/{ws}/databases/{id}/backups/{b}/download", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id"),
        ("b" = String, Path, description = "Backup id")),
    responses((status = 200, description = "The file", content_type = "application/gzip", body = Vec<u8>), CommonErrors))]
pub async fn download_backup(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id, b)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    Ok(backup_file_response(state.services.download_backup(&actor, &ws, &id, &b).await?))
}

/// A backup file as a streamed gzip download (the API's and the dashboard's download answer the same way).
pub fn backup_file_response(f: BackupFile) -> Response {
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f.file));
    (
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_LENGTH, f.size.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", f.file_name)),
        ],
        body,
    )
        .into_response()
}

/// Sets the backup schedule (admin): a cron expression (UTC) and how many scheduled backups to keep.
#[utoipa::path(put, path = "/api/workspaces/{ws}/databases/{id}/backup-schedule", tag = "databases",
    params(("ws" = String, Path, description = "Workspace slug"), ("id" = String, Path, description = "Database id")),
    request_body = ScheduleRequest,
    responses((status = 200, description = "Scheduled", body = Envelope<DatabaseView>), CommonErrors))]
pub async fn put_backup_schedule(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((ws, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<Response, ApiError> {
    Ok(ok(state.services.set_backup_schedule(&actor, &ws, &id, body.cron.as_deref(), body.retain).await?))
}
